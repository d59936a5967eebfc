"""Scale measurements for `procl bench`: the distributed teacher and torchrun features.

    selection_scale(N, M, k, D)   subset selection (and the k-means refresh) on N frames:
                                  one process against 2 gloo ranks holding half each
    features_scale(spec, ...)     `procl features` in one process against torchrun with
                                  n processes, wall time, and whether the caches are equal
    compare_caches(a, b)          the differences between two feature cache folders

Both spawn processes on this machine (no GPU involved); every process runs one thread,
so the ratios say what splitting the work gains, not what more threads would.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import procl
from procl import ProclError, dist
from procl.io import read_json
from procl.selection import fit_states_distributed, subset_selection, subset_selection_distributed

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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = _teacher_rank(N, M, k, D, seed)  # not distributed here: the one-process path
    finally:
        torch.set_num_threads(threads)
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


def features_command(spec: str, nproc: int, backbone: str = "default", fps: float = 2.0) -> list[str]:
    """The `procl features` command line for one process (nproc 1) or torchrun on this machine."""
    args = ["-m", "procl", "features", "--dataset", spec, "--backbone", backbone, "--fps", f"{fps:g}"]
    if nproc == 1:
        return [sys.executable, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "--monitor-interval", "0.2", *args]


def features_scale(spec: str = "synthetic", nproc: int = 2, backbone: str = "default", fps: float = 2.0) -> dict:
    """`procl features` on a dataset of video files into an empty cache: one process
    against torchrun with `nproc` processes (each a 1/nproc share of the cores); wall
    time of the whole command (start-up included) and whether the two caches are equal.

    Returns {"dataset", "videos", "processes", "one_process_s", "n_processes_s", "ratio"
    (one / n), "same_cache", "differences"}.
    """
    from procl.data import open_dataset

    dataset = open_dataset(spec, progress=False)
    if any(v.kind != "video" for v in dataset.videos):
        raise ProclError(f"dataset {spec} has precomputed features: features_scale needs video files")
    run_spec = f"folder:{Path(dataset.root).resolve()}" if dataset.spec == "synthetic" else dataset.spec
    package_root = str(Path(procl.__file__).resolve().parents[1])
    times, folders = {}, {}
    with tempfile.TemporaryDirectory(prefix="procl-scale-") as tmp:
        for n in (1, nproc):
            env = {**os.environ, "PROCL_DATA": str(Path(tmp) / f"n{n}"),
                   "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
            start = time.perf_counter()
            done = subprocess.run(features_command(run_spec, n, backbone, fps), env=env, capture_output=True,
                                  text=True, cwd=package_root)
            times[n] = time.perf_counter() - start
            if done.returncode != 0:
                raise ProclError(f"features with {n} process(es) failed: {done.stderr.strip()[-1500:]}")
            manifests = sorted((Path(tmp) / f"n{n}" / "features").glob("*/*/manifest.json"))
            if len(manifests) != 1:
                raise ProclError(f"features with {n} process(es) wrote {len(manifests)} caches, expected one")
            folders[n] = manifests[0].parent
        diffs = compare_caches(folders[1], folders[nproc])
    return {
        "dataset": spec, "videos": len(dataset.videos), "processes": nproc,
        "one_process_s": round(times[1], 2), "n_processes_s": round(times[nproc], 2),
        "ratio": round(times[1] / times[nproc], 2), "same_cache": not diffs, "differences": diffs,
    }
