"""What one bench run does (FULL, QUICK, TINY), the datasets it makes, and the small
statistics behind its verdicts.

Datasets (every generated one made afresh under data_dir()/bench/<plan>/data/, with
`procl.data.synth.generate`; the generator's defaults are not changed):
- builtin: the built-in set (generator defaults, seed 0; QUICK and TINY make it smaller);
- robustness variants (ROBUSTNESS): the built-in set with other knobs and seeds;
- small: 3 tasks x 6 videos (seed 104), the "small folder of videos" of issue 8;
- <name>-nogrid (plan.nogrid): a generated set as precomputed [T, D] features, its region
  features averaged (`procl.bench.nogrid`), read through `actseg:`;
- breakfast: the real Breakfast "coffee" sample shipped in the repository (REAL_DATA),
  single-task setting.

Definitions:
- true k: the number of key-steps of the task with the most (so every task's steps fit
  in k; the built-in six tasks have 5 to 8 steps, true k = 8).
- claim rule: "A beats B" compares the means over seeds; with d = mean(A) - mean(B)
  and margin = max(sqrt(std(A)^2 + std(B)^2), 0.01) (std over seeds, ddof 1; 0 with
  one seed), it holds when d > margin, does not hold when d < -margin, and is
  inconclusive otherwise. A claim made of several comparisons holds when all hold and
  does not hold when any does not.
"""
from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import procl
from procl.config import LEVERS
from procl.data import scene
from procl.paths import SAMPLES, environment

REPO = Path(__file__).resolve().parents[2]
RESULTS_PATH = REPO / "docs" / "RESULTS.md"
REAL_DATA = SAMPLES / "breakfast_coffee"
REAL_DATA_ENV = "PROCL_BENCH_REAL_DATA"  # another folder with that sample, if moved
MIN_MARGIN = 0.01  # one point of F1 / accuracy: the least difference a claim counts
STABLE_RANGE = 0.05  # C5: F1 may move this much across k and still be "stable"
RECIPES = ("paper", "default")  # side by side in every table, the paper's first
RECIPE_LABELS = {"paper": "paper recipe", "default": "default recipe"}

# Robustness variants: generator arguments on top of the plan's built-in set.
ROBUSTNESS: dict[str, tuple[str, dict]] = {
    "easier": ("easier: key-step region 0.16 of the frame, clutter 1, noise 0.005",
               {"region_frac": 0.16, "clutter": 1, "noise": 0.005, "seed": 101}),
    "harder": ("harder: key-step region 0.07 of the frame, clutter 4, noise 0.03",
               {"region_frac": 0.07, "clutter": 4, "noise": 0.03, "seed": 102}),
    "fewer": ("fewer videos: 8 per task", {"videos_per_task": 8, "seed": 103}),
}
SMALL: dict = {"n_tasks": 3, "videos_per_task": 6, "seed": 104}  # issue 8's small folder of videos
SMALL_K = 5
# A published peer's cost on the same frames: ASOT (Xu & Gould, CVPR 2024, code mingu6/action_seg_ot) with its
# own Breakfast settings, one coffee run of the Breakfast sample on the 2-core development machine's CPU: 7
# CPU-seconds (measured by the team, 5 seeds; its F1 there 0.53 / 0.47 / 0.41 at k = 4 / 5 / 7).
ASOT_COFFEE_CPU_S = 7.0


