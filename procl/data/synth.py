"""The built-in synthetic instructional-video dataset (`procl data synth`, spec `synthetic`).

Several tasks (make coffee, change tire, ...) each follow a grammar of named key-steps;
the step vocabulary is shared, so some steps ("pour water", "stir", ...) occur in more
than one task. Every step has a fixed visual identity (an object: shape + colour
pattern) and an action (a motion of the object in a person's hands).

What makes it a benchmark for spatial attention: the evidence of a key-step is
confined to a small square region (`region_frac` of the frame area, 1/9 by default)
whose place changes from video to video and drifts a little within a video. Everything
else is drawn from distributions that do not depend on the task: the scene (wall,
table texture, lighting), clutter objects taken from the same object vocabulary but
lying still and never touched, a hand moving about between steps, lighting drift,
camera shake and pixel noise. So the presence of an object does not give a step away;
an object held and moved by two hands does, and whole-frame (mean-pooled) features
carry little of the task.

Per video the steps follow the grammar with random swaps of neighbours and skipped
steps, durations vary, and at least `background` (30% by default) of the time is
background. Same seed, same dataset: each video draws from its own seeded stream, so
the number of worker processes does not change the output.

Output (the folder layout of docs/design.md, plus the key-step boxes):
    ROOT/videos/<task>/<video>.mp4        H.264 yuv420p (plays in browsers, reads in OpenCV)
    ROOT/annotations/<task>/<video>.csv   rows "step,start,end": 1-based step, seconds
    ROOT/boxes/<task>/<video>.csv         header "time,x0,y0,x1,y1": the key-step region of
                                          every frame, normalised to [0, 1]; empty fields
                                          when no key-step is active
    ROOT/steps/<task>.txt                 one key-step name per line
    ROOT/split.csv                        rows "video,train|test" (~70/30 per task, seeded)
    ROOT/README.md, ROOT/dataset.json     description; generation arguments and seed

A frame i is at time i / fps; it belongs to a segment when start <= i / fps < end, and its
box row is filled exactly then. The dataset is generated into a hidden sibling folder and
renamed into place at the end, so a half-generated dataset is never read back.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from numbers import Integral
from pathlib import Path
from typing import Callable, Iterator

import imageio_ffmpeg
import numpy as np
from tqdm import tqdm

from procl import ProclError, __version__
from procl.data.scene import STEP_OBJECTS, TASKS, Renderer, VideoPlan
from procl.io import atomic_path, write_json, write_text
from procl.paths import data_dir

# ----------------------------------------------------------------------------------------
# Arguments.

MIN_STEP_SECONDS = 1.5  # no key-step is shorter (3 samples at 2 fps)
MAX_TASKS = len(TASKS)


@dataclass(frozen=True)
class SynthConfig:
    """Every argument of a generation (written to dataset.json).

    region_frac: area of the key-step region (a square) as a share of the frame.
    clutter:     number of still, untouched objects per video.
    noise:       standard deviation of the per-pixel noise (intensities in [0, 1]).
    swap_rate:   chance that two neighbouring steps swap places.
    skip_rate:   chance that a step is left out.
    background:  least share of every video without a key-step; a video's share is drawn
                 from [background, background + 0.2].
    """

    n_tasks: int = 6
    videos_per_task: int = 20
    seed: int = 0
    frame_size: int = 224
    fps: float = 4.0
    min_duration: float = 30.0
    max_duration: float = 60.0
    region_frac: float = 1 / 9
    clutter: int = 2
    noise: float = 0.01
    swap_rate: float = 0.15
    skip_rate: float = 0.15
    background: float = 0.30

    def validate(self) -> None:
        def bad(name: str, value: object, rule: str) -> ProclError:
            return ProclError(f"synthetic dataset: {name}={value!r} is invalid; {rule}")

        if not isinstance(self.n_tasks, Integral) or not 1 <= self.n_tasks <= MAX_TASKS:
            raise bad("n_tasks", self.n_tasks, f"give a whole number from 1 to {MAX_TASKS}")
        if not isinstance(self.videos_per_task, Integral) or self.videos_per_task < 1:
            raise bad("videos_per_task", self.videos_per_task, "give a whole number >= 1")
        if not isinstance(self.seed, Integral) or self.seed < 0:
            raise bad("seed", self.seed, "give a whole number >= 0")
        if not isinstance(self.frame_size, Integral) or self.frame_size % 16 or not 64 <= self.frame_size <= 1024:
            raise bad("frame_size", self.frame_size,
                      "give a multiple of 16 from 64 to 1024 (224 = 7 grid cells of 32 px)")
        if not 1.0 <= self.fps <= 30.0:
            raise bad("fps", self.fps, "give a frame rate from 1 to 30")
        if not 0.05 <= self.region_frac <= 0.25:
            raise bad("region_frac", self.region_frac, "give an area share from 0.05 to 0.25")
        if not isinstance(self.clutter, Integral) or not 0 <= self.clutter <= 20:
            raise bad("clutter", self.clutter, "give a whole number from 0 to 20")
        if not 0.0 <= self.noise <= 0.3:
            raise bad("noise", self.noise, "give a noise level from 0 to 0.3")
        for name in ("swap_rate", "skip_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, getattr(self, name), "give a rate from 0 to below 1")
        if not 0.0 <= self.background <= 0.7:
            raise bad("background", self.background, "give a share from 0 to 0.7")
        if not 0 < self.min_duration <= self.max_duration <= 3600:
            raise bad("min_duration/max_duration", (self.min_duration, self.max_duration),
                      "give 0 < min_duration <= max_duration <= 3600 seconds")
        # the shortest video must fit one key-step beside the largest background share
        least = ((_min_step_frames(self.fps) + 1) / (1.0 - _max_share(self.background)) + 0.5) / self.fps
        if self.min_duration < least:
            raise bad("min_duration", self.min_duration,
                      f"give at least {least:.1f} s so that one key-step of {MIN_STEP_SECONDS} s "
                      f"fits beside the background share")

    @property
    def tasks(self) -> list[tuple[str, list[str]]]:
        return TASKS[: self.n_tasks]


def _min_step_frames(fps: float) -> int:
    return int(math.ceil(MIN_STEP_SECONDS * fps))


def _max_share(background: float) -> float:
    """A video's background share is drawn from [background, _max_share(background)]."""
    return min(background + 0.2, 0.9)


