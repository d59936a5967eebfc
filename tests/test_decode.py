"""Tests of procl.decode: the Viterbi decodings against brute force on small cases, and
procl's task decision (classifier plus the key-steps' fit)."""
from __future__ import annotations

import itertools

import numpy as np

from procl.decode import bias_background, decode_states, path_fit, task_posterior, viterbi, viterbi_ordered


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
