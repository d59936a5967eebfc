"""Help choosing k: signals a person can read without ground truth, per finished run, and a
simple rule that suggests k from runs of one dataset at several k.

Everything is read from the run folder only (config.json, predictions.csv and the
per-video outputs/<video>.npz), so it works on a dataset without annotations:

- segments per video: predicted step segments (background left out), mean over videos;
- steps used per task: the steps that take at least USED_SHARE of the step frames of the
  videos guessed to be of that task, mean over tasks (a k larger than a task needs leaves
  steps nearly unused);
- background share: the share of frames called background;
- task confidence: the mean over videos of the task classifier's top probability;
- agreement between seeds: with two or more runs of the same k and settings but different
  seeds, how alike they segment the same videos (`seed_agreement`).

The rule (`suggest_k`): with the agreement between seeds at two or more k, the k where it
is highest. At a k that fits the tasks, each run finds the same steps whatever its seed;
above it the extra states split true steps at places the seed decides, below it the merges
do, so the runs disagree more (stability-based model selection, as Ben-Hur, Elisseeff and
Guyon, "A stability based method for discovering structure in clustered data", PSB 2002, and
Lange et al., "Stability-based validation of clustering solutions", Neural Computation 2004,
choose a number of clusters). Without it (one run per k), the older rule: the smallest k
tried beyond which the steps used per task stop growing (no larger k uses GROWTH more steps
per task). Measured in docs/method.md ("Choosing k") and by the bench (docs/RESULTS.md).
The teacher's objective (Eq. 2) is not among the signals: the run folder does not keep it.
"""
from __future__ import annotations

import itertools
import os

import numpy as np
import pandas as pd

from procl import ProclError, runs

USED_SHARE = 0.05  # a step "used" by a task takes at least this share of the task's step frames
# (5 %, not 2 %: on two generated sets with true k = 6, runs at k = 7-8 keep 1-2 steps on 2-5 % of the
# frames, and 2 % suggested k = 7 and 8 where 5 % suggests 6 and 7; see docs/method.md)
GROWTH = 0.5  # a larger k that uses fewer than this many more steps per task finds nothing new

SIGNALS = (  # column, plain label, what it says (for the chart and its tooltips)
    ("states_used", "steps used per task",
     f"steps that take at least {USED_SHARE:.0%} of a task's step frames, mean over tasks"),
    ("segments_per_video", "segments per video", "predicted step segments in a video (background left out)"),
    ("background_share", "share called background (%)", "frames given no step"),
    ("task_confidence", "task confidence (%)", "the task classifier's top probability, mean over videos"),
    ("seed_agreement", "agreement between seeds (%)",
     "how alike runs of this k with different seeds cut the same videos into steps (adjusted Rand index, "
     "mean over tasks); needs two seeds of a k"),
)
# what a run's settings must share with another's for the two to count as seeds of one k
SAME_SETTINGS = ("k", "dataset", "recipe", "setting", "M", "backbone", "weights", "fps", "epochs")


def segments(states: np.ndarray) -> int:
    """The number of runs of one step in a sequence of states (background, < 0, left out)."""
    s = np.asarray(states)
    if not len(s):
        return 0
    starts = np.r_[True, s[1:] != s[:-1]]
    return int((starts & (s >= 0)).sum())


def states_used(states: np.ndarray, share: float = USED_SHARE) -> int:
    """How many distinct states take at least `share` of the frames given a state (>= 0)."""
    s = np.asarray(states)
    s = s[s >= 0]
    if not len(s):
        return 0
    _, counts = np.unique(s, return_counts=True)
    return int((counts >= share * len(s)).sum())


def _predictions(path) -> pd.DataFrame:
    """A finished run's predicted states per frame, sorted by video and frame (ProclError when
    it has no predictions.csv)."""
    pred = path / "predictions.csv"
    if not pred.exists():
        raise ProclError(f"run {path.name} has no predictions.csv: it has not finished")
    frame = pd.read_csv(pred, usecols=["video", "task", "pred_task", "frame", "state"])
    return frame.sort_values(["video", "frame"], kind="stable").reset_index(drop=True)


