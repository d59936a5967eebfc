"""Tests of procl.decode: the Viterbi decodings against brute force on small cases, and
procl's task decision (classifier plus the key-steps' fit)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from procl import ProclError
from procl.decode import (
    bias_background,
    decide_task,
    decode_states,
    decode_states_batch,
    fit_bound,
    keep_apart,
    labelled_as,
    merge_groups,
    merge_maps,
    path_fit,
    relabel,
    state_confusion,
    state_contiguity,
    task_posterior,
    viterbi,
    viterbi_ordered,
    viterbi_ordered_batch,
)


def _score(logp: np.ndarray, path, cost: float) -> float:
    return sum(logp[t, z] for t, z in enumerate(path)) - cost * sum(a != b for a, b in zip(path, path[1:]))


def test_viterbi_is_optimal_on_small_cases():
    rng = np.random.default_rng(0)
    for _ in range(150):
        T, K = int(rng.integers(1, 7)), int(rng.integers(1, 4))
        logp, cost = rng.normal(size=(T, K)), float(rng.uniform(0, 3))
        best = max(_score(logp, z, cost) for z in itertools.product(range(K), repeat=T))
        assert abs(_score(logp, viterbi(logp, cost), cost) - best) < 1e-9


def test_zero_cost_is_the_argmax_and_a_high_cost_one_label():
    logp = np.log(np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]]))
    assert viterbi(logp, 0.0).tolist() == logp.argmax(1).tolist() == [0, 1, 0, 1, 1]
    assert viterbi(logp, 100.0).tolist() == [0, 0, 0, 0, 0]  # total log-prob is higher for 0
    assert viterbi(np.zeros((0, 3)), 1.0).tolist() == []


def _ordered_ok(path, k: int) -> bool:
    """Key-steps (0..k-1) each in one run, in increasing order; k is background."""
    runs = [z for i, z in enumerate(path) if z != k and (i == 0 or path[i - 1] != z)]
    return runs == sorted(set(runs))


def test_viterbi_ordered_is_optimal_on_small_cases():
    rng = np.random.default_rng(1)
    for _ in range(150):
        T, k = int(rng.integers(1, 7)), int(rng.integers(1, 4))
        scores, bg, cost = rng.normal(size=(T, k)), rng.normal(size=T), float(rng.choice([0.0, rng.uniform(0, 2)]))
        emit = np.concatenate([scores, bg[:, None]], 1)
        best = max(_score(emit, z, cost) for z in itertools.product(range(k + 1), repeat=T) if _ordered_ok(z, k))
        z = viterbi_ordered(scores, bg, cost).tolist()
        assert _ordered_ok(z, k) and abs(_score(emit, z, cost) - best) < 1e-9


def test_task_posterior_weighs_the_key_steps_fit():
    logprob = np.log([0.6, 0.4])
    assert np.allclose(task_posterior(logprob, np.array([-5.0, -1.0]), 0.0), [0.6, 0.4])  # weight 0: the classifier
    post = task_posterior(logprob, np.array([-2.0, -1.0]), 10.0)  # task 1 fits 1 nat per frame better
    assert post.argmax() == 1 and abs(post.sum() - 1) < 1e-12
    want = np.exp([np.log(0.6) - 20, np.log(0.4) - 10])
    assert np.allclose(post, want / want.sum())


def test_path_fit_scores_the_decoded_labels():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.3, 0.6]])
    logp = np.log(p)
    labels = decode_states(logp, [0, 1], background=[2])  # per-frame argmax: 0, 1, background
    assert labels.tolist() == [0, 1, -1]
    assert np.isclose(path_fit(logp, labels, [2]), np.log([0.7, 0.8, 0.6]).mean())
    # a task whose key-steps are states 2 and 0 fits these frames worse than one with 0 and 1
    assert path_fit(logp, decode_states(logp, [2, 0]), ()) < path_fit(logp, decode_states(logp, [0, 1]), ())


def test_background_bias_moves_the_background_threshold():
    logp = np.log(np.array([[0.5, 0.1, 0.4], [0.3, 0.1, 0.6], [0.1, 0.1, 0.8]]))  # state 2 is background
    assert bias_background(logp, [2], 0.0) is logp and bias_background(logp, [], 5.0) is logp
    z = [decode_states(bias_background(logp, [2], b), [0, 1], [2]).tolist() for b in (0.0, 1.0, 2.5)]
    assert z == [[0, -1, -1], [0, 0, -1], [0, 0, 0]]  # log(0.6/0.3) = 0.69, log(0.8/0.1) = 2.08
    assert np.allclose(logp[:, 2], np.log([0.4, 0.6, 0.8]))  # the input is left alone


def test_task_decision_decodes_only_the_tasks_that_can_win():
    """decide_task: the same argmax as decoding every task, probabilities within A x 2e-9,
    fit_bound never below a decoded path's fit, and far-off tasks left undecoded."""
    rng = np.random.default_rng(3)
    skipped = 0
    for case in range(200):
        T, M, A, k = int(rng.integers(1, 30)), 12, int(rng.integers(2, 7)), 3
        logp = np.log(rng.dirichlet(np.full(M, 0.3), size=T))  # [T, M]
        bg = [10, 11] if case % 2 else []
        sel = [list(rng.choice(10, size=k, replace=False)) for _ in range(A)]
        logprob = np.log(np.maximum(rng.dirichlet(np.full(A, 0.5 if case % 3 else 0.05)), 1e-30))  # as predict_video
        weight = float(rng.choice([1.0, 10.0, 100.0]))
        fits = np.array([path_fit(logp, decode_states(logp, s, bg, ordered=True), bg) for s in sel])
        bound = np.array([fit_bound(logp, s, bg) for s in sel])
        assert np.all(bound >= fits - 1e-12)
        calls = []
        probs, decoded = decide_task(logprob, lambda a: calls.append(a) or fits[a], bound, weight)
        want = task_posterior(logprob, fits, weight)
        assert int(probs.argmax()) == int(want.argmax()) and sorted(calls) == sorted(decoded)
        assert np.allclose(probs, want, rtol=0, atol=A * 2.1e-9)
        skipped += A - len(decoded)
    assert skipped > 0  # the cap does leave tasks out


