"""The combined network: SAN -> KLN -> TCN (Fig. 1 of the paper)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from procl.model.attention import SpatialAttention
from procl.model.classifier import TaskClassifier
from procl.model.localizer import KeyStepLocalizer


@dataclass
class NetConfig:
    D: int  # region feature size
    M: int  # latent states
    n_tasks: int
    width: int = 128  # KLN channels
    attention: bool = True  # False: mean over cells ("no attention" ablation)
    learnable_pooling: bool = True  # False: uniform beta (ablation)
    classifier: bool = True  # False in the single-task setting (lambda = 0, no TCN)
    dropout: float = 0.1
    center: bool = True  # subtract each video's mean attention feature (see ProcedureNet.attend)


@dataclass
class NetOutput:
    alpha: torch.Tensor  # [T, R] spatial attention
    f: torch.Tensor  # [T, D] attention features
    s: torch.Tensor  # [T, M] KLN scores
    p: torch.Tensor  # [T, M] state probabilities (Eq. 3)
    logits: torch.Tensor | None  # [A] task scores
    beta: torch.Tensor | None  # [M] pooling weights (Eq. 5)


class ProcedureNet(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.san = SpatialAttention(cfg.D, enabled=cfg.attention)
        self.kln = KeyStepLocalizer(cfg.D, cfg.M, width=cfg.width, dropout=cfg.dropout)
        self.tcn = (
            TaskClassifier(cfg.D, cfg.n_tasks, learnable_pooling=cfg.learnable_pooling)
            if cfg.classifier
            else None
        )

    def attend(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[T, R, D] -> attention features [T, D] and attention [T, R].

        With `center`, each video's mean feature is subtracted: what stays the same all
        through a video (its scene, lighting, still clutter) cannot define a latent state,
        so k-means and subset selection see what changes, the key-steps. (Feeding the TCN
        the uncentred features instead was tried and scored lower on the built-in set.)
        """
        f, alpha = self.san(y)
        if self.cfg.center:
            f = f - f.mean(0, keepdim=True)
        return f, alpha

    def forward(self, y: torch.Tensor) -> NetOutput:
        # y: [T, R, D] region features of one video
        f, alpha = self.attend(y)
        s = self.kln(f)
        p = torch.softmax(s, dim=1)
        logits = beta = None
        if self.tcn is not None:
            logits, beta = self.tcn(f, p)
        return NetOutput(alpha=alpha, f=f, s=s, p=p, logits=logits, beta=beta)
