"""procl.task_head: the state classifier (a logistic regression on a video's state shares)."""
from __future__ import annotations

import numpy as np

from procl import runs
from procl.task_head import TaskHead, fit_task_head, state_summary


def _videos(rng: np.random.Generator, n_tasks: int, per_task: int, M: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    """Videos whose frames mostly sit in their task's own states (task a: states 3a..3a+2),
    the rest in states every task shares (the last three): p [T, M] per video."""
    videos, labels = [], []
    for a in range(n_tasks):
        for _ in range(per_task):
            T = int(rng.integers(30, 60))
            own = rng.random(T) < 0.6
            state = np.where(own, 3 * a + rng.integers(0, 3, T), M - 1 - rng.integers(0, 3, T))
            p = np.full((T, M), 0.02)
            p[np.arange(T), state] = 1.0
            videos.append(p / p.sum(1, keepdims=True))
            labels.append(a)
    return videos, np.array(labels)


def test_state_summary_is_the_log_of_each_states_share():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(state_summary(p), np.log(np.array([0.5, 0.5, 0.0]) + 1e-4))


def test_the_state_classifier_tells_tasks_apart_by_the_states_they_use():
    rng = np.random.default_rng(0)
    for n_tasks in (2, 3):  # two tasks: scikit-learn's one-row form, widened to [2, M]
        train, y = _videos(rng, n_tasks, 6)
        head = fit_task_head(np.stack([state_summary(p) for p in train]), y, n_tasks)
        assert head.weight.shape == (n_tasks, 12) and head.bias.shape == (n_tasks,)
        test, y_test = _videos(rng, n_tasks, 5)
        logp = np.stack([head.logprob(p) for p in test])  # [N, A]
        np.testing.assert_allclose(np.exp(logp).sum(1), 1.0, atol=1e-9)
        assert (logp.argmax(1) == y_test).all()


def test_no_state_classifier_when_a_task_has_no_training_video():
    train, y = _videos(np.random.default_rng(1), 2, 4)
    assert fit_task_head(np.stack([state_summary(p) for p in train]), y, 3) is None


def test_state_classifiers_round_trip_through_the_run_folder(tmp_path):
    heads = {"all": TaskHead(np.arange(6.0).reshape(2, 3), np.array([0.5, -0.5]))}
    assert runs.load_task_heads(tmp_path) == {}  # runs without one: the network's classifier decides
    runs.save_task_heads(tmp_path, heads)
    back = runs.load_task_heads(tmp_path)
    np.testing.assert_array_equal(back["all"].weight, heads["all"].weight)
    np.testing.assert_array_equal(back["all"].bias, heads["all"].bias)
    (tmp_path / "task_head.npz").write_bytes(b"not an npz")
    try:
        runs.load_task_heads(tmp_path)
    except runs.ProclError as err:
        assert "task_head.npz" in str(err) and "delete it" in str(err)
    else:
        raise AssertionError("a damaged task_head.npz must be reported")
