"""Speed measurements of the bench, on its built-in set and default-recipe runs.

- feature pipeline against the bare forward pass, per backbone (on --device);
- training: seconds per epoch and the teacher's share (from the runs), a training
  step's FLOP/s against a large matmul;
- subset selection at N frames; inference per 100-frame video (on --device);
- epoch and selection cost at 1x, 2x, 4x the training videos; end to end minutes;
- scale (procl.bench.scale): distributed selection on 2 ranks against 1 process, the
  features on 2 processes against 1, and training (the place for training_scale);
- Explore's page time on a one-hour video (procl.bench.explore_page).
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from procl.bench import scale as scale_runs
from procl.bench.explore_page import explore_page_time
from procl.bench.trainings import Bench
from procl.config import TrainConfig, net_config
from procl.dist import threads
from procl.features.backbones import get_backbone
from procl.features.cache import measure_throughput
from procl.infer import load_run, predict_video, video_outputs
from procl.io import read_json
from procl.model import ProcedureNet
from procl.selection import subset_selection
from procl.train import Unit, attention_features, refresh_teacher, train_step, video_medians


def _timed(fn: Callable[[], object], reps: int) -> list[float]:
    """Wall seconds of `reps` calls of fn (after one warm-up call)."""
    fn()
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _video_clip(b: Bench, T: int = 100) -> np.ndarray:
    """Region features [T, R, D] of a real video, repeated or cut to T frames."""
    feats = max(b.builtin.features.videos.values(), key=lambda v: v.T).feats
    reps = -(-T // len(feats))
    return np.ascontiguousarray(np.concatenate([feats] * reps)[:T], dtype=np.float32)


def feature_speed(b: Bench) -> list[dict]:
    """Pipeline frames/s against the bare forward pass, per backbone (CNNs: random weights),
    each the fastest of the plan's `throughput_reps` timings."""
    data, out = b.builtin, []
    ordered = sorted(data.videos("all"), key=lambda v: data.features.videos[v.id].T)
    for name in b.plan.backbones:
        budget = b.plan.default_frames if name == "default" else b.plan.cnn_frames
        paths, frames = [], 0
        for video in ordered:
            if frames >= budget:
                break
            paths.append(Path(video.source))
            frames += data.features.videos[video.id].T
        b.log(f"speed: feature pipeline, {name} backbone, {len(paths)} video(s)")
        model = get_backbone(name, None if name == "default" else "none", device=b.device)
        # measure_throughput warms up on 2 frames; a full batch first keeps the CNNs' one-off
        # setup for the batch shape out of the forward-only timing
        model(np.zeros((model.batch_size, model.input_size, model.input_size, 3), np.uint8))
        out.append(measure_throughput(paths, model, reps=b.plan.throughput_reps))
    return out


