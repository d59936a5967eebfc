"""Latent states (mini-batch k-means) and greedy subset selection, the teacher (Eq. 2).

The paper (Sec. 2.1.2) runs k-means with M centers over all attention features to get
latent states x_1..x_M shared by every task, then for each task greedily picks the k
states that best represent its videos. Each frame's pseudo-label r_t is the nearest
selected state; the key-step localizer is trained to reproduce it (Sec. 2.2).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from procl import ProclError, dist


def fit_states(
    feats: np.ndarray, M: int, init: np.ndarray | None = None, seed: int = 0, batch_size: int = 1024
) -> np.ndarray:
    """Mini-batch k-means latent states [M, D] over attention features [N, D] (Sec. 2.2).

    With `init` (the previous centers [M, D]) the refresh starts from them, so center m
    of this refresh refines center m of the last one and pseudo-label indices keep
    their meaning across refreshes (the consistency the paper asks for).
    """
    from sklearn.cluster import MiniBatchKMeans  # imported here: it takes seconds, and most commands never need it

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
        compute_labels=False,  # labels_ and inertia_ are never read (the centers are the same)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about few distinct points on tiny data
        km.fit(feats)
    return km.cluster_centers_.astype(np.float32)


def fit_states_distributed(
    feats: np.ndarray, M: int, init: np.ndarray | None = None, seed: int = 0, iters: int | None = None,
    chunk: int = 65536,
) -> np.ndarray:
    """Lloyd k-means latent states [M, D] over the frames of every rank; feats [N_r, D]
    are THIS rank's frames (possibly none).

    Each iteration assigns every local frame to its nearest center, sums the frames and
    counts them per center (float64), and one all-reduce of those M x (D + 1) numbers
    gives every rank the same new centers; a center that got no frame stays where it
    was (so with `init`, state m still refines state m, as in `fit_states`). Frames
    never leave their rank. `init`: the previous centers [M, D] (rank 0's are used);
    without it, the best of 3 k-means++ runs on a sample of at most max(50 M, 5000)
    frames drawn from every rank in proportion to its frames. iters: Lloyd iterations, default 5 with
    init (the cost of fit_states' 5 mini-batch epochs) and 20 without; it stops early
    when no center moves. Every rank returns the same float32 centers; one process
    (or world size 1): the plain Lloyd refresh of all frames, a drop-in for
    `fit_states` whose inertia never rises from `init`'s.
    """

    feats = np.ascontiguousarray(feats, dtype=np.float32)
    if feats.ndim != 2:
        raise ValueError(f"feats must be [N, D] (N may be 0), got shape {feats.shape}")
    N = int(dist.all_reduce_sum(torch.tensor([len(feats)]), what="counting the frames for k-means")[0])
    if N < M:
        raise ProclError(
            f"M={M} latent states need at least {M} training frames, got {N}: lower M (--M) or add videos"
        )
    if init is None:
        centers = _sampled_init(feats, N, M, seed)
        iters = 20 if iters is None else iters
    else:
        centers = np.asarray(init, dtype=np.float32)
        iters = 5 if iters is None else iters
    D = centers.shape[1]
    if feats.shape[1] != D:
        raise ProclError(f"features have D={feats.shape[1]} but the centers have D={D}")
    centers = dist.broadcast(torch.from_numpy(np.ascontiguousarray(centers)), what="sharing the k-means centers")
    centers = centers.numpy().astype(np.float64)
    for _ in range(iters):
        sums = torch.zeros((M, D + 1), dtype=torch.float64)  # per center: sum of its frames, then their count
        c32 = centers.astype(np.float32)
        for s in range(0, len(feats), chunk):
            x = torch.from_numpy(feats[s : s + chunk])
            near = torch.from_numpy(nearest_state(feats[s : s + chunk], c32))
            sums[:, :D].index_add_(0, near, x.double())
            sums[:, D].index_add_(0, near, torch.ones(len(near), dtype=torch.float64))
        sums = dist.all_reduce_sum(sums, what="summing the k-means clusters").numpy()
        n = sums[:, D:]
        new = np.where(n > 0, sums[:, :D] / np.maximum(n, 1.0), centers)
        if np.array_equal(new, centers):
            break
        centers = new
    return centers.astype(np.float32)


def _sampled_init(feats: np.ndarray, N: int, M: int, seed: int, tries: int = 3) -> np.ndarray:
    """k-means++ centers [M, D] of a sample of every rank's frames: the best of `tries`
    `fit_states` runs on the sample (lowest inertia there). The same on every rank."""

    size = min(N, max(50 * M, 5000))
    take = min(len(feats), int(np.ceil(size * len(feats) / N)))
    rng = np.random.default_rng([seed, dist.rank()])
    sample = feats[np.sort(rng.choice(len(feats), take, replace=False))] if take else feats[:0]
    parts = [p for p in dist.all_gather_object(sample, what="sampling frames for the k-means start") if len(p)]
    sample = np.concatenate(parts)
    runs = [fit_states(sample, M, seed=seed + i) for i in range(tries)]
    return min(runs, key=lambda c: float(np.square(pairwise_distances(sample, c).min(1)).sum()))


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


BACKGROUND_MAX_SHARE = 0.6  # the teacher labels at most this share of the frames background


def background_states(states: np.ndarray, task_of_frame: np.ndarray, n_tasks: int, M: int,
                      threshold: float = 0.9) -> list[int]:
    """The latent states that every task uses alike: background (procl's addition).

    states: [N] each training frame's nearest state; task_of_frame: [N] its video's task
    index (0 .. n_tasks-1). For each state, q[a] is the share of task a's frames it
    holds; p(a | state) = q[a] / sum(q) weighs every task alike whatever its size. A
    state whose p(a | state) has normalised entropy H / log(n_tasks) above `threshold`
    tells no task apart: it is what the videos of all tasks show between key-steps
    (an idle hand, the scene), and subset selection should not spend a key-step on it.
    Fewer than 3 tasks: none (with two, a step shared unevenly already looks even):
    `background_over_time` finds it there.
    Returned most even first (`select_tasks` drops from the end when they take too much).
    """
    return _background(states, task_of_frame, n_tasks, M, threshold, distributed=False)


def background_states_distributed(states: np.ndarray, task_of_frame: np.ndarray, n_tasks: int, M: int,
                                  threshold: float = 0.9) -> list[int]:
    """`background_states` over the frames of every rank; states and task_of_frame are
    THIS rank's frames (possibly none). One all-reduce of the M x n_tasks frame counts
    (integers in float64: the sum is exact) gives every rank the counts of all frames,
    so every rank returns the states one process would. One process: the same as
    `background_states`."""
    return _background(states, task_of_frame, n_tasks, M, threshold, distributed=True)


def _background(states, task_of_frame, n_tasks: int, M: int, threshold: float, distributed: bool) -> list[int]:
    if n_tasks < SHARED_MIN_TASKS:
        return []
    counts = np.zeros((M, n_tasks))  # [M, A] frames of each task nearest to each state
    np.add.at(counts, (np.asarray(states, dtype=np.int64), np.asarray(task_of_frame, dtype=np.int64)), 1.0)
    if distributed:
        counts = _all_reduce(torch.from_numpy(counts), "counting the frames of each state per task").numpy()
    if counts.sum() == 0:
        return []
    return states_used_evenly(counts, threshold)


SHARED_MIN_TASKS = 3  # fewer tasks: background_over_time finds the background instead
TIME_BINS = 10  # parts of a procedure's course that background_over_time compares
TIME_THRESHOLD = 0.93  # normalised entropy over them above which a state is background (docs/method.md)


def time_bins(rel_time: np.ndarray, bins: int = TIME_BINS) -> np.ndarray:
    """[N] which of `bins` equal parts of its video's course each frame falls in, from its
    relative time in [0, 1) (`decode.relative_time`)."""
    return np.minimum((np.asarray(rel_time, dtype=np.float64) * bins).astype(np.int64), bins - 1)


def background_over_time(states: np.ndarray, rel_time: np.ndarray, videos: int, M: int,
                         threshold: float = TIME_THRESHOLD, distributed: bool = False) -> list[int]:
    """The latent states that every part of a procedure shows alike: background where
    there are too few tasks for `background_states` (one procedure, single-task; procl's
    addition).

    states: [N] each training frame's nearest state, by appearance alone (without the
    temporal prior's column, which would tie every state to a time); rel_time: [N] its
    place in its video, in [0, 1); videos: how many videos the frames come from. A
    key-step happens at some point of the procedure; what happens between key-steps (an
    idle hand, the scene) happens all along it. So the frames are counted per state and
    per tenth of the videos' course ([M, TIME_BINS], each tenth weighed alike) and, as for
    tasks, a state whose normalised entropy over the tenths is above `threshold` is
    background (`states_used_evenly`), most even first. With fewer videos than tenths,
    none: a step that happens once per video, at another point in each, could then fill
    the tenths as evenly by chance (development: three Breakfast-structured runs of 5
    videos lost 8-16 F1 points to such a step called background). The threshold is
    stricter than the tasks' 0.9: at 0.9 a long phase of carrot grating (12 real
    demonstrations, no background) was background for two refreshes and one run lost 10
    points; at 0.93 none, while generated single-task videos keep most of the gain.
    distributed: states, rel_time and videos are this rank's; the counts are summed over
    the ranks first (one all-reduce), so every rank returns what one process would.
    """
    bins = time_bins(rel_time)
    counts = np.zeros((M + 1, TIME_BINS))  # [M, TIME_BINS] frames of each tenth nearest to each state; the videos
    np.add.at(counts, (np.asarray(states, dtype=np.int64), bins), 1.0)
    counts[M, 0] = videos
    if distributed:
        counts = _all_reduce(torch.from_numpy(counts), "counting the frames of each state per tenth").numpy()
    counts, videos = counts[:M], counts[M, 0]
    if videos < TIME_BINS or counts.sum() == 0:
        return []
    return states_used_evenly(counts, threshold)


def states_used_evenly(counts: np.ndarray, threshold: float) -> list[int]:
    """States (rows of counts [M, A] of frames per task) with normalised task entropy >
    threshold, most even first."""
    q = counts / np.maximum(counts.sum(0, keepdims=True), 1.0)  # [M, A] share of each task's frames
    p = q / np.maximum(q.sum(1, keepdims=True), 1e-12)
    H = -(p * np.log(np.where(p > 0, p, 1.0))).sum(1) / np.log(counts.shape[1])  # [M]
    return [int(m) for m in np.argsort(-H, kind="stable") if H[m] > threshold and counts[m].sum() > 0]


def select_tasks(videos: dict[str, list[np.ndarray]], centers: np.ndarray, k: int, background: Sequence[int] = (),
                 max_share: float = BACKGROUND_MAX_SHARE, distributed: bool = False,
                 fixed: dict[str, Sequence[int]] | None = None, exclude: dict[str, Sequence[int]] | None = None,
                 ) -> tuple[list[int], dict[str, Selection]]:
    """Subset selection (Eq. 2) for every task, with the background states that fit.

    videos: task -> its videos' features (this rank's, when distributed). background:
    candidate states, most even first (`background_states`). With them all, the teacher
    may label most frames background: early in training, or on a few short videos, most
    states are still shared by the tasks, and frames of unselected states fall to them
    too. So while the share of frames labelled background (the mean over tasks) is above
    `max_share`, the least even candidate is dropped and the tasks selected again.
    fixed: task -> states its selection starts with (a person's named steps, procl.refine);
    exclude: task -> states it may not select (another task's named steps).
    Returns (the background states kept, sorted; task -> Selection).
    """
    select = subset_selection_distributed if distributed else subset_selection
    fixed, exclude = fixed or {}, exclude or {}
    background = list(background)[: max(centers.shape[0] - k, 0)]  # k states stay to choose from
    while True:
        sels = {task: select(vids, centers, k, background=background,
                             fixed=[s for s in fixed.get(task, ()) if s not in background],
                             exclude=exclude.get(task, ()))
                for task, vids in videos.items()}
        if not background:
            return [], sels
        counts = torch.tensor([[float(np.isin(np.concatenate(sel.labels), background).sum() if sel.labels else 0),
                                float(sum(len(lab) for lab in sel.labels))] for sel in sels.values()],
                              dtype=torch.float64)  # [A, 2] background frames, frames
        if distributed:
            counts = _all_reduce(counts, "counting the background frames of each task")
        share = float((counts[:, 0] / counts[:, 1].clamp_min(1.0)).mean())
        if share <= max_share:
            return sorted(background), sels
        background = background[:-1]


def subset_selection(videos: list[np.ndarray], centers: np.ndarray, k: int,
                     background: Sequence[int] = (), fixed: Sequence[int] = (),
                     exclude: Sequence[int] = ()) -> Selection:
    """Greedy facility location for Eq. 2 over one task's videos.

    J_a(S) = sum_l (1/T_l) sum_t min_{i in S} ||f_t^l - x_i||_2. Starting from S = {},
    each step adds the state with the largest decrease of J_a. Vectorised: one M x N
    distance matrix, then k passes of O(M N): min(current, d[j]) for every j at once.
    Candidate costs are summed in float64 (a float32 sum over a million frames is off
    in the 4th digit), so the picks do not depend on how the frames are split.

    videos:     list of [T_l, D] attention features of the task's videos.
    centers:    [M, D] latent states.
    background: states that represent the background (`background_states`): they
                count as already chosen in J_a, so no key-step is spent on frames they
                explain, are never picked, and a frame nearest to one of them gets it as
                its pseudo-label (background).
    fixed:      states picked first, whatever their cost (at most k; a refinement's
                named steps), before the greedy picks of the rest.
    exclude:    states never picked (they may still be fixed).
    """
    return _select(videos, centers, k, background, distributed=False, fixed=fixed, exclude=exclude)


def subset_selection_distributed(videos: list[np.ndarray], centers: np.ndarray, k: int,
                                 background: Sequence[int] = (), fixed: Sequence[int] = (),
                                 exclude: Sequence[int] = ()) -> Selection:
    """`subset_selection` over the videos of every rank, each rank holding some of them.

    videos: THIS rank's videos of the task (possibly none); centers: [M, D], the same
    on every rank. At each pick every rank adds its frames' share of J_a for every
    candidate state (weights 1/T_l, a video lies on one rank whole), one all-reduce
    sums the M candidate costs, and every rank takes the same argmin: `selected` and
    `costs` are the same on every rank and equal `subset_selection` on all the videos
    at once. `labels` are this rank's videos' pseudo-labels, computed here. Only M
    numbers per pick cross between ranks; frames never do. One process: the same as
    `subset_selection`.
    """
    return _select(videos, centers, k, background, distributed=True, fixed=fixed, exclude=exclude)


_CHUNK = 16384  # frames per block of the pick loop: [M, chunk] stays in cache


def _select(videos: list[np.ndarray], centers: np.ndarray, k: int, background: Sequence[int],
            distributed: bool, fixed: Sequence[int] = (), exclude: Sequence[int] = ()) -> Selection:
    M = centers.shape[0]
    background = sorted({int(b) for b in background})
    if not 1 <= k <= M - len(background):
        raise ProclError(f"k={k} must be between 1 and M={M} less the {len(background)} background state(s)")
    reduce = _all_reduce if distributed else (lambda t, what: t)
    if int(reduce(torch.tensor([len(videos)], dtype=torch.int64), "counting the task's videos")[0]) == 0:
        raise ProclError("subset selection needs at least one video of the task")
    lengths = np.array([len(v) for v in videos], dtype=np.int64)
    N = int(lengths.sum())
    weights = torch.from_numpy(np.repeat(1.0 / np.maximum(lengths, 1), lengths).astype(np.float32))  # [N]
    if N:
        dist = torch.from_numpy(pairwise_distances(centers, np.concatenate(videos)))  # [M, N]
    else:
        dist = torch.zeros((M, 0), dtype=torch.float32)
    current = torch.full((N,), float("inf"))  # each frame's distance to its nearest selected state
    if background and N:
        current = dist[background].min(0).values.clone()
    buf = torch.empty((M, min(N, _CHUNK)), dtype=torch.float32)

    selected: list[int] = []
    costs: list[float] = []
    forced = [int(s) for s in dict.fromkeys(fixed) if int(s) not in background][:k]
    for pick in range(k):
        if pick < len(forced):  # a fixed state: taken first; its cost is J_a with it
            j = forced[pick]
            torch.minimum(current, dist[j], out=current)
            cost = reduce(torch.tensor([float((current * weights).double().sum()) if N else 0.0],
                                       dtype=torch.float64), "summing the cost of a fixed state")
            selected.append(j)
            costs.append(float(cost[0]))
            continue
        cand = torch.zeros(M, dtype=torch.float64)  # this rank's share of J_a(S + {j}) for every j
        for s in range(0, N, _CHUNK):
            e = min(N, s + _CHUNK)
            block = torch.minimum(current[None, s:e], dist[:, s:e], out=buf[:, : e - s])
            cand += block.mul_(weights[None, s:e]).double().sum(1)
        cand = reduce(cand, "summing the candidate costs of subset selection")
        barred = selected + background + [int(s) for s in exclude if int(s) not in selected]
        if barred:
            cand[barred] = float("inf")
        if not torch.isfinite(cand).any():  # every state barred: fewer than k picks
            break
        j = int(torch.argmin(cand))
        selected.append(j)
        costs.append(float(cand[j]))
        torch.minimum(current, dist[j], out=current)

    chosen = torch.tensor(selected + background)
    nearest = chosen[dist[chosen].argmin(dim=0)].numpy() if N else np.zeros(0, np.int64)  # [N]
    labels = np.split(nearest, np.cumsum(lengths)[:-1]) if len(lengths) else []
    return Selection(selected=selected, costs=costs, labels=labels)


def _all_reduce(tensor: torch.Tensor, what: str) -> torch.Tensor:
    return dist.all_reduce_sum(tensor, what=what)
