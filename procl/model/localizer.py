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


class KeyStepLocalizer(nn.Module):
    """[T, D] attention features -> [T, M] scores s_t; softmax over M gives p (Eq. 3).

    Three conv blocks each followed by max-pooling /2 (stride 8 in all), a bottleneck
    block, then three stride-2 deconvolutions back up, adding the encoder block of the
    same resolution (skip connections, as FCN-8s/FCSN) and a 1x1 conv to M scores.
    Any T >= 1: the sequence is zero-padded to a multiple of 8 and the output cropped
    back to T, so padded steps never reach a loss or a prediction.

    `width` is the channel count. The authors' network is VGG-wide (thousands of
    channels); the default 128 trains in seconds per epoch on a CPU and is enough for
    M <= 50 states (see README, "Model size").
    """

    stride = 8

    def __init__(self, D: int, M: int, width: int = 128, dropout: float = 0.1):
        super().__init__()
        self.inp = nn.Sequential(nn.Dropout(dropout), nn.Conv1d(D, width, 1), nn.ReLU())
        self.enc = nn.ModuleList([_block(width, width) for _ in range(3)])
        self.mid = _block(width, width)
        self.up = nn.ModuleList([nn.ConvTranspose1d(width, width, 2, stride=2) for _ in range(3)])
        self.out = nn.Conv1d(width, M, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        # f: [T, D]
        T = f.shape[0]
        pad = (-T) % self.stride
        x = F.pad(f.T[None], (0, pad))  # [1, D, T + pad]
        x = self.inp(x)
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = F.max_pool1d(x, 2)  # [1, W, T'/2]
        x = self.mid(x)
        for up, skip in zip(self.up, reversed(skips)):
            x = torch.relu(up(x)) + skip  # [1, W, 2T']
        s = self.out(x)[0, :, :T].T  # [T, M]
        return s
