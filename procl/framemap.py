"""A 2-D map of a run's frames (issue 21): PCA of the features the teacher clusters.

Frames are drawn evenly from the run's videos up to `cap` (a stated cap, so that the
map stays fast on large datasets), put in the teacher's space by the run's own network
(`procl.train.attention_features`: attention features, with time when the run uses
it), and projected on their first two principal components (scikit-learn PCA). Each
point keeps its video, time, task and the state the run gives it (the app labels and
colours it as the timelines do: `procl.explore.RunInfo.label_colors`).
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from procl import runs
from procl.evaluate import open_for_run
from procl.infer import load_run
from procl.train import attention_features

MAP_CAP = 3000  # frames on the map at most


def frame_map(run: str | os.PathLike, cap: int = MAP_CAP, seed: int = 0) -> pd.DataFrame:
    """Columns x, y (the first two principal components), video, task, time, frame,
    state (-1 background), of at most `cap` frames."""
    from sklearn.decomposition import PCA  # imported here: it takes a second, and most commands never need it

    loaded = load_run(run)
    dataset, features = open_for_run(loaded.config, None)
    videos = [v for v in dataset.videos if v.id in features.videos and runs.outputs_path(loaded.path, v.id).exists()]
    total = sum(features.videos[v.id].T for v in videos)
    step = max(1, int(np.ceil(total / max(cap, 1))))
    rows, parts = [], []
    for v in videos:
        vf = features.videos[v.id]
        idx = np.arange(0, vf.T, step)
        if not len(idx):
            continue
        unit = loaded.unit_of(v.task)
        y = torch.from_numpy(np.ascontiguousarray(vf.feats, dtype=np.float32))
        x = attention_features(loaded.nets[unit], {v.id: y}, [v.id])[v.id][idx]
        states = runs.load_outputs(loaded.path, v.id)["states"]
        parts.append(x)
        for i in idx:
            s = int(states[i]) if i < len(states) else -1
            rows.append((v.id, v.task, float(vf.times[i]), int(i), s))
    frame = pd.DataFrame(rows, columns=["video", "task", "time", "frame", "state"])
    if not parts:
        return frame.assign(x=[], y=[])
    X = np.concatenate(parts)[:cap]
    frame = frame.iloc[: len(X)]
    xy = PCA(n_components=2, random_state=seed).fit_transform(X) if len(X) >= 2 else np.zeros((len(X), 2))
    return frame.assign(x=xy[:, 0], y=xy[:, 1])
