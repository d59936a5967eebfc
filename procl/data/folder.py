"""The folder layout (`folder:PATH`, also what `procl data synth` writes), and the
parsing helpers every adapter shares.

```
ROOT/videos/<task>/<video>.<mp4|mkv|avi|webm|mov>   or <video>.npy (precomputed features)
ROOT/annotations/<task>/<video>.csv   optional; rows "step,start,end": 1-based step, seconds, no header
ROOT/steps/<task>.txt                 optional; one key-step name per line
ROOT/split.csv                        optional; rows "video,train|test"; else a seeded 70/30 split per task
ROOT/features.json                    optional; {"fps": x}: rows per second of the .npy files (default 2)
```

A video's id is its file name without the extension; it must be unique in the
dataset. A `.npy` file holds [T, D] or [T, R, D] features (kind "features"); a dataset
holds either video files or feature files, not both. Nothing here decodes a video:
opening a dataset only lists folders and reads the small text files.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from procl import ProclError
from procl.data.records import Dataset, Segment, VideoRecord
from procl.io import read_text

VIDEO_EXTS = (".mp4", ".mkv", ".avi", ".webm", ".mov")
FEATURE_EXT = ".npy"
DEFAULT_FEATURE_FPS = 2.0
TEST_SHARE = 0.3
SPLIT_SEED = 0


# ----------------------------------------------------------------------------- shared helpers


def check_root(root: Path, what: str) -> Path:
    """`root` if it is an existing folder, else a ProclError saying what was expected there."""
    if not root.exists():
        raise ProclError(f"dataset folder {root} does not exist: give the folder that holds {what}")
    if not root.is_dir():
        raise ProclError(f"dataset path {root} is a file, not a folder: give the folder that holds {what}")
    return root


def source_kind(path: Path) -> str | None:
    """"video" or "features" from a file's extension, None for any other file."""
    ext = path.suffix.lower()
    if ext in VIDEO_EXTS:
        return "video"
    if ext == FEATURE_EXT:
        return "features"
    return None


def scan_sources(folder: Path) -> dict[str, Path]:
    """Video and .npy files directly inside `folder`, by id (name without extension).

    Hidden files are ignored; two files with the same id are a ProclError.
    """
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            path = Path(entry.path)
            if source_kind(path) is None:
                continue
            if path.stem in found:
                raise duplicate_error(found[path.stem], path)
            found[path.stem] = path
    return found


def duplicate_error(first: Path, second: Path) -> ProclError:
    return ProclError(
        f"two files have the video id {first.stem!r}: {first} and {second}; "
        "video ids (file names without extension) must be unique in a dataset: rename or remove one"
    )


def check_feature_file(path: Path, ndims: tuple[int, ...] = (2, 3)) -> tuple[int, ...]:
    """The shape of a .npy feature file, read from its header only (no data is loaded)."""
    try:
        with open(path, "rb") as fh:
            if np.lib.format.read_magic(fh) == (1, 0):
                shape = np.lib.format.read_array_header_1_0(fh)[0]
            else:
                shape = np.lib.format.read_array_header_2_0(fh)[0]
    except (OSError, ValueError) as err:
        raise ProclError(f"cannot read the feature file {path} ({err}): replace it with a valid .npy array") from err
    if len(shape) not in ndims or 0 in shape:
        want = " or ".join({2: "[T, D]", 3: "[T, R, D]"}[n] for n in ndims)
        raise ProclError(f"feature file {path} has shape {list(shape)}; expected {want} with no empty axis")
    return shape


def read_feature_fps(root: Path, default: float = DEFAULT_FEATURE_FPS) -> float:
    """Rows per second of precomputed features: ROOT/features.json {"fps": x}, else `default`."""
    path = root / "features.json"
    if not path.exists():
        return default
    try:
        fps = float(json.loads(path.read_text(encoding="utf-8"))["fps"])
    except (ValueError, KeyError, TypeError) as err:
        raise ProclError(f"{path} must be a JSON object like {{\"fps\": 2.0}} ({err}): fix or delete it") from err
    if not math.isfinite(fps) or fps <= 0:
        raise ProclError(f"{path}: fps must be a positive number, not {fps}")
    return fps