def training_speed(b: Bench) -> dict:
    """Seconds per epoch and teacher share (the default recipe's full runs), and a training
    step's FLOP/s (counted from layer shapes) against a large float32 matmul."""
    epochs, shares = [], []
    for k in b.ks:
        for seed in b.plan.seeds:
            status = read_json(b.run("builtin", "default", "full", k, seed) / "status.json")
            epochs += status["epoch_seconds"]
            shares.append(sum(status["teacher_seconds"]) / sum(status["epoch_seconds"]))
    data = b.builtin
    cfg = TrainConfig(dataset=data.spec, k=b.k_true).resolved()
    torch.manual_seed(0)
    net = ProcedureNet(net_config(cfg, data.features.D, len(data.dataset.tasks)))
    opt = torch.optim.RMSprop(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    y = torch.from_numpy(_video_clip(b))  # [100, R, D]
    r = torch.randint(0, cfg.M, (len(y),))
    medians = video_medians(cfg, {"clip": y})
    median = None if medians is None else medians["clip"]  # kept once per training, as the loop does

    def step():
        train_step(cfg, net, opt, y, r, 0, median=median)

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    n = b.plan.matmul_n
    x, w = torch.randn(n, n), torch.randn(n, n)
    with threads(b.train_threads):
        step_s = statistics.median(_timed(step, b.plan.timing_reps))
        matmul_s = min(_timed(lambda: x @ w, 3))
    with threads(b.cores):
        matmul_all_s = min(_timed(lambda: x @ w, 3))
    return {"epoch_s": statistics.median(epochs), "epochs_measured": len(epochs),
            "teacher_share": statistics.median(shares), "step_flops": flops, "step_s": step_s,
            "step_flops_per_s": flops / step_s, "matmul_n": n, "matmul_flops_per_s": 2 * n**3 / matmul_s,
            "matmul_all_flops_per_s": 2 * n**3 / matmul_all_s, "threads": b.train_threads, "cores": b.cores,
            "clip_frames": len(y), "train_videos": len(data.videos("train"))}


def selection_speed(b: Bench) -> dict:
    """Subset selection at N frames, M = 50, k = 15 (one task, D of the features): best of two
    runs on the training loop's thread count and on all cores; the faster is reported."""
    n, M, k, D = b.plan.selection_n, 50, 15, b.builtin.features.D
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, D), dtype=np.float32)  # [N, D]
    centers = x[rng.choice(n, M, replace=False)]  # [M, D]
    seconds = {}
    for t in sorted({b.train_threads, b.cores}):
        with threads(t):
            seconds[t] = min(_timed(lambda: subset_selection([x], centers, k), 2))
    best = min(seconds, key=seconds.get)
    return {"N": n, "M": M, "k": k, "D": D, "seconds": seconds[best], "threads": best, "seconds_by_threads": seconds}


def inference_speed(b: Bench) -> dict:
    """Milliseconds of predict_video on a 100-frame video (a default-recipe run's network on
    --device), median; the target is checked on the training loop's thread count."""
    loaded = load_run(b.run("builtin", "default", "full", b.k_true, b.plan.seeds[0]), device=b.device)
    unit = next(iter(loaded.units))
    tasks = loaded.units[unit]
    y = _video_clip(b)
    ms = {}
    for n in sorted({b.train_threads, b.cores}):
        with threads(n):
            times = _timed(lambda: predict_video(loaded.nets[unit], y, tasks, loaded.selected[unit],
                                                 loaded.centers[unit], tasks[0], loaded.decoding(unit)),
                           b.plan.timing_reps)
        ms[n] = 1000 * statistics.median(times)
    with threads(b.train_threads):  # the network's forward pass alone: the rest is decoding and the task decision
        net_ms = 1000 * statistics.median(_timed(lambda: video_outputs(loaded.nets[unit], y), b.plan.timing_reps))
    return {"frames": len(y), "ms": ms[b.train_threads], "threads": b.train_threads, "ms_by_threads": ms,
            "network_ms": net_ms, "device": str(next(loaded.nets.parameters()).device)}


def scaling(b: Bench) -> list[dict]:
    """Epoch and selection cost at each multiple of the training videos (the videos repeated),
    with the training loop's thread count (default recipe)."""
    data = b.builtin
    cfg = TrainConfig(dataset=data.spec, k=b.k_true).resolved()
    base = {v.id: torch.from_numpy(np.asarray(data.features.videos[v.id].feats, dtype=np.float32))
            for v in data.videos("train")}
    task_of = {v.id: v.task for v in data.dataset.videos}
    with threads(b.train_threads):
        return [_epoch_cost(b, cfg, base, task_of, factor) for factor in b.plan.scale_factors]