def run_signals(run: str | os.PathLike) -> dict:
    """The label-free signals of one finished run (ProclError when it has no predictions)."""
    path = runs.run_dir(run)
    return _signals(path, runs.read_config(path), _predictions(path))


def _signals(path, config: dict, frame: pd.DataFrame) -> dict:
    per_task = {task: states_used(g["state"].to_numpy()) for task, g in frame.groupby("pred_task", sort=True)}
    segs = [segments(g["state"].to_numpy()) for _, g in frame.groupby("video", sort=False)]
    conf = []
    for video in frame["video"].unique():
        out = path / "outputs" / f"{video}.npz"
        if out.exists():
            with np.load(out) as d:
                probs = d["task_probs"] if "task_probs" in d.files else np.zeros(0)
            if len(probs) > 1:
                conf.append(float(np.max(probs)))
    return {
        "run": path.name, "k": int(config.get("k") or 0), "dataset": config.get("dataset"),
        "states_used": float(np.mean(list(per_task.values()))) if per_task else 0.0,
        "segments_per_video": float(np.mean(segs)) if segs else 0.0,
        "background_share": float((frame["state"] < 0).mean()) if len(frame) else 0.0,
        "task_confidence": float(np.mean(conf)) if conf else None,
        "per_task": per_task,
    }


def signals_table(run_paths: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per run (run, k, dataset and the signals), sorted by k; unfinished runs left out.
    seed_agreement (and per_task_agreement) is that of the run's k (`seed_agreement` over the
    runs of the same settings), None where it has no other seed."""
    rows, frames = [], []
    groups: dict[tuple, list[int]] = {}
    for p in run_paths:
        try:
            path = runs.run_dir(p)
            config = runs.read_config(path)
            frame = _predictions(path)
            rows.append(_signals(path, config, frame))
        except (ProclError, OSError, ValueError, KeyError):
            continue
        frames.append(frame)
        groups.setdefault(tuple(str(config.get(key)) for key in SAME_SETTINGS), []).append(len(rows) - 1)
    for members in groups.values():
        agreement, per_task = _agreement([frames[i] for i in members])
        for i in members:
            rows[i]["seed_agreement"], rows[i]["per_task_agreement"] = agreement, per_task
    cols = ["run", "k", "dataset"] + [c for c, _, _ in SIGNALS] + ["per_task", "per_task_agreement"]
    return pd.DataFrame(rows, columns=cols).sort_values(["k", "run"], kind="stable").reset_index(drop=True)


def shown_signals(signals: pd.DataFrame) -> tuple:
    """The SIGNALS entries that have a value in the table (a chart of the others would be
    empty: the agreement between seeds needs two seeds of a k, the task confidence a classifier)."""
    return tuple(s for s in SIGNALS if s[0] in signals and signals[s[0]].notna().any())


def seed_agreement(run_paths: list[str | os.PathLike]) -> tuple[float | None, dict[str, float]]:
    """How alike finished runs of one k and settings (different seeds) segment the same
    videos: the adjusted Rand index of two runs' predicted states (background a label of its
    own) over all frames of a task's videos, mean over the tasks, then over every pair of
    runs. Returns (that mean, task -> its mean over the pairs); (None, {}) with fewer than
    two runs. Reads predictions.csv only: no ground truth."""
    return _agreement([_predictions(runs.run_dir(p)) for p in run_paths])


def _agreement(frames: list[pd.DataFrame]) -> tuple[float | None, dict[str, float]]:
    """`seed_agreement` of the runs' predictions (`_predictions`)."""
    from sklearn.metrics import adjusted_rand_score  # imported here: it takes a second, and most pages never need it

    per_task: dict[str, list[float]] = {}
    for a, b in itertools.combinations(frames, 2):
        both = a[["video", "task", "frame", "state"]].merge(b[["video", "task", "frame", "state"]],
                                                            on=["video", "task", "frame"], suffixes=("_a", "_b"))
        for task, g in both.groupby("task", sort=True):
            per_task.setdefault(str(task), []).append(adjusted_rand_score(g["state_a"], g["state_b"]))
    if not per_task:
        return None, {}
    means = {task: float(np.mean(v)) for task, v in per_task.items()}
    return float(np.mean(list(means.values()))), means


