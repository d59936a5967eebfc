"""The feature records shared by the feature pipeline and everything downstream."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class VideoFeatures:
    """Region features of one video.

    feats: [T, R, D] float32: T sampled frames (or superframes), R grid cells, D dims.
           Precomputed features without a grid have R = 1.
    times: [T] float64, each sample's timestamp in seconds from the video's start.
    """

    video_id: str
    feats: np.ndarray
    times: np.ndarray

    @property
    def T(self) -> int:
        return int(self.feats.shape[0])


@dataclass
class FeatureSet:
    """Features of a whole dataset for one (backbone, weights, fps) setting.

    manifest: at least {"backbone", "weights", "fps", "R", "D", "grid": [gh, gw] or None,
               "fingerprint": str (changes when any source or setting changes)}.
    skipped:  video id -> reason, for videos that could not be read (warned and counted).
    """

    videos: dict[str, VideoFeatures]
    manifest: dict
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def R(self) -> int:
        return int(self.manifest["R"])

    @property
    def D(self) -> int:
        return int(self.manifest["D"])

    @property
    def grid(self) -> tuple[int, int] | None:
        g = self.manifest.get("grid")
        return (int(g[0]), int(g[1])) if g else None