def _viterbi_frame_by_frame(logp: np.ndarray, switch_cost: float) -> np.ndarray:
    """`viterbi` as first written: back-pointers kept in the frame loop (the reference)."""
    T, K = logp.shape
    back, score, labels = np.zeros((T, K), dtype=np.int64), logp[0].copy(), np.arange(K)
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


def _viterbi_ordered_frame_by_frame(scores: np.ndarray, bgs: np.ndarray | None, switch_cost: float) -> np.ndarray:
    """`viterbi_ordered` as first written (lattice: key-steps 0..k-1, then background
    before any step, after step 0, ...; back-pointers kept in the frame loop)."""
    T, k = scores.shape
    bgs = np.full(T, -np.inf) if bgs is None else bgs
    n = 2 * k + 1
    emit = np.concatenate([scores, np.repeat(bgs[:, None], k + 1, 1)], 1)
    score = np.full(n, -np.inf)
    score[:k], score[k] = scores[0], bgs[0]
    back, idx = np.zeros((T, n), dtype=np.int64), np.arange(n)
    for t in range(1, T):
        new, arg = score.copy(), idx.copy()
        done = np.maximum(score[:k], score[k + 1:])
        done_arg = np.where(score[:k] >= score[k + 1:], np.arange(k), np.arange(k) + k + 1)
        prev = np.concatenate([[score[k]], done[:-1]])
        prev_arg = np.concatenate([[k], done_arg[:-1]])
        run_max = np.maximum.accumulate(prev)
        first = np.maximum.accumulate(np.where(prev > np.concatenate([[-np.inf], run_max[:-1]]), np.arange(k), 0))
        enter = run_max - switch_cost
        better = enter > new[:k]
        new[:k], arg[:k] = np.where(better, enter, new[:k]), np.where(better, prev_arg[first], arg[:k])
        into_bg = score[:k] - switch_cost
        better = into_bg > new[k + 1:]
        new[k + 1:], arg[k + 1:] = np.where(better, into_bg, new[k + 1:]), np.where(better, np.arange(k), arg[k + 1:])
        back[t] = arg
        score = new + emit[t]
    path = np.empty(T, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return np.where(path < k, path, k)


def test_decodings_pick_what_the_frame_by_frame_loops_picked_ties_included():
    """The vectorised decodings (scores in the frame loop, back-pointers afterwards; B
    problems in one loop) give exactly the labels of the frame-by-frame loops, also
    where paths tie (integer scores, switch cost 0)."""
    rng = np.random.default_rng(7)
    for case in range(600):
        T, k, B = int(rng.integers(1, 40)), int(rng.integers(1, 9)), int(rng.integers(1, 4))
        if case % 2:
            scores = rng.integers(-3, 1, size=(B, T, k)).astype(float)
            bg = rng.integers(-3, 1, size=(B, T)).astype(float)
        else:
            scores, bg = rng.normal(size=(B, T, k)), rng.normal(size=(B, T))
        bg = None if case % 5 == 0 else bg
        cost = float(rng.choice([0.0, 0.5, 1.0, 2.0]))
        batch = viterbi_ordered_batch(scores, bg, cost)
        for b in range(B):
            want = _viterbi_ordered_frame_by_frame(scores[b], None if bg is None else bg[b], cost)
            assert batch[b].tolist() == want.tolist()
            assert viterbi_ordered(scores[b], None if bg is None else bg[b], cost).tolist() == want.tolist()
            assert viterbi(scores[b], cost).tolist() == _viterbi_frame_by_frame(scores[b], cost).tolist()
    assert viterbi_ordered(np.zeros((0, 3)), None, 1.0).tolist() == []


def test_decode_states_batch_is_decode_states_of_each():
    rng = np.random.default_rng(8)
    for case in range(100):
        T, M = int(rng.integers(0, 30)), 12
        logp = rng.integers(-3, 1, size=(T, M)).astype(float) if case % 2 else rng.normal(size=(T, M))
        bg = [10, 11] if case % 3 else []
        problems = [(logp if i % 2 else -logp, list(rng.choice(10, size=int(rng.choice([3, 4])), replace=False)),
                     bool(i % 3)) for i in range(5)]
        for cost in (0.0, 1.0):
            got = decode_states_batch(problems, bg, cost)
            for (lp, sel, ordered), labels in zip(problems, got):
                assert labels.tolist() == decode_states(lp, sel, bg, cost, ordered=ordered).tolist()


def test_ordered_decoding_refuses_scores_that_are_not_finite():
    scores = np.zeros((4, 2))
    scores[2, 1] = -np.inf
    with pytest.raises(ValueError, match="finite"):
        viterbi_ordered(scores, None, 1.0)
    with pytest.raises(ValueError, match="finite"):
        viterbi_ordered(np.zeros((4, 2)), np.array([0.0, np.nan, 0.0, 0.0]), 1.0)


def test_state_confusion_measures_what_the_network_does_not_tell_apart():
    """C[i, j] averages, over the two states' frames, the other state's probability
    against the chosen one's; unmeasured states (too few frames) are NaN."""
    M = 6
    p = np.full((12, M), 0.01)
    p[:6, 2], p[:6, 4] = 0.6, 0.3  # frames of state 2: state 4 half as probable
    p[6:, 4], p[6:, 2] = 0.8, 0.08  # frames of state 4: state 2 a tenth as probable
    labels = np.array([2] * 6 + [4] * 6)
    C = state_confusion([labels[:5], labels[5:]], [p[:5], p[5:]], [2, 4, 5])
    assert C.shape == (3, 3)
    assert C[0, 1] == pytest.approx(0.5 * (0.5 + 0.1)) and C[1, 0] == C[0, 1]
    assert np.isnan(C[0, 2]) and np.isnan(C[2, 1]) and np.isnan(C[0, 0])  # state 5 has no frames
    assert np.isnan(state_confusion([labels], [p], [2, 4], min_frames=7)[0, 1])


def test_merge_groups_joins_the_states_the_network_confuses():
    states = [31, 4, 24, 9]
    C = np.full((4, 4), 0.01)
    C[1, 2] = C[2, 1] = 0.4  # 4 and 24: one step in two states
    C[0, 3] = C[3, 0] = 0.12
    np.fill_diagonal(C, np.nan)
    assert merge_groups(C, states, 0.1) == {31: 31, 9: 31, 4: 4, 24: 4}  # labelled as the first picked
    assert merge_groups(C, states, 0.2) == {4: 4, 24: 4}
    assert merge_groups(C, states, 0.0) == {} and merge_groups(C, states, 0.5) == {}
    # average linkage: 9 joins {4, 24} when its mean confusion with both (0.16) is enough,
    # not on its confusion with one of them (0.3)
    C[3, 1] = C[1, 3] = 0.3
    C[3, 2] = C[2, 3] = 0.02
    assert merge_groups(C, states, 0.2) == {4: 4, 24: 4}
    assert merge_groups(C, states, 0.15) == {4: 4, 24: 4, 9: 4}
    # a NaN (unmeasured, or named differently by a person) keeps two states apart
    named = keep_apart(C, states, {4: "loosen nuts", 24: "Jack up"})
    assert np.isnan(named[1, 2]) and not np.isnan(C[1, 2])
    assert 24 not in merge_groups(named, states, 0.1)
    assert merge_groups(keep_apart(C, states, {4: "jack up", 24: "Jack up "}), states, 0.2) == {4: 4, 24: 4}
    # ... and so does a group a person split (a refinement's "apart"); states not selected are ignored
    apart = keep_apart(C, states, {}, [[24, 4, 77]])
    assert np.isnan(apart[1, 2]) and np.isnan(apart[2, 1]) and 24 not in merge_groups(apart, states, 0.1)
    assert relabel(np.array([24, -1, 4, 31, 24]), {4: 4, 24: 4}).tolist() == [4, -1, 4, 31, 4]
    # the states a merge map labels as a group's head; none for a member or an unmerged state
    merge = merge_groups(C, states, 0.15)
    assert labelled_as(merge, 4) == [4, 9, 24] and labelled_as(merge, 24) == [] and labelled_as(merge, 31) == []


def test_state_contiguity_tells_a_cut_step_from_two_steps():
    """Two states make one run where nothing (background included) comes between them."""
    videos = [np.array([-1, 3, 3, 5, 5, -1, 8, 8]),  # 3|5 one run; 5, background, 8 not
              np.array([5, 5, 5, -1, 8]),  # 3 absent: 3|5 one run (5 alone); 5 and 8 not
              np.array([3, 3, 8, 8, 5, 5])]  # 3 ... 5 with 8 between
    R = state_contiguity(videos, [3, 5, 8, 9])
    assert R[0, 1] == pytest.approx(2 / 3) and R[1, 0] == R[0, 1]
    assert R[1, 2] == pytest.approx(1 / 3)  # only the last video: 8 then 5 adjacent
    assert R[0, 2] == pytest.approx(2 / 3)  # apart in the first video; 8 alone in the second, 3|8 in the last
    assert R[0, 3] == 1.0  # 9 never occurs: 3 alone is one run
    assert np.isnan(state_contiguity([np.array([-1, -1])], [3, 9])[0, 1])
    # the run condition: confused states that the videos show apart never merge
    C = pair_matrix(0.5, 0.01, 0.01)
    assert merge_groups(C, [3, 5, 8], 0.1, pair_matrix(0.7, 1.0, 1.0)) == {3: 3, 5: 3}
    assert merge_groups(C, [3, 5, 8], 0.1, pair_matrix(0.6, 1.0, 1.0)) == {}
    assert merge_groups(C, [3, 5, 8], 0.1, np.full((3, 3), np.nan)) == {}


def pair_matrix(ab: float, ac: float, bc: float) -> np.ndarray:
    """A symmetric 3 x 3 matrix of three states' pairs, NaN on the diagonal."""
    return np.array([[np.nan, ab, ac], [ab, np.nan, bc], [ac, bc, np.nan]])


def test_a_network_that_confuses_all_its_states_merges_none():
    """Merged pairs must stand out: at least MERGE_STANDOUT times the task's median pair."""
    assert merge_groups(pair_matrix(0.5, 0.4, 0.3), [3, 5, 8], 0.1) == {}  # all confused alike
    assert merge_groups(pair_matrix(0.8, 0.4, 0.3), [3, 5, 8], 0.1) == {3: 3, 5: 3}  # 0.8 >= 2 x 0.4
    assert merge_groups(pair_matrix(0.5, np.nan, np.nan), [3, 5, 8], 0.1) == {}, "one pair: nothing to stand out from"


def test_merge_maps_refuse_the_evidence_of_another_training():
    C, R = pair_matrix(0.5, 0.01, 0.01), np.ones((3, 3))
    evidence = {"confusion": {"t": C}, "contiguity": {"t": R}}
    assert merge_maps(evidence, {"t": [3, 8, 9]}, 0.1) == {"t": {3: 3, 8: 3}}
    assert merge_maps(evidence, {"t": [3, 8, 9]}, 0.0) == {}
    assert merge_maps({"confusion": {"t": C}}, {"t": [3, 8, 9]}, 0.1) == {}, "runs without the run condition: none"
    assert merge_maps({}, {"t": [3, 8, 9]}, 0.1) == {}
    with pytest.raises(ProclError, match="different trainings"):
        merge_maps(evidence, {"t": [3, 8]}, 0.1)
