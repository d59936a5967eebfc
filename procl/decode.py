"""Temporal decoding of per-frame state scores into segments (procl's addition).

Key-steps last seconds, so a frame's label should rarely differ from its neighbours'.
The network (and the teacher) score every frame on its own; labelling each frame with
its argmax makes timelines flicker. `viterbi` finds the label sequence that maximises
the summed per-frame log-probabilities minus a fixed cost for every change of label,
the standard HMM/Viterbi decoding of action segmentation with a uniform switch
penalty. One implementation is shared by the student and the teacher.
"""
from __future__ import annotations

import numpy as np


def viterbi(logp: np.ndarray, switch_cost: float) -> np.ndarray:
    """argmax_z sum_t logp[t, z_t] - switch_cost * #{t: z_t != z_t-1}; logp [T, K] -> [T].

    O(T K): at each frame a label either stays (no cost) or comes from the best label
    of the previous frame (minus the cost). switch_cost = 0 gives the per-frame argmax.
    """
    logp = np.asarray(logp, dtype=np.float64)
    T, K = logp.shape
    if T == 0:
        return np.zeros(0, dtype=np.int64)
    back = np.zeros((T, K), dtype=np.int64)  # [T, K] previous label of the best path
    score = logp[0].copy()  # [K]
    labels = np.arange(K)
    for t in range(1, T):
        best = int(score.argmax())
        switch = score[best] - switch_cost
        stay = score >= switch
        back[t] = np.where(stay, labels, best)
        score = np.where(stay, score, switch) + logp[t]
    path = np.empty(T, dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path
