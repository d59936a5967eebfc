"""Temporal decoding of per-frame state scores into segments (procl's addition).

Key-steps last seconds, so a frame's label should rarely differ from its neighbours'.
The network (and the teacher) score every frame on its own; labelling each frame with
its argmax makes timelines flicker. `viterbi` finds the label sequence that maximises
the summed per-frame log-probabilities minus a fixed cost for every change of label,
the standard HMM/Viterbi decoding of action segmentation with a uniform switch
penalty. One implementation is shared by the student and the teacher.
"""
from __future__ import annotations

from typing import Callable

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


def decode_states(
    logp: np.ndarray, selected: list[int], background: list[int] = (), switch_cost: float = 0.0,
    ordered: bool = False,
) -> np.ndarray:
    """Per-frame labels among a task's selected states, or -1 for background.

    logp [T, M]: log-probabilities (or log-likelihoods) of every state at every frame.
    The labels are the `selected` states plus one background label whose score is the
    best of the `background` states' (the max, not their sum: an undecided network
    would otherwise call everything background just because there are several
    background states); `viterbi` with `switch_cost` (0: per-frame argmax) picks them.
    With `ordered`, `selected` is in the task's typical order (`typical_order`) and
    `viterbi_ordered` keeps the key-steps in it, each at most once.
    Returns [T] state indices, -1 where background wins.
    """
    selected = np.asarray(selected, dtype=np.int64)
    scores = logp[:, selected]  # [T, k]
    bg = background_score(logp, background)  # [T] or None
    if ordered:
        z = viterbi_ordered(scores, bg, switch_cost)
    else:
        if bg is not None:
            scores = np.concatenate([scores, bg[:, None]], 1)
        z = viterbi(scores, switch_cost) if switch_cost > 0 else scores.argmax(1)
    return np.append(selected, -1)[z]


def background_score(logp: np.ndarray, background: list[int]) -> np.ndarray | None:
    """The background label's score at each frame [T]: the best of the background
    states' (see `decode_states`); None without background states."""
    return logp[:, list(background)].max(1) if len(background) else None


def typical_order(labels: list[np.ndarray], selected: list[int]) -> list[int]:
    """The selected states sorted by where they typically happen in a task's videos.

    labels: per video, each frame's state (the teacher's pseudo-labels). A state's place
    in a video is the mean relative time (t / T) of its frames there; its typical place
    is the median over the videos where it occurs. States that never occur go last, in
    the given order.
    """
    return order_by_places([state_places(lab, selected) for lab in labels], selected)


def state_places(labels: np.ndarray, selected: list[int]) -> dict[int, float]:
    """One video's part of `typical_order`: each selected state's place there, the mean
    relative time (t + 0.5) / T of its frames (states it does not show are left out).
    k numbers per video: what ranks that hold different videos exchange."""
    lab = np.asarray(labels)
    rel = (np.arange(len(lab)) + 0.5) / max(len(lab), 1)
    return {int(s): float(rel[lab == s].mean()) for s in selected if (lab == s).any()}


def order_by_places(places: list[dict[int, float]], selected: list[int]) -> list[int]:
    """The selected states sorted by their median place over the videos (`state_places`
    of each, in any order); states with no place go last, in the given order."""
    seen: dict[int, list[float]] = {int(s): [] for s in selected}
    for video in places:
        for s, place in video.items():
            if s in seen:
                seen[s].append(place)
    return sorted(seen, key=lambda s: (not seen[s], float(np.median(seen[s])) if seen[s] else 0.0))


def distance_loglik(dist: np.ndarray, selected: list[int], background: list[int] = ()) -> np.ndarray:
    """The teacher's per-frame scores from its distances [T, M] to the states: -d / tau.

    tau is the median over the video's frames of the distance to the nearest state of
    the task (selected or background), so a switch cost means the same whatever the
    features' scale: one unit is a typical frame-to-state distance.
    """
    allowed = np.asarray(list(selected) + list(background), dtype=np.int64)
    tau = float(np.median(dist[:, allowed].min(1))) if len(dist) else 1.0
    return -dist / max(tau, 1e-6)