def _epoch_cost(b: Bench, cfg, base: dict[str, torch.Tensor], task_of_base: dict[str, str], factor: int) -> dict:
    """One epoch as the training loop runs it (teacher refresh, then a step per video), the
    teacher's attention features of every video alone (its network part: one SAN forward
    pass per video, which every training step also makes) and subset selection alone, with
    every training video repeated `factor` times; best of two."""
    ys = {f"{vid}~{c}": y for c in range(factor) for vid, y in base.items()}
    task_of = {vid: task_of_base[vid.rsplit("~", 1)[0]] for vid in ys}
    unit = Unit("all", list(b.builtin.dataset.tasks), list(ys))
    torch.manual_seed(0)
    net = ProcedureNet(net_config(cfg, b.builtin.features.D, len(unit.tasks)))
    opt = torch.optim.RMSprop(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    medians = video_medians(cfg, ys)  # once per training, as the loop does
    refresh_teacher(cfg, net, unit, ys, task_of, medians=medians)  # the cold first refresh is no epoch's
    best: dict[str, float] = {}
    for _ in range(2):
        start = time.perf_counter()
        refresh_teacher(cfg, net, unit, ys, task_of, medians=medians)
        teacher_s = time.perf_counter() - start
        for vid in unit.videos:
            train_step(cfg, net, opt, ys[vid], unit.labels[vid], unit.tasks.index(task_of[vid]),
                       median=None if medians is None else medians[vid])
        epoch_s = time.perf_counter() - start
        start = time.perf_counter()
        f = attention_features(net, ys, unit.videos, cfg.batch_size, medians)  # the teacher's first part
        features_s = time.perf_counter() - start
        start = time.perf_counter()
        for task in unit.tasks:
            subset_selection([f[v] for v in unit.videos if task_of[v] == task], unit.centers, cfg.k)
        selection_s = time.perf_counter() - start
        for key, value in (("epoch_s", epoch_s), ("teacher_s", teacher_s), ("selection_s", selection_s),
                           ("features_s", features_s)):
            best[key] = min(best.get(key, math.inf), value)
    return {"factor": factor, "videos": len(ys), **best}


def end_to_end(b: Bench) -> dict:
    """Generation + features of the built-in set + one default-recipe training (true k)."""
    out = {"generate_s": b.builtin.generate_s, "features_s": b.builtin.features_s,
           "train_s": b.seconds("builtin", "default", "full", b.k_true, b.plan.seeds[0])}
    return {**out, "total_s": sum(out.values())}


def scale(b: Bench) -> dict:
    """procl.bench.scale: subset selection and the k-means refresh on 2 ranks against one
    process (plan.scale_n frames), and the built-in set's features on 2 processes against 1."""
    b.log(f"scale: distributed selection at N = {b.plan.scale_n:,}")
    out = {"selection": scale_runs.selection_scale(N=b.plan.scale_n)}
    b.log("scale: features in 1 and 2 processes")
    out["features"] = scale_runs.features_scale(b.builtin.spec, nproc=2)
    out["training"] = training_scale(b)
    return out


def training_scale(b: Bench) -> dict:
    """Training at scale (procl.bench.scale.training_scale): the default recipe on the
    built-in set at the true k for plan.scale_epochs epochs, at B = 1 and B = 8 videos per
    step in this process (frames/s and quality), and in 1 against 2 processes (torchrun)."""
    sizes = scale_runs.SCALE_BATCH_SIZES
    b.log(f"scale: training at batch sizes {' and '.join(map(str, sizes))}, and in 1 against 2 processes "
          f"({b.plan.scale_epochs} epochs each)")
    return scale_runs.training_scale(b.builtin.spec, device=b.device, batch_sizes=sizes,
                                      epochs=b.plan.scale_epochs, nproc=2, k=b.k_true)


def explore(b: Bench) -> dict | None:
    """Explore's page time on a generated video of plan.explore_seconds (None: skipped)."""
    if not b.plan.explore_seconds:
        return None

    b.log(f"speed: Explore on a {b.plan.explore_seconds / 60:g}-minute video")
    folder = b.root / "explore"
    folder.mkdir(parents=True, exist_ok=True)
    return explore_page_time(folder, seconds=b.plan.explore_seconds)


def measure(b: Bench) -> dict:
    """Every speed measurement of the plan."""
    out = {"features": feature_speed(b)}
    b.log("speed: training, selection, inference, scaling")
    out.update(training=training_speed(b), selection=selection_speed(b), inference=inference_speed(b),
               scaling=scaling(b), end_to_end=end_to_end(b))
    out["scale"] = scale(b)
    out["explore"] = explore(b)
    return out
