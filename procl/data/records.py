"""The two record types every dataset adapter produces: one video, one dataset.

A `VideoRecord` points at its source (a video file, or an array of precomputed
features) and carries its ground truth as key-step segments in seconds. Frame-level
ground truth is derived from the segments at the sampling times (`labels_at`), so one
rule turns annotations into per-frame labels for every adapter. Key-step indices are
0-based inside procl (file formats that are 1-based are converted by their adapter);
background is -1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BACKGROUND = -1


@dataclass(frozen=True)
class Segment:
    """One annotated key-step occurrence: 0-based `step` from `start` to `end` seconds."""

    step: int
    start: float
    end: float


@dataclass
class VideoRecord:
    """One video of a dataset.

    id:         unique within the dataset (file name without extension).
    task:       the task name (the only label training sees).
    source:     a video file (kind "video") or a feature file (kind "features").
    kind:       "video" or "features".
    segments:   ground-truth key-steps, or None when the video is not annotated.
    feature_fps: for kind "features": rows per second of the array (times = row / fps).
    superframes: optional [S, 2] (start, end) seconds; when given, frames are these
                superframes (ProceL) and features are averaged inside each one.
    frame_labels: optional per-row ground truth for precomputed features whose labels
                come per row (action-segmentation format); wins over `segments`.
    """

    id: str
    task: str
    source: Path
    kind: str = "video"
    segments: list[Segment] | None = None
    feature_fps: float | None = None
    superframes: np.ndarray | None = None
    frame_labels: np.ndarray | None = None

    @property
    def annotated(self) -> bool:
        return self.segments is not None or self.frame_labels is not None

    def labels_at(self, times: np.ndarray) -> np.ndarray | None:
        """Ground-truth key-step index (-1 background) at each sampling time, or None.

        A time t belongs to a segment when start <= t < end; where segments overlap,
        the later segment in the list wins.
        """
        times = np.asarray(times, dtype=np.float64)
        if self.frame_labels is not None:
            if len(self.frame_labels) != len(times):
                raise ValueError(
                    f"video {self.id}: {len(self.frame_labels)} ground-truth rows for "
                    f"{len(times)} feature rows"
                )
            return np.asarray(self.frame_labels, dtype=np.int64)
        if self.segments is None:
            return None
        labels = np.full(len(times), BACKGROUND, dtype=np.int64)
        for seg in self.segments:
            labels[(times >= seg.start) & (times < seg.end)] = seg.step
        return labels


@dataclass
class Dataset:
    """A set of videos with task labels, step names per task and a train/test split.

    spec:  the spec string it was opened from ("synthetic", "folder:PATH", ...).
    root:  its folder.
    tasks: task names in a fixed order (the classifier's class order).
    steps: task -> key-step names (index = 0-based step id); may be empty lists for
           unannotated datasets.
    split: video id -> "train" | "test".
    boxes_dir: optional folder of per-frame key-step boxes (built-in dataset only).
    """

    spec: str
    root: Path
    videos: list[VideoRecord]
    tasks: list[str]
    steps: dict[str, list[str]] = field(default_factory=dict)
    split: dict[str, str] = field(default_factory=dict)
    boxes_dir: Path | None = None

    def video(self, video_id: str) -> VideoRecord:
        for v in self.videos:
            if v.id == video_id:
                return v
        raise KeyError(f"no video {video_id!r} in dataset {self.spec}")

    def videos_of(self, task: str | None = None, split: str | None = None) -> list[VideoRecord]:
        """Videos of one task and/or one split ("train", "test"; None or "all" = every one)."""
        out = []
        for v in self.videos:
            if task is not None and v.task != task:
                continue
            if split not in (None, "all") and self.split.get(v.id) != split:
                continue
            out.append(v)
        return out

    @property
    def annotated(self) -> bool:
        return any(v.annotated for v in self.videos)
