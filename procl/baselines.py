"""Baselines scored through the same metric code (docs/design.md; the paper's Tables 1-3).

- random:  every frame gets one of k states uniformly at random (the paper's "Random").
- uniform: each video is cut into k equal consecutive segments, states 0..k-1.
- kmeans:  k-means with k clusters per task on mean-pooled region features (no
           attention, no network); a frame's state is its cluster.
- subset_selection: the teacher alone on mean-pooled features: M shared k-means states
           over all training videos, greedy subset selection (Eq. 2) of k per task,
           each frame labelled with its nearest selected state.

Baselines that fit (kmeans, subset_selection) fit on `fit_split` videos and label the
scored ones; all are told each video's true task (they localize, they do not classify).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from sklearn.cluster import KMeans

from procl import metrics
from procl.data import Dataset
from procl.features.types import FeatureSet
from procl.selection import fit_states, nearest_state, subset_selection

NAMES = ("random", "uniform", "kmeans", "subset_selection")


def mean_pooled(features: FeatureSet, video_id: str) -> np.ndarray:
    return np.asarray(features.videos[video_id].feats, dtype=np.float32).mean(axis=1)  # [T, D]


def random_labels(T: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, k, size=T)


def uniform_labels(T: int, k: int) -> np.ndarray:
    return np.minimum((np.arange(T) * k) // max(T, 1), k - 1)


def uniform_scores(gt: Mapping[str, np.ndarray | None], task_of: Mapping[str, str], k: int) -> dict:
    """Equal cuts scored on the frames a run is scored on: each annotated video (gt: video ->
    per-frame step, None when not annotated) cut into k equal parts (`uniform_labels`) and
    scored by the metric protocol with its true task. The reference a run is shown against:
    one below it has found nothing that the order of the steps alone does not give."""
    pred = {vid: uniform_labels(len(g), k) for vid, g in gt.items() if g is not None}
    return metrics.evaluate_localization(gt, pred, task_of)


def kmeans_labels(dataset: Dataset, features: FeatureSet, k: int, fit_ids: list[str], ids: list[str],
                  seed: int = 0) -> dict[str, np.ndarray]:
    out = {}
    for task in dataset.tasks:
        fit = [v for v in fit_ids if dataset.video(v).task == task]
        todo = [v for v in ids if dataset.video(v).task == task]
        if not todo or not fit:
            continue
        X = np.concatenate([mean_pooled(features, v) for v in fit])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            km = KMeans(n_clusters=min(k, len(X)), n_init=3, random_state=seed).fit(X)
        for v in todo:
            out[v] = km.predict(mean_pooled(features, v))
    return out


def subset_selection_labels(dataset: Dataset, features: FeatureSet, k: int, M: int, fit_ids: list[str],
                            ids: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    f = {v: mean_pooled(features, v) for v in set(fit_ids) | set(ids)}
    centers = fit_states(np.concatenate([f[v] for v in fit_ids]), M, seed=seed)
    out = {}
    for task in dataset.tasks:
        fit = [v for v in fit_ids if dataset.video(v).task == task]
        if not fit:
            continue
        sel = subset_selection([f[v] for v in fit], centers, min(k, M)).selected
        for v in ids:
            if dataset.video(v).task == task:
                out[v] = nearest_state(f[v], centers, allowed=np.array(sel))
    return out


def run_baselines(
    dataset: Dataset, features: FeatureSet, k: int, M: int = 50, seed: int = 0,
    split: str = "test", fit_split: str = "train", names: tuple[str, ...] = NAMES,
) -> dict[str, dict]:
    """Each baseline's metrics (procl.metrics.evaluate_localization) on `split`."""
    ids = [v.id for v in dataset.videos_of(split=split) if v.id in features.videos]
    fit_ids = [v.id for v in dataset.videos_of(split=fit_split) if v.id in features.videos]
    rng = np.random.default_rng(seed)
    preds: dict[str, dict[str, np.ndarray]] = {}
    if "random" in names:
        preds["random"] = {v: random_labels(features.videos[v].T, k, rng) for v in ids}
    if "uniform" in names:
        preds["uniform"] = {v: uniform_labels(features.videos[v].T, k) for v in ids}
    if "kmeans" in names:
        preds["kmeans"] = kmeans_labels(dataset, features, k, fit_ids, ids, seed)
    if "subset_selection" in names:
        preds["subset_selection"] = subset_selection_labels(dataset, features, k, M, fit_ids, ids, seed)
    gt = {v: dataset.video(v).labels_at(features.videos[v].times) for v in ids}
    task_of = {v: dataset.video(v).task for v in ids}
    return {name: metrics.evaluate_localization(gt, labels, task_of) for name, labels in preds.items()}