def task_folder(task: str) -> str:
    """The folder and file name of a task ("make coffee" -> "make_coffee")."""
    return task.replace(" ", "_")


# ----------------------------------------------------------------------------------------
# Plans: what happens when in a video, drawn from its own seeded stream.


def _video_rng(cfg: SynthConfig, task_index: int, video_index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, task_index, video_index]))


def _split_evenly(total: int, weights: np.ndarray) -> np.ndarray:
    """Whole numbers proportional to `weights` that sum to `total`."""
    raw = total * weights / weights.sum()
    out = np.floor(raw).astype(np.int64)
    out[np.argsort(out - raw)[: total - out.sum()]] += 1
    return out


def plan_video(cfg: SynthConfig, task_index: int, video_index: int,
               rng: np.random.Generator) -> VideoPlan:
    """Step order (grammar + neighbour swaps + skips), step lengths and background gaps."""
    task, steps = cfg.tasks[task_index]
    n_frames = int(round(rng.uniform(cfg.min_duration, cfg.max_duration) * cfg.fps))
    order = list(range(len(steps)))
    i = 0
    while i < len(order) - 1:
        if rng.random() < cfg.swap_rate:
            order[i], order[i + 1] = order[i + 1], order[i]
            i += 1
        i += 1
    kept = [s for s in order if rng.random() >= cfg.skip_rate]
    order = kept or [order[rng.integers(len(order))]]

    share = rng.uniform(cfg.background, _max_share(cfg.background))
    step_total = n_frames - int(math.ceil(share * n_frames))
    min_len = _min_step_frames(cfg.fps)
    while len(order) > 1 and len(order) * min_len > step_total:
        order.pop(int(rng.integers(len(order))))
    lengths = min_len + _split_evenly(step_total - len(order) * min_len,
                                      rng.gamma(2.0, size=len(order)))
    gaps = _split_evenly(n_frames - int(lengths.sum()), rng.gamma(1.5, size=len(order) + 1))
    segments, t = [], 0
    for step, gap, length in zip(order, gaps, lengths):
        t += int(gap)
        segments.append((step, t, t + int(length)))
        t += int(length)
    return VideoPlan(f"{task_folder(task)}_{video_index:03d}", task, n_frames, segments)


