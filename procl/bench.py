"""`python -m procl bench [--quick] [--out FILE]`: the paper's tables and claims, and speed.

One run does, on a built-in dataset it generates itself into an empty folder:
- quality tables (multi-task, test split, every k of the plan and the true k, every
  seed; mean +- std over seeds of Recall, Precision, F1 and task Accuracy): the
  baselines (procl.baselines), procl with attention only, learnable pooling only,
  both, both with lambda = 0, both with `--background unselected`, task labels only
  (no ranking loss), and the teacher's own score on the final attention features;
- a single-task table (the paper's Table 1 style, all videos scored), next to the
  multi-task model scored on the same videos;
- attention quality: the share of attention mass inside the ground-truth key-step box;
- real data (`actseg:data/samples/breakfast_coffee`, single-task, k in {4, 5, 7});
- the paper's claims C1-C6 as holds / does not hold / inconclusive (rule below), and
  the built-in dataset's calibration check;
- speed: feature pipeline against the bare forward pass, training seconds per epoch,
  FLOP/s of a training step against a large matmul, teacher share of an epoch,
  subset selection at N = 1,000,000, inference per 100-frame video, end-to-end minutes
  from an empty data folder, and epoch / selection cost at 1x, 2x, 4x the videos.

Definitions:
- true k: the number of key-steps of the task with the most (so every task's steps fit
  in k; the built-in six tasks have 5 to 8 steps, true k = 8).
- claim rule: "A beats B" compares the means over seeds; with d = mean(A) - mean(B)
  and margin = max(sqrt(std(A)^2 + std(B)^2), 0.01) (std over seeds, ddof 1; 0 with
  one seed), it holds when d > margin, does not hold when d < -margin, and is
  inconclusive otherwise. A claim made of several comparisons holds when all hold and
  does not hold when any does not.

Everything the bench writes lives in `data_dir()/bench/<plan>/` (its own `data/` and
`checkpoints/`, through PROCL_DATA and PROCL_CHECKPOINTS for the duration of the run),
removed at the start of the next run of that plan. Only the full plan writes
docs/RESULTS.md (atomically); --quick and the tests never do.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import procl
from procl import ProclError, runs
from procl.baselines import run_baselines
from procl.data import Dataset, open_dataset, synth
from procl.features.backbones import get_backbone
from procl.features.cache import load_or_extract, measure_throughput
from procl.features.types import FeatureSet
from procl.infer import load_run, predict_dataset, predict_video, score
from procl.io import read_json, write_text
from procl.model import NetConfig, ProcedureNet
from procl.paths import data_dir
from procl.selection import subset_selection
from procl.train import (TRAIN_THREADS, TrainConfig, Unit, attention_features, net_config, refresh_teacher, train,
                         train_step)

REPO = Path(__file__).resolve().parents[1]
RESULTS_PATH = REPO / "docs" / "RESULTS.md"
REAL_DATA = REPO / "data" / "samples" / "breakfast_coffee"
REAL_DATA_ENV = "PROCL_BENCH_REAL_DATA"  # another folder with that sample, if moved
MIN_MARGIN = 0.01  # one point of F1 / accuracy: the least difference a claim counts
STABLE_RANGE = 0.05  # C5: F1 may move this much across k and still be "stable"
METRICS = ("recall", "precision", "f1", "accuracy")
SINGLE_COST, REAL_COST = 1.3, 0.3  # a single-task / real-data training against a multi-task one (measured)

# The procl rows that need their own training (multi-task), as TrainConfig overrides.
VARIANTS: dict[str, dict] = {
    "full": {},
    "attention_only": {"learnable_pooling": False},
    "pooling_only": {"attention": False},
    "lam0": {"lam": 0.0},
    "labels_only": {"ranking": False},
}
QUALITY_ROWS: list[tuple[str, str]] = [
    ("random", "Random"),
    ("uniform", "Uniform"),
    ("kmeans", "k-means only (mean-pooled, no attention)"),
    ("subset_selection", "subset selection only (teacher on mean-pooled)"),
    ("attention_only", "procl: attention only (uniform pooling)"),
    ("pooling_only", "procl: learnable pooling only (no attention)"),
    ("full", "procl: attention + learnable pooling"),
    ("full_teacher", "teacher at the end of training (same attention features)"),
    ("lam0", "procl: both, lambda = 0"),
    ("background_unselected", "procl: both, --background unselected"),
    ("labels_only", "procl: task labels only (no ranking loss)"),
]
SINGLE_ROWS: list[tuple[str, str]] = [
    ("random", "Random"),
    ("subset_selection", "subset selection only (per task, mean-pooled)"),
    ("single", "procl single-task"),
    ("multi_all", "procl multi-task (same videos: all)"),
    ("multi_test", "procl multi-task (test split only)"),
]
REAL_ROWS: list[tuple[str, str]] = [
    ("random", "Random"),
    ("uniform", "Uniform"),
    ("kmeans", "k-means only"),
    ("subset_selection", "subset selection only"),
    ("single", "procl single-task"),
]


@dataclass(frozen=True)
class Plan:
    """What one bench run does and on what data (FULL, QUICK and TINY below).

    train_s and fixed_s only feed the printed duration estimate: seconds of one
    multi-task training, and of everything that is not training, as measured on the
    2-core development machine while others used it too.
    """

    name: str
    n_tasks: int = 6
    videos_per_task: int = 20
    min_duration: float = 30.0
    max_duration: float = 60.0
    frame_size: int = 224
    workers: int | None = None  # generator processes (None: by CPU count)
    epochs: int = 20  # the default of `procl train`
    seeds: tuple[int, ...] = (0, 1, 2)
    ks: tuple[int, ...] = (7, 10, 12, 15)  # the true k is added
    real_ks: tuple[int, ...] = (4, 5, 7)
    backbones: tuple[str, ...] = ("default", "vgg19", "resnet50")
    default_frames: int = 480  # frames for the default backbone's throughput
    cnn_frames: int = 60  # frames for each CNN's throughput (random weights)
    selection_n: int = 1_000_000
    scale_factors: tuple[int, ...] = (1, 2, 4)
    matmul_n: int = 2048
    timing_reps: int = 20
    train_s: float = 25.0
    fixed_s: float = 400.0


FULL = Plan("full")
QUICK = Plan("quick", videos_per_task=8, min_duration=20.0, max_duration=40.0, seeds=(0,), ks=(7,),
             backbones=("default", "resnet50"), default_frames=240, cnn_frames=40, train_s=10.0, fixed_s=110.0)
TINY = Plan("tiny", n_tasks=3, videos_per_task=4, min_duration=8.0, max_duration=12.0, frame_size=112,
            workers=1, epochs=2, seeds=(0,), ks=(4,), real_ks=(4,), backbones=("default",),
            default_frames=20, cnn_frames=0, selection_n=10_000, scale_factors=(1, 2), matmul_n=256,
            timing_reps=3, train_s=1.0, fixed_s=10.0)


# ---------------------------------------------------------------- helpers


def true_k(steps: dict[str, list[str]]) -> int:
    """The number of key-steps of the task with the most (see the module docstring)."""
    return max(len(s) for s in steps.values())


def all_ks(plan: Plan, k_true: int) -> list[int]:
    return sorted(set(plan.ks) | {k_true})


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and standard deviation (ddof 1; 0 for a single value)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def compare(a: list[float], b: list[float]) -> dict:
    """The claim rule (module docstring) for "A beats B" over per-seed values."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    d = ma - mb
    margin = max(math.hypot(sa, sb), MIN_MARGIN)
    verdict = "holds" if d > margin else "does not hold" if d < -margin else "inconclusive"
    return {"verdict": verdict, "a": (ma, sa), "b": (mb, sb), "diff": d, "margin": margin}


