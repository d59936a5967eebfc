"""Spatial attention network, SAN (Eq. 1, Sec. 2.1.1), and what procl feeds it."""
from __future__ import annotations

import torch
from torch import nn


def center_regions(y: torch.Tensor) -> torch.Tensor:
    """y [T, R, D] minus each cell's median over the video (procl's addition).

    With a still camera, what a cell shows for most of a video is scene: the wall, the
    table, objects lying there untouched. Subtracting it (background subtraction at the
    level of region features) leaves in each cell what changes there, the hands and
    the objects they move. With R = 1 (precomputed features) it is per-video median
    centring. The median rather than the mean, so that a step held in one place for
    part of the video is not half-subtracted.
    """
    return y - y.median(0, keepdim=True).values


def change_energy(y: torch.Tensor) -> torch.Tensor:
    """[T, R, D] -> [T, R]: each cell's feature norm, standardised over the video.

    After `center_regions` the norm of a cell's feature says how much the cell differs
    from what it usually shows; standardising (zero mean, unit spread over all cells and
    frames of the video) makes it independent of the backbone's scale.
    """
    e = y.norm(dim=2)  # [T, R]
    return (e - e.mean()) / (e.std() + 1e-6)


class SpatialAttention(nn.Module):
    """f_t = sum_r alpha_r(y_tr) y_tr, alpha = softmax_r(m_alpha(y_tr) + prior * z_tr)  (Eq. 1).

    m_alpha is a one-hidden-layer tanh MLP (hidden size D, as the paper's Sec. 3.1).
    `prior` > 0 adds procl's change prior: the standardised change energy z of each
    cell (`change_energy`), so that attention starts on what moves and m_alpha learns
    from there; the paper's SAN is prior = 0. Trained from the ranking loss alone, the
    SAN can lower that loss by attending to cells that never change (constant features
    are trivially "predictable"); the prior keeps it on the action.
    With `enabled=False` alpha is uniform: the mean over cells (the paper's "no
    attention" ablation). With R = 1 the softmax over one cell is 1: the identity.
    """

    def __init__(self, D: int, hidden: int | None = None, enabled: bool = True, prior: float = 0.0):
        super().__init__()
        self.enabled = enabled
        self.prior = prior
        hidden = hidden or D
        self.score = nn.Sequential(nn.Linear(D, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # y: [T, R, D] region features of one video
        T, R, _ = y.shape
        if self.enabled and R > 1:
            logits = self.score(y).squeeze(-1)  # [T, R]
            if self.prior:
                logits = logits + self.prior * change_energy(y)
            alpha = torch.softmax(logits, dim=1)  # [T, R]
        else:
            alpha = y.new_full((T, R), 1.0 / R)  # [T, R]
        f = torch.einsum("tr,trd->td", alpha, y)  # [T, D]
        return f, alpha