# ----------------------------------------------------------------------------------------
# Writing one video (runs in a worker process).


def _fmt_time(seconds: float) -> str:
    """A timestamp that reads back as exactly the same float (frame / fps)."""
    return repr(float(seconds))


def _encode(path: Path, frames: Iterator[np.ndarray], size: int, fps: float) -> None:
    """Write frames as H.264 yuv420p MP4 (veryfast, one thread) via imageio-ffmpeg.

    CRF 27 keeps the files small (~0.2 MB a minute); the codec smooths most pixel noise.
    """

    writer = imageio_ffmpeg.write_frames(
        str(path), (size, size), fps=fps, codec="libx264", pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p", quality=None, macro_block_size=16, ffmpeg_log_level="error",
        output_params=["-preset", "veryfast", "-crf", "27", "-threads", "1",
                       "-movflags", "+faststart", "-f", "mp4"],
    )
    writer.send(None)
    try:
        for frame in frames:
            writer.send(frame)
    finally:
        writer.close()


def _write_video(cfg: SynthConfig, task_index: int, video_index: int, root: Path) -> dict:
    """Plan, render and write one video with its annotation and box files."""
    rng = _video_rng(cfg, task_index, video_index)
    plan = plan_video(cfg, task_index, video_index, rng)
    renderer = Renderer(cfg, plan, rng)
    folder = task_folder(plan.task)
    S = cfg.frame_size
    rows = ["time,x0,y0,x1,y1"]

    def frames() -> Iterator[np.ndarray]:
        for i, (frame, box) in enumerate(renderer.frames()):
            t = _fmt_time(i / cfg.fps)
            rows.append(f"{t},,,," if box is None else t + "," + ",".join(f"{c / S:.4f}" for c in box))
            yield frame

    video = root / "videos" / folder / f"{plan.video}.mp4"
    with atomic_path(video) as tmp:
        _encode(tmp, frames(), S, cfg.fps)
    if len(rows) != plan.n_frames + 1:
        raise ProclError(f"{video}: rendered {len(rows) - 1} of {plan.n_frames} frames")
    write_text(root / "boxes" / folder / f"{plan.video}.csv", "\n".join(rows) + "\n")
    annotation = "".join(f"{step + 1},{_fmt_time(a / cfg.fps)},{_fmt_time(b / cfg.fps)}\n"
                         for step, a, b in plan.segments)
    write_text(root / "annotations" / folder / f"{plan.video}.csv", annotation)
    step_frames = sum(b - a for _, a, b in plan.segments)
    return {"video": plan.video, "task": plan.task, "frames": plan.n_frames, "step_frames": step_frames}


# ----------------------------------------------------------------------------------------
# The dataset.


def _split(cfg: SynthConfig) -> list[tuple[str, str]]:
    """Seeded ~70/30 train/test split per task (at least one training video per task)."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 7919]))
    rows = []
    for task, _ in cfg.tasks:
        n = cfg.videos_per_task
        n_test = min(n - 1, int(round(0.3 * n)))
        test = set(rng.permutation(n)[:n_test].tolist())
        rows += [(f"{task_folder(task)}_{v:03d}", "test" if v in test else "train") for v in range(n)]
    return rows


def _readme(cfg: SynthConfig, stats: list[dict]) -> str:
    frames = sum(s["frames"] for s in stats)
    background = 1.0 - sum(s["step_frames"] for s in stats) / frames
    steps = "\n".join(f"- **{task}** ({task_folder(task)}): " + ", ".join(steps) for task, steps in cfg.tasks)
    return f"""# procl synthetic instructional videos

Generated by procl {__version__} (`procl.data.synth`) with seed {cfg.seed}; the arguments are
in `dataset.json`. {len(stats)} videos, {frames} frames at {cfg.fps:g} fps
({frames / cfg.fps / 60:.1f} minutes), {cfg.frame_size}x{cfg.frame_size} px,
{100 * background:.1f}% of the time is background.

