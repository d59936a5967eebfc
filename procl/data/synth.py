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
from typing import Callable, Iterator, NamedTuple

import cv2
import imageio_ffmpeg
import numpy as np
from tqdm import tqdm

from procl import ProclError, __version__
from procl.io import atomic_path, write_json, write_text
from procl.paths import data_dir

# ----------------------------------------------------------------------------------------
# Vocabulary: tasks, their grammars, and the object + action of every key-step.

TASKS: list[tuple[str, list[str]]] = [
    ("make coffee", ["boil water", "grind beans", "add coffee", "pour water", "stir", "add milk"]),
    ("make tea", ["boil water", "add tea bag", "pour water", "remove tea bag", "add sugar", "stir"]),
    ("change tire", ["loosen nuts", "jack up car", "remove wheel", "mount wheel", "tighten nuts",
                     "lower car"]),
    ("make pancakes", ["crack egg", "add flour", "add milk", "whisk", "heat pan", "pour batter",
                       "flip pancake", "serve"]),
    ("repot plant", ["remove plant", "loosen roots", "add soil", "place plant", "pour water"]),
    ("fix bike tire", ["remove wheel", "patch tube", "pump tire", "mount wheel", "tighten nuts"]),
    ("make omelette", ["crack egg", "add salt", "whisk", "heat pan", "pour eggs", "fold omelette",
                       "serve"]),
    ("assemble shelf", ["unpack parts", "attach sides", "tighten screws", "insert shelves"]),
]


class ObjectSpec(NamedTuple):
    """The visual identity of a key-step: what is held (shape, pattern, two colours) and how
    it is moved (action)."""

    shape: str
    pattern: str
    colour1: str
    colour2: str
    action: str


STEP_OBJECTS: dict[str, ObjectSpec] = {
    "boil water": ObjectSpec("cup", "center", "red", "black", "press"),
    "grind beans": ObjectSpec("hexagon", "dots", "brown", "cream", "spin"),
    "add coffee": ObjectSpec("square", "hstripes", "brown", "yellow", "pour"),
    "pour water": ObjectSpec("bottle", "hstripes", "blue", "white", "pour"),
    "stir": ObjectSpec("spoon", "solid", "grey", "grey", "stir"),
    "add milk": ObjectSpec("bottle", "half", "white", "navy", "pour"),
    "add tea bag": ObjectSpec("square", "center", "cream", "green", "lift"),
    "remove tea bag": ObjectSpec("diamond", "center", "green", "cream", "lift"),
    "add sugar": ObjectSpec("disc", "dots", "pink", "white", "shake"),
    "loosen nuts": ObjectSpec("hexagon", "center", "grey", "black", "spin"),
    "jack up car": ObjectSpec("triangle", "hstripes", "red", "grey", "lift"),
    "remove wheel": ObjectSpec("ring", "solid", "black", "black", "lift"),
    "mount wheel": ObjectSpec("ring", "checker", "black", "yellow", "press"),
    "tighten nuts": ObjectSpec("cross", "solid", "orange", "orange", "spin"),
    "lower car": ObjectSpec("triangle", "solid", "yellow", "black", "press"),
    "crack egg": ObjectSpec("ellipse", "solid", "cream", "cream", "chop"),
    "add flour": ObjectSpec("square", "dots", "white", "teal", "pour"),
    "whisk": ObjectSpec("star", "center", "grey", "white", "stir"),
    "heat pan": ObjectSpec("pan", "center", "black", "red", "shake"),
    "pour batter": ObjectSpec("bowl", "hstripes", "cream", "orange", "pour"),
    "flip pancake": ObjectSpec("disc", "center", "yellow", "brown", "flip"),
    "serve": ObjectSpec("ellipse", "center", "white", "teal", "lift"),
    "remove plant": ObjectSpec("star", "solid", "green", "green", "lift"),
    "loosen roots": ObjectSpec("cross", "checker", "brown", "green", "twist"),
    "add soil": ObjectSpec("bowl", "dots", "brown", "black", "pour"),
    "place plant": ObjectSpec("cup", "vstripes", "orange", "brown", "press"),
    "patch tube": ObjectSpec("square", "checker", "black", "red", "press"),
    "pump tire": ObjectSpec("bar", "vstripes", "blue", "black", "chop"),
    "add salt": ObjectSpec("bottle", "dots", "white", "grey", "shake"),
    "pour eggs": ObjectSpec("bowl", "solid", "yellow", "white", "pour"),
    "fold omelette": ObjectSpec("crescent", "solid", "yellow", "orange", "flip"),
    "unpack parts": ObjectSpec("square", "diagonal", "brown", "cream", "lift"),
    "attach sides": ObjectSpec("bar", "hstripes", "brown", "cream", "press"),
    "tighten screws": ObjectSpec("spoon", "half", "red", "grey", "twist"),
    "insert shelves": ObjectSpec("bar", "solid", "cream", "cream", "wipe"),
}

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.15, 0.15), "orange": (0.95, 0.55, 0.10), "yellow": (0.95, 0.85, 0.20),
    "green": (0.20, 0.65, 0.25), "teal": (0.10, 0.60, 0.60), "blue": (0.15, 0.35, 0.85),
    "navy": (0.10, 0.15, 0.45), "pink": (0.95, 0.50, 0.70), "brown": (0.45, 0.28, 0.12),
    "white": (0.96, 0.96, 0.93), "black": (0.12, 0.12, 0.12), "grey": (0.60, 0.60, 0.62),
    "cream": (0.95, 0.88, 0.68),
}
SKIN_TONES = [(0.96, 0.80, 0.69), (0.88, 0.68, 0.53), (0.75, 0.55, 0.40),
              (0.58, 0.40, 0.27), (0.42, 0.28, 0.19)]
