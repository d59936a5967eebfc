"""What the app shows about a finished run, computed from its folder (no streamlit here).

Everything reads the run's outputs (procl.runs): per-video arrays written at the end
of training, metrics.json (whose per-task Hungarian matching names each state by the
ground-truth step it matched) and the dataset's records for frames and step names.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from procl import ProclError, metrics, runs
from procl.data import Dataset, VideoRecord
from procl.io import read_json


@dataclass
class RunInfo:
    path: Path
    config: dict
    status: dict
    metrics: dict | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def tasks(self) -> list[str]:
        return self.config.get("tasks", [])

    def mapping(self, task: str) -> dict[str, int]:
        """state (as string) -> matched ground-truth step of `task` (pooled matching)."""
        if not self.metrics:
            return {}
        return self.metrics["student"].get("per_task", {}).get(task, {}).get("mapping") or {}

    def selected(self, task: str) -> list[int]:
        sel = read_json(self.path / "selected.json")
        for unit in sel.values():
            if task in unit:
                return list(unit[task])
        return []

    def step_names(self, task: str) -> list[str]:
        return list(self.config.get("steps", {}).get(task, []))

    def state_names(self, task: str) -> dict[int, str]:
        """Selected state -> its matched step's name (or 'state m' when unmatched)."""
        names, steps, mapping = {}, self.step_names(task), self.mapping(task)
        for s in self.selected(task):
            step = mapping.get(str(s))
            names[s] = steps[step] if step is not None and step < len(steps) else f"state {s} (unmatched)"
        return names


def load_run_info(run: str | Path) -> RunInfo:
    path = runs.run_dir(run)
    m = None
    if (path / "metrics.json").exists():
        try:
            m = read_json(path / "metrics.json")
        except (OSError, ValueError) as err:
            raise ProclError(f"{path / 'metrics.json'} is damaged ({err})") from err
    return RunInfo(path, runs.read_config(path), runs.read_status(path), m)


def split_videos(info: RunInfo, dataset: Dataset, split: str = "all", task: str | None = None) -> list[VideoRecord]:
    """Videos of the run's dataset that have outputs, filtered by split and task."""
    out_dir = info.path / "outputs"
    have = {p.stem for p in out_dir.glob("*.npz")} if out_dir.is_dir() else set()
    return [v for v in dataset.videos_of(task=task, split=split) if v.id in have]


def video_table(info: RunInfo, dataset: Dataset, split: str = "all") -> pd.DataFrame:
    """One row per video: id, task, predicted task, correct, frames (from predictions.csv)."""
    path = info.path / "predictions.csv"
    if not path.exists():
        raise ProclError(f"{path} is missing: the run has not finished")
    df = pd.read_csv(path, usecols=["video", "task", "pred_task", "frame"])
    g = df.groupby("video").agg(task=("task", "first"), pred_task=("pred_task", "first"), frames=("frame", "size"))
    g["correct"] = g["task"] == g["pred_task"]
    g["split"] = [dataset.split.get(v, "") for v in g.index]
    if split != "all":
        g = g[g["split"] == split]
    return g.reset_index()


def video_scores(outputs: dict[str, np.ndarray], mapping: dict) -> dict | None:
    """R/P/F1/IoU of one video under the run's pooled matching of its task."""
    gt = outputs["gt"]
    if (gt == -2).all():
        return None
    return metrics.localization_scores(gt, outputs["states"], mapping={int(k): v for k, v in mapping.items()})


def state_table(info: RunInfo, dataset: Dataset, task: str, split: str = "all") -> pd.DataFrame:
    """The task's k selected states in pick order with what they matched and how often they occur.

    Columns: order, state, step (matched ground-truth step or ''), iou (of the state's
    frames with that step's), frames, videos (share of the task's videos where it
    occurs), beta (mean pooling weight), shared_with (other tasks that selected it).
    """
    selected = info.selected(task)
    mapping = info.mapping(task)
    steps = info.step_names(task)
    all_sel = read_json(info.path / "selected.json")
    others = {t: set(s) for unit in all_sel.values() for t, s in unit.items() if t != task}
    videos = split_videos(info, dataset, split, task)
    states, gts, betas, present = [], [], [], []
    for v in videos:
        o = runs.load_outputs(info.path, v.id)
        states.append(o["states"])
        gts.append(o["gt"])
        if o["beta"].size:
            betas.append(o["beta"])
        present.append(set(np.unique(o["states"]).tolist()))
    st = np.concatenate(states) if states else np.zeros(0, int)
    gt = np.concatenate(gts) if gts else np.zeros(0, int)
    beta = np.mean(betas, axis=0) if betas else None
    rows = []
    for order, s in enumerate(selected, 1):
        step = mapping.get(str(s))
        iou = None
        if step is not None:
            a, b = st == s, gt == step
            iou = float((a & b).sum() / max((a | b).sum(), 1))
        rows.append({
            "order": order, "state": s,
            "step": steps[step] if step is not None and step < len(steps) else "",
            "iou": iou, "frames": int((st == s).sum()),
            "videos": sum(s in p for p in present) / max(len(present), 1),
            "beta": None if beta is None else float(beta[s]),
            "shared_with": ", ".join(sorted(t for t, sel in others.items() if s in sel)),
        })
    return pd.DataFrame(rows)


def representative_frames(info: RunInfo, dataset: Dataset, task: str, state: int, n: int = 5) -> list[dict]:
    """Up to n frames given `state`, one per video, those the network is surest of first.

    Each: {"video", "index", "time", "p"}.
    """
    best = []
    for v in split_videos(info, dataset, "all", task):
        o = runs.load_outputs(info.path, v.id)
        idx = np.flatnonzero(o["states"] == state)
        if idx.size:
            i = int(idx[np.argmax(o["p"][idx, state])])
            best.append({"video": v.id, "index": i, "time": float(o["times"][i]), "p": float(o["p"][i, state])})
    best.sort(key=lambda r: -r["p"])
    return best[:n]


def frames_at(video: VideoRecord, times: np.ndarray, fps: float, size: int | None = None) -> np.ndarray | None:
    """RGB frames [n, H, W, 3] nearest to `times`, or None when the source is no video."""
    if video.kind != "video":
        return None
    from procl.features.video import sample_frames

    frames, ftimes = sample_frames(video.source, fps=fps, size=size)
    idx = np.abs(ftimes[None, :] - np.asarray(times, dtype=float)[:, None]).argmin(1)
    return frames[idx]
