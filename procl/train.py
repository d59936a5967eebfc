"""The alternating training loop (Sec. 2.2): teacher refresh, then student steps.

Each epoch starts with a teacher refresh: attention features of every training video
from the current SAN -> mini-batch k-means refresh of the M latent states (warm-started
from the previous centers, so state m stays state m) -> greedy subset selection per task
(Eq. 2) -> per-frame pseudo-labels. Then SAN + KLN + TCN are trained with
L = L_rank + lambda * L_ce (Eqs. 6-7), RMSprop (lr 1e-3, weight decay 1e-4), on
`batch_size` videos per step (1 by default, the paper's one video per step; more are
padded to the longest and masked: procl.model.masks). `refresh_every` > 0 refreshes
the teacher every that many videos as well.

Settings: "multi" trains one network for all tasks (train split only; lambda 0.5,
M 50 by default); "single" trains one network per task on all its videos with lambda 0
and no classifier (M 30), as the paper's Table 1. Everything is seeded and
deterministic on a CPU; an epoch's video order and dropout depend only on (seed, epoch),
so --resume from a completed epoch ends in the same model as an uninterrupted run.

Under torchrun (procl.dist) every rank holds a shard of each network's training videos
(balanced by frames) and the networks are DistributedDataParallel (gradients averaged
over the ranks at each step: batch_size videos per rank). The teacher refresh is
distributed and frames never leave their rank: k-means from all-reduced per-state sums
and counts (`fit_states_distributed`, warm-started), background states from all-reduced
per-state per-task frame counts, subset selection from all-reduced candidate costs at
each pick, pseudo-labels where the frames are, the typical order from k numbers per
video. Rank 0 alone writes the run folder (status, checkpoints, states, metrics); it
looks for the STOP file after each step and tells the others.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

import procl
from procl import ProclError, dist, runs, words
from procl.config import TrainConfig, config_from_args, config_from_saved, net_config, suggested_setting
from procl.config import add_arguments as add_config_arguments
from procl.corrections import Constraints
from procl.data import Dataset, open_dataset
from procl.decode import order_by_places, relative_time, state_places
from procl.dist import resolve_device
from procl.evaluate import finish_run, format_metrics
from procl.features.cache import load_or_extract
from procl.features.types import FeatureSet
from procl.io import write_json
from procl.model import ProcedureNet, classification_loss, pad_videos, ranking_loss
from procl.model.attention import median_over_frames
from procl.paths import slug
from procl.selection import (
    SHARED_MIN_TASKS,
    background_over_time,
    background_states,
    background_states_distributed,
    fit_states,
    fit_states_distributed,
    nearest_state,
    select_tasks,
)

# One video per step makes every op small: one thread is fastest, and several threads
# slow to a crawl when other processes share the cores (under torchrun: per process).
TRAIN_THREADS = 1


@dataclass
class Unit:
    """One network with its own states and teacher: all tasks (multi) or one task (single)."""

    key: str
    tasks: list[str]  # the classifier's classes, in order
    videos: list[str]  # training video ids (under torchrun: this rank's shard of them)
    centers: np.ndarray | None = None  # [M, D]
    selected: dict[str, list[int]] = field(default_factory=dict)  # task -> k states
    labels: dict[str, torch.Tensor] = field(default_factory=dict)  # video -> [T] pseudo-labels
    background: list[int] = field(default_factory=list)  # background "shared": states all tasks (or times) use alike
    constraints: Constraints | None = None  # a person's corrections (procl.refine), obeyed by the teacher


class TrainHooks:
    """How a refinement (procl.refine) changes a training: it does nothing here."""

    def prepare(self, cfg: TrainConfig, dataset: Dataset, features: FeatureSet, units: list[Unit]) -> dict:
        """Before the run folder is made: set the units' constraints; returns more config.json entries."""
        return {}

    def warm(self, path: Path, nets: nn.ModuleDict, units: list[Unit]) -> None:
        """The networks and states to start from (and files to write in the new run folder)."""


MIN_TRAIN_VIDEOS = 2  # per task, in the multi-task setting


def training_videos_problem(dataset: Dataset, have=None) -> str | None:
    """Why the multi-task setting cannot train on `dataset` (a task with fewer than
    MIN_TRAIN_VIDEOS training videos among those in `have`, default all), or None."""
    short = {task: sum(1 for v in dataset.videos_of(task=task) if dataset.split.get(v.id) == "train"
                       and (have is None or v.id in have)) for task in dataset.tasks}
    short = {task: n for task, n in short.items() if n < MIN_TRAIN_VIDEOS}
    if not short:
        return None
    where = " with features" if have is not None else ""
    return (f"task(s) {', '.join(f'{t!r} ({n})' for t, n in short.items())} have fewer than {MIN_TRAIN_VIDEOS} "
            f"training videos{where} in {dataset.spec}: the multi-task setting needs at least {MIN_TRAIN_VIDEOS} per "
            "task (add videos, edit split.csv, or use the single-task setting)")


