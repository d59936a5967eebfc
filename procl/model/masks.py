"""Padded batches of videos: B videos of different lengths in one [B, T, ...] tensor.

A batch pads every video with zeros to the longest one's T frames; `mask` [B, T] says
which frames are real (None: every frame of every video is). Whatever a network
computes per video (a median, a mean, a spread, a loss) is taken over the video's
real frames only, with the helpers here, so a padded batch gives each video the
outputs it gets alone (tests/test_model.py checks this).
"""
from __future__ import annotations

import torch
from torch import nn


def pad_videos(videos: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[T_b, ...] tensors -> [B, T, ...] zero-padded to the longest, and mask [B, T]
    (None when every video has T frames: nothing is padded). One video: a view of it
    (no copy: the teacher's pass and the paper's one-video steps take them one at a time)."""
    if len(videos) == 1:
        return videos[0][None], None
    x = nn.utils.rnn.pad_sequence(videos, batch_first=True)  # [B, T, ...]
    lengths = [len(v) for v in videos]
    if len(set(lengths)) == 1:
        return x, None
    return x, torch.arange(x.shape[1], device=x.device)[None] < torch.tensor(lengths, device=x.device)[:, None]


def frames_of(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """mask [B, T] shaped to broadcast over x [B, T, ...]: [B, T, 1, ...]."""
    return mask.view(*mask.shape, *(1,) * (x.dim() - 2))


def zero_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x [B, T, ...] with 0 at padded frames (whatever they held: inf and NaN too)."""
    return x if mask is None else x.masked_fill(~frames_of(mask, x), 0.0)


def frame_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int | tuple[int, ...] = 1) -> torch.Tensor:
    """Mean of x [B, T, ...] over each video's real frames (and the other dims in `dim`,
    which must include 1), keeping the dims."""
    if mask is None:
        return x.mean(dim, keepdim=True)
    keep = frames_of(mask, x).expand_as(x)
    return torch.where(keep, x, 0.0).sum(dim, keepdim=True) / keep.sum(dim, keepdim=True)


def frame_count(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Real frames per video of x [B, T, ...]: [B] (in x's dtype)."""
    if mask is None:
        return x.new_full((x.shape[0],), x.shape[1])
    return mask.sum(1).to(x.dtype)
