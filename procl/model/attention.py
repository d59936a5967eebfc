"""Spatial attention network, SAN (Eq. 1, Sec. 2.1.1), and what procl feeds it.

Batched: y [B, T, R, D] holds B videos padded to T frames, mask [B, T] their real
frames (None: all real); every statistic over a video's frames is over its real ones.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from procl.model.masks import frame_count, frame_mean, frames_of, zero_padding


def center_regions(y: torch.Tensor, mask: torch.Tensor | None = None,
                   median: torch.Tensor | None = None) -> torch.Tensor:
    """y [B, T, R, D] minus each cell's median over its video (procl's addition).

    With a still camera, what a cell shows for most of a video is scene: the wall, the
    table, objects lying there untouched. Subtracting it (background subtraction at the
    level of region features) leaves in each cell what changes there, the hands and
    the objects they move. With R = 1 (precomputed features) it is per-video median
    centring. The median rather than the mean, so that a step held in one place for
    part of the video is not half-subtracted. Padded frames are left out of the
    median (NaN to `nanmedian`, which then picks the same element as `median` over the
    real frames) and come out 0. `median` [B, 1, R, D]: each video's
    `median_over_frames` over its own frames, when the caller kept them (they depend on
    the input alone: the training loop computes them once).
    """
    if median is None and mask is None:
        median = median_over_frames(y)
    elif median is None:
        median = y.masked_fill(~frames_of(mask, y), float("nan")).nanmedian(1, keepdim=True).values
    return zero_padding(y - median, mask)


def median_over_frames(y: torch.Tensor) -> torch.Tensor:
    """y.median(1, keepdim=True).values (the lower median of each column over dim 1), by
    numpy where it can: each column's frames made a contiguous row and sorted (numpy's
    vectorised sort beats its selection on rows of a few hundred), the same element,
    about 5x faster on one thread than torch's median over a middle dimension, which
    was most of a 100-frame video's forward pass. Returned contiguous: subtracting a
    strided median from y took 6x as long. torch's own where a gradient, another
    device or NaN (which torch's median returns and numpy would sort away) is involved."""
    if (y.device.type != "cpu" or y.requires_grad or y.dtype not in (torch.float32, torch.float64)
            or y.dim() < 2 or y.shape[1] == 0):
        return y.median(1, keepdim=True).values
    a = y.numpy()
    if np.isnan(a.max()):  # max is NaN when any element is
        return y.median(1, keepdim=True).values
    frames_last = np.moveaxis(a, 1, -1).copy()  # [B, ..., T]
    frames_last.sort(axis=-1)
    kth = (y.shape[1] - 1) // 2
    return torch.from_numpy(np.ascontiguousarray(np.expand_dims(frames_last[..., kth], 1)))


def change_energy(y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T, R, D] -> [B, T, R]: each cell's feature norm, standardised over its video.

    After `center_regions` the norm of a cell's feature says how much the cell differs
    from what it usually shows; standardising (zero mean, unit spread over all cells and
    real frames of the video) makes it independent of the backbone's scale.
    """
    e = y.norm(dim=3)  # [B, T, R]
    if mask is None:
        return (e - e.mean((1, 2), keepdim=True)) / (e.std((1, 2), keepdim=True) + 1e-6)
    mean = frame_mean(e, mask, (1, 2))  # [B, 1, 1]
    n = frame_count(e, mask)[:, None, None] * e.shape[2]  # cells of the real frames
    std = (frame_mean((e - mean).square(), mask, (1, 2)) * n / (n - 1)).sqrt()  # unbiased, as torch.std
    return zero_padding((e - mean) / (std + 1e-6), mask)


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

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # y: [B, T, R, D] region features, mask: [B, T] real frames (None: all)
        B, T, R, _ = y.shape
        if self.enabled and R > 1:
            logits = self.score(y).squeeze(-1)  # [B, T, R]
            if self.prior:
                logits = logits + self.prior * change_energy(y, mask)
            alpha = torch.softmax(logits, dim=2)  # [B, T, R]: over the cells of each frame
        else:
            alpha = y.new_full((B, T, R), 1.0 / R)  # [B, T, R]
        f = torch.einsum("btr,btrd->btd", alpha, y)  # [B, T, D]
        return zero_padding(f, mask), zero_padding(alpha, mask)
