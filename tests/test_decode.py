"""Tests of procl.decode: the Viterbi decodings against brute force on small cases, and
procl's task decision (classifier plus the key-steps' fit)."""
from __future__ import annotations

import itertools

import numpy as np

from procl.decode import (
    bias_background, decide_task, decode_states, fit_bound, path_fit, task_posterior, viterbi, viterbi_ordered,
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
    assert np.allclose(post, np.exp([np.log(0.6) - 20, np.log(0.4) - 10]) / np.exp([np.log(0.6) - 20, np.log(0.4) - 10]).sum())


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
