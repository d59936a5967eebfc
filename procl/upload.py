"""A folder dataset made from video files handed over in memory (the app's uploads).

`create_dataset(name, groups)` writes `data/<name>/videos/<task>/<file>` (the folder
layout of procl/data/folder.py, no annotations) after checking everything first:
the dataset's and the tasks' names, that every file is a video OpenCV can decode,
that no two files share a video id, and that every task has at least three videos
(the seeded 70/30 split keeps two to train on and one to test). Every file is checked,
whatever else is wrong, so that one round lists every problem. Any problem refuses the
whole dataset with one message per problem (`UploadError.problems`) and writes nothing:
the files are written into a hidden temporary folder that is renamed into place only
when all of them decode.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence, Union

from procl import ProclError
from procl.data.folder import VIDEO_EXTS
from procl.features.video import FrameReader
from procl.io import write_bytes
from procl.paths import data_dir

Content = Union[bytes, bytearray, memoryview]
RESERVED = ("features", "synthetic", "samples")
MIN_VIDEOS = 3  # the seeded split then keeps 2 to train on (the multi-task setting needs 2) and 1 to test
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_BAD_TASK = re.compile(r"[/\\\x00-\x1f:*?\"<>|]")


class UploadError(ProclError):
    """The uploads cannot make a dataset; `problems` lists each reason (file, task, what to do)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("the dataset was not created: " + "; ".join(self.problems))


def dataset_folder(name: str) -> Path:
    """Where `create_dataset(name, ...)` writes: data/<name>."""
    return data_dir() / name


def check_dataset_name(name: str) -> list[str]:
    """Problems with a new dataset's name (empty when it may be created)."""
    name = name.strip()
    if not name:
        return ["give the dataset a name (letters, digits, '.', '_' or '-')"]
    if not _NAME_RE.fullmatch(name):
        return [f"the dataset name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
                "(at most 64, starting with a letter or digit)"]
    if name.lower() in RESERVED:
        return [f"the dataset name {name!r} is reserved for procl's own folders: choose another"]
    if dataset_folder(name).exists():
        return [f"{dataset_folder(name)} exists already: choose another name (or add that folder by path)"]
    return []


def check_task_name(task: str) -> str | None:
    """A problem with a task name, or None."""
    if not task:
        return "a task has videos but no name: type its name"
    if task.startswith(".") or _BAD_TASK.search(task) or len(task) > 80:
        return (f"the task name {task!r} is not allowed: it names a folder, so no '/', '\\', ':', '*', '?', "
                "quotes, '<', '>', '|' or leading '.', at most 80 characters")
    return None


def _video_problem(path: Path, shown: str) -> str | None:
    """Why the file at `path` is not a video procl can read, or None."""
    if path.stat().st_size == 0:
        return f"{shown} is empty: upload the video again"
    try:
        reader = FrameReader(path, max_side=64, cache=0)
        try:
            reader.frame_at(0.0)
        finally:
            reader.close()
    except ProclError:
        return f"{shown} is not a video OpenCV can decode (damaged, or another kind of file): remove it"
    return None


def create_dataset(name: str, groups: Sequence[tuple[str, Sequence[tuple[str, Content]]]]) -> Path:
    """Write a folder dataset `data/<name>` from (task name, [(file name, content), ...]) groups.

    Groups with neither a task name nor files are ignored (empty slots of a form).
    Returns the new folder; raises UploadError listing every problem, and then writes
    nothing.
    """
    problems = check_dataset_name(name)
    name = name.strip()
    tasks: dict[str, list[tuple[str, Content]]] = {}
    given = False
    for task, files in groups:
        task = " ".join(task.split())
        if not task and not files:
            continue
        given = True
        problem = check_task_name(task)
        if problem:
            problems.append(problem)
            continue
        if task in tasks:
            problems.append(f"the task {task!r} is given twice: put all its videos under one task")
            continue
        tasks[task] = list(files)
    if not given:
        problems.append(f"no videos: type a task's name and add at least {MIN_VIDEOS} of its videos")
    seen: dict[str, str] = {}
    readable: list[tuple[str, str, Content]] = []  # (task, file name, content) to decode
    for task, files in tasks.items():
        if len(files) < MIN_VIDEOS:
            have = ("no video" if not files else f"one video ({Path(files[0][0]).name})" if len(files) == 1
                    else f"{len(files)} videos")
            problems.append(f"the task {task!r} has {have}: procl needs at least {MIN_VIDEOS} videos per task "
                            "(two to train on, one to test): add more")
        for file_name, content in files:
            base = Path(file_name).name
            stem, ext = Path(base).stem, Path(base).suffix.lower()
            shown = f"{base} (task {task!r})"
            if ext not in VIDEO_EXTS:
                problems.append(f"{shown} is not a video: procl reads {', '.join(VIDEO_EXTS)} files; remove it")
                continue
            if not stem or base.startswith("."):
                problems.append(f"{shown}: its name must not start with '.': rename it")
                continue
            if stem in seen:
                where = "the same task" if seen[stem] == task else f"task {seen[stem]!r}"
                problems.append(f"{shown} has the video id {stem!r} of another file in {where}: video ids "
                                "(file names without extension) must be unique in a dataset; rename one")
                continue
            seen[stem] = task
            readable.append((task, base, content))

    # every file whose name is fine is decoded, whatever else is wrong: all problems in one round
    root = data_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".upload.", suffix=".tmp"))
    try:
        for task, base, content in readable:
            path = tmp / "videos" / task / base
            write_bytes(path, content)
            problem = _video_problem(path, f"{base} (task {task!r})")
            if problem:
                problems.append(problem)
        if problems:
            raise UploadError(problems)
        final = dataset_folder(name)
        try:
            os.rename(tmp, final)  # fails if `final` appeared meanwhile
        except OSError as err:
            raise UploadError([f"{final} could not be created ({err}): choose another name"]) from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
