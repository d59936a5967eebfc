"""Help choosing k: signals a person can read without ground truth, per finished run, and a
simple rule that suggests k from runs of one dataset at several k.

Everything is read from the run folder only (config.json, predictions.csv and the
per-video outputs/<video>.npz), so it works on a dataset without annotations:

- segments per video: predicted step segments (background left out), mean over videos;
- steps used per task: the steps that take at least USED_SHARE of the step frames of the
  videos guessed to be of that task, mean over tasks (a k larger than a task needs leaves
  steps nearly unused);
- background share: the share of frames called background;
- task confidence: the mean over videos of the task classifier's top probability.

The rule (`suggest_k`): the smallest k tried beyond which the steps used per task stop
growing (no larger k uses GROWTH more steps per task), i.e. where more steps stop being used.
The teacher's objective (Eq. 2) is not among the signals: the run folder does not keep it.
"""
from __future__ import annotations

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
)


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


def run_signals(run: str | os.PathLike) -> dict:
    """The label-free signals of one finished run (ProclError when it has no predictions)."""
    path = runs.run_dir(run)
    pred = path / "predictions.csv"
    if not pred.exists():
        raise ProclError(f"run {path.name} has no predictions.csv: it has not finished")
    config = runs.read_config(path)
    frame = pd.read_csv(pred, usecols=["video", "pred_task", "state"])
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
    """One row per run (run, k, dataset and the signals), sorted by k; unfinished runs left out."""
    rows = []
    for p in run_paths:
        try:
            rows.append(run_signals(p))
        except (ProclError, OSError, ValueError, KeyError):
            continue
    cols = ["run", "k", "dataset"] + [c for c, _, _ in SIGNALS] + ["per_task"]
    return pd.DataFrame(rows, columns=cols).sort_values(["k", "run"], kind="stable").reset_index(drop=True)


def suggest_k(signals: pd.DataFrame) -> tuple[int | None, str]:
    """(k, one sentence why) from a signals table of one dataset at several k: the smallest k
    beyond which the steps used per task stop growing (no larger k tried uses GROWTH or more
    steps per task than it). Runs sharing a k are averaged."""
    if signals is None or not len(signals):
        return None, "No finished run to suggest a k from."
    used = signals.groupby("k")["states_used"].mean().sort_index()
    ks = [int(k) for k in used.index]
    if len(ks) == 1:
        return ks[0], (f"Only k = {ks[0]} was tried: train the same dataset at a few more k "
                       "(\"Try several k\" on Train) to get a suggestion.")
    for i, k in enumerate(ks[:-1]):
        later = used.iloc[i + 1:]
        if later.max() < used.iloc[i] + GROWTH:
            return k, (f"k = {k}: beyond it the tasks hardly use more steps ({used.iloc[i]:.1f} steps used per "
                       f"task at k = {k}, {later.iloc[-1]:.1f} at k = {ks[-1]}), so the extra steps find nothing new.")
    return ks[-1], (f"k = {ks[-1]}, the largest tried: the steps used per task still grow with k "
                    f"({used.iloc[0]:.1f} at k = {ks[0]}, {used.iloc[-1]:.1f} at k = {ks[-1]}); try larger k.")


def per_task_table(signals: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, task): run, k, task, states_used (that task's steps used)."""
    rows = [{"run": r["run"], "k": r["k"], "task": t, "states_used": float(n)}
            for _, r in signals.iterrows() for t, n in (r.get("per_task") or {}).items()]
    return pd.DataFrame(rows, columns=["run", "k", "task", "states_used"])


def suggest_k_per_task(signals: pd.DataFrame) -> dict[str, tuple[int | None, str]]:
    """The same rule for each task alone (tasks may need different k; a run has one k for all)."""
    table = per_task_table(signals)
    return {task: suggest_k(g) for task, g in table.groupby("task", sort=True)}
