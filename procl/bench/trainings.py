"""The bench's state, its datasets and every training it runs, in parallel.

`prepare` generates the plan's datasets (plan.py) into the empty bench folder and
extracts their features. `plan_jobs` lists the trainings of a plan (a `Job` each);
`train_all` runs them in a process pool, one training per core: a training runs on
one thread (procl.train.TRAIN_THREADS) and is deterministic per seed, so the runs equal
those trained one after the other. Jobs whose resolved settings are the same (say a
lever that does not change the epochs on this dataset) are trained once.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from procl import ProclError, runs
from procl.bench.nogrid import write_without_grid
from procl.bench.plan import (
    REAL_DATA,
    REAL_DATA_ENV,
    RECIPES,
    SMALL_K,
    Plan,
    cores,
    generator_args,
    planned_shape,
    planned_true_k,
    true_k,
)
from procl.config import DECODE_LEVERS, LEVER_SPECS, LEVERS, TrainConfig
from procl.config import RECIPES as RECIPE_LEVERS
from procl.data import Dataset, open_dataset, synth
from procl.features.cache import load_or_extract
from procl.features.types import FeatureSet
from procl.infer import LoadedRun, load_run
from procl.train import TRAIN_THREADS, train

# Rows that need their own training, as TrainConfig overrides.
ROW_OVERRIDES: dict[str, dict] = {
    "full": {},
    "attention_only": {"learnable_pooling": False},
    "pooling_only": {"attention": False},
    "lam0": {"lam": 0.0},
    "labels_only": {"ranking": False},
    "single": {"setting": "single"},
}
# levers off in both recipes, turned on in a row of the default recipe (levers only the
# decoding reads, DECODE_LEVERS, are scored on the full run)
LEVER_ON: dict = {lv.name: lv.bench_on for lv in LEVER_SPECS if lv.bench_on is not None}
RECIPE_COST = {"default": 1.0, "paper": 0.65}  # seconds of a training step against the default recipe's
REFERENCE_STEPS = 1680 * (1 + 90 / 500)  # a built-in default training: 20 epochs of 84 videos of ~90 frames


def lever_value(lever: str, recipe: str):
    """The value a lever takes in the ablation row of `recipe`: the other recipe's, or for
    a lever that is off in both, on (default recipe only); None when there is no row."""
    other = RECIPE_LEVERS["paper" if recipe == "default" else "default"][lever]
    if other != RECIPE_LEVERS[recipe][lever]:
        return other
    return LEVER_ON.get(lever) if recipe == "default" else None


def ablated_levers(plan: Plan, recipe: str) -> list[str]:
    """The levers with an ablation row for `recipe` in this plan."""
    levers = plan.levers if recipe == "default" else (LEVERS if plan.paper_levers else ())
    return [lv for lv in levers if lever_value(lv, recipe) is not None]


# ---------------------------------------------------------------- datasets


@dataclass
class Data:
    """One dataset of the bench with its features."""

    name: str
    spec: str
    dataset: Dataset
    features: FeatureSet
    generator: dict = field(default_factory=dict)  # synth.generate arguments (generated sets)
    generate_s: float = 0.0
    features_s: float = 0.0

    @property
    def k_true(self) -> int:
        return true_k(self.dataset.steps)

    @property
    def frames(self) -> int:
        return sum(v.T for v in self.features.videos.values())

    def videos(self, split: str) -> list:
        return [v for v in self.dataset.videos_of(split=split) if v.id in self.features.videos]

    def shape(self) -> "Shape":
        n = len(self.features.videos)
        return Shape(self.k_true, len(self.videos("train")), n, self.frames / n)


@dataclass(frozen=True)
class Shape:
    """What the job list and the estimate need of a dataset, planned or measured."""

    k_true: int
    train_videos: int
    videos: int
    frames_per_video: float


def planned_shapes(plan: Plan) -> dict[str, Shape]:
    """The shapes the plan's datasets will have (before they are generated)."""
    out = {}
    for name in ("builtin", *plan.variants, "small"):
        args = generator_args(plan, name)
        out[name] = Shape(planned_true_k(args), *planned_shape(args))
    for name in plan.nogrid:
        out[f"{name}-nogrid"] = out[name]
    path = real_data_path()
    if (path / "groundTruth").is_dir():  # one label per frame and line
        lengths = [len(f.read_text(encoding="utf-8").splitlines()) for f in (path / "groundTruth").iterdir()]
        out["breakfast"] = Shape(0, len(lengths), len(lengths), sum(lengths) / max(len(lengths), 1))
    return out


