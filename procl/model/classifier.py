"""Task classification network with learnable key-step pooling, TCN (Eqs. 4-5, Sec. 2.1.4).

Batched: f [B, T, D] and p [B, T, M] of B videos padded to T frames, with p = 0 at
padded frames (ProcedureNet zeroes them), so sums over time are over real frames.
"""
from __future__ import annotations

import torch
from torch import nn

from procl.model.masks import frame_mean


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [B, n, m] @ b [B, m, k] per video. One video goes through the 2-D matmul, whose
    backward sums in another order than the batched one: a one-video step then stays
    bit-for-bit the step of the one-video network procl had before batches."""
    return (a[0] @ b[0])[None] if a.shape[0] == 1 else a @ b


def keystep_features(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """h_m = sum_t p_mt f_t / sum_t p_mt: the key-step based features [B, M, D] (Eq. 4).

    The paper calls h_m "the weighted average of the frame attention features, where
    the weight of each frame is the probability that it belongs to the latent state m";
    dividing by the weights' sum makes h_m independent of the video's length.
    f: [B, T, D], p: [B, T, M] (0 at padded frames).
    """
    return _bmm(p.transpose(1, 2), f) / (p.sum(1)[..., None] + 1e-6)  # [B, M, D]


def occupancy(p: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """u_m = M * mean_t p_mt over the real frames: how much of the video each state
    takes, 1 on average. [B, T, M] -> [B, M]."""
    return frame_mean(p, mask).squeeze(1) * p.shape[2]


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

    def forward(self, f: torch.Tensor, p: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        # f: [B, T, D], p: [B, T, M] (0 at padded frames), mask: [B, T] real frames (None: all)
        h = keystep_features(f, p)  # [B, M, D]
        if self.learnable_pooling:
            beta = torch.softmax(self.pool_score(h).squeeze(-1), dim=1)  # [B, M]
        else:
            beta = h.new_full(h.shape[:2], 1.0 / h.shape[1])  # [B, M]
        h_bar = _bmm(beta[:, None, :], h).squeeze(1)  # [B, D]
        logits = self.fc(h_bar)  # [B, A]
        if self.fc_occupancy is not None:
            logits = logits + self.fc_occupancy(occupancy(p, mask))
        return logits, beta  # [B, A], [B, M]