@dataclass(frozen=True)
class Plan:
    """What one bench run does and on what data (FULL, QUICK and TINY below).

    train_s and fixed_s only feed the printed duration estimate: seconds of one
    built-in default-recipe training on one core, and of everything that is not
    training, as measured on the 2-core development machine while others used it too.
    """

    name: str
    builtin: dict = field(default_factory=dict)  # generate() arguments beyond the defaults (seed 0)
    small: dict = field(default_factory=lambda: dict(SMALL))  # generate() arguments of the small set
    variants: tuple[str, ...] = tuple(ROBUSTNESS)  # robustness variants
    workers: int | None = None  # generator processes (None: by CPU count)
    epochs: int | None = None  # None: automatic, as `procl train` (TrainConfig.epochs_for)
    seeds: tuple[int, ...] = (0, 1, 2)
    ks: tuple[int, ...] = (7, 10, 12, 15)  # the built-in set's k grid; its true k is added
    claim_rows: tuple[str, ...] = ("attention_only", "pooling_only", "lam0", "labels_only", "single")
    levers: tuple[str, ...] = LEVERS  # ablated from the default recipe at the true k
    paper_levers: bool = True  # also the paper recipe with each lever set to the default's value
    real_ks: tuple[int, ...] = (4, 5, 7)
    nogrid: tuple[str, ...] = ("builtin", "harder")  # generated sets also trained as [T, D] features (bench.nogrid)
    backbones: tuple[str, ...] = ("default", "vgg19", "resnet50")
    default_frames: int = 480  # frames for the default backbone's throughput
    cnn_frames: int = 60  # frames for each CNN's throughput (random weights)
    selection_n: int = 1_000_000
    scale_factors: tuple[int, ...] = (1, 2, 4)
    matmul_n: int = 2048
    timing_reps: int = 20
    throughput_reps: int = 3  # feature throughput: the fastest of this many timings (one was as noisy as +-10 %)
    scale_n: int = 1_000_000  # frames of bench_scale.selection_scale
    scale_epochs: int = 20  # epochs of each training of bench_scale.training_scale
    explore_seconds: float = 3600.0  # the long video of bench_explore.explore_page_time
    train_s: float = 25.0
    fixed_s: float = 600.0


FULL = Plan("full")
QUICK = Plan("quick", builtin={"videos_per_task": 8, "min_duration": 20.0, "max_duration": 40.0}, variants=("harder",),
             seeds=(0,), ks=(), claim_rows=("attention_only", "pooling_only", "labels_only", "single"),
             levers=("region_center", "attention_prior", "background", "ordered"), paper_levers=False,
             real_ks=(5,), nogrid=("builtin",), backbones=("default", "resnet50"), default_frames=240, cnn_frames=40,
             selection_n=200_000,
             scale_factors=(1, 2), timing_reps=10, scale_n=200_000, scale_epochs=3, fixed_s=150.0)
TINY = Plan("tiny", builtin={"n_tasks": 3, "videos_per_task": 4, "min_duration": 8.0, "max_duration": 12.0,
                             "frame_size": 112},
            small={**SMALL, "videos_per_task": 4, "min_duration": 8.0, "max_duration": 12.0, "frame_size": 112},
            variants=("harder",), workers=1, epochs=2, seeds=(0,), ks=(4,),
            real_ks=(4,), nogrid=("builtin",),
            backbones=("default",), default_frames=20, cnn_frames=0, selection_n=10_000, scale_factors=(1, 2),
            matmul_n=256, timing_reps=3, scale_n=10_000, scale_epochs=1, explore_seconds=60.0, train_s=1.0,
            fixed_s=40.0)


def generator_args(plan: Plan, name: str) -> dict:
    """`synth.generate` keyword arguments of the bench dataset `name` (builtin, small or a
    robustness variant)."""
    if name == "builtin":
        return {"seed": 0, **plan.builtin}
    if name == "small":
        return dict(plan.small)
    return {**plan.builtin, **ROBUSTNESS[name][1]}


def planned_shape(args: dict) -> tuple[int, int, float]:
    """(training videos, videos, mean frames per video at 2 fps) that generator arguments
    make (the generator's split: round(30 %) of each task's videos are test videos)."""
    tasks, per_task = args.get("n_tasks", 6), args.get("videos_per_task", 20)
    train = per_task - min(per_task - 1, round(0.3 * per_task))
    return tasks * train, tasks * per_task, args.get("min_duration", 30.0) + args.get("max_duration", 60.0)


def planned_true_k(args: dict) -> int:
    return true_k(dict(scene.TASKS[: args.get("n_tasks", 6)]))


# ---------------------------------------------------------------- statistics and the claim rule


def true_k(steps: dict[str, list[str]]) -> int:
    """The number of key-steps of the task with the most (see the module docstring)."""
    return max(len(s) for s in steps.values())


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
    """The per-seed values of `key` (those that are not None)."""
    return [r[key] for r in rows if r.get(key) is not None]


# ---------------------------------------------------------------- machine and environment


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": cores(), "platform": platform.platform()}


def versions() -> dict:
    import cv2
    import scipy
    import sklearn

    return {"python": platform.python_version(), "procl": procl.__version__, "torch": torch.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "opencv": cv2.__version__}


def bench_env(root: Path):
    """PROCL_DATA and PROCL_CHECKPOINTS inside `root` for the duration, restored after."""
    return environment(PROCL_DATA=str(root / "data"), PROCL_CHECKPOINTS=str(root / "checkpoints"))