def real_data_path() -> Path:
    return Path(os.environ.get(REAL_DATA_ENV, REAL_DATA))


# ---------------------------------------------------------------- the bench state


@dataclass
class Bench:
    """The datasets and the trained runs, shared by every table and measurement."""

    plan: Plan
    root: Path
    progress: bool
    device: str = "auto"  # for the speed measurements that take one
    start: float = field(default_factory=time.perf_counter)
    data: dict[str, Data] = field(default_factory=dict)
    real_skipped: str = ""  # why the Breakfast sample is not there, when it is not
    runs: dict[tuple, Path] = field(default_factory=dict)  # Job.key -> run folder
    train_seconds: dict[tuple, float] = field(default_factory=dict)  # Job.key -> wall seconds
    same_as: dict[tuple, tuple] = field(default_factory=dict)  # Job.key -> the key of the job trained for it
    cores: int = field(default_factory=cores)  # pool workers, and threads for the large measurements
    train_threads: int = TRAIN_THREADS  # torch threads of the training loop
    loaded: dict[Path, LoadedRun] = field(default_factory=dict, repr=False)  # run folder -> its model, read once

    def log(self, message: str) -> None:
        print(f"[bench {time.perf_counter() - self.start:7.1f}s] {message}", file=sys.stderr, flush=True)

    @property
    def builtin(self) -> Data:
        return self.data["builtin"]

    @property
    def k_true(self) -> int:
        return self.builtin.k_true

    @property
    def ks(self) -> list[int]:
        """The built-in set's k grid, its true k included."""
        return sorted(set(self.plan.ks) | {self.k_true})

    def run(self, data: str, recipe: str, row: str, k: int, seed: int) -> Path:
        return self.runs[(data, recipe, row, k, seed)]

    def load(self, path: Path) -> LoadedRun:
        """A trained run's model and states, read once per bench (never changed: callers `replace`)."""
        if path not in self.loaded:
            self.loaded[path] = load_run(path)
        return self.loaded[path]

    def seconds(self, data: str, recipe: str, row: str, k: int, seed: int) -> float:
        """Wall seconds of a row's training (of the run it shares, when it shares one)."""
        key = (data, recipe, row, k, seed)
        return self.train_seconds[self.same_as.get(key, key)]


def prepare(b: Bench) -> None:
    """Generate the plan's datasets into the empty bench folder, extract their features
    (timed), and open the Breakfast sample when it is there."""
    for name in ("builtin", *b.plan.variants, "small"):
        args = generator_args(b.plan, name)
        root = b.root / "data" / name
        b.log(f"generating {name}: " + ", ".join(f"{k} {v}" for k, v in args.items()))
        start = time.perf_counter()
        synth.generate(root, progress=b.progress, workers=b.plan.workers, **args)
        generate_s = time.perf_counter() - start
        dataset = open_dataset(f"folder:{root}", progress=False)
        dataset.boxes_dir = root / "boxes"
        b.log(f"extracting features of {name} ({len(dataset.videos)} videos, default backbone)")
        start = time.perf_counter()
        features = load_or_extract(dataset, progress=b.progress)
        b.data[name] = Data(name, dataset.spec, dataset, features, args, generate_s,
                            time.perf_counter() - start)
    for name in b.plan.nogrid:
        source = b.data[name]
        root = write_without_grid(source.dataset, source.features, b.root / "data" / f"{name}-nogrid")
        dataset = open_dataset(f"actseg:{root}", progress=False)
        b.data[f"{name}-nogrid"] = Data(f"{name}-nogrid", dataset.spec, dataset,
                                        load_or_extract(dataset, progress=False), source.generator)
    path = real_data_path()
    if not (path / "features").is_dir():
        b.real_skipped = f"{path} not found (set {REAL_DATA_ENV} to the breakfast_coffee folder)"
        return
    dataset = open_dataset(f"actseg:{path}", progress=False)
    b.data["breakfast"] = Data("breakfast", dataset.spec, dataset, load_or_extract(dataset, progress=False))


