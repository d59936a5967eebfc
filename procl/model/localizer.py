"""Key-step localization network, KLN (Eq. 3, Sec. 2.1.3 and 3.1).

The paper turns the FCN of Long et al. into a 1D net as in FCSN (Rochan et al.): temporal
convolutions and pooling down, deconvolutions up, with skip connections, mapping the T
attention features of a video to T score vectors over the M latent states.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, 3, padding=1), nn.ReLU(),
        nn.Conv1d(c_out, c_out, 3, padding=1), nn.ReLU(),
    )


def _run(layers: nn.Sequential, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """The layers in turn; with `keep` [B, 1, T'] the positions past each video's own
    padded length are zeroed after every convolution, where a video alone has the
    convolution's zero padding."""
    for layer in layers:
        x = layer(x)
        if keep is not None and isinstance(layer, nn.Conv1d):
            x = x.masked_fill(~keep, 0.0)
    return x


class KeyStepLocalizer(nn.Module):
    """[B, T, D] attention features -> [B, T, M] scores s_t; softmax over M gives p (Eq. 3).

    Three conv blocks each followed by max-pooling /2 (stride 8 in all), a bottleneck
    block, then three stride-2 deconvolutions back up, adding the encoder block of the
    same resolution (skip connections, as FCN-8s/FCSN) and a 1x1 conv to M scores.
    Any T >= 1: the sequence is zero-padded to a multiple of 8 and the output cropped
    back to T, so padded steps never reach a loss or a prediction.

    A batch of videos of different lengths (mask [B, T]) is the same network on each
    video: a video's frames past its own length are zeroed at the input, and the
    positions past its length rounded up to the stride are zeroed after every
    convolution, so no padding of a longer neighbour reaches its frames (the outputs at
    its real frames are those it gets alone; the deconvolutions and 1x1 convs never
    mix positions across the stride).

    `width` is the channel count. The authors' network is VGG-wide (thousands of
    channels); the default 128 trains in seconds per epoch on a CPU and is enough for
    M <= 50 states (docs/method.md, "Choices procl makes": KLN width 128).
    """

    stride = 8

    def __init__(self, D: int, M: int, width: int = 128, dropout: float = 0.1):
        super().__init__()
        self.inp = nn.Sequential(nn.Dropout(dropout), nn.Conv1d(D, width, 1), nn.ReLU())
        self.enc = nn.ModuleList([_block(width, width) for _ in range(3)])
        self.mid = _block(width, width)
        self.up = nn.ModuleList([nn.ConvTranspose1d(width, width, 2, stride=2) for _ in range(3)])
        self.out = nn.Conv1d(width, M, 1)

    def forward(self, f: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # f: [B, T, D], mask: [B, T] real frames (None: all)
        B, T, _ = f.shape
        pad = (-T) % self.stride
        keep = None  # [B, 1, T + pad]: positions inside each video's own length rounded up to the stride
        if mask is not None:
            f = f.masked_fill(~mask[..., None], 0.0)
            n = mask.sum(1)  # [B]
            own = (n + self.stride - 1) // self.stride * self.stride  # [B]
            keep = (torch.arange(T + pad, device=f.device)[None] < own[:, None])[:, None]
        x = F.pad(f.transpose(1, 2), (0, pad))  # [B, D, T + pad]
        x = _run(self.inp, x, keep)
        skips = []
        for block in self.enc:
            x = _run(block, x, keep)
            skips.append(x)
            x = F.max_pool1d(x, 2)  # [B, W, T'/2]
            keep = None if keep is None else keep[..., ::2]
        x = _run(self.mid, x, keep)
        for up, skip in zip(self.up, reversed(skips)):
            x = torch.relu(up(x)) + skip  # [B, W, 2T']
        return self.out(x)[:, :, :T].transpose(1, 2)  # [B, T, M]
