"""Explore's page time on an hour-long video (for `procl bench`), and the pieces to build one.

`explore_page_time(tmpdir)` writes a cheap one-hour video (64x64, 2 fps, H.264 by
imageio-ffmpeg: each frame shows its own index as a pattern of black and white
blocks), a folder dataset holding it and a finished run folder with plausible
per-video outputs (no training: the page only reads the run folder), then opens the
Explore page through Streamlit's AppTest, as the app tests do, and measures the first
render and moves of the frame slider across the video. It counts the frames decoded
(every read/grab of an OpenCV capture that procl opens), which a viewer that seeks
keeps at one per frame shown.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Iterator

import imageio_ffmpeg
import numpy as np
import pandas as pd

from procl.bench.plan import bench_env
from procl.features import video
from procl.features.video import probe
from procl.io import write_json, write_text
from procl.runs import save_outputs

BITS = 16  # frame index bits drawn in a 4x4 grid of blocks
TASKS = ("long_task", "other_task")


def index_frame(index: int, size: int = 64) -> np.ndarray:
    """An RGB frame [size, size, 3] that shows `index` in binary: a 4x4 grid of blocks,
    block b (row-major) white when bit b is set."""
    bits = (index >> np.arange(BITS)) & 1
    grid = np.where(bits.reshape(4, 4) == 1, 255, 0).astype(np.uint8)
    cell = size // 4
    return np.repeat(np.repeat(grid, cell, 0), cell, 1)[..., None].repeat(3, 2)


def read_index(frame: np.ndarray) -> int:
    """The index `index_frame` drew into a (decoded) frame."""
    size = frame.shape[0]
    cell = size // 4
    means = frame[: 4 * cell, : 4 * cell].astype(float).mean(2).reshape(4, cell, 4, cell).mean((1, 3))
    bits = (means.reshape(-1) > 127).astype(int)
    return int((bits << np.arange(BITS)).sum())


def write_long_video(path: Path, seconds: float, fps: float = 2.0, size: int = 64) -> Path:
    """An H.264 mp4 of `seconds` at `fps`, each frame drawn by `index_frame` (fast: a
    one-hour video at 2 fps takes a few seconds)."""

    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * fps))
    writer = imageio_ffmpeg.write_frames(
        str(path), (size, size), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
        quality=None, macro_block_size=16, ffmpeg_log_level="error",
        output_params=["-preset", "ultrafast", "-crf", "18", "-threads", "1"],
    )
    writer.send(None)
    try:
        for i in range(n):
            writer.send(index_frame(i, size))
    finally:
        writer.close()
    return path


def make_explore_run(root: Path, video: Path, run: str = "long", M: int = 12, k: int = 4,
                     seed: int = 0) -> tuple[str, Path]:
    """A finished run `root/checkpoints/<run>` over the folder dataset that holds `video`
    (at DATASET/videos/TASKS[0]/<name>), with random but well-formed outputs (2 fps
    samples, a 7x7 attention grid, k of M states selected per task, no ground truth).
    Returns (dataset spec, run folder). Nothing is trained."""

    rng = np.random.default_rng(seed)
    target = Path(video)
    ds = target.parents[2]
    spec = f"folder:{ds}"
    info = probe(target)
    T = int(np.floor(info["duration"] * 2.0)) if info["duration"] else 1
    times = np.arange(T) / 2.0
    selected = {t: sorted(rng.choice(M, k, replace=False).tolist()) for t in TASKS}
    sel = np.array(selected[TASKS[0]])
    p = rng.dirichlet(np.ones(M), T).astype(np.float32)
    # a few long segments, as a trained run gives
    segment = np.repeat(rng.choice(sel, T // 60 + 1), 60)[:T]
    p[np.arange(T), segment] += 1.0
    p /= p.sum(1, keepdims=True)
    states = sel[p[:, sel].argmax(1)]
    beta = rng.dirichlet(np.ones(M))
    vid = target.stem
    path = root / "checkpoints" / run
    (path / "outputs").mkdir(parents=True, exist_ok=True)

    save_outputs(path, vid, times=times, alpha=rng.dirichlet(np.ones(49), T).astype(np.float16),
                 p=p.astype(np.float16), states=states, teacher=states, gt=np.full(T, -2),
                 task_probs=np.array([0.8, 0.2]), beta=beta)
    config = {
        "dataset": spec, "k": k, "M": M, "lam": 0.5, "epochs": 1, "setting": "multi", "attention": True,
        "learnable_pooling": True, "ranking": True, "background": "none", "seed": seed, "backbone": "default",
        "weights": None, "fps": 2.0, "width": 16, "center": True, "tasks": list(TASKS),
        "steps": {t: [] for t in TASKS}, "units": {"all": list(TASKS)}, "train_videos": [],
        "features": {"backbone": "default", "weights": "none (weight-free)", "fps": 2.0, "R": 49, "D": 36,
                     "grid": [7, 7], "fingerprint": "bench"},
    }
    write_json(path / "config.json", config)
    write_json(path / "status.json", {"state": "done", "created": time.time()})
    write_json(path / "selected.json", {"all": selected})
    accuracy = {"accuracy": 1.0, "per_class": {TASKS[0]: 1.0}}
    write_json(path / "metrics.json", {"recall": None, "precision": None, "f1": None, "iou": None, "accuracy": 1.0,
                                       "split": "all", "student": {"task": accuracy, "accuracy": 1.0},
                                       "teacher": {"task": accuracy, "accuracy": 1.0}})
    frame = pd.DataFrame({"video": vid, "task": TASKS[0], "pred_task": TASKS[0], "frame": np.arange(T),
                          "time": times, "state": states, "step": "", "teacher": states, "gt": -1, "name": "",
                          "split": "test"})
    write_text(path / "predictions.csv", frame.to_csv(index=False))
    return spec, path


class _CountingCapture:
    """An OpenCV capture that counts the frames decoded through it (read and grab calls)."""

    def __init__(self, cap, counter: dict) -> None:
        self._cap, self._counter = cap, counter

    def read(self, *a):
        self._counter["decoded"] += 1
        return self._cap.read(*a)

    def grab(self, *a):
        self._counter["decoded"] += 1
        return self._cap.grab(*a)

    def __getattr__(self, name):
        return getattr(self._cap, name)


@contextlib.contextmanager
def count_decoded() -> Iterator[dict]:
    """Within the block, every capture procl.features.video opens counts its decoded
    frames into the yielded {"decoded": n, "opened": n}."""

    counter = {"decoded": 0, "opened": 0}
    real = video._open

    def counting(path):
        counter["opened"] += 1
        return _CountingCapture(real(path), counter)

    video._open = counting
    try:
        yield counter
    finally:
        video._open = real


def explore_page_time(tmpdir: str | os.PathLike, seconds: float = 3600.0, moves: int = 5) -> dict:
    """Seconds the Explore page takes on a video of `seconds` (default one hour).

    Returns {"video_seconds", "samples" (frames at 2 fps the run has), "file_mb",
    "generate_s" (writing the video), "first_render_s" (opening Explore on it, caches
    cold), "slider_move_s" (median over `moves` moves of the frame slider to far-apart
    frames), "slider_move_max_s", "frames_decoded" (during all of it), "frames_shown"}.
    """
    root = Path(tmpdir)
    app = Path(__file__).resolve().parents[2] / "app.py"
    # streamlit is imported here only: the app is what this times, and procl itself never imports it
    import streamlit  # noqa: F401 - its loggers exist from here on

    # no "no runtime found" warnings from caches cleared outside a server
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith("streamlit")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        return _measure(root, app, seconds, moves)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _measure(root: Path, app: Path, seconds: float, moves: int) -> dict:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    start = time.perf_counter()
    video = write_long_video(root / "dataset" / "videos" / TASKS[0] / "long.mp4", seconds)
    generate_s = time.perf_counter() - start

    with bench_env(root):
        spec, run = make_explore_run(root, video)
        T = len(pd.read_csv(run / "predictions.csv", usecols=["frame"]))
        st.cache_data.clear()
        st.cache_resource.clear()
        with count_decoded() as counter:
            at = AppTest.from_file(str(app), default_timeout=300)
            at.run()
            at.switch_page("app_pages/explore.py")
            t0 = time.perf_counter()
            at.run()
            first = time.perf_counter() - t0
            errors = [e.value for e in at.exception] + [e.value for e in at.error]
            if errors:
                raise RuntimeError(f"the Explore page failed on the long video: {errors[:2]}")
            key = next(s.key for s in at.slider if s.label == "Frame")
            targets = np.linspace(T - 1, 1, moves).astype(int)
            durations = []
            for i in targets:
                t0 = time.perf_counter()
                at.slider(key=key).set_value(int(i)).run()
                durations.append(time.perf_counter() - t0)
        st.cache_data.clear()
        st.cache_resource.clear()
    return {
        "video_seconds": float(seconds), "samples": int(T), "file_mb": round(video.stat().st_size / 2**20, 2),
        "generate_s": round(generate_s, 2), "first_render_s": round(first, 3),
        "slider_move_s": round(float(np.median(durations)), 3), "slider_move_max_s": round(max(durations), 3),
        "frames_decoded": counter["decoded"], "frames_shown": 1 + moves,
    }