# ---------------------------------------------------------------- the trainings


@dataclass(frozen=True)
class Job:
    """One training: a row of a table on a dataset, for one recipe, k and seed."""

    data: str
    recipe: str
    row: str  # a ROW_OVERRIDES key, or "lever-<name>"
    k: int
    seed: int

    @property
    def key(self) -> tuple:
        return (self.data, self.recipe, self.row, self.k, self.seed)

    @property
    def name(self) -> str:
        return f"{self.data}-{self.recipe}-{self.row}-k{self.k}-s{self.seed}"

    def overrides(self) -> dict:
        if self.row.startswith("lever-"):
            lever = self.row.removeprefix("lever-")
            return {lever: lever_value(lever, self.recipe)}
        return ROW_OVERRIDES[self.row]

    def config(self, plan: Plan, spec: str) -> TrainConfig:
        """The run's settings; trainings run on the CPU (one thread each, reproducible)."""
        return TrainConfig(dataset=spec, k=self.k, seed=self.seed, recipe=self.recipe, epochs=plan.epochs,
                           device="cpu", **self.overrides())


def plan_jobs(plan: Plan, shapes: dict[str, Shape]) -> list[Job]:
    """Every training of the plan (shapes: each dataset's, for its true k)."""
    kt = shapes["builtin"].k_true
    jobs = []
    for seed in plan.seeds:
        for recipe in RECIPES:
            jobs += [Job("builtin", recipe, "full", k, seed) for k in sorted(set(plan.ks) | {kt})]
            jobs += [Job("builtin", recipe, row, kt, seed) for row in plan.claim_rows]
            jobs += [Job("builtin", recipe, f"lever-{lv}", kt, seed) for lv in ablated_levers(plan, recipe)
                     if lv not in (*DECODE_LEVERS, "min_steps")]
            jobs += [Job(v, recipe, "full", shapes[v].k_true, seed) for v in plan.variants]
            jobs.append(Job("small", recipe, "full", SMALL_K, seed))
            if "min_steps" in ablated_levers(plan, recipe):  # it acts where the automatic epochs differ: small data
                jobs.append(Job("small", recipe, "lever-min_steps", SMALL_K, seed))
            for name in plan.nogrid:  # multi-task and single-task, as a researcher's [T, D] download
                jobs += [Job(f"{name}-nogrid", recipe, row, shapes[name].k_true, seed) for row in ("full", "single")]
            if "breakfast" in shapes:
                jobs += [Job("breakfast", recipe, "single", k, seed) for k in plan.real_ks]
    return jobs


def _resolved(plan: Plan, job: Job, shape: Shape) -> TrainConfig:
    cfg = job.config(plan, job.data).resolved()
    videos = shape.videos if cfg.setting == "single" else shape.train_videos
    return replace(cfg, epochs=cfg.epochs_for(videos), min_steps=None)  # min_steps acts through the epochs only