def combine(verdicts: list[str]) -> str:
    if all(v == "holds" for v in verdicts):
        return "holds"
    return "does not hold" if "does not hold" in verdicts else "inconclusive"


def values(rows: list[dict], key: str) -> list[float]:
    return [r[key] for r in rows if r.get(key) is not None]


def headline(m: dict, accuracy: bool = True) -> dict:
    """R, P, F1 (and task accuracy) of a metrics dict; accuracy None when not scored."""
    return {k: m.get(k) for k in ("recall", "precision", "f1")} | {"accuracy": m.get("accuracy") if accuracy else None}


def cell_coverage(box: tuple[float, float, float, float], grid: int = 7) -> np.ndarray:
    """Fraction of each grid cell covered by a normalised box (x0, y0, x1, y1): [grid * grid],
    row-major (cell r = row * grid + column, the order of the backbones' R axis)."""
    x0, y0, x1, y1 = box
    edges = np.arange(grid + 1) / grid
    ox = np.clip(np.minimum(x1, edges[1:]) - np.maximum(x0, edges[:-1]), 0, None)  # [grid]
    oy = np.clip(np.minimum(y1, edges[1:]) - np.maximum(y0, edges[:-1]), 0, None)  # [grid]
    return (np.outer(oy, ox) * grid * grid).ravel()