Each key-step is a person's two hands moving one object (shape + colour pattern) in a
distinctive way, inside a square region of {100 * cfg.region_frac:.1f}% of the frame whose place
varies from video to video. The scene, the {cfg.clutter} still clutter objects per video (from the
same object vocabulary), the idle hand between steps, lighting drift, camera shake and
pixel noise do not depend on the task.

Tasks and key-steps (grammar order; steps may swap with a neighbour or be skipped):

{steps}

## Files

- `videos/<task>/<video>.mp4`: H.264 (yuv420p), {cfg.frame_size}x{cfg.frame_size}, {cfg.fps:g} fps.
  Frame i is at time i / fps seconds.
- `annotations/<task>/<video>.csv`: rows `step,start,end` (no header): the 1-based key-step
  (line number in `steps/<task>.txt`), start and end in seconds. Frame i belongs to a row
  when start <= i / fps < end; frames of no row are background.
- `boxes/<task>/<video>.csv`: header `time,x0,y0,x1,y1`, one row per frame: the key-step
  region in coordinates normalised to [0, 1] (x right, y down); the four fields are empty
  when no key-step is active.
- `steps/<task>.txt`: the task's key-step names, one per line, in grammar order.
- `split.csv`: rows `video,train|test`, about 70/30 per task.
- `dataset.json`: generation arguments and seed (`procl.data.synth.generate(out, **arguments)`
  makes the same dataset again), and each step's object and action.