def dedupe(plan: Plan, jobs: list[Job], shapes: dict[str, Shape]) -> tuple[list[Job], dict[tuple, tuple]]:
    """(the jobs to train, {key of a job with the same settings as a trained one: that one's key})."""
    first: dict[tuple, Job] = {}
    same: dict[tuple, tuple] = {}
    for job in jobs:
        settings = tuple(sorted(asdict(_resolved(plan, job, shapes[job.data])).items()))
        if settings in first:
            same[job.key] = first[settings].key
        else:
            first[settings] = job
    return list(first.values()), same


def job_seconds(plan: Plan, job: Job, shape: Shape) -> float:
    """Estimated seconds of one training on one core: plan.train_s per built-in default
    training, scaled by its steps (epochs x videos) and their length (a step's cost grows
    by a fifth per 100 frames: measured on the built-in set and on Breakfast)."""
    cfg = _resolved(plan, job, shape)
    steps = cfg.epochs * (shape.videos if cfg.setting == "single" else shape.train_videos)
    return plan.train_s * RECIPE_COST[job.recipe] * steps * (1 + shape.frames_per_video / 500) / REFERENCE_STEPS


def estimate(plan: Plan, shapes: dict[str, Shape], workers: int) -> tuple[int, float]:
    """(trainings, expected seconds of the whole bench) on `workers` cores."""
    todo, _ = dedupe(plan, plan_jobs(plan, shapes), shapes)
    train_s = sum(job_seconds(plan, j, shapes[j.data]) for j in todo)
    return len(todo), train_s / max(1, min(workers, len(todo))) + plan.fixed_s


def train_worker(fields: dict, run: str, data_dir: str, checkpoints_dir: str) -> tuple[str, float]:
    """One training in a pool process (top level, so that spawn finds it): TrainConfig
    fields, the run name, and PROCL_DATA / PROCL_CHECKPOINTS. Returns (run folder, seconds)."""
    os.environ["PROCL_DATA"] = data_dir
    os.environ["PROCL_CHECKPOINTS"] = checkpoints_dir
    torch.set_num_threads(TRAIN_THREADS)
    start = time.perf_counter()
    path = train(TrainConfig(**fields), run=run, progress=False)
    state = runs.read_status(path).get("state")
    if state != "done":
        raise ProclError(f"training {run} ended {state}: see {path / 'status.json'}")
    return str(path), time.perf_counter() - start


def train_all(b: Bench) -> None:
    """Every training of the plan in a pool of b.cores processes (spawned), the longest
    first; a progress line with the time left after each."""
    shapes = {name: d.shape() for name, d in b.data.items()}
    todo, b.same_as = dedupe(b.plan, plan_jobs(b.plan, shapes), shapes)
    estimated = {j.key: job_seconds(b.plan, j, shapes[j.data]) for j in todo}
    todo.sort(key=lambda j: -estimated[j.key])
    workers = max(1, min(b.cores, len(todo)))
    b.log(f"{len(todo)} trainings on {workers} processes"
          + (f" ({len(b.same_as)} more rows reuse a run with the same settings)" if b.same_as else ""))
    env = (os.environ["PROCL_DATA"], os.environ["PROCL_CHECKPOINTS"])
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {}
        for job in todo:
            fields = asdict(job.config(b.plan, b.data[job.data].spec))
            pending[pool.submit(train_worker, fields, job.name, *env)] = job
        measured = 0.0
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    path, seconds = future.result()
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    b.log(f"training {job.name} failed")
                    raise
                b.runs[job.key], b.train_seconds[job.key] = Path(path), seconds
                measured += seconds
                ratio = measured / sum(estimated[k] for k in b.runs)
                left = ratio * sum(estimated[j.key] for j in pending.values()) / workers
                b.log(f"trained {len(b.runs)}/{len(todo)}: {job.name} in {seconds:.0f} s "
                      f"(about {left / 60:.1f} min of training left)")
    for key, trained in b.same_as.items():
        b.runs[key] = b.runs[trained]


def clear(root: Path) -> None:
    """The bench folder of a plan, emptied (a new run starts from nothing)."""
    if root.exists():
        shutil.rmtree(root)