def suggest_k(signals: pd.DataFrame) -> tuple[int | None, str]:
    """(k, one sentence why) from a signals table of one dataset at several k: where the
    runs of different seeds agree most (`seed_agreement`) when two or more k have it, else
    the smallest k beyond which the steps used per task stop growing (no larger k tried uses
    GROWTH or more steps per task than it). Runs sharing a k are averaged."""
    if signals is None or not len(signals):
        return None, "No finished run to suggest a k from."
    if "seed_agreement" in signals:
        agreement = signals.dropna(subset=["seed_agreement"]).groupby("k")["seed_agreement"].mean().sort_index()
        if len(agreement) >= 2:
            return _most_agreed(agreement)
    used = signals.groupby("k")["states_used"].mean().sort_index()
    ks = [int(k) for k in used.index]
    if len(ks) == 1:
        return ks[0], (f"Only k = {ks[0]} was tried: train the same dataset at a few more k "
                       "(\"Try several k\" on Train) to get a suggestion.")
    hint = (" A firmer suggestion needs two seeds of each k (\"Try several k\" on Train, seeds per k): then "
            "procl suggests the k whose runs agree most.")
    for i, k in enumerate(ks[:-1]):
        later = used.iloc[i + 1:]
        if later.max() < used.iloc[i] + GROWTH:
            return k, (f"k = {k}: beyond it the tasks hardly use more steps ({used.iloc[i]:.1f} steps used per "
                       f"task at k = {k}, {later.iloc[-1]:.1f} at k = {ks[-1]}), so the extra steps find nothing "
                       f"new.{hint}")
    return ks[-1], (f"k = {ks[-1]}, the largest tried: the steps used per task still grow with k "
                    f"({used.iloc[0]:.1f} at k = {ks[0]}, {used.iloc[-1]:.1f} at k = {ks[-1]}); try larger k.{hint}")


def _most_agreed(agreement: pd.Series) -> tuple[int, str]:
    """The k of the highest agreement between seeds (the smaller k on a tie), and why."""
    ks = [int(k) for k in agreement.index]
    best = ks[int(np.argmax(agreement.to_numpy()))]
    i = ks.index(best)
    near = [k for k in (ks[i - 1] if i else None, ks[i + 1] if i + 1 < len(ks) else None) if k is not None]
    others = " and ".join(f"{100 * agreement[k]:.0f} % at k = {k}" for k in near)
    pct = {k: round(100 * agreement[k]) for k in ks}
    most = "most" if all(pct[best] > pct[k] for k in ks if k != best) else "at least as much as at any other k"
    return best, (f"k = {best}: runs of it with different seeds agree {most} on where the steps are "
                  f"({100 * agreement[best]:.0f} % against {others}). At a k that fits the tasks the steps found "
                  "do not depend on the seed; with more steps than a task has, the seed decides where the extra "
                  "ones split it.")


def per_task_table(signals: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, task): run, k, task, states_used (that task's steps used) and
    seed_agreement (that task's agreement between the seeds of the run's k, or None)."""
    rows = []
    for _, r in signals.iterrows():
        agreement = r.get("per_task_agreement")
        agreement = agreement if isinstance(agreement, dict) else {}
        rows += [{"run": r["run"], "k": r["k"], "task": t, "states_used": float(n), "seed_agreement": agreement.get(t)}
                 for t, n in (r.get("per_task") or {}).items()]
    return pd.DataFrame(rows, columns=["run", "k", "task", "states_used", "seed_agreement"])


def suggest_k_per_task(signals: pd.DataFrame) -> dict[str, tuple[int | None, str]]:
    """The same rule for each task alone (tasks may need different k; a run has one k for all)."""
    table = per_task_table(signals)
    return {task: suggest_k(g) for task, g in table.groupby("task", sort=True)}