SLEEVE_COLOURS = [(0.20, 0.25, 0.45), (0.55, 0.15, 0.15), (0.25, 0.40, 0.25), (0.35, 0.35, 0.38),
                  (0.80, 0.80, 0.78), (0.60, 0.45, 0.25), (0.15, 0.15, 0.18)]

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


@dataclass
class VideoPlan:
    """One video: its steps as (0-based step, first frame, end frame exclusive), in order."""

    video: str
    task: str
    n_frames: int
    segments: list[tuple[int, int, int]]


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
# Shapes (signed distances in units of the object's radius; negative inside) and patterns.


def _box(u: np.ndarray, v: np.ndarray, hx: float, hy: float, r: float = 0.06) -> np.ndarray:
    qx = np.abs(u) - (hx - r)
    qy = np.abs(v) - (hy - r)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - r


def _ellipse(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    return (np.hypot(u / a, v / b) - 1.0) * min(a, b)


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    v = v - 0.2
    return np.maximum(np.maximum(v, 0.866 * u - 0.5 * v), -0.866 * u - 0.5 * v) - 0.55


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    theta = np.arctan2(v, u)
    return 0.6 * (np.hypot(u, v) - 0.5 - 0.45 * (0.5 + 0.5 * np.cos(5 * (theta + np.pi / 2))))


SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "disc": lambda u, v: np.hypot(u, v) - 0.95,
    "ring": lambda u, v: np.abs(np.hypot(u, v) - 0.7) - 0.26,
    "square": lambda u, v: _box(u, v, 0.78, 0.78),
    "bar": lambda u, v: _box(u, v, 0.98, 0.36),
    "diamond": lambda u, v: (np.abs(u) + np.abs(v) - 1.0) * 0.707,
    "cross": lambda u, v: np.minimum(_box(u, v, 0.95, 0.28), _box(u, v, 0.28, 0.95)),
    "hexagon": lambda u, v: np.maximum(np.maximum(np.abs(u), np.abs(0.5 * u + 0.866 * v)),
                                       np.abs(0.5 * u - 0.866 * v)) - 0.82,
    "triangle": _triangle,
    "star": _star,
    "ellipse": lambda u, v: _ellipse(u, v, 0.95, 0.62),
    "bottle": lambda u, v: np.minimum(_box(u - 0, v - 0.2, 0.45, 0.75), _box(u, v + 0.7, 0.18, 0.28)),
    "cup": lambda u, v: np.minimum(_box(u + 0.15, v, 0.6, 0.78),
                                   np.abs(np.hypot(u - 0.55, v) - 0.33) - 0.1),
    "bowl": lambda u, v: np.minimum(np.maximum(np.hypot(u, v + 0.15) - 0.95, -v - 0.05),
                                    _box(u, v + 0.1, 0.98, 0.1)),
    "pan": lambda u, v: np.minimum(np.hypot(u + 0.25, v) - 0.7, _box(u - 0.7, v, 0.32, 0.1)),
    "spoon": lambda u, v: np.minimum(_ellipse(u, v + 0.5, 0.36, 0.46), _box(u, v - 0.35, 0.1, 0.62)),
    "crescent": lambda u, v: np.maximum(np.hypot(u, v) - 0.95, 0.78 - np.hypot(u - 0.5, v + 0.25)),
}


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


