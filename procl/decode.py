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
    The frame loop carries the scores alone (max(stay, best - cost) is the score whichever
    wins); the back-pointers are the same comparisons made afterwards on every frame at
    once (stay on a tie, the first best label), so the path is the one a loop that also
    kept them would find.
    """
    logp = np.asarray(logp, dtype=np.float64)
    T, K = logp.shape
    if T == 0:
        return np.zeros(0, dtype=np.int64)
    S = np.empty((T, K))  # [T, K] best score of a path ending in each label at each frame
    S[0] = logp[0]
    for t in range(1, T):
        np.maximum(S[t - 1], S[t - 1].max() - switch_cost, out=S[t])
        S[t] += logp[t]
    prev = S[:-1]  # [T-1, K] the scores each frame's step starts from
    best = prev.argmax(1)  # [T-1]
    switch = prev[np.arange(T - 1), best] - switch_cost
    back = np.where(prev >= switch[:, None], np.arange(K), best[:, None])  # [T-1, K]: back[t-1] for frame t
    path = np.empty(T, dtype=np.int64)
    path[-1] = int(S[-1].argmax())
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t - 1, path[t]]
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


def decode_states_batch(problems: list[tuple[np.ndarray, list[int], bool]], background: list[int] = (),
                        switch_cost: float = 0.0) -> list[np.ndarray]:
    """`decode_states(logp, selected, background, switch_cost, ordered)` of each problem
    (logp, selected, ordered), the same labels; the ordered ones of the same T and k in
    one `viterbi_ordered_batch` (prediction decodes each task's key-steps on the same
    frames, and the teacher's)."""
    out: list[np.ndarray | None] = [None] * len(problems)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (logp, selected, ordered) in enumerate(problems):
        if ordered and len(logp):
            groups.setdefault((len(logp), len(selected)), []).append(i)
        else:
            out[i] = decode_states(logp, selected, background, switch_cost, ordered=ordered)
    for members in groups.values():
        sel = [np.asarray(problems[i][1], dtype=np.int64) for i in members]
        scores = np.stack([problems[i][0][:, s] for i, s in zip(members, sel)])  # [B, T, k]
        bgs = [background_score(problems[i][0], background) for i in members]
        z = viterbi_ordered_batch(scores, None if bgs[0] is None else np.stack(bgs), switch_cost)
        for row, (i, s) in enumerate(zip(members, sel)):
            out[i] = np.append(s, -1)[z[row]]
    return out


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
    `switch_cost`, staying is free. O(T k) with running maxima (`viterbi_ordered_batch`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    bg = None if background is None else np.asarray(background, dtype=np.float64)[None]
    return viterbi_ordered_batch(scores[None], bg, switch_cost)[0]


def viterbi_ordered_batch(scores: np.ndarray, background: np.ndarray | None, switch_cost: float) -> np.ndarray:
    """`viterbi_ordered` of B problems of the same size at once: scores [B, T, k],
    background [B, T] or None -> [B, T] labels, each row the labels `viterbi_ordered`
    gives it alone.

    Why: the frame loop is the cost of the decoding (a few small array operations per
    frame); prediction decodes every task's key-steps and the teacher's, so doing them in
    one loop costs about what one did. The lattice's states are laid out in their order
    (background before any step, step 0, background after it, step 1, ...), so the best
    state a key-step can be entered from is a running maximum over the states before it.
    The loop carries the scores alone (a state's new score is max(stay, best entry)
    whichever wins, the same floating-point numbers); the back-pointers are each frame's
    comparisons made afterwards on every frame at once, with the rules of the frame-by-frame
    decoding: stay unless an entry is strictly better; among tied entries the earliest
    state, a key-step before the background that follows it; at the last frame the first
    best in the order key-steps, then the backgrounds. Ties are decided as before.
    """
    scores = np.asarray(scores, dtype=np.float64)
    B, T, k = scores.shape
    if T == 0:
        return np.zeros((B, 0), dtype=np.int64)
    bgs = np.full((B, T), -np.inf) if background is None else np.asarray(background, dtype=np.float64)
    # lattice states in their order: 0 = background before any step; 2j + 1 = key-step j;
    # 2j + 2 = background after key-step j
    n = 2 * k + 1
    emit = np.empty((T, B, n))  # [T, B, n]
    emit[:, :, 1::2] = scores.transpose(1, 0, 2)
    emit[:, :, 0::2] = bgs.T[:, :, None]
    S = np.empty((T, B, n))  # [T, B, n] best score of a path ending in each state
    S[0] = emit[0]
    S[0, :, 2::2] = -np.inf  # no background after a step before any step
    # background before any step only stays: its running sum (add.accumulate adds in order)
    np.add.accumulate(emit[:, :, 0], axis=0, out=S[:, :, 0])
    best = np.empty((B, n))
    into_bg = np.empty((B, k))
    for t in range(1, T):
        s, new = S[t - 1], S[t]
        np.maximum.accumulate(s, axis=1, out=best)  # best[:, i]: the best state up to i
        enter = best[:, 0 : 2 * k : 2]  # [B, k]: the best state key-step j may follow
        if switch_cost:
            enter = np.subtract(enter, switch_cost)
            np.subtract(s[:, 1::2], switch_cost, out=into_bg)
            np.maximum(s[:, 2::2], into_bg, out=new[:, 2::2])  # background after j, from key-step j
        else:  # x - 0.0 is x: the same numbers without the subtractions
            np.maximum(s[:, 2::2], s[:, 1::2], out=new[:, 2::2])
        np.maximum(s[:, 1::2], enter, out=new[:, 1::2])
        new[:, 1:] += emit[t, :, 1:]
    # back-pointers of frames 1..T-1 from the scores each started from
    P = S[:-1]  # [T-1, B, n]
    pos = np.arange(n)
    best = np.maximum.accumulate(P, -1)  # [T-1, B, n]
    # the first state where each running maximum is reached (argmax's tie rule)
    before = np.concatenate([np.full(P.shape[:2] + (1,), -np.inf), best[..., :-1]], -1)
    first = np.maximum.accumulate(np.where(P > before, pos, 0), -1)
    steps = P[..., 1::2]  # [T-1, B, k]
    back = np.empty(P.shape, dtype=np.int64)  # back[t - 1]: the state before frame t
    back[..., 0] = 0
    back[..., 1::2] = np.where(best[..., 0 : 2 * k : 2] - switch_cost > steps, first[..., 0 : 2 * k : 2], pos[1::2])
    back[..., 2::2] = np.where(steps - switch_cost > P[..., 2::2], pos[1::2], pos[2::2])
    # the last frame's best state, ties to the first in the order key-steps, backgrounds
    listed = np.concatenate([pos[1::2], pos[0::2]])  # the states in that order
    path = np.empty((T, B), dtype=np.int64)
    path[-1] = listed[S[-1][:, listed].argmax(1)]
    rows = np.arange(B)
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t - 1, rows, path[t]]
    return np.ascontiguousarray(np.where(path % 2 == 1, path // 2, k).T)


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
