"""The training loss L = L_rank + lambda * L_ce (Eqs. 6-7, Sec. 2.2), over a batch of videos."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from procl.model.masks import frame_mean


def ranking_loss(s: torch.Tensor, r: torch.Tensor, mask: torch.Tensor | None = None,
                 margin: float = 1.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """(1/T) sum_t sum_{m != r_t} max(0, margin - s_{r_t,t} + s_{m,t})  (Eq. 7) per video,
    over its real frames, then the mean over the batch.

    s: [B, T, M] KLN scores; r: [B, T] pseudo-labels from subset selection (any state
    at padded frames); mask: [B, T] real frames (None: all); weight: [B, T] each
    frame's weight (None: 1), e.g. more for frames a person labelled (procl.refine).
    """
    target = s.gather(2, r[..., None])  # [B, T, 1]
    hinge = torch.relu(margin - target + s)  # [B, T, M]
    hinge = hinge.scatter(2, r[..., None], 0.0)  # drop m = r_t
    per_frame = hinge.sum(2)
    if weight is not None:
        per_frame = per_frame * weight
    return frame_mean(per_frame, mask).mean()  # per video [B, 1], then the batch


def classification_loss(logits: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
    """-log p_c (Eq. 6's L_ce), the mean over the batch. logits: [B, A]; task: [B] class indices."""
    return F.cross_entropy(logits, task)
