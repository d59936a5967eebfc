"""Task classification network with learnable key-step pooling, TCN (Eqs. 4-5, Sec. 2.1.4)."""
from __future__ import annotations

import torch
from torch import nn


def keystep_features(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """h_m = sum_t p_mt f_t / sum_t p_mt: the key-step based features [M, D] (Eq. 4).

    The paper calls h_m "the weighted average of the frame attention features, where
    the weight of each frame is the probability that it belongs to the latent state m";
    dividing by the weights' sum makes h_m independent of the video's length.
    f: [T, D], p: [T, M].
    """
    return (p.T @ f) / (p.sum(0)[:, None] + 1e-6)  # [M, D]


def occupancy(p: torch.Tensor) -> torch.Tensor:
    """u_m = M * mean_t p_mt: how much of the video each state takes, 1 on average. [T, M] -> [M]."""
    return p.mean(0) * p.shape[1]


class TaskClassifier(nn.Module):
    """beta_m = softmax_m(m_beta(h_m)), h_bar = sum_m beta_m h_m, logits = W h_bar (Eq. 5).

    m_beta is a one-hidden-layer tanh MLP. With `learnable_pooling=False` beta is uniform
    (the paper's ablation without learnable pooling).

    `occupancy_states` = M > 0 adds procl's occupancy term: logits += V u with u the
    states' `occupancy`. h_m is a weighted average, so it says what state m looks like
    in the video but not whether the video spends any time in it; which key-steps a
    video goes through is what tells tasks apart, and u says it directly.
    """

    def __init__(self, D: int, n_tasks: int, hidden: int | None = None, learnable_pooling: bool = True,
                 occupancy_states: int = 0):
        super().__init__()
        self.learnable_pooling = learnable_pooling
        hidden = hidden or D
        self.pool_score = nn.Sequential(nn.Linear(D, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.fc = nn.Linear(D, n_tasks)
        self.fc_occupancy = nn.Linear(occupancy_states, n_tasks) if occupancy_states else None

    def forward(self, f: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # f: [T, D], p: [T, M]
        h = keystep_features(f, p)  # [M, D]
        if self.learnable_pooling:
            beta = torch.softmax(self.pool_score(h).squeeze(-1), dim=0)  # [M]
        else:
            beta = h.new_full((h.shape[0],), 1.0 / h.shape[0])  # [M]
        h_bar = beta @ h  # [D]
        logits = self.fc(h_bar)  # [A]
        if self.fc_occupancy is not None:
            logits = logits + self.fc_occupancy(occupancy(p))
        return logits, beta  # [A], [M]
