"""Tests of procl.decode.viterbi against brute force on small cases."""
from __future__ import annotations

import itertools

import numpy as np

from procl.decode import viterbi


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
