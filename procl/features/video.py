"""Decode a video with OpenCV and sample it at a fixed rate (2 fps by default).

Frame i of a file is taken to be shown at i / native_fps seconds (native_fps is the
file's CAP_PROP_FPS), whatever its container says about individual timestamps. The
sampling times are 0, 1/fps, 2/fps, ... up to (not including) the duration, and each
takes the nearest frame. Frames are decoded sequentially: every frame is `grab()`-ed
(cheap) and only the needed ones are `retrieve()`-d and converted to RGB.

`iter_frames` yields the samples in chunks so that decoding can run in a background
thread while a backbone processes the previous chunk; `sample_frames` collects them.
`FrameReader` is the other way in, for viewers: it seeks to the frames asked for and
decodes only those, so showing one frame of an hour-long video costs one frame.
"""
from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from procl import ProclError

# Frame counts in container metadata are estimates (the bundled .mkv reports 311 for
# 310 frames). A stream that ends within this many frames of its announced count is
# complete; one that ends earlier is truncated.
_COUNT_SLACK = 3


# The sampling rates procl accepts (frames per second): below, a video gives almost no
# frames; above, more frames than any video holds (the app offers 0.5 to 10).
MIN_FPS, MAX_FPS = 0.01, 60.0


def check_fps(fps: float, what: str = "--fps") -> float:
    """`fps` as a float; ProclError unless it is a number in MIN_FPS..MAX_FPS (not inf or nan)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and MIN_FPS <= value <= MAX_FPS):
        raise ProclError(f"{what} {fps} is not a sampling rate procl accepts: give frames per second "
                         f"between {MIN_FPS:g} and {MAX_FPS:g} (2 is the default)")
    return value


def _open(path: Path) -> cv2.VideoCapture:
    """An opened capture of `path`, decoding on one thread (faster for small frames,
    and it leaves the other cores to the backbone)."""
    if not path.is_file():
        raise ProclError(f"video {path}: no such file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        cap.release()
        raise ProclError(f"video {path}: OpenCV cannot open it (unreadable or not a video)")
    return cap


def probe(path: str | os.PathLike) -> dict:
    """The file's own frame rate, announced frame count, duration (s, None when the
    count is unknown) and size, without decoding."""
    path = Path(path)
    cap = _open(path)
    try:
        native_fps = _native_fps(cap, path)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return {
            "fps": native_fps,
            "frames": count,
            "duration": count / native_fps if count > 0 else None,
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        }
    finally:
        cap.release()


def _native_fps(cap: cv2.VideoCapture, path: Path) -> float:
    native_fps = float(cap.get(cv2.CAP_PROP_FPS))
    if not math.isfinite(native_fps) or not 0 < native_fps <= 1000:
        raise ProclError(
            f"video {path}: no usable frame rate in the file (got {native_fps}); "
            "re-encode it with a constant frame rate (ffmpeg -i IN -r 30 OUT.mp4)"
        )
    return native_fps


def _to_rgb(frame_bgr: np.ndarray, size: int | None) -> np.ndarray:
    if size is not None and frame_bgr.shape[:2] != (size, size):
        frame_bgr = cv2.resize(frame_bgr, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)  # [H, W, 3] uint8


def iter_frames(
    path: str | os.PathLike, fps: float = 2.0, size: int | None = None, chunk: int = 32
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (frames [n, H, W, 3] RGB uint8, times [n] float64 s) chunks of <= `chunk` samples.

    With `size`, frames are resized to size x size (the aspect ratio is not kept, as
    for the paper's 224x224 CNN input).

    Raises ProclError (naming the file) when it cannot be opened, has no frames, or
    ends well before its announced frame count (truncated): a caller that wants all or
    nothing must not keep the chunks it got before the error.
    """
    fps = check_fps(fps, "fps")
    path = Path(path)
    cap = _open(path)
    try:
        native_fps = _native_fps(cap, path)
        announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))  # <= 0 when unknown
        # Near the announced end the stream may stop a few frames early: there every
        # frame is retrieved so the last decoded one can serve the final samples.
        keep_from = announced - _COUNT_SLACK - 1 if announced > 0 else math.inf

        frames: list[np.ndarray] = []
        times: list[float] = []
        k = 0  # index of the next sample
        i = -1  # index of the last grabbed frame
        last: np.ndarray | None = None  # [H, W, 3] the last retrieved frame, RGB
        last_index = -1
        ended = False  # grab() failed: the stream is over
        while not (announced > 0 and k / fps >= announced / native_fps):
            t = k / fps
            target = math.floor(t * native_fps + 0.5)  # nearest frame
            while i < target and not ended:
                ended = not cap.grab()
                if not ended:
                    i += 1
                    if keep_from <= i < target:
                        ok, bgr = cap.retrieve()
                        if ok:
                            last, last_index = _to_rgb(bgr, size), i
            if ended:
                break
            if last_index != i:
                ok, bgr = cap.retrieve()
                if not ok:
                    raise ProclError(f"video {path}: frame {i} cannot be decoded (corrupt file)")
                last, last_index = _to_rgb(bgr, size), i
            frames.append(last)
            times.append(t)
            k += 1
            if len(frames) == chunk:
                yield np.stack(frames), np.asarray(times, dtype=np.float64)
                frames, times = [], []

        decoded = i + 1  # frames grabbed (all of them when `ended`)
        if decoded == 0:
            raise ProclError(f"video {path}: no frame could be decoded (empty or corrupt file)")
        if ended and announced > 0 and decoded < announced - _COUNT_SLACK:
            raise ProclError(
                f"video {path}: truncated or corrupt, only {decoded} of {announced} "
                "frames could be decoded"
            )
        # Samples in the last half frame before the real end take the last decoded frame.
        while ended and last_index == decoded - 1 and k / fps < decoded / native_fps:
            frames.append(last)
            times.append(k / fps)
            k += 1
        if frames:
            yield np.stack(frames), np.asarray(times, dtype=np.float64)
    finally:
        cap.release()