PATTERNS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray | float]] = {
    "solid": lambda u, v: 0.0,
    "hstripes": lambda u, v: (_frac(v * 1.6) < 0.5),
    "vstripes": lambda u, v: (_frac(u * 1.6) < 0.5),
    "diagonal": lambda u, v: (_frac((u + v) * 1.4) < 0.5),
    "checker": lambda u, v: (np.floor(u * 2.2) + np.floor(v * 2.2)) % 2 > 0,
    "dots": lambda u, v: (_frac(u * 2.5) - 0.5) ** 2 + (_frac(v * 2.5) - 0.5) ** 2 < 0.07,
    "center": lambda u, v: u * u + v * v < 0.22,
    "half": lambda u, v: v > 0.1,
}
ACTIONS = ("spin", "twist", "stir", "pour", "shake", "press", "lift", "chop", "flip", "wipe")


class Pose(NamedTuple):
    """Where an object is drawn in its patch: centre offset (px), angle (rad), x/y scale."""

    dx: float
    dy: float
    angle: float
    sx: float
    sy: float


def action_pose(action: str, tau: float, amp: float, angle0: float) -> Pose:
    """The pose of a held object `tau` seconds into a step; `amp` is the patch size in px."""
    w = 2 * np.pi * tau
    if action == "spin":
        return Pose(0.0, 0.0, angle0 + 0.45 * w, 1.0, 1.0)
    if action == "twist":
        return Pose(0.0, 0.0, angle0 + 0.5 * np.sin(0.6 * w), 1.0, 1.0)
    if action == "stir":
        return Pose(0.07 * amp * np.cos(0.5 * w), 0.07 * amp * np.sin(0.5 * w), angle0, 1.0, 1.0)
    if action == "pour":
        tilt = 0.5 - 0.5 * np.cos(0.3 * w)
        return Pose(0.04 * amp * tilt, -0.05 * amp * tilt, angle0 + 0.75 * tilt, 1.0, 1.0)
    if action == "shake":
        return Pose(0.08 * amp * np.sin(0.9 * w), 0.0, angle0, 1.0, 1.0)
    if action == "press":
        push = 0.5 - 0.5 * np.cos(0.5 * w)
        return Pose(0.0, 0.04 * amp * push, angle0, 1.0 - 0.12 * push, 1.0 - 0.12 * push)
    if action == "lift":
        return Pose(0.0, -0.08 * amp * (0.5 - 0.5 * np.cos(0.35 * w)), angle0, 1.0, 1.0)
    if action == "chop":
        return Pose(0.0, 0.08 * amp * (np.abs(np.sin(0.6 * w)) - 0.5), angle0, 1.0, 1.0)
    if action == "flip":
        c = np.cos(0.4 * w)  # sy < 0: the object shows its back
        sy = (1.0 if c >= 0 else -1.0) * (0.3 + 0.7 * abs(c))
        return Pose(0.0, -0.04 * amp * abs(np.sin(0.4 * w)), angle0, 1.0, sy)
    if action == "wipe":
        return Pose(0.09 * amp * np.sin(0.4 * w), 0.03 * amp * np.sin(0.8 * w), angle0, 1.0, 1.0)
    raise ValueError(f"unknown action {action!r}")


