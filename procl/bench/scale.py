"""Scale measurements for `procl bench`: the distributed teacher, torchrun features and training.

    selection_scale(N, M, k, D)   subset selection (and the k-means refresh) on N frames:
                                  one process against 2 gloo ranks holding half each
    features_scale(spec, ...)     `procl features` in one process against torchrun with
                                  n processes, wall time, and whether the caches are equal
    compare_caches(a, b)          the differences between two feature cache folders
    training_scale(spec, ...)     training frames/s at batch sizes 1 and 8 in this process
                                  and the quality of each; `procl train` in one process
                                  against torchrun with n processes (wall time, quality)

They spawn processes on this machine; on a CPU every process runs one thread, so the
ratios say what splitting the work gains, not what more threads would. `device`
("cpu", "cuda", "auto") is where the backbone and the networks run: on a GPU machine
the same functions give feature and training frames/s there (torchrun with n
processes needs n GPUs).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import procl
from procl import ProclError, dist
from procl.config import TrainConfig
from procl.data import open_dataset
from procl.io import read_json
from procl.paths import environment
from procl.selection import fit_states_distributed, subset_selection, subset_selection_distributed
from procl.train import load_inputs, make_units, train

_VIDEO_FRAMES = (60, 240)  # frames per synthetic video (30 s to 2 min at 2 fps)


# ---------------------------------------------------------------- distributed teacher


def video_lengths(N: int, seed: int = 0) -> list[int]:
    """Frame counts of the synthetic videos that make N frames in all."""
    rng = np.random.default_rng([seed, 0])
    lengths: list[int] = []
    while sum(lengths) < N:
        lengths.append(int(rng.integers(*_VIDEO_FRAMES)))
    lengths[-1] -= sum(lengths) - N
    return [n for n in lengths if n > 0]


def synthetic_task(N: int, M: int, D: int, seed: int = 0, which: list[int] | None = None):
    """Clustered attention-like features of one task: ({video index: [T, D] float32}, centers [M, D]).

    Video i depends only on (seed, i), so a rank makes just its own videos (`which`,
    default all) and they are the ones one process would make.
    """
    lengths = video_lengths(N, seed)
    centers = np.random.default_rng([seed, 1]).normal(scale=3.0, size=(M, D)).astype(np.float32)
    videos = {}
    for i in range(len(lengths)) if which is None else which:
        rng = np.random.default_rng([seed, 2, i])
        videos[i] = (centers[rng.integers(0, M, lengths[i])] + rng.normal(size=(lengths[i], D))).astype(np.float32)
    return videos, centers


def _teacher_rank(N: int, M: int, k: int, D: int, seed: int) -> dict:
    """One rank of selection_scale (or the one process): its videos, then the timed
    subset selection and warm-started k-means refresh."""
    lengths = video_lengths(N, seed)
    which = dist.shard(list(range(len(lengths))), weights=lengths, what="videos")
    videos, centers = synthetic_task(N, M, D, seed, which)
    mine = [videos[i] for i in which]
    init = centers + np.random.default_rng([seed, 3]).normal(scale=0.3, size=centers.shape).astype(np.float32)
    select = subset_selection_distributed if dist.is_distributed() else subset_selection
    dist.barrier("starting the measurement")
    t0 = time.perf_counter()
    sel = select(mine, centers, k)
    t1 = time.perf_counter()
    refreshed = fit_states_distributed(np.concatenate(mine), M, init=init)
    t2 = time.perf_counter()
    return {"selected": sel.selected, "selection_s": t1 - t0, "kmeans_s": t2 - t1, "centers": refreshed}


def selection_scale(N: int = 1_000_000, M: int = 50, k: int = 15, D: int = 36, seed: int = 0) -> dict:
    """Distributed subset selection (and the warm-started k-means refresh) at N frames of
    one task: one process holding all frames (`subset_selection`, one thread) against 2
    gloo ranks holding half the videos each (`subset_selection_distributed`).

    Returns {"N", "M", "k", "D", "videos", "one_process_s", "two_ranks_s", "selection_speedup",
    "kmeans_one_process_s", "kmeans_two_ranks_s", "kmeans_speedup", "equal" (the 2-rank
    selection is the one-process one), "kmeans_max_diff" (largest difference of the
    refreshed centers), "bytes_per_pick" (what each rank sends per greedy pick: M float64)}.
    """
    with dist.threads(1):
        one = _teacher_rank(N, M, k, D, seed)  # not distributed here: the one-process path
    two = [r.get() for r in dist.spawn(_teacher_rank, 2, args=(N, M, k, D, seed), timeout=1800.0)]
    sel_two = max(r["selection_s"] for r in two)
    km_two = max(r["kmeans_s"] for r in two)
    return {
        "N": N, "M": M, "k": k, "D": D, "videos": len(video_lengths(N, seed)),
        "one_process_s": round(one["selection_s"], 3), "two_ranks_s": round(sel_two, 3),
        "selection_speedup": round(one["selection_s"] / sel_two, 2),
        "kmeans_one_process_s": round(one["kmeans_s"], 3), "kmeans_two_ranks_s": round(km_two, 3),
        "kmeans_speedup": round(one["kmeans_s"] / km_two, 2),
        "equal": all(r["selected"] == one["selected"] for r in two),
        "kmeans_max_diff": float(max(np.abs(r["centers"] - one["centers"]).max() for r in two)),
        "bytes_per_pick": 8 * M,
    }


# ---------------------------------------------------------------- torchrun features


def compare_caches(a: str | Path, b: str | Path) -> list[str]:
    """What differs between two feature cache folders (manifest.json and every .npz,
    array by array); empty when they are the same."""
    a, b = Path(a), Path(b)
    diffs = []
    try:
        ma, mb = read_json(a / "manifest.json"), read_json(b / "manifest.json")
    except (OSError, ValueError) as err:
        return [f"manifest: {err}"]
    for key in sorted(set(ma) | set(mb)):
        if ma.get(key) != mb.get(key):
            diffs.append(f"manifest {key!r} differs")
    files_a, files_b = sorted(p.name for p in a.glob("*.npz")), sorted(p.name for p in b.glob("*.npz"))
    if files_a != files_b:
        diffs.append(f"files differ: {sorted(set(files_a) ^ set(files_b))}")
    for name in sorted(set(files_a) & set(files_b)):
        with np.load(a / name) as x, np.load(b / name) as y:
            if x.files != y.files or any(not np.array_equal(x[f], y[f]) for f in x.files):
                diffs.append(f"{name} differs")
    leftovers = sorted(p.name for p in [*a.glob("manifest.part-*"), *b.glob("manifest.part-*")])
    if leftovers:
        diffs.append(f"part manifests left: {leftovers}")
    return diffs


def procl_command(nproc: int, *args: str) -> list[str]:
    """`python -m procl ARGS` for one process (nproc 1), or under torchrun with nproc
    processes on this machine."""
    if nproc == 1:
        return [sys.executable, "-m", "procl", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "--monitor-interval", "0.2", "-m", "procl", *args]


def features_command(spec: str, nproc: int, backbone: str = "default", fps: float = 2.0,
                     device: str = "auto") -> list[str]:
    """The `procl features` command line for one process (nproc 1) or torchrun on this machine."""
    return procl_command(nproc, "features", "--dataset", spec, "--backbone", backbone, "--fps", f"{fps:g}",
                         "--device", device)


def _env(**values: str) -> dict[str, str]:
    """This process's environment for a procl subprocess: procl importable, and `values`."""
    package_root = str(Path(procl.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
            **values}


def _run(cmd: list[str], env: dict[str, str], what: str) -> float:
    """Run a procl command to its end, in this process's folder (relative dataset and data
    paths mean the same there): its wall time in seconds; ProclError when it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=os.getcwd())
    if done.returncode != 0:
        raise ProclError(f"{what} failed: {failure_text(done.stderr)}")
    return time.perf_counter() - start


def failure_text(stderr: str, keep: int = 1500) -> str:
    """What a failed command said, shortened to `keep` characters. Under torchrun the
    launcher's own traceback (ChildFailedError) comes last and would fill the space: the
    ranks' messages before it are kept, then the launcher's "Root Cause" summary."""
    text = stderr.strip()
    cut = text.rfind("Traceback (most recent call last):")
    if cut > 0 and "ChildFailedError" in text[cut:]:
        launcher = text[cut:]
        root = launcher[launcher.find("Root Cause"):] if "Root Cause" in launcher else ""
        return f"{text[:cut].strip()[-keep:]}\n{root[:keep // 2]}".strip()
    return text[-keep:]


def _needs_gpus(device: str, nproc: int) -> str | None:
    """Why nproc processes cannot run on `device` here (one GPU each), or None."""
    if nproc > 1 and dist.resolve_device(device).type == "cuda" and torch.cuda.device_count() < nproc:
        return f"{nproc} processes on cuda need {nproc} GPUs, this machine has {torch.cuda.device_count()}"
    return None


def features_scale(spec: str = "synthetic", nproc: int = 2, backbone: str = "default", fps: float = 2.0,
                   device: str = "auto") -> dict:
    """`procl features` on a dataset of video files into an empty cache: one process
    against torchrun with `nproc` processes (each a 1/nproc share of the cores, or a
    GPU each with device cuda); wall time of the whole command (start-up included),
    frames/s of the one process, and whether the two caches are equal.

    Returns {"dataset", "videos", "frames", "device", "processes", "one_process_s",
    "one_process_frames_per_s", "n_processes_s", "ratio" (one / n), "same_cache",
    "differences"}; with device cuda and fewer GPUs than nproc the n-process run is
    left out ("n_processes_s" None, "skipped" says why).
    """

    dataset = open_dataset(spec, progress=False)
    if any(v.kind != "video" for v in dataset.videos):
        raise ProclError(f"dataset {spec} has precomputed features: features_scale needs video files")
    run_spec = f"folder:{Path(dataset.root).resolve()}" if dataset.spec == "synthetic" else dataset.spec
    skipped = _needs_gpus(device, nproc)
    times, folders = {}, {}
    with tempfile.TemporaryDirectory(prefix="procl-scale-") as tmp:
        for n in (1,) if skipped else (1, nproc):
            times[n] = _run(features_command(run_spec, n, backbone, fps, device),
                            _env(PROCL_DATA=str(Path(tmp) / f"n{n}")), f"features with {n} process(es)")
            manifests = sorted((Path(tmp) / f"n{n}" / "features").glob("*/*/manifest.json"))
            if len(manifests) != 1:
                raise ProclError(f"features with {n} process(es) wrote {len(manifests)} caches, expected one")
            folders[n] = manifests[0].parent
        frames = sum(int(e["T"]) for e in read_json(folders[1] / "manifest.json")["videos"].values())
        diffs = [] if skipped else compare_caches(folders[1], folders[nproc])
    out = {
        "dataset": spec, "videos": len(dataset.videos), "frames": frames, "device": device, "processes": nproc,
        "one_process_s": round(times[1], 2), "one_process_frames_per_s": round(frames / times[1], 1),
        "n_processes_s": None if skipped else round(times[nproc], 2),
        "ratio": None if skipped else round(times[1] / times[nproc], 2),
        "same_cache": None if skipped else not diffs, "differences": diffs,
    }
    return {**out, "skipped": skipped} if skipped else out


# ---------------------------------------------------------------- training


def _run_figures(path: Path) -> dict:
    """A finished run's training figures: its epochs' seconds and those of the student steps
    (the epochs less the teacher refreshes; status.json), and its quality (metrics.json,
    on the run's scoring split)."""
    status, metrics, config = (read_json(path / name) for name in ("status.json", "metrics.json", "config.json"))
    epoch_s, teacher_s = sum(status["epoch_seconds"]), sum(status["teacher_seconds"])
    return {"epochs": len(status["epoch_seconds"]), "epoch_s": round(epoch_s, 3),
            "student_s": round(epoch_s - teacher_s, 3), "f1": metrics["f1"], "accuracy": metrics["accuracy"],
            "teacher_f1": metrics["teacher"].get("f1"), "split": metrics["split"],
            "processes": config.get("processes", 1)}


SCALE_BATCH_SIZES = (1, 8)  # videos per step compared by training_scale (and the bench)


def training_scale(spec: str = "synthetic", device: str = "auto", batch_sizes: tuple[int, ...] = SCALE_BATCH_SIZES,
                   epochs: int = 3, nproc: int = 2, k: int = 7, seed: int = 0, process_batch_size: int | None = None,
                   **settings) -> dict:
    """Training at several batch sizes in this process, and in one process against
    torchrun with `nproc` processes; on `device` ("cpu", "cuda", "auto").

    Batch sizes: `procl.train.train` of the same config (the dataset's training videos,
    `epochs` epochs, k, seed and `settings`: any other TrainConfig field) at each batch
    size, one after the other in this process. Frames/s count the training videos' real
    frames (padding left out) over the student steps' seconds (the epochs' time less the
    teacher refreshes), and over the whole epochs; F1 and accuracy are the run's own
    (metrics.json: the test split of a multi-task run).
    Processes: `python -m procl train` and `torchrun --nproc_per_node nproc -m procl
    train` with the same arguments at batch size `process_batch_size` (per process; default
    batch_sizes[0]); wall time
    of each command (start-up and evaluation included), its epochs' seconds, and its
    quality. Left out ("skipped" says why) for nproc < 2, or cuda with fewer GPUs.

    Runs go to a temporary checkpoints folder; features come from (or go to) the usual
    cache. Returns {"dataset", "device", "device_used", "epochs", "train_videos",
    "frames_per_epoch", "batch": {B: {"frames_per_s", "epoch_frames_per_s", "f1",
    "accuracy", ...}}, "batch_speedup" (frames/s of the largest batch over the first),
    "processes": {"n", "batch_size", "one_process": {"wall_s", "epoch_s", "f1", "accuracy", ...},
    "n_processes": {...}, "ratio" (wall time, one / n), "epoch_ratio" (the epochs' seconds, one / n)}}.
    """

    cfg = TrainConfig(dataset=spec, k=k, epochs=epochs, seed=seed, device=device, **settings)
    resolved = cfg.resolved()
    resolved.validate()
    dataset, features = load_inputs(resolved, progress=False)
    train_ids = [v for u in make_units(resolved, dataset, features) for v in u.videos]
    frames = sum(features.videos[v].T for v in train_ids)
    out: dict = {"dataset": spec, "device": device, "device_used": str(dist.resolve_device(device)),
                 "epochs": epochs, "train_videos": len(train_ids), "frames_per_epoch": frames, "batch": {}}
    with tempfile.TemporaryDirectory(prefix="procl-train-scale-") as tmp:
        with environment(PROCL_CHECKPOINTS=tmp):
            for B in batch_sizes:
                path = train(replace(cfg, batch_size=B), run=f"batch{B}", progress=False)
                fig = _run_figures(path)
                out["batch"][B] = {**fig, "frames_per_s": round(frames * fig["epochs"] / fig["student_s"], 1),
                                   "epoch_frames_per_s": round(frames * fig["epochs"] / fig["epoch_s"], 1)}
        first, last = out["batch"][batch_sizes[0]], out["batch"][batch_sizes[-1]]
        out["batch_speedup"] = round(last["frames_per_s"] / first["frames_per_s"], 2)
        out["processes"] = _process_scale(cfg, process_batch_size or batch_sizes[0], nproc, Path(tmp), settings,
                                          frames)
    return out


def train_arguments(cfg, batch_size: int, settings: dict) -> list[str]:
    """The `procl train` arguments of a TrainConfig made of dataset, k, epochs, seed,
    device and `settings` (other TrainConfig fields), at `batch_size`."""

    args = ["train", "--dataset", cfg.dataset, "--k", str(cfg.k), "--epochs", str(cfg.epochs), "--seed", str(cfg.seed),
            "--batch-size", str(batch_size), "--device", cfg.device]
    defaults = TrainConfig()
    for name, value in settings.items():  # as their command-line options
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            if value != getattr(defaults, name):
                args.append(f"--{flag}" if value else f"--no-{flag}")
        elif value is not None:
            args += [f"--{flag}", str(value)]
    return args


def _process_scale(cfg, batch_size: int, nproc: int, tmp: Path, settings: dict, frames: int) -> dict:
    """`procl train` of cfg in one process against torchrun with nproc (training_scale)."""
    skipped = "one process only" if nproc < 2 else _needs_gpus(cfg.device, nproc)
    if skipped:
        return {"n": nproc, "skipped": skipped}
    args = train_arguments(cfg, batch_size, settings)
    # one thread per process in both (torchrun sets it for its processes): what splitting the work gains.
    # PROCL_DATA as it is here: the feature cache knows its videos by the path they were found at
    env = _env(PROCL_CHECKPOINTS=str(tmp), OMP_NUM_THREADS="1")
    out = {"n": nproc, "batch_size": batch_size}
    for key, n in (("one_process", 1), ("n_processes", nproc)):
        wall = _run(procl_command(n, *args, "--run-name", key), env, f"train with {n} process(es)")
        fig = _run_figures(tmp / key)
        out[key] = {"wall_s": round(wall, 2), **fig,
                    "epoch_frames_per_s": round(frames * fig["epochs"] / fig["epoch_s"], 1)}
    out["ratio"] = round(out["one_process"]["wall_s"] / out["n_processes"]["wall_s"], 2)
    out["epoch_ratio"] = round(out["one_process"]["epoch_s"] / out["n_processes"]["epoch_s"], 2)
    return out
