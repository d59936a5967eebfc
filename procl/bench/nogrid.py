"""A generated set as researchers bring their data: precomputed per-frame features, no grid.

CrossTask, Breakfast and COIN come as one vector per frame [T, D]: there is no region grid
for the spatial attention to look at (R = 1, attention is the identity). `write_without_grid`
turns a dataset whose features have a grid into that form (each frame's region features
averaged over the cells) in the action-segmentation layout (`procl.data.actseg`), so that
the bench trains on the same frames with and without the grid, read through `actseg:` as a
user's download would be.
"""
from __future__ import annotations

import re
from pathlib import Path

from procl.data import BACKGROUND, Dataset
from procl.features.types import FeatureSet
from procl.io import write_json, write_npy, write_text

BACKGROUND_NAME = "background"


def step_label(task: str, step: str) -> str:
    """A step's label in the shared mapping: unique across tasks, without spaces."""
    return re.sub(r"\s+", "_", f"{task}/{step}")


def write_without_grid(dataset: Dataset, features: FeatureSet, root: str | Path) -> Path:
    """Write `dataset` at `root` as [T, D] features (its region features averaged over the
    cells) with per-row ground truth, in the action-segmentation layout; returns root.

    features/<task>/<video>.npy [T, D] float32; groundTruth/<video>.txt one label per row
    (`step_label`, or "background"); mapping/mapping.txt; features.json the rows per second.
    Videos without ground truth or features are left out.
    """
    root = Path(root)
    labels = [BACKGROUND_NAME] + [step_label(t, s) for t in dataset.tasks for s in dataset.steps[t]]
    write_text(root / "mapping" / "mapping.txt", "".join(f"{i} {name}\n" for i, name in enumerate(labels)))
    write_json(root / "features.json", {"fps": float(features.manifest["fps"])})
    for video in dataset.videos:
        fv = features.videos.get(video.id)
        gt = video.labels_at(fv.times) if fv is not None else None
        if gt is None:
            continue
        names = [BACKGROUND_NAME if g == BACKGROUND else step_label(video.task, dataset.steps[video.task][g])
                 for g in gt]
        write_npy(root / "features" / video.task / f"{video.id}.npy", fv.feats.mean(axis=1))  # [T, R, D] -> [T, D]
        write_text(root / "groundTruth" / f"{video.id}.txt", "\n".join(names) + "\n")
    return root