# ----------------------------------------------------------------------------------------
# Rendering into small RGBA patches (premultiplied), composited onto the frame.


class Patch:
    """A square premultiplied RGBA canvas of side `size` px that layers are drawn onto."""

    def __init__(self, size: int):
        self.size = size
        self.rgb = np.zeros((size, size, 3), np.float32)  # [S, S, 3]
        self.alpha = np.zeros((size, size), np.float32)  # [S, S]

    def over(self, colour: np.ndarray, alpha: np.ndarray) -> None:
        """Draw a layer of `colour` ([S, S, 3] or [3]) with coverage `alpha` [S, S] on top."""
        self.composite(colour * alpha[..., None], alpha)

    def composite(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        """Draw a premultiplied layer (rgb [S, S, 3], alpha [S, S]) on top."""
        self.rgb *= 1.0 - alpha[..., None]
        self.rgb += rgb
        self.alpha *= 1.0 - alpha
        self.alpha += alpha


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return xs, ys


def _coverage(d: np.ndarray, px_per_unit: float) -> np.ndarray:
    """Anti-aliased coverage of a signed distance `d` (units) at `px_per_unit` px per unit."""
    return np.clip(0.5 - d * px_per_unit, 0.0, 1.0)


def draw_object(patch: Patch, grid: tuple[np.ndarray, np.ndarray], spec: ObjectSpec,
                cx: float, cy: float, radius: float, pose: Pose, shadow: float) -> None:
    """Draw an object (with a cast shadow `shadow` px down-right) centred near (cx, cy)."""
    xs, ys = grid
    dx = xs - (cx + pose.dx)
    dy = ys - (cy + pose.dy)
    c, s = math.cos(pose.angle), math.sin(pose.angle)
    u = (c * dx + s * dy) / (radius * pose.sx)
    v = (-s * dx + c * dy) / (radius * abs(pose.sy))
    d = SHAPES[spec.shape](u, v)
    alpha = _coverage(d, radius * min(pose.sx, abs(pose.sy)))
    k = max(1, int(round(shadow)))
    shade = np.zeros_like(alpha)
    shade[k:, k:] = 0.35 * alpha[:-k, :-k]
    patch.over(np.zeros(3, np.float32), shade)

    c1, c2 = np.array(COLOURS[spec.colour1], np.float32), np.array(COLOURS[spec.colour2], np.float32)
    t = np.asarray(PATTERNS[spec.pattern](u, v), np.float32)[..., None]
    light = 1.06 - 0.1 * (u + v) - np.where(d > -0.09, 0.3, 0.0)
    if pose.sy < 0:  # the back side of a flipped object is darker
        light = light * 0.75
    colour = (c1 + (c2 - c1) * t) * light[..., None]
    patch.over(colour, alpha)


def draw_hands(patch: Patch, grid: tuple[np.ndarray, np.ndarray], hands: list[tuple[float, float, float]],
               unit: float, skin: np.ndarray, sleeve: np.ndarray) -> None:
    """Draw hands at (x, y, side) with side -1 (left) / +1 (right); arms reach down out of the patch."""
    xs, ys = grid
    d_skin = d_sleeve = None
    for hx, hy, side in hands:
        palm = _ellipse((xs - hx) / unit, (ys - hy) / unit, 0.95, 1.15)
        thumb = _ellipse((xs - hx + side * 0.85 * unit) / unit, (ys - hy + 0.55 * unit) / unit, 0.32, 0.6)
        # the forearm: a capsule from the wrist down and outwards
        ax, ay = hx - side * 0.8 * unit, hy + 1.0 * unit
        bx, by = hx - side * 2.2 * unit, hy + 6.0 * unit
        px, py = xs - ax, ys - ay
        ex, ey = bx - ax, by - ay
        h = np.clip((px * ex + py * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        arm = np.hypot(px - ex * h, py - ey * h) / unit - 0.8
        skin_d = np.minimum(palm, thumb)
        d_skin = skin_d if d_skin is None else np.minimum(d_skin, skin_d)
        d_sleeve = arm if d_sleeve is None else np.minimum(d_sleeve, arm)
    shading = (1.05 - 0.08 * (ys / patch.size))[..., None]
    patch.over(sleeve * shading, _coverage(d_sleeve, unit))
    patch.over(skin * shading, _coverage(d_skin, unit))


def _paste(frame: np.ndarray, patch: Patch, x0: int, y0: int, gain: np.ndarray) -> None:
    """Composite a patch (colours times `gain` [3]) onto `frame` [H, W, 3] at corner (x0, y0)."""
    s = patch.size
    region = frame[y0:y0 + s, x0:x0 + s]
    region *= 1.0 - patch.alpha[..., None]
    region += patch.rgb * gain


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _muted(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    grey = rng.uniform(lo, hi)
    hue = rng.uniform(lo, hi, size=3)
    return (0.6 * grey + 0.4 * hue).astype(np.float32)


def _scene(rng: np.random.Generator, size: int, margin: int) -> tuple[np.ndarray, float]:
    """A wall above a textured table top, lit unevenly; returns ([H, W, 3], table top y)."""
    n = size + 2 * margin
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) / size
    horizon = rng.uniform(0.15, 0.35)
    wall = _muted(rng, 0.55, 0.9) * (0.92 + 0.1 * ys[..., None])
    kind = rng.choice(["wood", "tiles", "cloth", "marble", "plain"])
    base = _muted(rng, 0.3, 0.8)
    low = _smooth_noise(rng, n, n, 5)
    if kind == "wood":
        base = np.array([0.55, 0.38, 0.22], np.float32) * rng.uniform(0.7, 1.3)
        grain = np.sin(2 * np.pi * (ys * rng.uniform(8, 16) + 0.4 * low + 0.05 * xs))
        table = base * (0.88 + 0.1 * grain)[..., None]
    elif kind == "tiles":
        period = rng.uniform(0.12, 0.25)
        lines = (_frac(xs / period) < 0.05) | (_frac(ys / period) < 0.05)
        table = base * np.where(lines, 0.7, 1.0)[..., None]
    elif kind == "cloth":
        period = rng.uniform(0.05, 0.12)
        other = _muted(rng, 0.5, 0.95)
        bands = ((_frac(xs / period) < 0.5).astype(np.float32) + (_frac(ys / period) < 0.5)) / 2
        table = base + (other - base) * bands[..., None]
    elif kind == "marble":
        veins = np.abs(np.sin(2 * np.pi * (xs * 2 + ys + 1.5 * low)))
        table = np.clip(base + 0.3, 0, 1) * (0.8 + 0.2 * veins)[..., None]
    else:
        table = base * np.ones_like(xs)[..., None]
    table = table * (1.0 + 0.05 * low)[..., None]
    top = (ys < horizon + margin / size)[..., None]
    img = np.where(top, wall, table)
    # light from a random side, falling off towards the corners
    lx, ly = rng.uniform(0.0, 1.0, size=2)
    light = 1.1 - 0.35 * np.hypot(xs - lx, ys - ly)
    img = img * light[..., None] + 0.02 * _smooth_noise(rng, n, n, 24)[..., None]
    return np.clip(img, 0.0, 1.0).astype(np.float32), horizon * size


class Renderer:
    """Draws the frames of one video from its plan; everything is decided up front."""

    def __init__(self, cfg: SynthConfig, plan: VideoPlan, rng: np.random.Generator):
        S = cfg.frame_size
        self.cfg, self.plan, self.size = cfg, plan, S
        self.box = max(16, int(round(math.sqrt(cfg.region_frac) * S)))  # side of the region, px
        self.margin = max(2, int(round(0.015 * S)))  # room for camera shake
        self.grid = _grid(self.box)
        self.steps = dict(cfg.tasks)[plan.task]

        self.background, horizon = _scene(rng, S, self.margin)
        skin = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], np.float32) * rng.uniform(0.92, 1.05)
        sleeve = np.array(SLEEVE_COLOURS[rng.integers(len(SLEEVE_COLOURS))], np.float32)
        vocabulary = sorted({s for _, steps in cfg.tasks for s in steps})
        self._bake_clutter(rng, vocabulary, horizon)
        self.background *= 255.0  # frames are composed in 0..255 from here on

        # hands, drawn once: the idle hand, and the two acting hands on a larger canvas so
        # that they can follow the held object by whole-pixel shifts
        b, unit = self.box, 0.1 * self.box
        self.idle_hand = Patch(b)
        draw_hands(self.idle_hand, self.grid, [(0.5 * b, 0.45 * b, 1)], unit, skin, sleeve)
        self.pad = int(math.ceil(0.1 * b))
        self.hands = Patch(b + 2 * self.pad)
        hx, hy = self.pad + 0.5 * b, self.pad + 0.58 * b
        draw_hands(self.hands, _grid(b + 2 * self.pad), [(hx - 0.33 * b, hy, -1), (hx + 0.33 * b, hy, 1)],
                   unit, skin, sleeve)

        # the key-step region: a per-video anchor, a small offset per step, a slow drift
        b, lo_y = self.box, max(horizon, 0.25 * S)
        self.anchor = (rng.uniform(0, S - b), rng.uniform(min(lo_y, S - b), S - b))
        self.step_offsets = rng.uniform(-0.06, 0.06, size=(len(plan.segments), 2)) * S
        self.step_angles = rng.uniform(-0.3, 0.3, size=len(plan.segments))
        self.drift = rng.uniform(0, 2 * np.pi, size=2), rng.uniform(6, 12)
        # the idle hand between steps wanders along a Lissajous path over the table
        self.wander = rng.uniform(0, 2 * np.pi, size=2), rng.uniform(5, 11, size=2), horizon
        # lighting drift (a gain per channel) and camera shake (a slow sway + jitter)
        self.light = rng.uniform(0, 2 * np.pi, size=4), rng.uniform(8, 25, size=2)
        n = plan.n_frames
        t = np.arange(n) / cfg.fps
        sway = 0.6 * self.margin * np.sin(2 * np.pi * t[:, None] / rng.uniform(4, 9, size=2)
                                          + rng.uniform(0, 2 * np.pi, size=2))
        jitter = rng.integers(-1, 2, size=(n, 2)) * (rng.random((n, 1)) < 0.5)
        self.shake = np.clip(np.round(sway + jitter), -self.margin, self.margin).astype(int)
        # pixel noise in 0..255, plus 0.5 so that the final cast to uint8 rounds
        self.noise_bank = (255.0 * cfg.noise * rng.standard_normal((8, S, S, 3)) + 0.5).astype(np.float32)
        self.noise_index = rng.integers(8, size=n)

    def _bake_clutter(self, rng: np.random.Generator, vocabulary: list[str], horizon: float) -> None:
        """Still objects of the shared vocabulary lying about (never held or moved)."""
        S, b, m = self.size, self.box, self.margin
        for _ in range(self.cfg.clutter):
            spec = STEP_OBJECTS[vocabulary[rng.integers(len(vocabulary))]]
            patch = Patch(b)
            pose = Pose(0.0, 0.0, rng.uniform(-np.pi, np.pi), 1.0, 1.0)
            draw_object(patch, self.grid, spec, b / 2, b / 2, 0.3 * b * rng.uniform(0.75, 1.1),
                        pose, 0.04 * b)
            x0 = int(rng.integers(0, S + 2 * m - b + 1))
            y0 = int(rng.integers(min(int(horizon) + m, S + 2 * m - b), S + 2 * m - b + 1))
            _paste(self.background, patch, x0, y0, np.ones(3, np.float32))

    def region(self, i: int, segment: int) -> tuple[int, int]:
        """Top-left corner (px, frame coordinates) of the key-step region at frame i."""
        S, b = self.size, self.box
        phase, period = self.drift
        sway = 0.015 * S * np.sin(2 * np.pi * (i / self.cfg.fps) / period + phase)  # [2]
        x, y = np.asarray(self.anchor) + self.step_offsets[segment] + sway
        return int(np.clip(round(x), 0, S - b)), int(np.clip(round(y), 0, S - b))

    def frames(self) -> Iterator[tuple[np.ndarray, tuple[int, int, int, int] | None]]:
        """Yield (frame [S, S, 3] uint8, key-step box (x0, y0, x1, y1) px or None) per frame."""
        cfg, S, b, m = self.cfg, self.size, self.box, self.margin
        active = np.full(self.plan.n_frames, -1)
        for k, (_, start, end) in enumerate(self.plan.segments):
            active[start:end] = k
        for i in range(self.plan.n_frames):
            t = i / cfg.fps
            ox, oy = self.shake[i]
            gain = self._gain(t)
            frame = self.background[m + oy:m + oy + S, m + ox:m + ox + S] * gain  # [S, S, 3]
            box = None
            k = active[i]
            if k >= 0:
                step, start, _ = self.plan.segments[k]
                spec = STEP_OBJECTS[self.steps[step]]
                pose = action_pose(spec.action, (i - start) / cfg.fps, b, self.step_angles[k])
                patch = Patch(b)
                draw_object(patch, self.grid, spec, b / 2, 0.46 * b, 0.3 * b, pose, 0.06 * b)
                sx = self.pad - int(round(pose.dx))
                sy = self.pad - int(round(pose.dy))
                patch.composite(self.hands.rgb[sy:sy + b, sx:sx + b], self.hands.alpha[sy:sy + b, sx:sx + b])
                x0, y0 = self.region(i, k)
                _paste(frame, patch, x0, y0, 255.0 * gain)
                box = (x0, y0, x0 + b, y0 + b)
            else:
                _paste(frame, self.idle_hand, *self._wander_at(t), 255.0 * gain)
            frame += self.noise_bank[self.noise_index[i]]
            np.clip(frame, 0.0, 255.0, out=frame)
            yield frame.astype(np.uint8), box

    def _gain(self, t: float) -> np.ndarray:
        phase, period = self.light
        level = 1.0 + 0.08 * np.sin(2 * np.pi * t / period[0] + phase[0])
        tint = 0.03 * np.sin(2 * np.pi * t / period[1] + phase[1:4])
        return (level + tint).astype(np.float32)

    def _wander_at(self, t: float) -> tuple[int, int]:
        (px, py), (tx, ty), horizon = self.wander
        S, b = self.size, self.box
        lo = min(horizon, S - b)
        x = (S - b) * (0.5 + 0.45 * np.sin(2 * np.pi * t / tx + px))
        y = lo + (S - b - lo) * (0.5 + 0.45 * np.sin(2 * np.pi * t / ty + py))
        return int(round(x)), int(round(y))


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
        cfg = SynthConfig(n_tasks, videos_per_task, seed, frame_size, float(fps), float(min_duration),
                          float(max_duration), float(region_frac), clutter, float(noise),
                          float(swap_rate), float(skip_rate), float(background))
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