def make_units(cfg: TrainConfig, dataset: Dataset, features: FeatureSet) -> list[Unit]:
    """The networks to train and their training videos; checks every task has enough."""
    usable = [v for v in dataset.videos if v.id in features.videos]
    if cfg.setting == "multi":
        if problem := training_videos_problem(dataset, features.videos):
            raise ProclError(problem)
        train_ids = [v.id for v in usable if dataset.split.get(v.id) == "train"]
        return [Unit("all", list(dataset.tasks), train_ids)]
    units = []
    for i, task in enumerate(dataset.tasks):
        ids = [v.id for v in usable if v.task == task]
        if not ids:
            raise ProclError(f"task {task!r} has no video with features in {dataset.spec}")
        units.append(Unit(f"task{i}", [task], ids))
    return units


def build_networks(cfg: TrainConfig, features: FeatureSet, units: list[Unit]) -> nn.ModuleDict:
    torch.manual_seed(cfg.seed)
    nets = nn.ModuleDict({u.key: ProcedureNet(net_config(cfg, features.D, len(u.tasks))) for u in units})
    return nets.to(resolve_device(cfg.device))


def video_medians(cfg: TrainConfig, ys: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """Each video's median over its frames [1, 1, R, D], the one `center_regions`
    subtracts (region centring), computed once per training: it depends on the input
    alone (a third of every teacher refresh, and about 0.5 ms of every training step when
    each step took its own). None without region centring."""
    if not cfg.region_center:
        return None
    return {vid: median_over_frames(y[None]) for vid, y in ys.items()}


def batch_medians(medians: dict[str, torch.Tensor] | None, ids: list[str]) -> torch.Tensor | None:
    """The kept medians (`video_medians`) of a batch of videos, [B, 1, R, D]; None without."""
    return None if medians is None else torch.cat([medians[vid] for vid in ids])


@torch.no_grad()
def attention_features(net: ProcedureNet, ys: dict[str, torch.Tensor], ids: list[str],
                       batch_size: int = 1, medians: dict[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """Each video's frames in the teacher's space [T, D'] (the SAN's attention features,
    `ProcedureNet.teacher_space`), `batch_size` videos at a time (of similar lengths:
    little padding); `medians`: `video_medians`, when the caller kept them."""
    net.eval()
    device = next(net.parameters()).device
    out = {}
    if batch_size > 1:
        ids = sorted(ids, key=lambda vid: len(ys[vid]))
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        y, mask = pad_videos([ys[vid] for vid in chunk])  # [B, T, R, D], [B, T]
        mask = None if mask is None else mask.to(device)
        median = batch_medians(medians, chunk)  # [B, 1, R, D]
        median = None if median is None else median.to(device)
        x = net.teacher_space(net.attend(y.to(device), mask, median)[0], mask).cpu().numpy()  # [B, T, D']
        for b, vid in enumerate(chunk):
            out[vid] = x[b, : len(ys[vid])]
    return out


def refresh_teacher(
    cfg: TrainConfig, net: ProcedureNet, unit: Unit, ys: dict[str, torch.Tensor], task_of: dict[str, str],
    distributed: bool | None = None, medians: dict[str, torch.Tensor] | None = None,
) -> dict:
    """Attention features -> k-means refresh -> background states -> subset selection per
    task -> pseudo-labels (a background state's frames keep it as their label).

    distributed (default: under torchrun): unit.videos are this rank's, and the ranks
    together compute the states, background and selection of all their videos (module
    docstring); every rank ends with the same ones and its own videos' pseudo-labels.
    In one process distributed=True runs the same algorithms alone (Lloyd k-means in
    place of mini-batch k-means): what any number of ranks computes on the same frames.
    """
    distributed = dist.is_distributed() if distributed is None else distributed
    f = attention_features(net, ys, unit.videos, cfg.batch_size, medians)
    X = np.concatenate([f[v] for v in unit.videos])  # [N, D'] this rank's frames
    fit = fit_states_distributed if distributed else fit_states
    unit.centers = fit(X, cfg.M, init=unit.centers, seed=cfg.seed)
    con = unit.constraints
    if con is not None:
        unit.centers = con.seed_centers(unit.centers, f)
    candidates = []
    if cfg.background == "shared" and len(unit.tasks) >= SHARED_MIN_TASKS:
        task_index = np.concatenate([np.full(len(f[v]), unit.tasks.index(task_of[v])) for v in unit.videos])
        find = background_states_distributed if distributed else background_states
        candidates = find(nearest_state(X, unit.centers), task_index, len(unit.tasks), cfg.M, cfg.background_threshold)
    elif cfg.background == "shared":  # one procedure (or two): what every part of it shows alike
        rel_time = np.concatenate([relative_time(len(f[v])) for v in unit.videos])
        candidates = background_over_time(nearest_state(net.appearance(X), net.appearance(unit.centers)), rel_time,
                                          len(unit.videos), cfg.M, distributed=distributed)
    if con is not None:  # the person's background first (kept longest), no anchored state as background
        taken = {s for anchors in con.anchors.values() for s in anchors}
        candidates = con.background + [s for s in candidates if s not in con.background and s not in taken]
    by_task = {task: [v for v in unit.videos if task_of[v] == task] for task in unit.tasks}
    unit.background, sels = select_tasks({task: [f[v] for v in ids] for task, ids in by_task.items()},
                                         unit.centers, cfg.k, candidates, distributed=distributed,
                                         fixed=con.anchors if con is not None else None,
                                         exclude=con.excluded() if con is not None else None)
    costs = {}
    for task, sel in sels.items():
        unit.selected[task] = sel.selected
        costs[task] = sel.costs[-1]
        if con is not None:  # a merged group is one key-step; a task a person labelled keeps its steps
            unit.selected[task] = con.selection(task, sel.selected)
        for vid, lab in zip(by_task[task], sel.labels):
            if con is not None:
                lab = con.labels(vid, f[vid], unit.centers, unit.selected[task], unit.background)
            unit.labels[vid] = torch.from_numpy(lab.astype(np.int64))
    return costs


def train_step(
    cfg: TrainConfig, net: nn.Module, opt: torch.optim.Optimizer, y: torch.Tensor, r: torch.Tensor,
    task: int | torch.Tensor, mask: torch.Tensor | None = None, weight: torch.Tensor | None = None,
    median: torch.Tensor | None = None,
) -> dict[str, float]:
    """One optimizer step, L = L_rank + lambda * L_ce (Eq. 6) over a batch.

    y: [B, T, R, D] region features padded to T frames, r: [B, T] pseudo-labels, task:
    [B] task indices, mask: [B, T] real frames (None: all), as `pad_videos` makes them;
    or one video: y [T, R, D], r [T], task an int. L_rank is each video's mean over its
    real frames, then the batch mean; L_ce the batch mean. weight: [B, T] each frame's
    weight in L_rank (None: 1; a refinement weighs the frames a person labelled more).
    median: [B, 1, R, D] each video's median over its frames (`video_medians`; None:
    computed here). net: a ProcedureNet, or one in DistributedDataParallel (gradients
    averaged over the ranks in backward).
    """
    if y.dim() == 3:  # one video
        y, r, task = y[None], r[None], torch.tensor([task])
    net.train()
    device = next(net.parameters()).device
    y, r, task = y.to(device), r.to(device), task.to(device)
    mask = None if mask is None else mask.to(device)
    weight = None if weight is None else weight.to(device)
    median = None if median is None else median.to(device)
    out = net(y, mask, median)
    rank = ranking_loss(out.s, r, mask, weight=weight) if cfg.ranking else out.s.new_zeros(())
    ce = classification_loss(out.logits, task) if out.logits is not None else out.s.new_zeros(())
    loss = rank + cfg.lam * ce
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"loss": loss.item(), "rank": rank.item(), "ce": ce.item()}


def _optimizers(cfg: TrainConfig, nets: nn.ModuleDict) -> dict[str, torch.optim.Optimizer]:
    return {
        key: torch.optim.RMSprop(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        for key, net in nets.items()
    }


def check_features(features: FeatureSet, ids: list[str]) -> None:
    for vid in ids:
        feats = features.videos[vid].feats
        if not np.isfinite(feats).all():
            raise ProclError(f"features of video {vid!r} contain NaN or inf: fix or remove the source")


def load_inputs(cfg: TrainConfig, progress: bool = True, on_progress: Callable | None = None):
    """Open the dataset and its (cached or extracted) features. Under torchrun the
    ranks extract the missing features together and each gets all of them."""
    dataset = dist.main_first(lambda: open_dataset(cfg.dataset, progress=progress and dist.is_main()),
                              "opening the dataset")
    feat_cb = None
    if on_progress is not None:
        def feat_cb(done, total, vid):
            on_progress({"phase": "features", "step": done, "steps": total, "video": vid})
    features = load_or_extract(
        dataset, backbone=cfg.backbone, fps=cfg.fps, weights=cfg.weights, progress=progress, on_progress=feat_cb,
        device=cfg.device,
    )
    return dataset, features


def default_run_name(cfg: TrainConfig) -> str:
    spec = cfg.dataset.split(":", 1)
    base = spec[0] if len(spec) == 1 else f"{spec[0]}-{Path(spec[1]).name}"
    tag = "" if cfg.setting == "multi" else "-single"
    return runs.unique_name(slug(f"{base}-k{cfg.k}{tag}").rsplit("-", 1)[0] + time.strftime("-%m%d-%H%M%S"))


def _resumable(run: str) -> tuple[str, dict]:
    """The folder and config.json of a run to resume, locked for this process (ProclError
    while another process trains it, or for a folder procl may not write in)."""
    path = runs.lock_run(runs.run_dir(run))
    try:
        saved = runs.read_config(path)
        status = runs.read_status(path)
        if status.get("state") == "running" and status.get("pid") != os.getpid():
            raise ProclError(f"run {run!r} is still running (pid {status.get('pid')}); cancel it first")
        if status.get("state") != "queued":
            # a stop left by an earlier cancel: resuming means going on. A queued job's STOP is a
            # cancel clicked while it prepared: kept, and honoured before training (`_cancelled_early`)
            (path / "STOP").unlink(missing_ok=True)
    except BaseException:
        runs.unlock_run(path)
        raise
    return str(path), saved


def _cancelled_early(path: Path) -> bool:
    """A queued job cancelled while it prepared (STOP written before training began): its
    status says cancelled and it does not train."""
    if not runs.stop_requested(path):
        return False
    runs.write_status(path, {**runs.read_status(path), "state": "cancelled",
                             "error": "stopped on request before training began"})
    return True


def train(
    cfg: TrainConfig,
    run: str | None = None,
    resume: bool = False,
    progress: bool = True,
    on_progress: Callable[[dict], None] | None = None,
    queued: bool = False,
    hooks: TrainHooks | None = None,
) -> Path:
    """Train a run; returns its folder. See the module docstring.

    A new run (the folder `run`, or a name made from cfg), or with `resume` the run
    `run` continued from its last completed epoch, or with `queued` the run folder
    `run` that procl.jobs created for the app (its config.json holds the settings)
    trained from the start; `cfg` is ignored for both.

    Under torchrun every rank calls it with the same arguments (checked); rank 0 alone
    reads and writes the run folder and reports progress (on_progress, the bar). Rank 0
    holds the run folder's LOCK while it trains (procl.runs.lock_run): one process at a time.
    hooks: a refinement's changes (`TrainHooks`, procl.refine); None trains as usual.
    """
    held: list[Path] = []  # the run folder whose LOCK this process took
    try:
        return _train(cfg, run, resume, queued, progress, on_progress, held, hooks or TrainHooks())
    finally:
        for path in held:
            runs.unlock_run(path)


def _train(cfg: TrainConfig, run: str | None, resume: bool, queued: bool, progress: bool,
           on_progress: Callable | None, held: list[Path], hooks: TrainHooks) -> Path:
    dist.check_same_settings({**asdict(cfg), "run": run, "resume": resume, "queued": queued},
                             what="training settings")
    main = dist.is_main()
    saved: dict = {}
    if resume or queued:  # the settings are the run folder's
        if not run:
            raise ProclError(f"--{'resume' if resume else 'queued'} needs --run NAME (the run folder to train)")
        where, saved = dist.main_only(lambda: _resumable(run), "reading the run folder")
        path = Path(where)
        held.extend([path] if main else [])
        cfg = config_from_saved(saved)
    # a run folder that never started (queued; "--resume" started those before --queued existed)
    fresh = not resume or "features" not in saved
    if queued and "features" in saved:
        raise ProclError(f"run {run!r} has started already: continue it with --resume")
    given, cfg = cfg, cfg.resolved()
    cfg.validate()  # before any long work (the grid's levers are checked again once the features are read)
    if run and not (resume or queued):
        runs.check_name(run)

    try:
        dataset, features, units, cfg = _inputs(given, progress and main, on_progress if main else None)
        extra = hooks.prepare(cfg, dataset, features, units)
    except ProclError as err:
        before = runs.read_status(path) if saved and main else {}
        if saved and main and before.get("state") != "done":  # a launched job: say why in its status, not only
            runs.write_status(path, {**before, "state": "failed", "error": str(err)})  # in train.log
        raise
    if saved and dist.main_only(lambda: _cancelled_early(path), "reading the stop request"):
        return path
    config = {**_run_config(cfg, dataset, features, units), **extra}
    if not fresh:
        _check_same_run(run, saved, config, features)

    def prepare() -> str:
        if not saved:
            return str(runs.create_run(run or default_run_name(cfg), config, lock=True))
        if fresh:
            write_json(path / "config.json", config)
        return str(path)

    path = Path(dist.main_only(prepare, "creating the run folder"))
    held.extend([path] if main and not saved else [])
    return _train_loop(cfg, path, dataset, features, units, not fresh, progress, on_progress, hooks)


def _inputs(given: TrainConfig, progress: bool, on_progress: Callable | None):
    """The dataset, its features, the units to train (each task's training videos
    checked) and the settings `given` resolved for those features (a region grid or not:
    `TrainConfig.resolved`), with their epochs decided."""
    dataset, features = load_inputs(given.resolved(), progress=progress, on_progress=on_progress)
    cfg = given.resolved(grid=features.R > 1)
    cfg.validate()
    units = make_units(cfg, dataset, features)
    check_features(features, [v for u in units for v in u.videos])
    return dataset, features, units, replace(cfg, epochs=cfg.epochs_for(sum(len(u.videos) for u in units)))


def _run_config(cfg: TrainConfig, dataset: Dataset, features: FeatureSet, units: list[Unit]) -> dict:
    """The run's config.json: every setting, and what it was trained on."""
    config = {
        **asdict(cfg),
        "procl_version": procl.__version__,
        "device_used": str(resolve_device(cfg.device)),
        "tasks": list(dataset.tasks),
        "steps": {t: list(s) for t, s in dataset.steps.items()},
        "units": {u.key: u.tasks for u in units},
        "features": {k: features.manifest.get(k)
                     for k in ("backbone", "weights", "fps", "R", "D", "grid", "fingerprint")},
        "train_videos": sorted(v for u in units for v in u.videos),
    }
    if dist.is_distributed():
        config["processes"] = dist.world_size()
        dist.check_same_settings({"features": config["features"],
                                  "train_videos": dist.settings_digest({"ids": config["train_videos"]})},
                                 what="data (features and training videos)")
    return config


def _check_same_run(run: str, saved: dict, config: dict, features: FeatureSet) -> None:
    """ProclError unless a run to resume meets the tasks and features it was trained on."""
    if saved.get("units", config["units"]) != config["units"]:
        raise ProclError(
            f"the dataset {config['dataset']} now has the tasks {', '.join(config['tasks'])} but run {run!r} was "
            f"trained on {', '.join(saved.get('tasks', []))}: restore the dataset's tasks, or train a new run"
        )
    if saved["features"]["D"] != features.D:
        raise ProclError(
            f"features of {config['dataset']} have D={features.D} but run {run!r} was trained with "
            f"D={saved['features']['D']}: use the run's backbone ({saved['features']['backbone']})"
        )


def _train_loop(cfg, path, dataset, features, units, resume, progress, on_progress, hooks=None) -> Path:
    with dist.threads(TRAIN_THREADS):
        return _train_epochs(cfg, path, dataset, features, units, resume, progress, on_progress, hooks)


def _shard_units(cfg: TrainConfig, features: FeatureSet, units: list[Unit]) -> tuple[dict, dict]:
    """This rank's shard of each unit's videos (balanced by frames; all of them in one
    process): returns each unit's full video list (an epoch's order is drawn over it)
    and the videos per rank per epoch (the largest shard: every rank takes as many steps)."""
    every = {u.key: list(u.videos) for u in units}
    for u in units:
        what = ("training videos" if cfg.setting == "multi" else
                f"videos of task {u.tasks[0]!r} (single-task: one network per task, trained by every rank)")
        u.videos = dist.shard(u.videos, weights=[features.videos[v].T for v in u.videos], what=what)
    sizes = dist.all_gather_object({u.key: len(u.videos) for u in units}, what="counting the shards' videos")
    return every, {u.key: max(part[u.key] for part in sizes) for u in units}


def epoch_videos(every: list[str], mine: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """This rank's videos for one epoch: all the unit's videos in the order drawn from
    rng (seeded by (seed, epoch), the same on every rank), those this rank holds, then
    again from its first until there are n (ranks with a smaller shard repeat a few
    videos, as torch's DistributedSampler does, so that every rank takes as many steps).
    One process: the permuted videos."""
    held = set(mine)
    order = [every[i] for i in rng.permutation(len(every)) if every[i] in held]
    return [order[i % len(order)] for i in range(n)]


def _dropout_seed(seed: int, epoch: int) -> int:
    """The torch seed of an epoch (dropout): rank 0's is the one-process seed, the
    other ranks draw their own."""
    if dist.rank() == 0:
        return seed * 1000 + epoch
    return int(np.random.SeedSequence([seed, epoch, dist.rank()]).generate_state(1)[0])


def _share_step(losses: dict[str, float], stop_file: Path | None) -> tuple[dict[str, float], bool]:
    """After a step: its losses averaged over the ranks, and whether a stop was asked
    for (rank 0, the only one given stop_file, looks for the STOP file and tells the
    others in the same all-reduce). One process: the losses, and the STOP file."""
    stop = stop_file is not None and runs.stop_requested(stop_file)
    if not dist.is_distributed():
        return losses, stop
    names = ("loss", "rank", "ce")
    sums = dist.all_reduce_sum(torch.tensor([*(losses[k] for k in names), float(stop)], dtype=torch.float64),
                               what="sharing the losses and the stop flag")
    return {k: float(sums[i]) / dist.world_size() for i, k in enumerate(names)}, bool(sums[-1] > 0)


class _Progress:
    """The run's status.json, progress bar and on_progress callback while it trains (rank
    0 writes; the other ranks keep counting steps only)."""

    def __init__(self, path: Path, cfg: TrainConfig, total: int, main: bool, progress: bool,
                 on_progress: Callable | None):
        self.path, self.main, self.on_progress = path, main, on_progress
        self.total = total
        self.status = {"state": "running", "pid": os.getpid(), "epoch": 0, "epochs": cfg.epochs, "step": 0,
                       "steps": total, "history": {"step": [], "loss": [], "rank": [], "ce": []},
                       "epoch_seconds": [], "teacher_seconds": [], "started": time.time()}
        self.progress = progress
        self.bar = None
        self.t0 = self.last_write = self.done_before = 0.0

    def start(self, epoch: int, step: int) -> None:
        """Training starts (or resumes) at `epoch`, `step` videos done: the history and
        timings of a resumed run are cut back to that point (a run killed mid-epoch
        recorded steps that are now trained again)."""
        self.status.update(epoch=epoch, step=step)
        hist = self.status["history"]
        kept = sum(1 for s in hist["step"] if s <= step)
        for name in hist:
            del hist[name][kept:]
        for name in ("epoch_seconds", "teacher_seconds"):
            del self.status[name][epoch:]
        if self.main:  # a STOP already there (cancel while queued) is honoured at the first step
            runs.write_status(self.path, self.status)
            if self.progress:
                from tqdm import tqdm
                self.bar = tqdm(total=self.total, initial=step, desc="train", unit="video", file=sys.stderr)
        self.t0, self.last_write, self.done_before = time.time(), 0.0, step

    def step(self, epoch: int, videos: int, losses: dict[str, float]) -> None:
        """One optimizer step of `videos` videos (over all ranks) with these losses."""
        status = self.status
        status["step"] += videos
        if not self.main:
            return
        hist = status["history"]
        hist["step"].append(status["step"])
        for name in ("loss", "rank", "ce"):
            hist[name].append(round(losses[name], 5))
        elapsed = time.time() - self.t0
        rate = (status["step"] - self.done_before) / max(elapsed, 1e-9)
        status.update(epoch=epoch, elapsed=elapsed, eta=(self.total - status["step"]) / max(rate, 1e-9),
                      **{f"last_{k}": v for k, v in losses.items()})
        if self.bar is not None:
            self.bar.update(videos)
            self.bar.set_postfix(epoch=epoch + 1, loss=f"{losses['loss']:.3f}")
        if self.on_progress is not None:
            self.on_progress({"phase": "train", **{k: status[k] for k in ("epoch", "epochs", "step", "steps", "elapsed",
                                                                          "eta")}, **losses})
        if time.time() - self.last_write > 0.5:
            runs.write_status(self.path, status)
            self.last_write = time.time()

    def epoch_done(self, epoch: int, epoch_s: float, teacher_s: float) -> None:
        if self.main:
            self.status["epoch_seconds"].append(epoch_s)
            self.status["teacher_seconds"].append(teacher_s)
            self.status["epoch"] = epoch + 1
            runs.write_status(self.path, self.status)

    def end(self, **fields) -> None:
        """Close the bar; rank 0 writes `fields` (state, error, ...) into the status."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.main and fields:
            self.status.update(fields)
            runs.write_status(self.path, self.status)


def _load_resume(path: Path, nets: nn.ModuleDict, opts: dict, units: list[Unit], rec: _Progress) -> int:
    """Networks, optimizers and states from the run's resume point; returns the epoch to
    start at (0 when there is none). Rank 0 also keeps the loss history written so far."""
    state = dist.main_only(lambda: runs.load_torch(path / "resume.pt") if (path / "resume.pt").exists() else None,
                           "reading the resume point")
    if state is None:
        return 0
    nets.load_state_dict(state["model"])
    for key, opt in opts.items():
        opt.load_state_dict(state["optim"][key])
    for u in units:
        u.centers = state["centers"][u.key].numpy()
    if rec.main:
        old = runs.read_status(path)
        rec.status.update({k: old[k] for k in ("history", "epoch_seconds", "teacher_seconds") if k in old})
    return int(state["epoch"])


@dataclass
class _Loop:
    """What the steps of a training read: its settings and folder, each unit's network,
    its DistributedDataParallel wrapper (the network itself in one process) and
    optimizer, the training videos' features and tasks, and the progress recorder."""

    cfg: TrainConfig
    path: Path
    nets: nn.ModuleDict
    models: dict[str, nn.Module]
    opts: dict[str, torch.optim.Optimizer]
    ys: dict[str, torch.Tensor]  # video -> [T, R, D] region features
    medians: dict[str, torch.Tensor] | None  # video -> its median over frames (video_medians)
    task_of: dict[str, str]
    rec: _Progress


def _train_unit_epoch(loop: _Loop, u: Unit, videos: list[str], epoch: int) -> tuple[float, bool]:
    """One epoch of one unit's network over `videos` (this rank's), B at a time, with the
    extra teacher refreshes of `refresh_every`; returns (seconds spent in the teacher,
    whether a stop was asked for)."""
    cfg, rec = loop.cfg, loop.rec
    world, B = dist.world_size(), cfg.batch_size
    teacher_s = 0.0
    for i in range(0, len(videos), B):
        if cfg.refresh_every and i and (i * world) // cfg.refresh_every != ((i - B) * world) // cfg.refresh_every:
            t = time.time()
            refresh_teacher(cfg, loop.nets[u.key], u, loop.ys, loop.task_of, medians=loop.medians)
            teacher_s += time.time() - t
        ids = videos[i : i + B]
        y, mask = pad_videos([loop.ys[vid] for vid in ids])  # [B, T, R, D], [B, T]
        r, _ = pad_videos([u.labels[vid] for vid in ids])  # [B, T]
        task = torch.tensor([u.tasks.index(loop.task_of[vid]) for vid in ids])  # [B]
        w = None  # [B, T] each frame's weight in L_rank: a refinement's labelled frames weigh more
        if u.constraints is not None:
            w, _ = pad_videos([torch.from_numpy(u.constraints.frame_weights(vid, len(loop.ys[vid]))) for vid in ids])
        median = batch_medians(loop.medians, ids)  # [B, 1, R, D]
        with dist.guard(f"training step {rec.status['step']} (averaging the gradients)"):
            losses = train_step(cfg, loop.models[u.key], loop.opts[u.key], y, r, task, mask, weight=w, median=median)
        losses, stop = _share_step(losses, loop.path if rec.main else None)
        rec.step(epoch, world * len(ids), losses)
        if stop:
            return teacher_s, True
    return teacher_s, False


def _train_epochs(cfg, path, dataset, features, units, resume, progress, on_progress, hooks=None) -> Path:
    main, world = dist.is_main(), dist.world_size()
    nets = build_networks(cfg, features, units)
    if hooks is not None:
        hooks.warm(path, nets, units)
    opts = _optimizers(cfg, nets)
    task_of = {v.id: v.task for v in dataset.videos}
    every, per_rank = _shard_units(cfg, features, units)
    ys = {vid: torch.from_numpy(np.ascontiguousarray(features.videos[vid].feats, dtype=np.float32))
          for u in units for vid in u.videos}
    steps_per_epoch = sum(world * per_rank[u.key] for u in units)  # videos trained on, over all ranks
    rec = _Progress(path, cfg, steps_per_epoch * cfg.epochs, main, progress, on_progress)
    before = runs.read_status(path) if resume and main else {}  # a finished run that fails to resume stays finished
    start_epoch = _load_resume(path, nets, opts, units, rec) if resume else 0
    # the SAN's scores get no gradient when there is one cell (or no attention): DDP must know
    models = {u.key: dist.ddp(nets[u.key], find_unused=not (cfg.attention and features.R > 1)) for u in units}
    medians = video_medians(cfg, ys)
    loop = _Loop(cfg, path, nets, models, opts, ys, medians, task_of, rec)
    rec.start(start_epoch, start_epoch * steps_per_epoch)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            t_epoch = time.time()
            rng = np.random.default_rng([cfg.seed, epoch])
            torch.manual_seed(_dropout_seed(cfg.seed, epoch))
            teacher_s = 0.0
            for u in units:
                t = time.time()
                refresh_teacher(cfg, nets[u.key], u, ys, task_of, medians=medians)
                teacher_s += time.time() - t
                videos = epoch_videos(every[u.key], u.videos, per_rank[u.key], rng)
                spent, stop = _train_unit_epoch(loop, u, videos, epoch)
                teacher_s += spent
                if stop:
                    rec.end(state="cancelled", error="stopped on request")
                    return path
            epoch_s = time.time() - t_epoch
            _save_epoch(path, nets, opts, units, epoch + 1, task_of)
            rec.epoch_done(epoch, epoch_s, teacher_s)
        if not main:  # rank 0 evaluates and finishes the run alone
            rec.end()
            return path
        rec.end(phase="evaluate")
        finish_run(path, dataset, features)
        rec.end(state="done", elapsed=time.time() - rec.t0, eta=0.0, finished=time.time())
    except BaseException as err:
        if before.get("state") == "done":
            rec.end()
            runs.write_status(path, before)
            raise
        rec.end(state="failed" if not isinstance(err, KeyboardInterrupt) else "cancelled",
                error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-4000:])
        raise
    return path


def _save_epoch(path: Path, nets: nn.ModuleDict, opts: dict, units: list[Unit], epoch: int,
                task_of: dict[str, str]) -> None:
    """After a completed epoch: the model, the teacher's states, then the resume point.

    resume.pt is written last: when it says epoch e, the model and states of epoch e
    are already in place (a kill between the writes leaves the previous resume point).
    Every rank calls it: each sends where the key-steps happen in its videos (k numbers
    per video) for the typical order; rank 0 writes.
    """
    places = {(u.key, task): [state_places(u.labels[v].numpy(), sel) for v in u.videos if task_of[v] == task]
              for u in units for task, sel in u.selected.items()}
    gathered = dist.all_gather_object(places, what="gathering where the key-steps happen")
    if not dist.is_main():
        return
    order = {u.key: {task: order_by_places([p for part in gathered for p in part[(u.key, task)]], sel)
                     for task, sel in u.selected.items()} for u in units}
    runs.save_torch(path / "model.pt", nets.state_dict())
    runs.save_states(path, {u.key: u.centers for u in units}, {u.key: u.selected for u in units},
                     {u.key: u.background for u in units}, order)
    runs.save_torch(path / "resume.pt", {
        "model": nets.state_dict(),
        "optim": {k: o.state_dict() for k, o in opts.items()},
        "centers": {u.key: torch.from_numpy(u.centers) for u in units},
        "epoch": epoch,
    })


# ---------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--run", "--run-name", dest="run", default=None,
                   help="run name (default: derived from dataset, k and time); under torchrun write --run-name "
                        "(torchrun reads --run as its own --run-path)")
    p.add_argument("--resume", action="store_true", help="continue --run from its last completed epoch")
    p.add_argument("--queued", action="store_true",
                   help="train the run folder --run that the app created and queued (its config.json holds the "
                        "settings) from the start")


def main(args: argparse.Namespace) -> int:
    """The `train` command; under torchrun every rank runs it (module docstring) and rank 0 prints."""
    if args.k is None and not (args.resume or args.queued):
        raise ProclError("--k is required: the number of key-steps per task (e.g. --k 7)")
    cfg = config_from_args(args)
    resolve_device(cfg.device)  # a clear error for --device cuda without a GPU, before any work
    with dist.exit_on_sigterm(), dist.session(cfg.device):
        path = train(cfg, run=args.run, resume=args.resume, queued=args.queued, progress=True)
        # every rank leaves the process group together (rank 0 may still have been
        # evaluating): a rank that tore its gloo group down while its peer still held the
        # connection was seen to abort at exit in CI ("terminate called without an active
        # exception", SIGABRT) after a 1-epoch torchrun training
        dist.barrier("leaving the process group")
        if not dist.is_main():
            return 0
    config = runs.read_config(path)
    status = runs.read_status(path)
    feats = config["features"]
    print(f"backbone: {feats['backbone']} (weights: {feats['weights']}), R={feats['R']}, D={feats['D']}",
          file=sys.stderr)
    if status["state"] != "done":
        print(f"run ended: {status['state']}", file=sys.stderr)
    else:
        print(format_metrics(runs.run_dir(path)), file=sys.stderr)
    if config.get("setting") == "multi" and suggested_setting(len(config.get("tasks", []))) == "single":
        print(f"note: {words.ONE_TASK_NOTE} (--setting single)", file=sys.stderr)
    print(path)
    return 0 if status["state"] == "done" else 1