def csv_rows(path: Path, maxsplit: int = -1) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, stripped line, stripped comma-separated fields) of each non-blank line."""
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if line:
            yield lineno, line, [f.strip() for f in line.split(",", maxsplit)]


def read_annotation_csv(path: Path, n_steps: int | None, steps_file: Path | None = None) -> list[Segment]:
    """Rows "step,start,end" (1-based step, seconds, no header) as 0-based Segments.

    `n_steps` bounds the step (None: any step >= 1); `steps_file` is only named in errors.
    """
    segments = []
    for lineno, line, fields in csv_rows(path):
        where = f"{path} line {lineno}"
        try:
            if len(fields) != 3:
                raise ValueError
            step, start, end = int(fields[0]), float(fields[1]), float(fields[2])
            if not (math.isfinite(start) and math.isfinite(end)):
                raise ValueError
        except ValueError:
            raise ProclError(
                f"{where}: {line!r} is not a row 'step,start,end' (an integer step from 1, "
                "then start and end in seconds): fix or delete the row"
            ) from None
        if start < 0 or end < start:
            raise ProclError(
                f"{where}: the segment {start:g}..{end:g} s is invalid (start must be >= 0 and "
                "end >= start): fix the times"
            )
        if step < 1 or (n_steps is not None and step > n_steps):
            bound = f"outside 1..{n_steps}" if n_steps is not None else "below 1"
            source = f" (the key-steps of {steps_file})" if steps_file is not None else ""
            raise ProclError(
                f"{where}: step {step} is {bound}{source}; steps are 1-based: "
                "fix the row or add the missing key-step"
            )
        segments.append(Segment(step - 1, start, end))
    return segments


def read_lines(path: Path) -> list[str]:
    """The non-empty stripped lines of a text file."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def seeded_split(videos: list[VideoRecord]) -> dict[str, str]:
    """A deterministic 70/30 train/test split per task.

    Per task: sort the ids, permute them with a numpy Generator seeded with 0 and send
    the first round(30%) to test; a task with >= 2 videos always has at least one
    train and one test video, a task with one video is train only.
    """
    by_task: dict[str, list[str]] = {}
    for v in videos:
        by_task.setdefault(v.task, []).append(v.id)
    split = {}
    for task, ids in by_task.items():
        ids = sorted(ids)
        n = len(ids)
        n_test = min(max(round(TEST_SHARE * n), 1), n - 1) if n >= 2 else 0
        order = np.random.default_rng(SPLIT_SEED).permutation(n)
        for rank, i in enumerate(order):
            split[ids[i]] = "test" if rank < n_test else "train"
    return split


def read_split_csv(path: Path, ids: list[str]) -> dict[str, str]:
    """ROOT/split.csv: rows "video,train|test" naming every video exactly once.

    A first row "video,split" is taken as a header.
    """
    known = set(ids)
    split: dict[str, str] = {}
    for lineno, line, fields in csv_rows(path):
        if lineno == 1 and [f.lower() for f in fields] == ["video", "split"]:
            continue
        where = f"{path} line {lineno}"
        if len(fields) != 2:
            raise ProclError(f"{where}: {line!r} is not a row 'video,train' or 'video,test': fix the row")
        video, value = fields
        if value not in ("train", "test"):
            raise ProclError(f"{where}: the split of {video!r} is {value!r}; it must be 'train' or 'test'")
        if video not in known:
            raise ProclError(
                f"{where}: there is no video {video!r} in the dataset (ids are file names without "
                "extension): fix the name or delete the row"
            )
        if split.get(video, value) != value:
            raise ProclError(f"{where}: {video!r} is listed as both train and test: keep one row")
        split[video] = value
    missing = sorted(known - split.keys())
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ProclError(
            f"{path} does not give the split of {len(missing)} video(s) ({shown}): "
            "add a row 'video,train|test' for each, or delete split.csv to use a seeded 70/30 split"
        )
    return split


def single_kind(videos: list[VideoRecord], root: Path) -> None:
    """A dataset holds video files or feature files, not both."""
    kinds = {v.kind for v in videos}
    if len(kinds) > 1:
        example = {v.kind: v.source for v in videos}
        raise ProclError(
            f"{root} mixes video files ({example['video']}) and feature files ({example['features']}): "
            "keep one kind in a dataset"
        )


# ----------------------------------------------------------------------------- the folder adapter


def open_folder(root: Path, spec: str) -> Dataset:
    """Read a dataset in the folder layout above."""
    check_root(root, "videos/<task>/<video>.mp4")
    videos_dir = root / "videos"
    task_dirs = []
    if videos_dir.is_dir():
        task_dirs = sorted(p for p in videos_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    fps = read_feature_fps(root)
    seen: dict[str, Path] = {}
    videos: list[VideoRecord] = []
    steps: dict[str, list[str]] = {}
    for task_dir in task_dirs:
        task = task_dir.name
        sources = scan_sources(task_dir)
        if not sources:
            continue
        steps_file = root / "steps" / f"{task}.txt"
        names = read_lines(steps_file) if steps_file.exists() else None
        annotations = _annotation_files(root / "annotations" / task)
        n_annotated = 0
        for vid in sorted(sources):
            path = sources[vid]
            if vid in seen:
                raise duplicate_error(seen[vid], path)
            seen[vid] = path
            kind = source_kind(path)
            record = VideoRecord(id=vid, task=task, source=path, kind=kind)
            if kind == "features":
                check_feature_file(path)
                record.feature_fps = fps
            if vid in annotations:
                if names is None:
                    record.segments = read_annotation_csv(annotations[vid], None)
                else:
                    record.segments = read_annotation_csv(annotations[vid], len(names), steps_file)
                n_annotated = max([n_annotated] + [s.step + 1 for s in record.segments])
            videos.append(record)
        steps[task] = names if names is not None else [f"step {i + 1}" for i in range(n_annotated)]
    if not videos:
        raise ProclError(
            f"no videos found under {videos_dir}: put them at videos/<task>/<video>.mp4 "
            f"(or .mkv/.avi/.webm/.mov, or .npy features)"
        )
    single_kind(videos, root)
    tasks = sorted({v.task for v in videos})
    split_file = root / "split.csv"
    split = read_split_csv(split_file, [v.id for v in videos]) if split_file.exists() else seeded_split(videos)
    return Dataset(spec=spec, root=root, videos=videos, tasks=tasks, steps=steps, split=split)


def _annotation_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    with os.scandir(folder) as entries:
        return {
            Path(e.name).stem: Path(e.path)
            for e in entries
            if e.name.lower().endswith(".csv") and not e.name.startswith(".") and e.is_file()
        }
