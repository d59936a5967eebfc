"""The state classifier: a video's task from how much of it each latent state takes
(procl's addition; the `state_classifier` lever).

The paper decides a video's task with the network's classifier (Eq. 5: key-step pooled
attention features, trained together with the localizer while the states move under it).
After training, the states are fixed, and which states a video spends its time in is a
direct summary of the key-steps it goes through. A multinomial logistic regression on
that summary, fit to convergence on the training videos (they carry task labels, the
only labels the method uses), tells tasks apart better than the network's classifier on
development sets: test accuracy 94.4 -> 99.1 (6 tasks x 20 videos) and 90.0 -> 95.0 (a
harder set), 3 seeds each (docs/method.md, "Choices"). It is fit once, in `procl.evaluate.finish_run`,
and saved in the run (task_head.npz); the network is not changed.

The summary is z_m = log(mean_t p_mt + EPS): the log keeps rare states (a short key-step)
on the scale of common ones (background); EPS bounds it for states the video never uses.
On the plain shares the regression did no better than the network (87-90 % on the same
development sets).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-4  # floor of a state's share in `state_summary`
C = 1.0  # inverse L2 strength of the logistic regression (scikit-learn's default)


@dataclass
class TaskHead:
    """log P(task | video) = log_softmax(weight @ z + bias), z = `state_summary` of the video."""

    weight: np.ndarray  # [A, M]
    bias: np.ndarray  # [A]

    def logprob(self, p: np.ndarray) -> np.ndarray:
        """Log-probabilities [A] of the tasks for one video's state probabilities p [T, M]."""
        logits = self.weight @ state_summary(p) + self.bias  # [A]
        return logits - np.logaddexp.reduce(logits)


def state_summary(p: np.ndarray) -> np.ndarray:
    """z_m = log(mean_t p_mt + EPS): how much of the video each state takes, on a log
    scale. p [T, M] -> [M]."""
    return np.log(np.asarray(p, dtype=np.float64).mean(0) + EPS)


def fit_task_head(summaries: np.ndarray, labels: np.ndarray, n_tasks: int) -> TaskHead | None:
    """The logistic regression of task `labels` [N] (0..n_tasks-1) on `summaries` [N, M]
    (`state_summary` of N training videos); None when some task has no video (its
    probability could not be learned: the network's classifier decides then)."""
    from sklearn.linear_model import LogisticRegression  # imported here: it takes seconds

    labels = np.asarray(labels)
    if n_tasks < 2 or len(np.unique(labels)) < n_tasks:
        return None
    lr = LogisticRegression(C=C, max_iter=5000).fit(np.asarray(summaries, dtype=np.float64), labels)
    weight, bias = lr.coef_, lr.intercept_
    if n_tasks == 2:  # scikit-learn keeps one row for two classes: the logit of class 1
        weight = np.concatenate([np.zeros_like(weight), weight])
        bias = np.concatenate([np.zeros_like(bias), bias])
    return TaskHead(weight.astype(np.float64), bias.astype(np.float64))
