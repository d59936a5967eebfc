"""The training loss L = L_rank + lambda * L_ce (Eqs. 6-7, Sec. 2.2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ranking_loss(s: torch.Tensor, r: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """(1/T) sum_t sum_{m != r_t} max(0, margin - s_{r_t,t} + s_{m,t})  (Eq. 7, one video).

    s: [T, M] KLN scores; r: [T] pseudo-labels from subset selection.
    """
    target = s.gather(1, r[:, None])  # [T, 1]
    hinge = torch.relu(margin - target + s)  # [T, M]
    hinge = hinge.scatter(1, r[:, None], 0.0)  # drop m = r_t
    return hinge.sum(1).mean()


def classification_loss(logits: torch.Tensor, task: int) -> torch.Tensor:
    """-log p_c for one video (Eq. 6's L_ce). logits: [A]."""
    return F.cross_entropy(logits[None], torch.tensor([task]))
