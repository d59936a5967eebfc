"""The CrossTask release (`crosstask:PATH`, Zhukov et al., CVPR 2019).

Files read (as in the release and its reference loader, DmZhukov/CrossTask `data.py`):

```
ROOT/tasks_primary.txt   blocks of 5 lines then a blank line: task id, task name, URL,
                         number of steps, comma-separated step names
ROOT/videos.csv          rows "task_id,video_id,url"
ROOT/videos_val.csv      same rows; these videos form the test split (optional: without
                         it, a seeded 70/30 split per task)
ROOT/annotations/<task_id>_<video_id>.csv   rows "step,start,end": 1-based, seconds, no header
ROOT/features/<video_id>.npy                [T, 3200] at 1 feature per second, or
ROOT/videos/<video_id>.<ext> or ROOT/videos/<task_id>/<video_id>.<ext>
```

Only the primary tasks are read (the related tasks have no annotations). When
`features/` holds .npy files the dataset is of kind "features" (feature_fps = 1),
otherwise of kind "video". Videos listed in the CSVs whose file is absent (many
YouTube videos are gone) are skipped with a warning; a video without an annotation
file is kept as unannotated. Task names are the names in tasks_primary.txt.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from procl import ProclError
from procl.data.folder import (
    check_feature_file,
    check_root,
    csv_rows,
    duplicate_error,
    read_annotation_csv,
    scan_sources,
    seeded_split,
)
from procl.data.records import Dataset, VideoRecord
from procl.io import read_text

CROSSTASK_FEATURE_FPS = 1.0


def read_tasks_primary(path: Path) -> list[tuple[str, str, list[str]]]:
    """(task id, task name, step names) of every block of tasks_primary.txt, in file order."""
    if not path.exists():
        raise ProclError(f"{path} is missing: a CrossTask folder holds tasks_primary.txt, videos.csv and annotations/")
    lines = read_text(path).splitlines()
    tasks = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        block = lines[i:i + 5]
        where = f"{path} line {i + 1}"
        if len(block) < 5 or not all(line.strip() for line in block):
            raise ProclError(
                f"{where}: a task block needs 5 non-empty lines (id, name, URL, number of steps, "
                "comma-separated step names) followed by a blank line"
            )
        task_id, name, _url, n_text, step_text = (line.strip() for line in block)
        steps = [s.strip() for s in step_text.split(",")]
        try:
            n_steps = int(n_text)
        except ValueError:
            raise ProclError(
                f"{path} line {i + 4}: the number of steps {n_text!r} of task {task_id} is not an integer"
            ) from None
        if n_steps != len(steps):
            raise ProclError(
                f"{path} line {i + 5}: task {task_id} declares {n_steps} steps but lists {len(steps)}: "
                "make the count match the comma-separated names"
            )
        tasks.append((task_id, name, steps))
        i += 5
    if not tasks:
        raise ProclError(f"{path} holds no task blocks")
    return tasks


def read_video_csv(path: Path) -> list[tuple[str, str, int]]:
    """(task id, video id, line number) of each row "task_id,video_id,url"."""
    rows = []
    for lineno, line, fields in csv_rows(path, maxsplit=2):
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise ProclError(f"{path} line {lineno}: {line!r} is not a row 'task_id,video_id,url': fix the row")
        rows.append((fields[0], fields[1], lineno))
    return rows


def open_crosstask(root: Path, spec: str) -> Dataset:
    """Read the CrossTask release at `root` (see the module docstring)."""
    check_root(root, "tasks_primary.txt, videos.csv and annotations/")
    primary = read_tasks_primary(root / "tasks_primary.txt")
    names = {tid: name for tid, name, _ in primary}
    if len(set(names.values())) != len(primary):
        raise ProclError(f"{root / 'tasks_primary.txt'}: two task blocks share an id or a name; each must be unique")
    steps_of = {tid: steps for tid, _, steps in primary}

    csv_path, val_path = root / "videos.csv", root / "videos_val.csv"
    if not csv_path.exists():
        raise ProclError(f"{csv_path} is missing: it lists the videos as rows 'task_id,video_id,url'")
    listed: dict[str, tuple[str, Path, int]] = {}
    test_ids: set[str] = set()
    for path in (csv_path, val_path) if val_path.exists() else (csv_path,):
        for tid, vid, lineno in read_video_csv(path):
            if tid not in names:
                continue
            if vid in listed and listed[vid][0] != tid:
                first = listed[vid]
                raise ProclError(
                    f"{path} line {lineno}: video {vid} of task {tid} is already listed for task "
                    f"{first[0]} ({first[1]} line {first[2]}); a video id must belong to one task"
                )
            listed.setdefault(vid, (tid, path, lineno))
            if path == val_path:
                test_ids.add(vid)

    sources = {k: p for k, p in scan_sources(root / "features").items() if p.suffix.lower() == ".npy"}
    use_features = bool(sources)
    if not use_features:
        sources = _video_files(root / "videos", set(names))

    videos: list[VideoRecord] = []
    missing = []
    for vid, (tid, _, _) in listed.items():
        source = sources.get(vid)
        if source is None:
            missing.append(vid)
            continue
        record = VideoRecord(id=vid, task=names[tid], source=source, kind="features" if use_features else "video")
        if use_features:
            check_feature_file(source, ndims=(2,))
            record.feature_fps = CROSSTASK_FEATURE_FPS
        annotation = root / "annotations" / f"{tid}_{vid}.csv"
        if annotation.exists():
            record.segments = read_annotation_csv(annotation, len(steps_of[tid]), root / "tasks_primary.txt")
        videos.append(record)
    where = root / ("features" if use_features else "videos")
    if not videos:
        raise ProclError(
            f"none of the {len(listed)} primary-task videos of {csv_path} was found in {where}: put "
            "features/<video_id>.npy ([T, 3200]) or videos/<video_id>.mp4 there"
        )
    if missing:
        warnings.warn(
            f"CrossTask: {len(missing)} of {len(listed)} listed videos have no file in {where} and are "
            f"skipped (e.g. {', '.join(missing[:3])})",
            stacklevel=2,
        )
    videos.sort(key=lambda v: (v.task, v.id))
    present = {v.task for v in videos}
    tasks = [names[tid] for tid, _, _ in primary if names[tid] in present]
    steps = {names[tid]: steps_of[tid] for tid, _, _ in primary if names[tid] in present}
    if val_path.exists():
        split = {v.id: ("test" if v.id in test_ids else "train") for v in videos}
    else:
        split = seeded_split(videos)
    return Dataset(spec=spec, root=root, videos=videos, tasks=tasks, steps=steps, split=split)


def _video_files(videos_dir: Path, task_ids: set[str]) -> dict[str, Path]:
    """Video files in videos/ and in videos/<task_id>/, by video id."""
    found = {k: p for k, p in scan_sources(videos_dir).items() if p.suffix.lower() != ".npy"}
    for tid in sorted(task_ids):
        for vid, path in scan_sources(videos_dir / tid).items():
            if path.suffix.lower() == ".npy":
                continue
            if vid in found:
                raise duplicate_error(found[vid], path)
            found[vid] = path
    return found
