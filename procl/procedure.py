"""The procedure a run found: per task, its key-steps in their typical order, and the `procedure` command.

Computed from the run folder only (per-video outputs: the state of every frame and
its time; selected.json; names.json; predictions.csv for each video's task). For a
task, over its videos (all splits), each of its k selected states gets:

  at         the median, over the videos where the network predicts the state, of
             its relative time in the video (the median time of its frames divided
             by the video's length: 0 = start, 1 = end); the steps are ordered by it
  occurs in  the share of the task's videos where it is predicted
  duration   the median, over those videos, of the seconds predicted as the state
  shared     the other tasks of the same network that selected the state

States the network never predicts for the task come last (they have no time).
"""
from __future__ import annotations

import argparse
import json
import math
import os
from typing import Callable

import numpy as np
import pandas as pd

from procl import ProclError, runs
from procl.explore import RunInfo, load_run_info, state_table, video_table

COLUMNS = ["task", "order", "state", "name", "step", "at", "occurs_in", "videos", "duration", "shared_with",
           "pick", "iou", "beta"]


def _timing(outputs: dict[str, dict[str, np.ndarray]], state: int) -> tuple[float | None, float | None, int]:
    """(median relative time, median seconds, number of videos) of `state` over the videos where it occurs."""
    rel, secs = [], []
    for o in outputs.values():
        times = np.asarray(o["times"], dtype=float)
        hit = np.asarray(o["states"]) == state
        if not hit.any() or not len(times):
            continue
        step = float(np.median(np.diff(times))) if len(times) > 1 else 0.5
        length = float(times[-1]) + step
        rel.append(float(np.median(times[hit]) / length))
        secs.append(float(hit.sum()) * step)
    if not rel:
        return None, None, 0
    return float(np.median(rel)), float(np.median(secs)), len(rel)


def task_procedure(info: RunInfo, outputs: dict[str, dict[str, np.ndarray]], task: str) -> pd.DataFrame:
    """The procedure of `task`: one row per selected state, in typical order.

    outputs: video id -> its arrays, for the task's videos. Columns: task, order (1..k in
    typical order), state, name (the user's, or ''), step (the ground-truth step it
    matched, or ''), at, occurs_in, videos (where it occurs), duration (s), shared_with,
    pick (subset selection's pick order), iou (None without ground truth), beta.
    """
    table = state_table(info, outputs, task)
    rows = []
    for r in table.itertuples():
        at, duration, n = _timing(outputs, int(r.state))
        rows.append({
            "task": task, "state": int(r.state), "name": r.name, "step": r.step, "at": at,
            "occurs_in": float(r.videos), "videos": n, "duration": duration, "shared_with": r.shared_with,
            "pick": int(r.order), "iou": None if r.iou is None or r.iou != r.iou else float(r.iou),
            "beta": None if r.beta is None or r.beta != r.beta else float(r.beta),
        })
    rows.sort(key=lambda row: (row["at"] is None, row["at"] if row["at"] is not None else 0.0, row["pick"]))
    for i, row in enumerate(rows, 1):
        row["order"] = i
    return pd.DataFrame(rows, columns=COLUMNS)


def procedure_table(info: RunInfo, outputs_of: Callable[[str], dict[str, dict[str, np.ndarray]]]) -> pd.DataFrame:
    """The procedure of every task of the run (rows of `task_procedure`, task by task);
    outputs_of(task) gives the per-video arrays of the task's videos."""
    frames = [task_procedure(info, outputs_of(task), task) for task in info.tasks]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def run_procedure(run: str | os.PathLike) -> tuple[RunInfo, pd.DataFrame]:
    """The run's RunInfo and the procedure of every task, read from its folder."""
    info = load_run_info(run)
    if not info.finished:
        raise ProclError(f"run {info.name} is {info.state} and has no results yet: the procedure is computed "
                         "from a finished run's outputs (wait for it, or `python -m procl train --run "
                         f"{info.name} --resume`)")
    videos = video_table(info)

    def outputs_of(task: str) -> dict[str, dict[str, np.ndarray]]:
        return {vid: runs.load_outputs(info.path, vid) for vid in videos.loc[videos["task"] == task, "video"]}

    return info, procedure_table(info, outputs_of)


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def procedure_json(info: RunInfo, table: pd.DataFrame) -> dict:
    """{"run", "dataset", "k", "annotated", "tasks": {task: [steps in typical order]}};
    each step: order, state, name, step, at, occurs_in, videos, duration, shared_with
    (a list), pick, iou, beta."""
    tasks: dict[str, list[dict]] = {}
    for task in info.tasks:
        steps = []
        for row in table[table["task"] == task].to_dict("records"):
            row = {k: _clean(v) for k, v in row.items() if k != "task"}
            row["shared_with"] = [t for t in (row["shared_with"] or "").split(", ") if t]
            steps.append(row)
        tasks[task] = steps
    return {"run": info.name, "dataset": info.config.get("dataset"), "k": info.config.get("k"),
            "annotated": info.annotated, "tasks": tasks}


def procedure_json_text(info: RunInfo, table: pd.DataFrame) -> str:
    """`procedure_json` as the text `procedure --json` prints."""
    return json.dumps(procedure_json(info, table), indent=2, ensure_ascii=False)


def procedure_csv(table: pd.DataFrame) -> str:
    """The procedure as CSV: the columns of `task_procedure` (at, occurs_in as fractions)."""
    return table.to_csv(index=False, float_format="%.4g")


def format_procedure(info: RunInfo, table: pd.DataFrame) -> str:
    """The procedure as text, one block per task (what `procedure` prints)."""
    lines = [f"run {info.name} on {info.config.get('dataset')}: {info.config.get('setting')}-task, "
             f"k = {info.config.get('k')}" + ("" if info.annotated else ", not annotated")]
    for task in info.tasks:
        rows = table[table["task"] == task]
        lines.append("")
        lines.append(f"{task}")
        for r in rows.itertuples():
            label = f"state {r.state}" + (f" “{r.name}”" if r.name else "") + (f" → {r.step}" if r.step else "")
            if r.videos == 0:
                facts = "never predicted"
            else:
                facts = (f"at {100 * r.at:.0f}%, in {100 * r.occurs_in:.0f}% of the videos, "
                         f"typically {r.duration:.1f} s")
            shared = f"; shared with {r.shared_with}" if r.shared_with else ""
            lines.append(f"  {r.order:>2}. {label}: {facts}{shared}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run name (under checkpoints/) or folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    info, table = run_procedure(args.run)
    if args.json:
        print(procedure_json_text(info, table))
    else:
        print(format_procedure(info, table))
    return 0