def read_boxes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A boxes CSV (time,x0,y0,x1,y1; empty fields without a key-step): times [N], boxes [N, 4]
    with NaN rows where no key-step is active."""
    times, boxes = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            times.append(float(row["time"]))
            boxes.append([float(row[c]) if row[c] else np.nan for c in ("x0", "y0", "x1", "y1")])
    return np.array(times), np.array(boxes, dtype=np.float64).reshape(-1, 4)


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "platform": platform.platform()}


def versions() -> dict:
    import cv2
    import scipy
    import sklearn

    return {"python": platform.python_version(), "procl": procl.__version__, "torch": torch.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "opencv": cv2.__version__}


def _timed(fn: Callable[[], object], reps: int) -> list[float]:
    """Wall seconds of `reps` calls of fn (after one warm-up call)."""
    fn()
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


@contextmanager
def threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to n for the duration, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def bench_env(root: Path) -> Iterator[None]:
    """PROCL_DATA and PROCL_CHECKPOINTS inside `root` for the duration, restored after."""
    keys = ("PROCL_DATA", "PROCL_CHECKPOINTS")
    old = {k: os.environ.get(k) for k in keys}
    os.environ["PROCL_DATA"] = str(root / "data")
    os.environ["PROCL_CHECKPOINTS"] = str(root / "checkpoints")
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------- the bench state


@dataclass
class Bench:
    """The generated dataset, its features and the trained runs, shared by every table."""

    plan: Plan
    root: Path
    progress: bool
    start: float = field(default_factory=time.perf_counter)
    spec: str = ""
    dataset: Dataset | None = None
    features: FeatureSet | None = None
    k_true: int = 0
    runs: dict[tuple[str, int, int], Path] = field(default_factory=dict)  # (row, k, seed) -> run
    train_seconds: dict[tuple[str, int, int], float] = field(default_factory=dict)
    setup: dict = field(default_factory=dict)
    cores: int = field(default_factory=lambda: machine()["cores"])  # threads for the large measurements
    train_threads: int = TRAIN_THREADS  # torch threads of the training loop

    def log(self, message: str) -> None:
        print(f"[bench {time.perf_counter() - self.start:7.1f}s] {message}", file=sys.stderr, flush=True)

    @property
    def ks(self) -> list[int]:
        return all_ks(self.plan, self.k_true)


def training_jobs(plan: Plan, k_true: int) -> list[tuple[str, int, int]]:
    """Every (row, k, seed) to train, the default run (full, true k, first seed) first."""
    ks = all_ks(plan, k_true)
    jobs = [(row, k, seed) for seed in plan.seeds for k in ks for row in [*VARIANTS, "single"]]
    first = ("full", k_true, plan.seeds[0])
    return [first] + [j for j in jobs if j != first]


def expected_seconds(plan: Plan, k_true: int) -> float:
    """The duration estimate printed before the start (see Plan)."""
    jobs = training_jobs(plan, k_true)
    n_single = sum(1 for row, _, _ in jobs if row == "single")
    n_real = len(plan.real_ks) * len(plan.seeds)
    return plan.train_s * (len(jobs) - n_single + SINGLE_COST * n_single + REAL_COST * n_real) + plan.fixed_s


def prepare(b: Bench) -> None:
    """Generate the dataset into the empty bench folder and extract its features (timed)."""
    p = b.plan
    root = b.root / "data" / "synthetic"
    b.log(f"generating {p.n_tasks} tasks x {p.videos_per_task} videos of {p.min_duration:g}-{p.max_duration:g} s")
    start = time.perf_counter()
    synth.generate(root, p.n_tasks, p.videos_per_task, seed=0, frame_size=p.frame_size,
                   min_duration=p.min_duration, max_duration=p.max_duration, progress=b.progress,
                   workers=p.workers)
    b.setup["generate_s"] = time.perf_counter() - start
    b.spec = f"folder:{root}"
    b.dataset = open_dataset(b.spec, progress=False)
    b.dataset.boxes_dir = root / "boxes"
    b.log(f"extracting features ({len(b.dataset.videos)} videos, default backbone)")
    start = time.perf_counter()
    b.features = load_or_extract(b.dataset, progress=b.progress)
    b.setup["features_s"] = time.perf_counter() - start
    b.k_true = true_k(b.dataset.steps)
    b.setup["frames"] = sum(v.T for v in b.features.videos.values())


def train_all(b: Bench) -> None:
    """Every training of the plan; progress lines with the time left."""
    jobs = training_jobs(b.plan, b.k_true)
    estimate = b.plan.train_s
    for i, (row, k, seed) in enumerate(jobs, 1):
        overrides = {"setting": "single"} if row == "single" else VARIANTS[row]
        cfg = TrainConfig(dataset=b.spec, k=k, seed=seed, epochs=b.plan.epochs, **overrides)
        left = sum(SINGLE_COST if r == "single" else 1.0 for r, _, _ in jobs[i - 1:]) * estimate
        b.log(f"training {i}/{len(jobs)}: {row} k={k} seed={seed} (about {left / 60:.1f} min of training left)")
        start = time.perf_counter()
        b.runs[(row, k, seed)] = train(cfg, run=f"{row}-k{k}-s{seed}", progress=False)
        b.train_seconds[(row, k, seed)] = time.perf_counter() - start
        multi = [s for (r, _, _), s in b.train_seconds.items() if r != "single"]
        estimate = statistics.median(multi) if multi else estimate


# ---------------------------------------------------------------- quality tables


def quality_tables(b: Bench) -> dict:
    """{k: {row: [scores per seed]}}: multi-task, test split (QUALITY_ROWS)."""
    out: dict[int, dict[str, list[dict]]] = {}
    for k in b.ks:
        rows: dict[str, list[dict]] = {name: [] for name, _ in QUALITY_ROWS}
        for seed in b.plan.seeds:
            for name, m in run_baselines(b.dataset, b.features, k, M=50, seed=seed).items():
                rows[name].append(headline(m, accuracy=False))
            for variant in VARIANTS:
                m = read_json(b.runs[(variant, k, seed)] / "metrics.json")
                rows[variant].append(headline(m))
                if variant == "full":
                    rows["full_teacher"].append(headline(m["teacher"], accuracy=False))
            loaded = load_run(b.runs[("full", k, seed)])
            loaded = replace(loaded, config={**loaded.config, "background": "unselected"})
            rows["background_unselected"].append(
                headline(score(predict_dataset(loaded, b.dataset, b.features, split="test"))))
        out[k] = rows
    return out


def single_task_tables(b: Bench) -> dict:
    """{k: {row: [scores per seed]}}: single-task setting, all videos scored (SINGLE_ROWS).

    Baselines fit per task (M = 30 states of that task's videos, as procl single-task);
    their per-task scores are averaged, as the metric protocol's headline is.
    """
    out: dict[int, dict[str, list[dict]]] = {}
    for k in b.ks:
        rows: dict[str, list[dict]] = {name: [] for name, _ in SINGLE_ROWS}
        for seed in b.plan.seeds:
            per_task = []
            for task in b.dataset.tasks:
                sub = replace(b.dataset, videos=b.dataset.videos_of(task=task), tasks=[task])
                per_task.append(run_baselines(sub, b.features, k, M=30, seed=seed, split="all", fit_split="all",
                                              names=("random", "subset_selection")))
            for name in ("random", "subset_selection"):
                rows[name].append({key: float(np.mean([t[name][key] for t in per_task]))
                                   for key in ("recall", "precision", "f1")} | {"accuracy": None})
            rows["single"].append(headline(read_json(b.runs[("single", k, seed)] / "metrics.json"), accuracy=False))
            loaded = load_run(b.runs[("full", k, seed)])
            rows["multi_all"].append(headline(score(predict_dataset(loaded, b.dataset, b.features, split="all"))))
            rows["multi_test"].append(headline(read_json(b.runs[("full", k, seed)] / "metrics.json")))
        out[k] = rows
    return out


def attention_quality(b: Bench) -> dict:
    """Share of attention mass inside the ground-truth key-step box, per seed (full runs,
    true k, test videos, key-step frames), against the uniform map's share (box area)."""
    shares, uniform, frames = [], [], 0
    test = [v for v in b.dataset.videos_of(split="test") if v.id in b.features.videos]
    for seed in b.plan.seeds:
        run = b.runs[("full", b.k_true, seed)]
        inside, area = [], []
        for video in test:
            out = runs.load_outputs(run, video.id)
            alpha = out["alpha"].astype(np.float64)  # [T, R]
            box_times, boxes = read_boxes(b.dataset.boxes_dir / Path(video.source).parent.name / f"{video.id}.csv")
            nearest = np.abs(box_times[None, :] - out["times"][:, None]).argmin(1)  # [T]
            for t, row in enumerate(nearest):
                box = boxes[row]
                if np.isnan(box).any():
                    continue
                inside.append(float(alpha[t] @ cell_coverage(tuple(box))))
                area.append(float((box[2] - box[0]) * (box[3] - box[1])))
        if not inside:
            raise ProclError(f"no key-step frame with a box in the test videos of {b.spec}: is {b.dataset.boxes_dir} there?")
        shares.append(float(np.mean(inside)))
        uniform.append(float(np.mean(area)))
        frames = len(inside)
    return {"share": shares, "uniform": uniform, "frames": frames, "k": b.k_true}


def real_data(b: Bench) -> dict:
    """Breakfast "coffee" (actseg), single-task setting: {k: {row: [scores per seed]}}, or a
    {"skipped": reason} when the sample is not there."""
    path = Path(os.environ.get(REAL_DATA_ENV, REAL_DATA))
    if not (path / "features").is_dir():
        return {"skipped": f"{path} not found (set {REAL_DATA_ENV} to the breakfast_coffee folder)"}
    spec = f"actseg:{path}"
    dataset = open_dataset(spec, progress=False)
    features = load_or_extract(dataset, progress=False)
    tables: dict[int, dict[str, list[dict]]] = {}
    for k in b.plan.real_ks:
        rows: dict[str, list[dict]] = {name: [] for name, _ in REAL_ROWS}
        for seed in b.plan.seeds:
            for name, m in run_baselines(dataset, features, k, M=30, seed=seed, split="all", fit_split="all").items():
                rows[name].append(headline(m, accuracy=False))
            b.log(f"real data: procl single-task k={k} seed={seed}")
            cfg = TrainConfig(dataset=spec, k=k, seed=seed, epochs=b.plan.epochs, setting="single")
            run = train(cfg, run=f"real-k{k}-s{seed}", progress=False)
            rows["single"].append(headline(read_json(run / "metrics.json"), accuracy=False))
        tables[k] = rows
    frames = sum(v.T for v in features.videos.values())
    return {"spec": spec, "videos": len(dataset.videos), "frames": frames, "D": features.D, "R": features.R,
            "steps": true_k(dataset.steps), "tables": tables}


# ---------------------------------------------------------------- speed


def _video_clip(b: Bench, T: int = 100) -> np.ndarray:
    """Region features [T, R, D] of a real video, repeated or cut to T frames."""
    feats = max(b.features.videos.values(), key=lambda v: v.T).feats
    reps = -(-T // len(feats))
    return np.ascontiguousarray(np.concatenate([feats] * reps)[:T], dtype=np.float32)


def feature_speed(b: Bench) -> list[dict]:
    """Pipeline frames/s against the bare forward pass, per backbone (CNNs: random weights)."""
    out = []
    ordered = sorted((v for v in b.dataset.videos if v.id in b.features.videos),
                     key=lambda v: b.features.videos[v.id].T)
    for name in b.plan.backbones:
        budget = b.plan.default_frames if name == "default" else b.plan.cnn_frames
        paths, frames = [], 0
        for video in ordered:
            if frames >= budget:
                break
            paths.append(Path(video.source))
            frames += b.features.videos[video.id].T
        b.log(f"speed: feature pipeline, {name} backbone, {len(paths)} video(s)")
        model = get_backbone(name, None if name == "default" else "none")
        # measure_throughput warms up on 2 frames; a full batch first keeps the CNNs' one-off
        # setup for the batch shape out of the forward-only timing
        model(np.zeros((model.batch_size, model.input_size, model.input_size, 3), np.uint8))
        out.append(measure_throughput(paths, model))
    return out


def training_speed(b: Bench) -> dict:
    """Seconds per epoch and teacher share (from the full runs), and a training step's
    FLOP/s (counted from layer shapes) against a large float32 matmul."""
    epochs, shares = [], []
    for (row, _, _), run in b.runs.items():
        if row == "full":
            status = read_json(run / "status.json")
            epochs += status["epoch_seconds"]
            shares.append(sum(status["teacher_seconds"]) / sum(status["epoch_seconds"]))

    cfg = TrainConfig(dataset=b.spec, k=b.k_true).resolved()
    torch.manual_seed(0)
    net = ProcedureNet(NetConfig(D=b.features.D, M=cfg.M, n_tasks=len(b.dataset.tasks), width=cfg.width))
    opt = torch.optim.RMSprop(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    y = torch.from_numpy(_video_clip(b))  # [100, R, D]
    r = torch.randint(0, cfg.M, (len(y),))
    with FlopCounterMode(display=False) as counter:
        train_step(cfg, net, opt, y, r, 0)
    flops = counter.get_total_flops()
    n = b.plan.matmul_n
    x, w = torch.randn(n, n), torch.randn(n, n)
    with threads(b.train_threads):
        step_s = statistics.median(_timed(lambda: train_step(cfg, net, opt, y, r, 0), b.plan.timing_reps))
        matmul_s = min(_timed(lambda: x @ w, 3))
    with threads(b.cores):
        matmul_all_s = min(_timed(lambda: x @ w, 3))
    return {"epoch_s": statistics.median(epochs), "epochs_measured": len(epochs),
            "teacher_share": statistics.median(shares), "step_flops": flops, "step_s": step_s,
            "step_flops_per_s": flops / step_s, "matmul_n": n, "matmul_flops_per_s": 2 * n**3 / matmul_s,
            "matmul_all_flops_per_s": 2 * n**3 / matmul_all_s, "threads": b.train_threads, "cores": b.cores}


def selection_speed(b: Bench) -> dict:
    """Subset selection at N frames, M = 50, k = 15 (one task, D of the features): best of two
    runs on the training loop's thread count and on all cores; the faster is reported."""
    n, M, k = b.plan.selection_n, 50, 15
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, b.features.D), dtype=np.float32)  # [N, D]
    centers = x[rng.choice(n, M, replace=False)]  # [M, D]
    seconds = {}
    for t in sorted({b.train_threads, b.cores}):
        with threads(t):
            seconds[t] = min(_timed(lambda: subset_selection([x], centers, k), 2))
    best = min(seconds, key=seconds.get)
    return {"N": n, "M": M, "k": k, "D": b.features.D, "seconds": seconds[best], "threads": best,
            "seconds_by_threads": seconds}


def inference_speed(b: Bench) -> dict:
    """Milliseconds of predict_video on a 100-frame video (the default run's network), median;
    the target is checked on the training loop's thread count (small per-video work)."""
    loaded = load_run(b.runs[("full", b.k_true, b.plan.seeds[0])])
    unit = next(iter(loaded.units))
    tasks = loaded.units[unit]
    y = _video_clip(b)
    ms = {}
    for n in sorted({b.train_threads, b.cores}):
        with threads(n):
            times = _timed(lambda: predict_video(loaded.nets[unit], y, tasks, loaded.selected[unit],
                                                 loaded.centers[unit], tasks[0], **loaded.decoding(unit)),
                           b.plan.timing_reps)
        ms[n] = 1000 * statistics.median(times)
    return {"frames": len(y), "ms": ms[b.train_threads], "threads": b.train_threads, "ms_by_threads": ms}


def scaling(b: Bench) -> list[dict]:
    """Epoch and selection cost at each multiple of the training videos (the videos repeated),
    with the training loop's thread count."""
    cfg = TrainConfig(dataset=b.spec, k=b.k_true).resolved()
    train_ids = [v.id for v in b.dataset.videos_of(split="train") if v.id in b.features.videos]
    base = {vid: torch.from_numpy(np.asarray(b.features.videos[vid].feats, dtype=np.float32)) for vid in train_ids}
    task_of = {v.id: v.task for v in b.dataset.videos}
    with threads(b.train_threads):
        return [_epoch_cost(b, cfg, base, task_of, factor) for factor in b.plan.scale_factors]


def _epoch_cost(b: Bench, cfg, base: dict[str, torch.Tensor], task_of_base: dict[str, str], factor: int) -> dict:
    """One epoch as the training loop runs it (teacher refresh, then a step per video) and
    subset selection alone, with every training video repeated `factor` times; best of two."""
    ys = {f"{vid}~{c}": y for c in range(factor) for vid, y in base.items()}
    task_of = {vid: task_of_base[vid.rsplit("~", 1)[0]] for vid in ys}
    unit = Unit("all", list(b.dataset.tasks), list(ys))
    torch.manual_seed(0)
    net = ProcedureNet(net_config(cfg, b.features.D, len(unit.tasks)))
    opt = torch.optim.RMSprop(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    refresh_teacher(cfg, net, unit, ys, task_of)  # the cold first refresh is no epoch's
    best: dict[str, float] = {}
    for _ in range(2):
        start = time.perf_counter()
        refresh_teacher(cfg, net, unit, ys, task_of)
        teacher_s = time.perf_counter() - start
        for vid in unit.videos:
            train_step(cfg, net, opt, ys[vid], unit.labels[vid], unit.tasks.index(task_of[vid]))
        epoch_s = time.perf_counter() - start
        f = attention_features(net, ys, unit.videos)
        start = time.perf_counter()
        for task in unit.tasks:
            subset_selection([f[v] for v in unit.videos if task_of[v] == task], unit.centers, cfg.k)
        selection_s = time.perf_counter() - start
        for key, value in (("epoch_s", epoch_s), ("teacher_s", teacher_s), ("selection_s", selection_s)):
            best[key] = min(best.get(key, math.inf), value)
    return {"factor": factor, "videos": len(ys), **best}


def precision_ceiling(b: Bench) -> float:
    """With every frame given a state (--background none), precision cannot pass the share
    of key-step frames: that share on the test split, averaged over tasks."""
    shares = []
    for task in b.dataset.tasks:
        gt = [v.labels_at(b.features.videos[v.id].times) for v in b.dataset.videos_of(task=task, split="test")
              if v.id in b.features.videos]
        if gt:
            shares.append(float((np.concatenate(gt) >= 0).mean()))
    return float(np.mean(shares))


# ---------------------------------------------------------------- claims and calibration


def _pct(vals: list[float]) -> str:
    """Mean +- std over seeds, in %; the mean alone for one seed."""
    m, s = mean_std(vals)
    return f"{100 * m:.1f} ± {100 * s:.1f}" if len(vals) > 1 else f"{100 * m:.1f}"


def _evidence(label: str, c: dict, a: list[float], b: list[float]) -> str:
    return (f"{label}: {_pct(a)} vs {_pct(b)} (difference {100 * c['diff']:+.1f} points, "
            f"margin {100 * c['margin']:.1f}: {c['verdict']})")


def _across_k(q: dict, key: str, row_a: str, row_b: str) -> str:
    return ", ".join(f"k={k} {compare(values(q[k][row_a], key), values(q[k][row_b], key))['verdict']}"
                     for k in sorted(q))


def claims(r: dict) -> list[dict]:
    """C1-C6 at the true k (other k listed), by the rule of the module docstring."""
    q, s, k = r["quality"], r["single"], r["k_true"]

    def v(table: dict, row: str, key: str = "f1") -> list[float]:
        return values(table[k][row], key)

    out = []

    def add(cid: str, text: str, parts: list[tuple[str, dict, list[float], list[float]]], extra: str = "") -> None:
        verdict = combine([c["verdict"] for _, c, _, _ in parts])
        evidence = "; ".join(_evidence(label, c, a, b) for label, c, a, b in parts)
        out.append({"id": cid, "claim": text, "verdict": verdict, "evidence": evidence + extra})

    a, b_ = v(q, "full"), v(q, "full_teacher")
    add("C1", "the student (KLN) beats its teacher (subset selection) at localization",
        [(f"F1 at k={k}, student vs teacher", compare(a, b_), a, b_)],
        f". Across k: {_across_k(q, 'f1', 'full', 'full_teacher')}")
    st_a, st_b = v(q, "full"), v(q, "pooling_only")
    te_a, te_b = v(q, "full_teacher"), v(q, "subset_selection")
    add("C2", "learned attention improves localization for both student and teacher",
        [(f"student F1 at k={k}, with vs without attention", compare(st_a, st_b), st_a, st_b),
         (f"teacher F1 at k={k}, on attention vs mean-pooled features", compare(te_a, te_b), te_a, te_b)],
        f". Student across k: {_across_k(q, 'f1', 'full', 'pooling_only')}")
    full_acc = v(q, "full", "accuracy")
    add("C3", "attention plus learnable pooling gives the best task accuracy",
        [(f"accuracy at k={k}, both vs attention only", compare(full_acc, v(q, "attention_only", "accuracy")),
          full_acc, v(q, "attention_only", "accuracy")),
         (f"accuracy at k={k}, both vs learnable pooling only", compare(full_acc, v(q, "pooling_only", "accuracy")),
          full_acc, v(q, "pooling_only", "accuracy"))])
    m_all, single = v(s, "multi_all"), v(s, "single")
    add("C4", "multi-task training localizes better than single-task",
        [(f"F1 at k={k} on all videos, multi-task vs single-task", compare(m_all, single), m_all, single)],
        f". Across k: {_across_k(s, 'f1', 'multi_all', 'single')}")

    means = {kk: mean_std(values(q[kk]["full"], "f1")) for kk in sorted(q)}
    spread = float(np.mean([sd for _, sd in means.values()]))
    allowed = max(STABLE_RANGE, 2 * spread)
    f1s = [m for m, _ in means.values()]
    span = max(f1s) - min(f1s)
    out.append({
        "id": "C5", "claim": "results are stable across k",
        "verdict": "holds" if span <= allowed else "does not hold",
        "evidence": (f"F1 of the full model per k: " + ", ".join(f"k={kk} {100 * m:.1f}" for kk, (m, _) in means.items())
                     + f"; range {100 * span:.1f} points against the allowed {100 * allowed:.1f} "
                     f"(max of {100 * STABLE_RANGE:.0f} points and twice the mean seed std)"),
    })
    a, b_ = v(q, "full"), v(q, "labels_only")
    add("C6", "self-supervision from subset selection improves localization over task labels only",
        [(f"F1 at k={k}, ranking + task loss vs task loss only", compare(a, b_), a, b_)],
        f". Across k: {_across_k(q, 'f1', 'full', 'labels_only')}")
    return out


def calibration(r: dict) -> dict:
    """At the true k: k-means (mean-pooled) F1 <= 0.5, full method F1 >= 0.8 and accuracy >= 0.95."""
    q = r["quality"][r["k_true"]]

    def mean(row: str, key: str) -> float:
        return mean_std(values(q[row], key))[0]

    out = {"kmeans_f1": mean("kmeans", "f1")}
    for row in ("full", "background_unselected"):
        f1, acc = mean(row, "f1"), mean(row, "accuracy")
        out[row] = {"f1": f1, "accuracy": acc, "holds": out["kmeans_f1"] <= 0.5 and f1 >= 0.8 and acc >= 0.95}
    c = r["precision_ceiling"]
    out["precision_ceiling"], out["f1_ceiling"] = c, 2 * c / (1 + c)
    return out


# ---------------------------------------------------------------- the report


def _cell(rows: list[dict], key: str) -> str:
    vals = values(rows, key)
    return _pct(vals) if vals else "–"


def _table(rows: dict[str, list[dict]], labels: list[tuple[str, str]], keys: tuple[str, ...]) -> list[str]:
    names = {"recall": "R", "precision": "P", "f1": "F1", "accuracy": "Acc"}
    lines = ["| method | " + " | ".join(names[k] for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for row, label in labels:
        lines.append(f"| {label} | " + " | ".join(_cell(rows[row], k) for k in keys) + " |")
    return lines


def _k_title(k: int, k_true: int) -> str:
    return f"### k = {k}" + (" (true k)" if k == k_true else "")


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def format_report(r: dict) -> str:
    """The markdown report of a results dict (run_bench)."""
    meta, k_true = r["meta"], r["k_true"]
    p = meta["plan"]
    ver = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    mach = meta["machine"]
    seeds = ", ".join(map(str, p.seeds))
    L = [
        "# procl benchmark results", "",
        "Written by the command below; do not edit by hand (rerun it instead).", "",
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}",
        f"- Machine: {mach['cpu']}, {mach['cores']} cores, {mach['platform']}",
        f"- Versions: {ver}",
        f"- Seeds: {seeds} (mean ± std over seeds, std with ddof 1; a single value with one seed)",
        f"- Plan `{p.name}`: built-in dataset generated afresh ({p.n_tasks} tasks x {p.videos_per_task} videos of "
        f"{p.min_duration:g}-{p.max_duration:g} s, {p.frame_size} px, generator seed 0): {meta['videos']} videos "
        f"({meta['train_videos']} train / {meta['test_videos']} test), {meta['frames']} frames at 2 fps; "
        f"default backbone; {p.epochs} epochs; k in {', '.join(map(str, r['ks']))}",
        f"- True k = {k_true}: the number of key-steps of the task with the most "
        f"({', '.join(f'{t} {n}' for t, n in meta['steps_per_task'].items())})",
        f"- Duration: {meta['minutes']:.1f} min (expected {meta['expected_minutes']:.1f} min)",
        "- Metrics: the protocol of DESIGN.md (per task one Hungarian matching over the pooled frames of its "
        "videos, then the mean over tasks), in %; Acc = task accuracy of the test videos",
        "",
        "## Quality: multi-task, built-in dataset, test split (Tables 2-3)", "",
        "Baselines are told each video's task (they localize, they do not classify). The teacher row is "
        "subset selection on the final attention features of the full model's training.", "",
    ]
    for k in r["ks"]:
        L += [_k_title(k, k_true), "", *_table(r["quality"][k], QUALITY_ROWS, METRICS), ""]

    L += ["## Single-task setting (Table 1 style)", "",
          "One network per task trained on all its videos (lambda 0, M 30), all videos scored; baselines fit per "
          "task. The multi-task model is scored on the same videos (its training videos included) and on the test "
          "split.", ""]
    for k in r["ks"]:
        L += [_k_title(k, k_true), "", *_table(r["single"][k], SINGLE_ROWS, METRICS[:3]), ""]

    L += ["## Student against teacher", "", "| k | student F1 | teacher F1 | difference (points) |", "|---|---|---|---|"]
    for k in r["ks"]:
        a, b = values(r["quality"][k]["full"], "f1"), values(r["quality"][k]["full_teacher"], "f1")
        L.append(f"| {k} | {_pct(a)} | {_pct(b)} | {100 * (np.mean(a) - np.mean(b)):+.1f} |")

    att = r["attention"]
    share, uniform = mean_std(att["share"])[0], mean_std(att["uniform"])[0]
    L += ["", "## Attention quality", "",
          f"Share of the attention mass inside the ground-truth key-step box (each 7x7 cell's attention times the "
          f"fraction of the cell the box covers), averaged over the {att['frames']} key-step frames of the test "
          f"videos, full model at k = {att['k']}: **{_pct(att['share'])} %** against **{100 * uniform:.1f} %** for a "
          f"uniform map (the box's area), {share / uniform:.2f}x.", ""]

    real = r["real"]
    L += ["## Real data: Breakfast \"coffee\" (single-task)", ""]
    if "skipped" in real:
        L += [f"Skipped: {real['skipped']}.", ""]
    else:
        L += [f"`{real['spec']}`: {real['videos']} videos, {real['frames']} frames of {real['D']}-dim precomputed "
              f"features ({'no grid: attention is the identity' if real['R'] == 1 else str(real['R']) + ' regions'}), "
              f"{real['steps']} key-steps; all videos scored.", ""]
        for k, rows in real["tables"].items():
            L += [f"### k = {k}", "", *_table(rows, REAL_ROWS, METRICS[:3]), ""]

    L += ["## The paper's claims", "",
          f"Rule: \"A beats B\" holds when mean(A) - mean(B) > margin, does not hold when it is < -margin, and is "
          f"inconclusive otherwise; margin = max(sqrt(std_A^2 + std_B^2), {100 * MIN_MARGIN:.0f} point), stds over "
          f"seeds. A claim of several comparisons holds when all hold and does not hold when any does not. "
          f"Verdicts at the true k = {k_true}.", ""]
    for c in r["claims"]:
        L.append(f"- **{c['id']}** {c['claim']}: **{c['verdict']}**. {c['evidence']}.")

    cal = r["calibration"]
    L += ["", "## Calibration of the built-in dataset", "",
          f"Target at the true k = {k_true}: k-means on mean-pooled features F1 <= 50 while the full method reaches "
          f"F1 >= 80 and accuracy >= 95.", "",
          f"- k-means (mean-pooled) F1: {100 * cal['kmeans_f1']:.1f} ({'<=' if cal['kmeans_f1'] <= 0.5 else '>'} 50)",
          f"- full method (--background none): F1 {100 * cal['full']['f1']:.1f}, accuracy "
          f"{100 * cal['full']['accuracy']:.1f}: **{'holds' if cal['full']['holds'] else 'does not hold'}**",
          f"- full method with --background unselected: F1 {100 * cal['background_unselected']['f1']:.1f}, accuracy "
          f"{100 * cal['background_unselected']['accuracy']:.1f}: "
          f"**{'holds' if cal['background_unselected']['holds'] else 'does not hold'}**",
          f"- Bound: with --background none every frame gets a state, so precision <= the share of key-step frames "
          f"({100 * cal['precision_ceiling']:.1f} % of test frames) and F1 <= {100 * cal['f1_ceiling']:.1f}.", ""]

    sp = r["speed"]
    L += ["## Speed", "", "Ratios are measured in the same run; absolute times are context only "
          "(the machine may be shared).", "",
          "| backbone | frames | pipeline frames/s | forward-only frames/s | ratio (target >= 0.9) | decode-only frames/s |",
          "|---|---|---|---|---|---|"]
    for f in sp["features"]:
        L.append(f"| {f['backbone']}{'' if f['backbone'] == 'default' else ' (random weights)'} | {f['frames']} | "
                 f"{f['pipeline_fps']:.1f} | {f['forward_fps']:.1f} | {f['ratio']:.2f} ({_met(f['ratio'] >= 0.9)}) | "
                 f"{f['decode_fps']:.1f} |")
    t, sel, inf, e2e = sp["training"], sp["selection"], sp["inference"], sp["end_to_end"]
    L += ["",
          f"- Training: {t['epoch_s']:.2f} s per epoch (median of {t['epochs_measured']} epochs of the full runs, "
          f"{meta['train_videos']} training videos)",
          f"- Training step (one {meta['clip_frames']}-frame video, forward + backward + RMSprop): "
          f"{t['step_flops'] / 1e6:.1f} MFLOP counted from the layer shapes in {1000 * t['step_s']:.1f} ms = "
          f"{t['step_flops_per_s'] / 1e9:.2f} GFLOP/s, against {t['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s for a "
          f"{t['matmul_n']}x{t['matmul_n']} float32 matmul on as many threads ({t['threads']}, the training "
          f"loop's): {100 * t['step_flops_per_s'] / t['matmul_flops_per_s']:.1f} % (the matmul on "
          f"{t['cores']} threads: {t['matmul_all_flops_per_s'] / 1e9:.1f} GFLOP/s)",
          f"- Teacher (k-means refresh + subset selection) share of an epoch: {100 * t['teacher_share']:.1f} % "
          f"(median over the full runs; target <= 5 %: {_met(t['teacher_share'] <= 0.05)})",
          f"- Subset selection at N = {sel['N']:,}, M = {sel['M']}, k = {sel['k']}, D = {sel['D']}: "
          f"{sel['seconds']:.3f} s on {sel['threads']} thread(s) (target <= 2 s: {_met(sel['seconds'] <= 2)}; "
          + ", ".join(f"{v:.3f} s on {n}" for n, v in sel["seconds_by_threads"].items()) + ")",
          f"- Inference: {inf['ms']:.1f} ms per {inf['frames']}-frame video on {inf['threads']} thread(s) (target <= 20 ms: "
          f"{_met(inf['ms'] <= 20)}; " + ", ".join(f"{v:.1f} ms on {n}" for n, v in inf["ms_by_threads"].items()) + ")",
          f"- End to end from an empty data folder to a trained default run (k = {k_true}): "
          f"{e2e['total_s'] / 60:.2f} min = generation {e2e['generate_s']:.0f} s + features {e2e['features_s']:.0f} s "
          f"+ training {e2e['train_s']:.0f} s",
          "", "How cost grows with the number of training videos (the videos repeated; best of two; "
          f"{t['threads']} thread(s) as in training; linear growth gives ratio = factor):", "",
          "| factor | videos | epoch s | epoch ratio | teacher share | selection ms | selection ratio |",
          "|---|---|---|---|---|---|---|"]
    base = sp["scaling"][0]
    for s in sp["scaling"]:
        L.append(f"| {s['factor']}x | {s['videos']} | {s['epoch_s']:.2f} | {s['epoch_s'] / base['epoch_s']:.2f} | "
                 f"{100 * s['teacher_s'] / s['epoch_s']:.1f} % | {1000 * s['selection_s']:.1f} | "
                 f"{s['selection_s'] / base['selection_s']:.2f} |")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- the run


def run_bench(plan: Plan, progress: bool = True, command: str = "python -m procl bench") -> tuple[str, dict]:
    """Run every table and measurement of `plan`; returns (markdown report, results dict)."""
    root = (data_dir() / "bench" / plan.name).resolve()
    k_guess = true_k({t: s for t, s in synth.TASKS[: plan.n_tasks]})
    expected = expected_seconds(plan, k_guess)
    b = Bench(plan, root, progress)
    b.log(f"plan {plan.name}: {len(training_jobs(plan, k_guess))} trainings on the built-in dataset and "
          f"{len(plan.real_ks) * len(plan.seeds)} on real data; expected about {expected / 60:.1f} min "
          f"on a 2-core machine. Working folder: {root}")
    if root.exists():
        shutil.rmtree(root)
    with bench_env(root), threads(b.cores):
        prepare(b)
        train_all(b)
        first = training_jobs(plan, b.k_true)[0]
        r: dict = {"k_true": b.k_true, "ks": b.ks}
        b.log("tables: multi-task quality")
        r["quality"] = quality_tables(b)
        b.log("tables: single-task")
        r["single"] = single_task_tables(b)
        b.log("attention quality")
        r["attention"] = attention_quality(b)
        r["precision_ceiling"] = precision_ceiling(b)
        r["real"] = real_data(b)
        speed = {"features": feature_speed(b)}
        b.log("speed: training, selection, inference, scaling")
        speed["training"] = training_speed(b)
        speed["selection"] = selection_speed(b)
        speed["inference"] = inference_speed(b)
        speed["scaling"] = scaling(b)
        speed["end_to_end"] = {**{k: b.setup[k] for k in ("generate_s", "features_s")},
                               "train_s": b.train_seconds[first]}
        speed["end_to_end"]["total_s"] = sum(speed["end_to_end"].values())
        r["speed"] = speed
    ds = b.dataset
    r["meta"] = {
        "command": command, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
        "versions": versions(), "plan": plan, "videos": len(ds.videos),
        "train_videos": len(ds.videos_of(split="train")), "test_videos": len(ds.videos_of(split="test")),
        "frames": b.setup["frames"], "steps_per_task": {t: len(s) for t, s in ds.steps.items()},
        "clip_frames": 100, "minutes": (time.perf_counter() - b.start) / 60, "expected_minutes": expected / 60,
    }
    r["claims"] = claims(r)
    r["calibration"] = calibration(r)
    b.log(f"done in {r['meta']['minutes']:.1f} min")
    return format_report(r), r


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a reduced grid (one seed, k = 7 and the true k, a smaller dataset) in a few "
                             "minutes; never writes docs/RESULTS.md")
    parser.add_argument("--out", default=None, help="also write the markdown report to FILE")


def main(args: argparse.Namespace, plan: Plan | None = None) -> int:
    """Run the bench (FULL, or QUICK with --quick; `plan` overrides, for tests), print the
    report, write it to --out, and to docs/RESULTS.md only for the full plan."""
    plan = plan or (QUICK if args.quick else FULL)
    command = "python -m procl bench" + (" --quick" if args.quick else "") + (f" --out {args.out}" if args.out else "")
    report, _ = run_bench(plan, progress=sys.stderr.isatty(), command=command)
    print(report)
    if args.out:
        write_text(args.out, report)
        print(f"report written to {args.out}", file=sys.stderr)
    if plan is FULL and not args.quick:
        write_text(RESULTS_PATH, report)
        print(f"report written to {RESULTS_PATH}", file=sys.stderr)
    return 0
