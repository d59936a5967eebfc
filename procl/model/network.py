"""The combined network: SAN -> KLN -> TCN (Fig. 1 of the paper).

Every module takes a batch of B videos padded to T frames (procl.model.masks): region
features y [B, T, R, D] and mask [B, T] of their real frames (None: every frame is
real; one video is a batch of one). What is computed per video (medians, means,
spreads, relative time, the classifier's pooling) is over its real frames only, and
padded frames come out as 0, so a video's outputs do not depend on its neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from procl.model.attention import SpatialAttention, center_regions
from procl.model.classifier import TaskClassifier
from procl.model.localizer import KeyStepLocalizer
from procl.model.masks import frame_count, frame_mean, zero_padding


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
    alpha: torch.Tensor  # [B, T, R] spatial attention
    f: torch.Tensor  # [B, T, D] attention features
    x: torch.Tensor  # [B, T, D'] the teacher's space: f, plus relative time with time_weight (D' = D + 1)
    s: torch.Tensor  # [B, T, M] KLN scores (not zeroed at padded frames: mask them)
    p: torch.Tensor  # [B, T, M] state probabilities (Eq. 3), 0 at padded frames
    logits: torch.Tensor | None  # [B, A] task scores
    beta: torch.Tensor | None  # [B, M] pooling weights (Eq. 5)

    def video(self, b: int = 0, n: int | None = None) -> "NetOutput":
        """Video b's outputs over its first n frames (default all): alpha [n, R] ... logits [A]."""
        def pick(name: str, value):
            if value is None:
                return None
            return value[b] if name in ("logits", "beta") else value[b, :n]
        return NetOutput(**{f.name: pick(f.name, getattr(self, f.name)) for f in fields(self)})


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

    def attend(self, y: torch.Tensor, mask: torch.Tensor | None = None,
               median: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, R, D] -> attention features [B, T, D] and attention [B, T, R].

        With `region_center`, each cell's median over the video is subtracted before
        attention (`center_regions`): the SAN then weighs what changes in each cell.

        With `center`, each video's mean feature is subtracted: what stays the same all
        through a video (its scene, lighting, still clutter) cannot define a latent state,
        so k-means and subset selection see what changes, the key-steps. (Feeding the TCN
        the uncentred features instead was tried and scored lower on the built-in set.)

        `median` [B, 1, R, D]: each video's median over its frames (`center_regions`),
        when the caller kept them (they depend on the input alone).
        """
        y = zero_padding(y, mask)  # whatever the padding held never enters
        if self.cfg.region_center:
            y = center_regions(y, mask, median)
        f, alpha = self.san(y, mask)
        if self.cfg.center:
            f = zero_padding(f - frame_mean(f, mask), mask)
        return f, alpha

    def teacher_space(self, f: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, D] -> [B, T, D']: the features k-means, subset selection and the KLN see.

        With `time_weight` w > 0, a column w * rms(f) * (t + 0.5) / T is appended (procl's
        temporal prior): the key-steps of a procedure come in a typical order, so a
        frame's relative time in its video is evidence of its step, and states then
        group frames that look alike AND happen at a similar point of the procedure.
        rms(f) is the video's root-mean-square distance of f to its mean, so w is in
        units of the features' own spread; T and rms are each video's own.
        """
        if not self.cfg.time_weight:
            return f
        T = f.shape[1]
        spread = frame_mean((f - frame_mean(f, mask)).square().sum(2), mask)  # [B, 1]
        rms = spread.clamp_min(1e-12).sqrt()  # a one-frame video has no spread (and sqrt no slope at 0)
        tau = (torch.arange(T, dtype=f.dtype, device=f.device) + 0.5) / frame_count(f, mask).clamp_min(1)[:, None]
        return torch.cat([f, zero_padding(self.cfg.time_weight * rms * tau, mask)[..., None]], 2)  # [B, T, D + 1]

    def appearance(self, x: np.ndarray) -> np.ndarray:
        """Frames in the teacher's space [..., D'] without the temporal prior's column
        (`teacher_space`): what they look like, not when they happen."""
        return x[..., :-1] if self.cfg.time_weight else x

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None = None,
                median: torch.Tensor | None = None) -> NetOutput:
        # y: [B, T, R, D] region features, mask: [B, T] real frames (None: all), median: as `attend`
        f, alpha = self.attend(y, mask, median)  # [B, T, D], [B, T, R]
        x = self.teacher_space(f, mask)  # [B, T, D']
        s = self.kln(x, mask)  # [B, T, M]
        p = zero_padding(torch.softmax(s, dim=2), mask)  # [B, T, M]
        logits = beta = None
        if self.tcn is not None:
            logits, beta = self.tcn(f, p, mask)  # [B, A], [B, M]
        return NetOutput(alpha=alpha, f=f, x=x, s=s, p=p, logits=logits, beta=beta)
