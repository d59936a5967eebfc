"""Latent states (mini-batch k-means) and greedy subset selection, the teacher (Eq. 2).

The paper (Sec. 2.1.2) runs k-means with M centers over all attention features to get
latent states x_1..x_M shared by every task, then for each task greedily picks the k
states that best represent its videos. Each frame's pseudo-label r_t is the nearest
selected state; the key-step localizer is trained to reproduce it (Sec. 2.2).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import MiniBatchKMeans

from procl import ProclError


def fit_states(
    feats: np.ndarray, M: int, init: np.ndarray | None = None, seed: int = 0, batch_size: int = 1024
) -> np.ndarray:
    """Mini-batch k-means latent states [M, D] over attention features [N, D] (Sec. 2.2).

    With `init` (the previous centers [M, D]) the refresh starts from them, so center m
    of this refresh refines center m of the last one and pseudo-label indices keep
    their meaning across refreshes (the consistency the paper asks for).
    """
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    if feats.shape[0] < M:
        raise ProclError(
            f"M={M} latent states need at least {M} training frames, got {feats.shape[0]}: "
            "lower M (--M) or add videos"
        )
    km = MiniBatchKMeans(
        n_clusters=M,
        init=init.astype(np.float32) if init is not None else "k-means++",
        n_init=1,
        batch_size=batch_size,
        random_state=seed,
        max_iter=20 if init is None else 5,
        reassignment_ratio=0.0 if init is not None else 0.01,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about few distinct points on tiny data
        km.fit(feats)
    return km.cluster_centers_.astype(np.float32)


def nearest_state(feats: np.ndarray, centers: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Index of the nearest center for each row of feats [N, D] (among `allowed` if given)."""
    d = pairwise_distances(feats, centers)  # [N, M]
    if allowed is None:
        return d.argmin(axis=1)
    allowed = np.asarray(allowed)
    return allowed[d[:, allowed].argmin(axis=1)]


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [N, M] between rows of a [N, D] and b [M, D]."""
    at = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    bt = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
    d2 = (at * at).sum(1, keepdim=True) - 2.0 * at @ bt.T + (bt * bt).sum(1)[None, :]
    return d2.clamp_min_(0.0).sqrt_().numpy()


@dataclass
class Selection:
    """Output of subset selection for one task.

    selected: the k chosen state indices, in pick order.
    costs:    J_a after each pick (non-increasing).
    labels:   per video, each frame's pseudo-label r_t (its nearest selected state).
    """

    selected: list[int]
    costs: list[float]
    labels: list[np.ndarray]


def subset_selection(videos: list[np.ndarray], centers: np.ndarray, k: int) -> Selection:
    """Greedy facility location for Eq. 2 over one task's videos.

    J_a(S) = sum_l (1/T_l) sum_t min_{i in S} ||f_t^l - x_i||_2. Starting from S = {},
    each step adds the state with the largest decrease of J_a. Vectorised: one N x M
    distance matrix, then k passes of O(M N): min(current, d[:, j]) for every j at once.

    videos:  list of [T_l, D] attention features of the task's videos.
    centers: [M, D] latent states.
    """
    M = centers.shape[0]
    if not 1 <= k <= M:
        raise ProclError(f"k={k} must be between 1 and M={M}")
    if not videos:
        raise ProclError("subset selection needs at least one video of the task")
    lengths = np.array([len(v) for v in videos])
    weights = torch.from_numpy(np.repeat(1.0 / lengths, lengths).astype(np.float32))  # [N]
    dist = torch.from_numpy(pairwise_distances(np.concatenate(videos), centers))  # [N, M]

    selected: list[int] = []
    costs: list[float] = []
    current = None  # [N] distance of each frame to its nearest selected state
    buf = torch.empty_like(dist)  # reused: no N x M allocation per pick
    for _ in range(k):
        if current is None:
            cand = weights @ dist  # [M] cost of each singleton
        else:
            cand = weights @ torch.minimum(current[:, None], dist, out=buf)  # [M]
        if selected:
            cand[selected] = float("inf")
        j = int(torch.argmin(cand))
        selected.append(j)
        costs.append(float(cand[j]))
        current = dist[:, j].clone() if current is None else torch.minimum(current, dist[:, j])

    chosen = torch.tensor(selected)
    nearest = chosen[dist[:, chosen].argmin(dim=1)].numpy()  # [N]
    labels = np.split(nearest, np.cumsum(lengths)[:-1])
    return Selection(selected=selected, costs=costs, labels=labels)
