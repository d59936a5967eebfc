import itertools

import numpy as np
import pytest

from procl import ProclError
from procl.selection import TIME_BINS, background_over_time, fit_states, nearest_state, subset_selection


def reference_cost(videos, centers, S):
    """J_a(S) of Eq. 2 written as plainly as possible."""
    total = 0.0
    for v in videos:
        s = 0.0
        for f in v:
            s += min(np.linalg.norm(f - centers[i]) for i in S)
        total += s / len(v)
    return total


def reference_greedy(videos, centers, k):
    S, costs = [], []
    for _ in range(k):
        best, best_cost = None, None
        for j in range(len(centers)):
            if j in S:
                continue
            c = reference_cost(videos, centers, S + [j])
            if best_cost is None or c < best_cost - 1e-9:
                best, best_cost = j, c
        S.append(best)
        costs.append(best_cost)
    return S, costs


@pytest.mark.parametrize("seed", range(5))
def test_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    videos = [rng.normal(size=(int(rng.integers(3, 12)), 4)).astype(np.float32) for _ in range(4)]
    centers = rng.normal(size=(9, 4)).astype(np.float32)
    sel = subset_selection(videos, centers, 5)
    S, costs = reference_greedy(videos, centers, 5)
    assert sel.selected == S
    np.testing.assert_allclose(sel.costs, costs, rtol=1e-4)
    # pseudo-labels: each frame's nearest selected state
    for v, lab in zip(videos, sel.labels):
        d = np.linalg.norm(v[:, None] - centers[S][None], axis=2)
        np.testing.assert_array_equal(lab, np.array(S)[d.argmin(1)])


def test_cost_never_rises_and_k_equals_M_reaches_assignment_cost():
    rng = np.random.default_rng(0)
    videos = [rng.normal(size=(20, 3)).astype(np.float32) for _ in range(3)]
    centers = rng.normal(size=(6, 3)).astype(np.float32)
    sel = subset_selection(videos, centers, 6)
    assert all(b <= a + 1e-6 for a, b in zip(sel.costs, sel.costs[1:]))
    full = sum(np.linalg.norm(v[:, None] - centers[None], axis=2).min(1).mean() for v in videos)
    assert sel.costs[-1] == pytest.approx(full, rel=1e-5)
    # and greedy's first pick is the best single state
    singles = [reference_cost(videos, centers, [j]) for j in range(6)]
    assert sel.selected[0] == int(np.argmin(singles))


def test_greedy_is_optimal_on_separated_clusters():
    rng = np.random.default_rng(1)
    true = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)
    videos = [np.concatenate([c + 0.1 * rng.normal(size=(5, 2)) for c in true]).astype(np.float32)]
    centers = np.concatenate([true, true + 30]).astype(np.float32)  # 3 good, 3 far-away states
    sel = subset_selection(videos, centers, 3)
    assert sorted(sel.selected) == [0, 1, 2]
    best = min(itertools.combinations(range(6), 3), key=lambda S: reference_cost(videos, centers, list(S)))
    assert sorted(best) == [0, 1, 2]


def test_bad_k():
    centers = np.zeros((4, 2), np.float32)
    with pytest.raises(ProclError, match="k=5"):
        subset_selection([np.zeros((3, 2), np.float32)], centers, 5)
    with pytest.raises(ProclError, match="k=0"):
        subset_selection([np.zeros((3, 2), np.float32)], centers, 0)


def test_kmeans_refresh_keeps_center_identity():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(loc=c, scale=0.3, size=(200, 2)) for c in ([0, 0], [5, 5], [0, 5], [5, 0])])
    c1 = fit_states(X, 4, seed=0)
    # shift the data a little: center m must still be the one nearest its old self
    c2 = fit_states(X + 0.2, 4, init=c1, seed=1)
    assert (nearest_state(c1 + 0.2, c2) == np.arange(4)).all()
    with pytest.raises(ProclError, match="M=50"):
        fit_states(X[:10], 50)


def procedure_states(n_videos: int, seed: int = 0) -> tuple[list, list]:
    """Each video's states [T] and relative times [T]: steps 0-3 in order, each at its own
    point of the procedure (a little jitter), and between them state 4, the idle hand, all
    along."""
    rng = np.random.default_rng(seed)
    states, times = [], []
    for v in range(n_videos):
        T = int(rng.integers(60, 90))
        s = np.full(T, 4)
        for step in range(4):
            start = int((0.1 + 0.2 * step + rng.uniform(-0.03, 0.03)) * T)
            s[start:start + int(0.06 * T)] = step
        states.append(s)
        times.append((np.arange(T) + 0.5) / T)
    return states, times


def test_background_over_time_is_what_every_part_of_the_procedure_shows():
    states, times = procedure_states(12)
    assert background_over_time(np.concatenate(states), np.concatenate(times), 12, M=6) == [4]
    # fewer videos than tenths: a step could fill them by chance, so none is called background
    assert background_over_time(np.concatenate(states[:TIME_BINS - 1]), np.concatenate(times[:TIME_BINS - 1]),
                                TIME_BINS - 1, M=6) == []
    assert background_over_time(np.zeros(0, int), np.zeros(0), 12, M=6) == []