def sample_frames(
    path: str | os.PathLike, fps: float = 2.0, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All samples of a video: RGB uint8 frames [T, H, W, 3] (size x size when given)
    and their times in seconds [T]. Raises ProclError naming the file when it is
    unreadable, truncated or has no frames."""
    chunks = list(iter_frames(path, fps=fps, size=size))
    if not chunks:
        raise ProclError(f"video {path}: no frame could be decoded (empty or corrupt file)")
    frames = np.concatenate([c[0] for c in chunks])  # [T, H, W, 3]
    times = np.concatenate([c[1] for c in chunks])  # [T]
    return frames, times


class FrameReader:
    """Random access to a video's frames by time, for viewers: seek, decode one, keep a few.

    `frame_at(t)` returns the RGB frame shown at t seconds (frame floor(t * native_fps
    + 0.5), as `iter_frames` samples it), resized so that its longer side is at most
    `max_side` (aspect kept; None: full size). A frame that is not the one after the
    last read is reached by seeking by timestamp (CAP_PROP_POS_MSEC), so the cost of a
    frame does not grow with the video's length. The last `cache` frames are kept
    (least recently used out). `reads` counts the frames this reader decoded and
    returned, `seeks` the seeks. Thread-safe: one reader may serve several sessions.
    """

    def __init__(self, path: str | os.PathLike, max_side: int | None = 480, cache: int = 24) -> None:
        self.path = Path(path)
        self.max_side = max_side
        self.cache_size = cache
        self.reads = 0
        self.seeks = 0
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cap: cv2.VideoCapture | None = _open(self.path)
        self.fps = _native_fps(self._cap, self.path)
        self.count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))  # <= 0 when unknown
        self._next = 0  # the frame a plain read() returns

    def index_at(self, t: float) -> int:
        """The frame shown at `t` seconds (clamped to the announced last frame)."""
        index = max(0, math.floor(float(t) * self.fps + 0.5))
        return min(index, self.count - 1) if self.count > 0 else index

    def frame_at(self, t: float) -> np.ndarray:
        """The RGB frame [h, w, 3] uint8 shown at `t` seconds; ProclError naming the file
        when it cannot be decoded."""
        index = self.index_at(t)
        with self._lock:
            frame = self._cache.get(index)
            if frame is not None:
                self._cache.move_to_end(index)
                return frame
            if self._cap is None:
                raise ProclError(f"video {self.path}: the reader was closed")
            ok, bgr = self._read(index)
            if not ok and self.count > 0 and index >= self.count - _COUNT_SLACK:
                # announced counts are estimates: the last frames may not exist
                index = max(0, index - _COUNT_SLACK)
                ok, bgr = self._read(index)
            if not ok:
                raise ProclError(f"video {self.path}: frame {index} (at {t:.2f} s) cannot be decoded")
            frame = self._resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if self.cache_size > 0:
                self._cache[index] = frame
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return frame

    def _read(self, index: int) -> tuple[bool, np.ndarray | None]:
        if index != self._next:
            self._cap.set(cv2.CAP_PROP_POS_MSEC, 1000.0 * index / self.fps)
            self.seeks += 1
        ok, bgr = self._cap.read()
        self._next = index + 1 if ok else -1  # after a failed read, the position is unknown
        if ok:
            self.reads += 1
        return ok, bgr

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if self.max_side is None or max(h, w) <= self.max_side:
            return frame
        scale = self.max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    def frames_at(self, times) -> np.ndarray:
        """Frames [n, h, w, 3] at each of `times` (seconds)."""
        return np.stack([self.frame_at(t) for t in np.asarray(times, dtype=float).reshape(-1)])

    def close(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._cache.clear()

    def __del__(self) -> None:  # a reader dropped from a cache releases its file
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()
