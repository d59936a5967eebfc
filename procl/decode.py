"""Temporal decoding of per-frame state scores into segments (procl's addition).

Key-steps last seconds, so a frame's label should rarely differ from its neighbours'.
The network (and the teacher) score every frame on its own; labelling each frame with
its argmax makes timelines flicker. `viterbi` finds the label sequence that maximises
the summed per-frame log-probabilities minus a fixed cost for every change of label,
the standard HMM/Viterbi decoding of action segmentation with a uniform switch
penalty. One implementation is shared by the student and the teacher.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from procl import ProclError


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


def relative_time(T: int) -> np.ndarray:
    """[T] each frame's place in its video, (t + 0.5) / T, in (0, 1): the numpy twin of the
    temporal prior's column (`ProcedureNet.teacher_space`)."""
    return (np.arange(T) + 0.5) / max(T, 1)


def state_places(labels: np.ndarray, selected: list[int]) -> dict[int, float]:
    """One video's part of `typical_order`: each selected state's place there, the mean
    relative time (t + 0.5) / T of its frames (states it does not show are left out).
    k numbers per video: what ranks that hold different videos exchange."""
    lab = np.asarray(labels)
    rel = relative_time(len(lab))
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

    Why: prediction decodes every task's key-steps and the teacher's, so doing them in one
    pass costs about what one did; and no loop runs over the frames. The lattice's states
    are laid out in their order (background before any step, step 0, background after it,
    step 1, ...) and a path only moves forward through them, so the scores are computed
    one state at a time, each over all frames at once (`_state_scores`: a cumulative sum
    and a running maximum), from the running maximum over the states before it: 2k + 1
    passes over [B, T] arrays instead of T - 1 passes over [B, 2k + 1] ones (a 100-frame
    video at k = 7: 15 passes for 99; an hour at 2 fps: 15 for 7199). The same optimum as
    the frame loop, its scores summed in another order (ties of exactly representable
    scores, e.g. integers, decided as the frame loop decides them). The path is traced
    back by `_ordered_path` with the rules of the frame-by-frame decoding: stay unless an
    entry is strictly better; among tied entries the earliest state, a key-step before the
    background that follows it; at the last frame the first best in the order key-steps,
    then the backgrounds. Scores must be finite (no background: None).
    """
    scores = np.asarray(scores, dtype=np.float64)
    B, T, k = scores.shape
    if T == 0:
        return np.zeros((B, 0), dtype=np.int64)
    bgs = None if background is None else np.asarray(background, dtype=np.float64)  # [B, T]
    if not np.isfinite(scores).all() or (bgs is not None and not np.isfinite(bgs).all()):
        raise ValueError("viterbi_ordered: scores must be finite (clip log-probabilities first; "
                         "no background is background=None)")
    # lattice states in their order: 0 = background before any step; 2j + 1 = key-step j;
    # 2j + 2 = background after key-step j
    n = 2 * k + 1
    S = np.full((n, B, T), -np.inf)  # [n, B, T] best score of a path ending in each state
    enter = np.full((n, B, T), -np.inf)  # [n, B, T] entering each state at frame t + 1, from frame t
    if bgs is not None:
        np.cumsum(bgs, axis=1, out=S[0])  # background before any step only stays
    below = S[0].copy()  # [B, T] the best state so far, at each frame
    for j in range(k):
        # key-step j: entered from any state before it, at switch_cost
        np.subtract(below, switch_cost, out=enter[2 * j + 1])
        _state_scores(scores[:, :, j], enter[2 * j + 1], 0.0, S[2 * j + 1])
        if bgs is not None:  # background after j: entered from key-step j only
            np.subtract(S[2 * j + 1], switch_cost, out=enter[2 * j + 2])
            _state_scores(bgs, enter[2 * j + 2], -np.inf, S[2 * j + 2])
        np.maximum(below, S[2 * j + 1], out=below)
        np.maximum(below, S[2 * j + 2], out=below)
    return _ordered_path(S, enter, k)


def _ordered_path(S: np.ndarray, enter: np.ndarray, k: int) -> np.ndarray:
    """The labels [B, T] of the best paths through the ordered lattice, from its scores
    S [n, B, T] and entry scores (`viterbi_ordered_batch`), traced back a segment at a time.

    Frame t >= 1 enters its state rather than staying where the entry is strictly better
    (enter[:, :, t - 1] > S[:, :, t - 1]): a key-step from the first best state before it
    (argmax's tie rule), a background from its key-step. The last frame takes the first
    best state in the order key-steps, then backgrounds. A path passes each state at most
    once: at most 2k + 1 rounds, all B problems at once (not T - 1 frames)."""
    n, B, T = S.shape
    frame = np.arange(T)
    # [n, B, T]: the last frame up to t at which the state was entered (0: none since the start)
    entered = np.zeros((n, B, T), dtype=np.int64)
    np.copyto(entered[:, :, 1:], frame[1:], where=enter[:, :, :-1] > S[:, :, :-1])
    np.maximum.accumulate(entered, axis=2, out=entered)
    pos = np.arange(n)
    listed = np.concatenate([pos[1::2], pos[0::2]])  # the states in the last frame's tie order
    state = listed[S[listed, :, -1].argmax(0)]  # [B] the state of the segment being traced
    end = np.full(B, T - 1)  # [B] its last frame
    starts = np.zeros((B, T), dtype=bool)  # [B, T] the first frame of each segment
    labels = np.zeros((B, T), dtype=np.int64)  # [B, T] each segment's state at its first frame
    live = np.arange(B)
    while len(live):
        first = entered[state[live], live, end[live]]
        starts[live, first] = True
        labels[live, first] = state[live]
        go = first > 0  # entered at frame first > 0: from a state before it, at frame first - 1
        live, at, came = live[go], first[go] - 1, state[live[go]]
        before = np.where(pos[:, None] < came, S[:, live, at], -np.inf)  # [n, b] the states before it
        state[live] = np.where(came % 2 == 1, before.argmax(0), came - 1)
        end[live] = at
    labels = np.take_along_axis(labels, np.maximum.accumulate(np.where(starts, frame, 0), 1), 1)
    return np.where(labels % 2 == 1, labels // 2, k)


def _state_scores(emit: np.ndarray, enter: np.ndarray, first: float, out: np.ndarray) -> None:
    """One lattice state's best path scores at every frame, into out [B, T]: the state is
    entered at frame t >= 1 with score enter[:, t - 1] (the switch cost taken off) or
    stays, and emits emit [B, T]; `first` is its score at frame 0 less emit[:, 0] (0: a
    path may start in it; -inf: it may not).

    The frame-by-frame recurrence S_t = max(S_{t-1}, enter_{t-1}) + emit_t, with
    A_t = emit_0 + ... + emit_t, is S_t = A_t + max(first, max_{1 <= u <= t} enter_{u-1} - A_{u-1}):
    a cumulative sum and a running maximum over the frames."""
    A = np.cumsum(emit, axis=1)  # [B, T]
    gain = np.empty_like(A)  # [B, T]
    gain[:, 0] = first
    np.subtract(enter[:, :-1], A[:, :-1], out=gain[:, 1:])
    np.maximum.accumulate(gain, axis=1, out=gain)
    np.add(A, gain, out=out)


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


MERGE_MIN_FRAMES = 5  # a state decoded on fewer training frames has no confusion measured: never merged


def state_confusion(labels: list[np.ndarray], probs: list[np.ndarray], states: list[int],
                    min_frames: int = MERGE_MIN_FRAMES) -> np.ndarray:
    """How little the network tells a task's states apart, on its training videos.

    labels: per video, each frame's decoded state [T] (-1 background); probs: per video,
    the network's state probabilities p [T, M]; states: the task's selected states.
    Returns C [k, k], symmetric, with
        C[i, j] = 1/2 (mean_{t: z_t = s_i} p_t(s_j) / mean_{t: z_t = s_i} p_t(s_i) + the same with i, j swapped):
    on the frames decoded as one state, how probable the network finds the other, against
    the state it chose. 0: never confused; 1: indistinguishable. NaN where either state
    has fewer than `min_frames` frames (nothing to measure) and on the diagonal.
    """
    states = [int(s) for s in states]
    k = len(states)
    ratio = np.full((k, k), np.nan)  # ratio[i, j]: p(s_j) against p(s_i) on the frames of s_i
    if labels:
        z = np.concatenate([np.asarray(lab) for lab in labels])  # [N]
        p = np.concatenate([np.asarray(q, dtype=np.float64) for q in probs])[:, states]  # [N, k]
        for i, s in enumerate(states):
            mask = z == s
            if mask.sum() >= min_frames:
                mean = p[mask].mean(0)  # [k]
                ratio[i] = mean / max(mean[i], 1e-12)
    confusion = 0.5 * (ratio + ratio.T)
    np.fill_diagonal(confusion, np.nan)
    return confusion


MERGE_MIN_RUN = 0.7  # two states merge only if they form one run in at least this share of their videos
MERGE_STANDOUT = 2.0  # ... and the network confuses them at least this many times its median pair of the task


def state_contiguity(labels: list[np.ndarray], states: list[int]) -> np.ndarray:
    """How often two of a task's states make one stretch of a video: [k, k], symmetric.

    labels: per training video, each frame's decoded state [T] (-1 background).
    R[i, j] = among the videos where s_i or s_j occurs, the share where their frames form
    one run (no other label, background included, between them): a step cut in two halves
    or told in two variants does; two steps with something between them do not. NaN when
    neither occurs, and on the diagonal.
    """
    states = [int(s) for s in states]
    k = len(states)
    held = np.zeros((k, k))  # videos where s_i or s_j occurs
    one = np.zeros((k, k))  # ... and their frames form one run
    for z in labels:
        z = np.asarray(z)
        hit = z[None, :] == np.asarray(states)[:, None]  # [k, T]
        count = hit.sum(1)  # [k]
        if not count.any():
            continue
        T = len(z)
        first = np.where(count > 0, hit.argmax(1), T)  # [k]; T, -1 for absent states
        last = np.where(count > 0, T - 1 - hit[:, ::-1].argmax(1), -1)
        either = (count[:, None] + count[None, :]) > 0
        span = np.maximum(last[:, None], last[None, :]) - np.minimum(first[:, None], first[None, :]) + 1
        held += either
        one += either & (span == count[:, None] + count[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        R = np.where(held > 0, one / held, np.nan)
    np.fill_diagonal(R, np.nan)
    return R


def merge_groups(confusion: np.ndarray, states: list[int], threshold: float,
                 contiguity: np.ndarray | None = None) -> dict[int, int]:
    """The states a decoding labels as one key-step (procl's addition: the paper keeps k).

    Two states may merge when the network confuses them (`state_confusion`), at least
    MERGE_STANDOUT times as much as the median pair of the task's states, and, with
    `contiguity` (`state_contiguity`), when they form one run in at least MERGE_MIN_RUN of
    the videos holding either (other pairs count as never confused). Average-linkage
    agglomeration: while two groups' mean confusion (over every pair between them) is at
    least `threshold`, the two most confused groups join. A NaN confusion between two
    states (unmeasured, or kept apart on purpose: two states a person named differently)
    keeps their groups apart. Returns state -> the state its group is labelled as (the
    first of `states`, pick order, in the group), for the states of groups of two or
    more; {} when threshold <= 0 (off).

    Why: the teacher selects k states per task whatever the true number of key-steps; at
    k above it the extra states split steps (one step's frames in two states, the halves
    of a step or its variants), and the metric's one-to-one matching counts every frame
    of the unpaired half wrong. States the network itself does not tell apart are that
    split (development sets: a state pair's confusion separates the pairs of one true
    step from the others with AUC 0.96). The run condition keeps apart what a weaker
    network confuses but the videos show apart (at k below the true count, on few
    videos): without it, merging cost up to 9 F1 points there; the standout condition keeps
    a network that confuses all its states (five videos of one task) from merging them
    all into one (docs/method.md).
    """
    k = len(states)
    if threshold <= 0 or k < 2:
        return {}
    C = np.asarray(confusion, dtype=np.float64)
    measured = C[np.isfinite(C)]
    if not len(measured):
        return {}
    keep = C >= MERGE_STANDOUT * float(np.median(measured))
    if contiguity is not None:
        keep &= np.nan_to_num(contiguity, nan=0.0) >= MERGE_MIN_RUN
    C = np.where(np.isnan(C) | keep, C, 0.0)
    groups = [[i] for i in range(k)]
    while len(groups) > 1:
        best, pair = -np.inf, None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                block = C[np.ix_(groups[a], groups[b])]
                if np.isnan(block).any():
                    continue
                if block.mean() > best:
                    best, pair = float(block.mean()), (a, b)
        if pair is None or best < threshold:
            break
        a, b = pair
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]
    return {int(states[i]): int(states[g[0]]) for g in groups if len(g) > 1 for i in g}


def keep_apart(confusion: np.ndarray, states: list[int], names: dict[int, str],
               apart: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """The confusion with NaN between two states named differently (a person's names, which
    say they are two steps) and between two states of a group in `apart` (a person split
    what the decoding had merged: each its own step), so that `merge_groups` never joins
    them. A copy."""
    C = np.array(confusion, dtype=np.float64, copy=True)
    named = [(i, str(names[int(s)]).strip().lower()) for i, s in enumerate(states) if int(s) in names]
    for i, a in named:
        for j, b in named:
            if a != b:
                C[i, j] = np.nan
    index = {int(s): i for i, s in enumerate(states)}
    for group in apart:
        members = [index[int(s)] for s in group if int(s) in index]
        for i in members:
            for j in members:
                if i != j:
                    C[i, j] = np.nan
    return C


def labelled_as(merge: dict[int, int], rep: int) -> list[int]:
    """The states a task's merge map (`merge_groups`: state -> the state its group is
    labelled as) labels as `rep`, sorted; [] when `rep` heads no group."""
    return sorted(int(s) for s, r in merge.items() if r == rep)


def relabel(labels: np.ndarray, merge: dict[int, int]) -> np.ndarray:
    """labels [T] with each merged state replaced by its group's (`merge_groups`); -1 stays."""
    labels = np.asarray(labels)
    if not merge or not len(labels):
        return labels
    out = labels.copy()
    for s, rep in merge.items():
        out[labels == s] = rep
    return out


def merge_maps(decoding: dict, selected: dict[str, list[int]], threshold: float | None) -> dict[str, dict[int, int]]:
    """task -> `merge_groups` of its states at `threshold` (0 or None: {}), from what a
    network's training left in decoding.json (`decoding`: "confusion" and "contiguity",
    task -> [k, k] over its selected states in pick order; runs without them: {})."""
    confusion, contiguity = decoding.get("confusion") or {}, decoding.get("contiguity") or {}
    if not threshold:
        return {}
    out = {}
    for task, C in confusion.items():
        states = selected.get(task, [])
        R = contiguity.get(task)
        if R is None:
            continue
        if np.shape(C) != (len(states), len(states)) or np.shape(R) != np.shape(C):
            raise ProclError(f"the state confusion of task {task!r} is {np.shape(C)} but the task selected "
                             f"{len(states)} states: decoding.json and selected.json are from different trainings")
        if merge := merge_groups(C, states, threshold, R):
            out[task] = merge
    return out
