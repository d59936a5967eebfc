"""The common action-segmentation layout (`actseg:PATH`: Breakfast, 50Salads, GTEA as
distributed with MS-TCN, or with Kukleva et al.'s unsupervised code).

```
ROOT/features/[<task>/]<video>.npy or .txt   per-frame features
ROOT/groundTruth/<video>[.txt]               one label name per line, one line per frame (optional)
ROOT/mapping/mapping.txt                     lines "id name"
ROOT/features.json                           optional {"fps": x}; default 15 (Breakfast's frame rate)
```

- Task: the features subfolder's name; files directly in features/ belong to one task
  named after ROOT.
- Labels: the background names (SIL, background, bg, sil, none; any case) map to -1.
  A task's key-steps are the mapping's other names that occur in that task's ground
  truth, ordered by mapping id; a frame's label is its 0-based index in that list.
  Ground truth is kept per row in `VideoRecord.frame_labels`.
- Orientation: `.txt` features have one row per frame. A 2-D `.npy` may be [T, D] or
  [D, T] (MS-TCN stores [D, T]): the axis whose length equals the ground-truth line
  count is time (checked here from the .npy header; the array is transposed when it is
  read by `procl.data.load_feature_array`). Without ground truth an .npy is taken as
  [T, D].
Splits are the seeded 70/30 split per task.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from procl import ProclError
from procl.data.folder import check_feature_file, check_root, read_feature_fps, seeded_split
from procl.data.records import BACKGROUND, Dataset, VideoRecord
from procl.io import read_text

BACKGROUND_NAMES = frozenset({"sil", "background", "bg", "none"})
ACTSEG_FEATURE_FPS = 15.0
FEATURE_EXTS = (".npy", ".txt")


def is_background(name: str) -> bool:
    return name.lower() in BACKGROUND_NAMES


def read_mapping(path: Path) -> dict[str, int]:
    """mapping.txt "id name" lines as name -> id."""
    if not path.exists():
        raise ProclError(f"{path} is missing: it lists the labels of groundTruth/ as lines 'id name'")
    mapping: dict[str, int] = {}
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            label_id = int(fields[0])
        except ValueError:
            raise ProclError(f"{path} line {lineno}: {line.strip()!r} is not a line 'id name': fix it") from None
        if fields[1] in mapping:
            raise ProclError(f"{path} line {lineno}: the label {fields[1]!r} is listed twice")
        mapping[fields[1]] = label_id
    return mapping


def open_actseg(root: Path, spec: str) -> Dataset:
    """Read an action-segmentation dataset at `root` (see the module docstring)."""
    check_root(root, "features/, groundTruth/ and mapping/mapping.txt")
    feature_files = _feature_files(root)
    if not feature_files:
        raise ProclError(f"no features found under {root / 'features'}: put <video>.npy or <video>.txt files there")
    fps = read_feature_fps(root, ACTSEG_FEATURE_FPS)
    gt_dir = root / "groundTruth"
    gt_files = _ground_truth_files(gt_dir)
    mapping = read_mapping(root / "mapping" / "mapping.txt") if gt_files else {}

    names: dict[str, list[str]] = {}  # video id -> label name per frame
    for vid, _task, _path in feature_files:
        if vid in gt_files:
            names[vid] = _read_ground_truth(gt_files[vid], mapping)

    used: dict[str, set[str]] = {}
    for vid, task, _ in feature_files:
        used.setdefault(task, set()).update(n for n in set(names.get(vid, ())) if not is_background(n))
    steps = {task: sorted(labels, key=lambda n: mapping[n]) for task, labels in used.items()}

    background = {n: BACKGROUND for n in mapping if is_background(n)}
    luts = {task: {**background, **{n: i for i, n in enumerate(step_names)}} for task, step_names in steps.items()}
    videos = []
    for vid, task, path in feature_files:
        record = VideoRecord(id=vid, task=task, source=path, kind="features", feature_fps=fps)
        if vid in names:
            lut = luts[task]
            labels = np.fromiter(map(lut.__getitem__, names[vid]), dtype=np.int64, count=len(names[vid]))
            if path.suffix.lower() == ".npy":
                _check_orientation(path, len(labels), gt_files[vid])
            record.frame_labels = labels
        elif path.suffix.lower() == ".npy":
            check_feature_file(path, ndims=(2,))
        videos.append(record)
    tasks = sorted(steps)
    return Dataset(spec=spec, root=root, videos=videos, tasks=tasks, steps=steps, split=seeded_split(videos))


def _feature_files(root: Path) -> list[tuple[str, str, Path]]:
    """(video id, task, path) of every feature file, sorted by task then id."""
    features = root / "features"
    if not features.is_dir():
        return []
    found: dict[str, tuple[str, str, Path]] = {}

    def add(folder: Path, task: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.name.startswith(".") or path.suffix.lower() not in FEATURE_EXTS or not entry.is_file():
                    continue
                if path.stem in found:
                    raise ProclError(
                        f"two feature files have the video id {path.stem!r}: {found[path.stem][2]} and "
                        f"{path}; keep one"
                    )
                found[path.stem] = (path.stem, task, path)

    add(features, root.resolve().name)
    for sub in sorted(p for p in features.iterdir() if p.is_dir() and not p.name.startswith(".")):
        add(sub, sub.name)
    return sorted(found.values(), key=lambda f: (f[1], f[0]))


def _ground_truth_files(gt_dir: Path) -> dict[str, Path]:
    """groundTruth/<video> or groundTruth/<video>.txt, by video id."""
    if not gt_dir.is_dir():
        return {}
    files = {}
    with os.scandir(gt_dir) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            vid = entry.name[:-4] if entry.name.lower().endswith(".txt") else entry.name
            files[vid] = Path(entry.path)
    return files


def _read_ground_truth(path: Path, mapping: dict[str, int]) -> list[str]:
    """One label name per frame; every name must be in the mapping (names hold no spaces)."""
    text = read_text(path)
    names = text.split()
    unknown = set(names) - mapping.keys()
    if unknown:
        bad = min(unknown)
        lineno = next(i for i, line in enumerate(text.splitlines(), start=1) if line.strip() == bad)
        raise ProclError(
            f"{path} line {lineno}: the label {bad!r} is not in mapping/mapping.txt: "
            "add it to the mapping or fix the line"
        )
    if not names:
        raise ProclError(f"{path} is empty: it needs one label per frame (or delete it for an unannotated video)")
    return names


def _check_orientation(path: Path, n_frames: int, gt_path: Path) -> None:
    shape = check_feature_file(path, ndims=(2,))
    if n_frames not in shape:
        raise ProclError(
            f"{path} has shape {list(shape)} but {gt_path} has {n_frames} frames; one axis of the "
            "features must be time with one row per ground-truth line"
        )