"""


def _dataset_json(cfg: SynthConfig) -> dict:
    return {
        "generator": "procl.data.synth",
        "procl_version": __version__,
        "arguments": asdict(cfg),
        "tasks": [
            {"name": task, "folder": task_folder(task),
             "steps": [{"name": s, **STEP_OBJECTS[s]._asdict()} for s in steps]}
            for task, steps in cfg.tasks
        ],
    }


def _default_workers(n_videos: int) -> int:
    """Processes for `n_videos`: one per CPU (at most 8), none extra for a handful of videos."""
    return max(1, min(n_videos // 4, os.cpu_count() or 1, 8))


def generate(
    out: Path,
    n_tasks: int = 6,
    videos_per_task: int = 20,
    seed: int = 0,
    *,
    frame_size: int = 224,
    fps: float = 4.0,
    min_duration: float = 30.0,
    max_duration: float = 60.0,
    region_frac: float = 1 / 9,
    clutter: int = 2,
    noise: float = 0.01,
    swap_rate: float = 0.15,
    skip_rate: float = 0.15,
    background: float = 0.30,
    progress: bool = True,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Generate the synthetic dataset into `out` and return `out`.

    Refuses (ProclError) when `out` exists and is not empty, unless `overwrite`. The files
    are written into a hidden sibling folder that is renamed onto `out` at the end.
    The difficulty knobs are described in `SynthConfig`. `workers`: processes rendering
    videos in parallel (None: by CPU count; 1: in this process). `on_progress(done, total)`
    is called after every video.
    """
    try:
        cfg = SynthConfig(n_tasks=n_tasks, videos_per_task=videos_per_task, seed=seed, frame_size=frame_size,
                          fps=float(fps), min_duration=float(min_duration), max_duration=float(max_duration),
                          region_frac=float(region_frac), clutter=clutter, noise=float(noise),
                          swap_rate=float(swap_rate), skip_rate=float(skip_rate), background=float(background))
    except (TypeError, ValueError) as err:
        raise ProclError(f"synthetic dataset: a number argument is not a number ({err})") from None
    cfg.validate()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ProclError(f"{out} is a file; give a folder for the synthetic dataset")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ProclError(f"{out} exists and is not empty; choose another folder or pass overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        stats = _render_all(cfg, work, progress, workers, on_progress)
        for task, steps in cfg.tasks:
            write_text(work / "steps" / f"{task_folder(task)}.txt", "\n".join(steps) + "\n")
        write_text(work / "split.csv", "".join(f"{v},{s}\n" for v, s in _split(cfg)))
        write_text(work / "README.md", _readme(cfg, stats))
        write_json(work / "dataset.json", _dataset_json(cfg))
        _move_into_place(work, out, overwrite)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return out


def _render_all(cfg: SynthConfig, root: Path, progress: bool, workers: int | None,
                on_progress: Callable[[int, int], None] | None) -> list[dict]:
    jobs = [(t, v) for t in range(cfg.n_tasks) for v in range(cfg.videos_per_task)]
    n_workers = _default_workers(len(jobs)) if workers is None else max(1, int(workers))
    stats: list[dict] = []
    with tqdm(total=len(jobs), desc="synthetic videos", unit="video", disable=not progress) as bar:
        def done(result: dict) -> None:
            stats.append(result)
            bar.update(1)
            if on_progress is not None:
                on_progress(len(stats), len(jobs))

        if n_workers == 1:
            for t, v in jobs:
                done(_write_video(cfg, t, v, root))
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
                futures = [pool.submit(_write_video, cfg, t, v, root) for t, v in jobs]
                try:
                    for future in cf.as_completed(futures):
                        done(future.result())
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    return sorted(stats, key=lambda s: s["video"])


def _move_into_place(work: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished folder onto `out`; an old `out` is removed only at this point."""
    if out.exists() and overwrite:
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(work, out)  # replaces an empty folder, fails on a non-empty one
    except OSError as err:
        raise ProclError(f"{out} was filled by something else while the synthetic dataset was "
                         f"generated; choose another folder or pass overwrite") from err


def ensure_synthetic(progress: bool = True,
                     on_progress: Callable[[int, int], None] | None = None) -> Path:
    """`data_dir()/synthetic`, generating the default set there first if it is missing."""
    root = data_dir() / "synthetic"
    if (root / "dataset.json").is_file():
        return root
    if root.is_dir() and any(root.iterdir()):
        raise ProclError(f"{root} exists but holds no dataset.json; remove it to regenerate the "
                         f"synthetic dataset")
    try:
        return generate(root, progress=progress, on_progress=on_progress)
    except (ProclError, OSError):
        if (root / "dataset.json").is_file():  # another process finished it first
            return root
        raise


# ----------------------------------------------------------------------------------------
# Command line: python -m procl data synth --out DIR [...]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SynthConfig()
    parser.add_argument("--out", type=Path, required=True, help="folder to create (must be empty or absent)")
    parser.add_argument("--tasks", type=int, default=d.n_tasks, help=f"number of tasks (1-{MAX_TASKS})")
    parser.add_argument("--videos-per-task", type=int, default=d.videos_per_task)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--frame-size", type=int, default=d.frame_size,
                        help="square frame side, px (multiple of 16)")
    parser.add_argument("--fps", type=float, default=d.fps, help="frame rate of the written videos")
    parser.add_argument("--min-duration", type=float, default=d.min_duration, help="seconds")
    parser.add_argument("--max-duration", type=float, default=d.max_duration, help="seconds")
    parser.add_argument("--region-frac", type=float, default=d.region_frac,
                        help="area share of the key-step region (difficulty: smaller is harder)")
    parser.add_argument("--clutter", type=int, default=d.clutter,
                        help="still distractor objects per video")
    parser.add_argument("--noise", type=float, default=d.noise, help="pixel noise standard deviation")
    parser.add_argument("--swap-rate", type=float, default=d.swap_rate,
                        help="chance that two neighbouring steps swap")
    parser.add_argument("--skip-rate", type=float, default=d.skip_rate, help="chance a step is skipped")
    parser.add_argument("--background", type=float, default=d.background,
                        help="least background share per video")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: by CPU count)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = generate(
        args.out, args.tasks, args.videos_per_task, args.seed, frame_size=args.frame_size,
        fps=args.fps, min_duration=args.min_duration, max_duration=args.max_duration,
        region_frac=args.region_frac, clutter=args.clutter, noise=args.noise,
        swap_rate=args.swap_rate, skip_rate=args.skip_rate, background=args.background,
        workers=args.workers, overwrite=args.overwrite,
    )
    print(f"generated in {time.perf_counter() - start:.1f} s")
    print(out)
    return 0