def viterbi_ordered(scores: np.ndarray, background: np.ndarray | None, switch_cost: float) -> np.ndarray:
    """Like `viterbi`, but the key-steps come in the order of scores' columns, each at most
    once (any may be skipped), with background anywhere between them.

    scores [T, k]: per-frame scores of k key-steps, sorted in their typical order;
    background [T] or None: the background label's score. Returns [T] labels in 0..k-1,
    or k for background. The states of the lattice are "in key-step j" and "in
    background after key-step j" (j = -1 before the first); a move forward costs
    `switch_cost`, staying is free. O(T k) with running maxima.
    """
    scores = np.asarray(scores, dtype=np.float64)
    T, k = scores.shape
    if T == 0:
        return np.zeros(0, dtype=np.int64)
    bgs = np.full(T, -np.inf) if background is None else np.asarray(background, dtype=np.float64)
    NEG = -np.inf
    # lattice columns: 0..k-1 = key-step j; k..2k = background after step j-1 (k + 0 = before any)
    n = 2 * k + 1
    emit = np.concatenate([scores, np.repeat(bgs[:, None], k + 1, 1)], 1)  # [T, n]
    score = np.full(n, NEG)
    score[:k] = scores[0]
    score[k] = bgs[0]
    back = np.zeros((T, n), dtype=np.int64)
    idx = np.arange(n)
    for t in range(1, T):
        new = score.copy()  # staying
        arg = idx.copy()
        # best "finished up to step j" = max over key-step j' <= j and background after j' <= j
        done = np.maximum(score[:k], score[k + 1:])  # [k]: in step j, or in background after step j
        done_arg = np.where(score[:k] >= score[k + 1:], np.arange(k), np.arange(k) + k + 1)
        # entering key-step j from anything finished before j (or from the start background)
        prev = np.concatenate([[score[k]], done[:-1]])  # [k]: best state that lets step j come next
        prev_arg = np.concatenate([[k], done_arg[:-1]])
        run_max = np.maximum.accumulate(prev)
        first = np.maximum.accumulate(  # where each running maximum was first reached (argmax's tie rule)
            np.where(prev > np.concatenate([[NEG], run_max[:-1]]), np.arange(k), 0))
        run_arg = prev_arg[first]
        enter = run_max - switch_cost
        better = enter > new[:k]
        new[:k] = np.where(better, enter, new[:k])
        arg[:k] = np.where(better, run_arg, arg[:k])
        # entering background after step j from key-step j
        into_bg = score[:k] - switch_cost
        better = into_bg > new[k + 1:]
        new[k + 1:] = np.where(better, into_bg, new[k + 1:])
        arg[k + 1:] = np.where(better, np.arange(k), arg[k + 1:])
        back[t] = arg
        score = new + emit[t]
    path = np.empty(T, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return np.where(path < k, path, k)


def bias_background(logp: np.ndarray, background: list[int], bias: float) -> np.ndarray:
    """logp [T, M] with `bias` taken off the background states' columns (a copy; logp
    itself when there is nothing to do).

    Why (procl's addition): the network learns background from the teacher's labels,
    and at an even threshold it calls a third of the key-step frames background
    (development sets: recall 56-60% against precision 85-88%). Lowering the background
    label's score by a fixed log-probability moves that threshold, so a frame is called
    background only when its background state is clearly the more probable.
    """
    if not bias or not len(background):
        return logp
    out = np.array(logp, dtype=np.float64, copy=True)
    out[:, list(background)] -= bias
    return out


def path_fit(logp: np.ndarray, labels: np.ndarray, background: list[int] = ()) -> float:
    """How well a decoded label sequence explains a video: the mean over its frames of
    the score `decode_states` gave each frame's label (log p of the key-step state; for
    background, the best background state's). logp [T, M], labels [T] (-1 background)."""
    labels = np.asarray(labels)
    T = len(labels)
    if T == 0:
        return 0.0
    bg = background_score(logp, background)  # None: no frame is labelled background
    own = logp[np.arange(T), np.maximum(labels, 0)]
    return float((own if bg is None else np.where(labels >= 0, own, bg)).mean())


def task_posterior(task_logprob: np.ndarray, fit: np.ndarray, weight: float) -> np.ndarray:
    """procl's task decision (the paper's is the classifier alone, Eq. 5):
    P(a | video) proportional to P_cls(a | video) * exp(weight * fit_a), where fit_a is
    `path_fit` of the video decoded with task a's key-steps.

    Why: the classifier reads a pooled summary of the video; the localizer's per-frame
    scores say, frame by frame, whether the video runs through task a's key-steps in
    their order. A task whose key-steps explain the frames much better is evidence the
    classifier alone misses (on small data the classifier is the weaker of the two).
    weight = 0 gives back the classifier's probabilities exactly. [A] -> [A].
    """
    z = np.asarray(task_logprob, dtype=np.float64) + weight * np.asarray(fit, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


def fit_bound(logp: np.ndarray, selected: list[int], background: list[int] = ()) -> float:
    """An upper bound of `path_fit` for any labelling with these key-steps and background:
    the mean over frames of the best of their scores there. O(T k), no decoding."""
    scores = logp[:, list(selected)]  # [T, k]
    bg = background_score(logp, background)
    best = scores.max(1) if bg is None else np.maximum(scores.max(1), bg)
    return float(best.mean()) if len(best) else 0.0


SKIP_MARGIN = 20.0  # nats: a task this far below the best is e^-20 as probable and is not decoded


def decide_task(task_logprob: np.ndarray, fit: Callable[[int], float], bound: np.ndarray,
                weight: float) -> tuple[np.ndarray, list[int]]:
    """`task_posterior` without decoding every task: task a's score is log P_cls(a) +
    weight * fit(a), and `bound[a]` >= fit(a) (`fit_bound`) caps it. Tasks are decoded in
    order of their capped score until the next cap is SKIP_MARGIN below the best score
    found; the rest keep their cap. The argmax is the exact one (a task left out cannot
    reach the best); a left-out task's probability is an upper bound of its own and at
    most e^-20 (2e-9) of the best's, so every probability is within A x 2e-9 of
    `task_posterior` with every task decoded.

    Why: prediction decoded every task's key-steps for every video (A decodings instead
    of one); with many tasks (CrossTask: 18) that dominated prediction. [A] -> ([A]
    posterior, the tasks decoded, best first by cap).
    """
    logprob = np.asarray(task_logprob, dtype=np.float64)
    fits = np.array(bound, dtype=np.float64)  # [A] caps, replaced by the fit where decoded
    cap = logprob + weight * fits
    best, decoded = -np.inf, []
    for a in np.argsort(-cap, kind="stable"):
        if cap[a] < best - SKIP_MARGIN:
            break
        fits[a] = fit(int(a))
        best = max(best, logprob[a] + weight * fits[a])
        decoded.append(int(a))
    return task_posterior(logprob, fits, weight), decoded
