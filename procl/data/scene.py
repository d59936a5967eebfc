"""What a video of the built-in synthetic dataset shows (procl.data.synth writes the dataset).

The vocabulary (tasks, their grammars of named key-steps, and each step's object and
action), a video's plan (which step happens in which frames), and the 2-D renderer that
draws its frames: a scene, still clutter, an idle hand, and during a key-step two hands
moving the step's object inside a small square region whose place varies per video.
Everything is drawn from the video's own seeded stream, so it depends only on the seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import cv2
import numpy as np

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
# A video's plan.


@dataclass
class VideoPlan:
    """One video: its steps as (0-based step, first frame, end frame exclusive), in order."""

    video: str
    task: str
    n_frames: int
    segments: list[tuple[int, int, int]]


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
    """Draws the frames of one video from its plan; everything is decided up front.

    cfg: the generation's settings (a `procl.data.synth.SynthConfig`: frame_size, fps,
    region_frac, clutter, noise, tasks); rng: the video's own stream, after its plan.
    """

    def __init__(self, cfg, plan: VideoPlan, rng: np.random.Generator):
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
