"""The combined network: SAN -> KLN -> TCN (Fig. 1 of the paper)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from procl.model.attention import SpatialAttention, center_regions
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
    center: bool = False  # subtract each video's mean attention feature (see ProcedureNet.attend)
    region_center: bool = False  # subtract each cell's median over the video first (center_regions)
    attention_prior: float = 0.0  # weight of the change prior in the SAN (SpatialAttention)
    occupancy: bool = False  # the TCN also sees how much of the video each state takes (TaskClassifier)
    time_weight: float = 0.0  # weight of relative time in the teacher's space (ProcedureNet.teacher_space)


@dataclass
class NetOutput:
    alpha: torch.Tensor  # [T, R] spatial attention
    f: torch.Tensor  # [T, D] attention features
    x: torch.Tensor  # [T, D'] the teacher's space: f, plus relative time with time_weight (D' = D + 1)
    s: torch.Tensor  # [T, M] KLN scores
    p: torch.Tensor  # [T, M] state probabilities (Eq. 3)
    logits: torch.Tensor | None  # [A] task scores
    beta: torch.Tensor | None  # [M] pooling weights (Eq. 5)


class ProcedureNet(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.san = SpatialAttention(cfg.D, enabled=cfg.attention, prior=cfg.attention_prior)
        self.kln = KeyStepLocalizer(cfg.D + (cfg.time_weight > 0), cfg.M, width=cfg.width, dropout=cfg.dropout)
        self.tcn = (
            TaskClassifier(cfg.D, cfg.n_tasks, learnable_pooling=cfg.learnable_pooling,
                           occupancy_states=cfg.M if cfg.occupancy else 0)
            if cfg.classifier
            else None
        )

    def attend(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[T, R, D] -> attention features [T, D] and attention [T, R].

        With `region_center`, each cell's median over the video is subtracted before
        attention (`center_regions`): the SAN then weighs what changes in each cell.

        With `center`, each video's mean feature is subtracted: what stays the same all
        through a video (its scene, lighting, still clutter) cannot define a latent state,
        so k-means and subset selection see what changes, the key-steps. (Feeding the TCN
        the uncentred features instead was tried and scored lower on the built-in set.)
        """
        if self.cfg.region_center:
            y = center_regions(y)
        f, alpha = self.san(y)
        if self.cfg.center:
            f = f - f.mean(0, keepdim=True)
        return f, alpha

    def teacher_space(self, f: torch.Tensor) -> torch.Tensor:
        """[T, D] -> [T, D']: the features k-means, subset selection and the KLN see.

        With `time_weight` w > 0, a column w * rms(f) * (t + 0.5) / T is appended (procl's
        temporal prior): the key-steps of a procedure come in a typical order, so a
        frame's relative time in its video is evidence of its step, and states then
        group frames that look alike AND happen at a similar point of the procedure.
        rms(f) is the video's root-mean-square distance of f to its mean, so w is in
        units of the features' own spread.
        """
        if not self.cfg.time_weight:
            return f
        T = f.shape[0]
        rms = (f - f.mean(0, keepdim=True)).square().sum(1).mean().sqrt()
        tau = (torch.arange(T, dtype=f.dtype, device=f.device) + 0.5) / max(T, 1)  # [T]
        return torch.cat([f, (self.cfg.time_weight * rms * tau)[:, None]], 1)  # [T, D + 1]

    def forward(self, y: torch.Tensor) -> NetOutput:
        # y: [T, R, D] region features of one video
        f, alpha = self.attend(y)
        x = self.teacher_space(f)  # [T, D']
        s = self.kln(x)
        p = torch.softmax(s, dim=1)
        logits = beta = None
        if self.tcn is not None:
            logits, beta = self.tcn(f, p)
        return NetOutput(alpha=alpha, f=f, x=x, s=s, p=p, logits=logits, beta=beta)
