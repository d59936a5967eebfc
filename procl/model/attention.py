"""Spatial attention network, SAN (Eq. 1, Sec. 2.1.1)."""
from __future__ import annotations

import torch
from torch import nn


class SpatialAttention(nn.Module):
    """f_t = sum_r alpha_r(y_tr) y_tr, alpha = softmax_r(m_alpha(y_tr))  (Eq. 1).

    m_alpha is a one-hidden-layer tanh MLP (hidden size D, as the paper's Sec. 3.1).
    With `enabled=False` alpha is uniform: the mean over cells (the paper's "no
    attention" ablation). With R = 1 the softmax over one cell is 1: the identity.
    """

    def __init__(self, D: int, hidden: int | None = None, enabled: bool = True):
        super().__init__()
        self.enabled = enabled
        hidden = hidden or D
        self.score = nn.Sequential(nn.Linear(D, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # y: [T, R, D] region features of one video
        T, R, _ = y.shape
        if self.enabled and R > 1:
            alpha = torch.softmax(self.score(y).squeeze(-1), dim=1)  # [T, R]
        else:
            alpha = y.new_full((T, R), 1.0 / R)  # [T, R]
        f = torch.einsum("tr,trd->td", alpha, y)  # [T, D]
        return f, alpha
