"""The ProceL release (`procel:PATH`, Elhamifar & Naing, ICCV 2019).

Layout, as unpacked from `ProceL_dataset.zip` with the videos downloaded beside it:

```
ROOT/<task>/data.mat      annotations of the task's videos (read with scipy.io.loadmat)
ROOT/<task>/readme.txt    one line per video, tab-separated; the 2nd field is the video
                          name (e.g. "cpr_0001"); line i describes entry i of data.mat
ROOT/<task>/<name>.mp4    the videos (also accepted in ROOT/<task>/videos/), or <name>.npy features
```

Field layout of data.mat implemented here (as loadmat returns it, N videos, K key-steps):
- `grammar`: [K, 1] cell of strings, the key-step names (`grammar[k][0][0]`).
- `key_steps_time`: [N, 1] cell; entry i is a [K, 1] cell whose entry k is an [n, 2]
  array of (start, end) seconds of the n occurrences of key-step k in video i (empty
  when absent): `key_steps_time[i][0][k][0]`.
- `superframe_time`: [N, 1] cell; entry i is the [S, 2] (start, end) seconds of the S
  superframes of video i: `superframe_time[i][0]`. They become `VideoRecord.superframes`
  (ProceL's frames are its superframes). Optional: without it frames are plain samples.
Other fields (`key_steps_frame`, `superframe_frame`, `caption`, ...) are not used.

Without readme.txt the names are the task folder's video files in name order, which
must then be as many as the entries of data.mat. Videos whose file is absent are
skipped with a warning. Splits are the seeded 70/30 split per task.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import scipy.io

from procl import ProclError
from procl.data.folder import (
    check_feature_file,
    check_root,
    duplicate_error,
    read_feature_fps,
    scan_sources,
    seeded_split,
    single_kind,
)
from procl.data.records import Dataset, Segment, VideoRecord


def open_procel(root: Path, spec: str) -> Dataset:
    """Read the ProceL release at `root` (see the module docstring)."""
    check_root(root, "one folder per task with data.mat")
    task_dirs = sorted(p for p in root.iterdir() if p.is_dir() and (p / "data.mat").is_file())
    if not task_dirs:
        raise ProclError(f"no <task>/data.mat under {root}: give the unpacked ProceL_dataset folder")
    videos: list[VideoRecord] = []
    steps: dict[str, list[str]] = {}
    seen: dict[str, Path] = {}
    missing: list[str] = []
    fps = read_feature_fps(root)
    for task_dir in task_dirs:
        task = task_dir.name
        mat_path = task_dir / "data.mat"
        grammar, key_steps, superframes = _read_mat(mat_path)
        steps[task] = grammar
        sources = {**scan_sources(task_dir / "videos"), **scan_sources(task_dir)}
        names = _video_names(task_dir, len(key_steps), sources)
        for i, name in enumerate(names):
            source = sources.get(name)
            if source is None:
                missing.append(f"{task}/{name}")
                continue
            if name in seen:
                raise duplicate_error(seen[name], source)
            seen[name] = source
            record = VideoRecord(
                id=name,
                task=task,
                source=source,
                kind="video" if source.suffix.lower() != ".npy" else "features",
                segments=_segments(key_steps[i], len(grammar), mat_path, i),
                superframes=None if superframes is None else _superframes(superframes[i], mat_path, i),
            )
            if record.kind == "features":
                check_feature_file(source)
                record.feature_fps = fps
            videos.append(record)
    if not videos:
        raise ProclError(
            f"none of the {len(missing)} ProceL videos was found under {root}: put them at "
            "<task>/<name>.mp4 (names as in <task>/readme.txt)"
        )
    if missing:
        warnings.warn(
            f"ProceL: {len(missing)} videos named in data.mat/readme.txt have no file and are skipped "
            f"(e.g. {', '.join(missing[:3])})",
            stacklevel=2,
        )
    single_kind(videos, root)
    tasks = sorted({v.task for v in videos})
    steps = {t: steps[t] for t in tasks}
    return Dataset(spec=spec, root=root, videos=videos, tasks=tasks, steps=steps, split=seeded_split(videos))


def _read_mat(path: Path) -> tuple[list[str], list[np.ndarray], list[np.ndarray] | None]:
    """(key-step names, per-video key-step cells, per-video superframes or None) of data.mat."""
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several types for a damaged file
        raise ProclError(f"cannot read {path} ({err}): replace it with the file from the ProceL release") from err
    for name in ("grammar", "key_steps_time"):
        if name not in mat:
            raise ProclError(f"{path} has no field {name!r}; is it a ProceL data.mat? (fields: {_fields(mat)})")
    grammar = [_text(cell, path, "grammar") for cell in mat["grammar"].ravel()]
    key_steps = list(mat["key_steps_time"].ravel())
    superframes = None
    if "superframe_time" in mat:
        superframes = list(mat["superframe_time"].ravel())
        if len(superframes) != len(key_steps):
            raise ProclError(
                f"{path}: superframe_time has {len(superframes)} videos but key_steps_time has "
                f"{len(key_steps)}; the file is inconsistent"
            )
    return grammar, key_steps, superframes


def _fields(mat: dict) -> str:
    return ", ".join(sorted(k for k in mat if not k.startswith("__")))


def _text(cell: np.ndarray | str, path: Path, field: str) -> str:
    """The one string inside a (possibly nested) MATLAB cell."""
    while isinstance(cell, np.ndarray):
        if cell.size != 1:
            raise ProclError(f"{path}: an entry of {field!r} is not a single string ({cell!r})")
        cell = cell.ravel()[0]
    if not isinstance(cell, str):
        raise ProclError(f"{path}: an entry of {field!r} is not a string ({cell!r})")
    return cell.strip()


def _segments(cells: np.ndarray, n_steps: int, path: Path, video: int) -> list[Segment]:
    """Segments of one video from its [K, 1] cell of [n, 2] second arrays."""
    per_step = cells.ravel() if cells.dtype == object else [cells]
    where = f"{path}: key_steps_time of video {video + 1}"
    if len(per_step) != n_steps:
        raise ProclError(f"{where} has {len(per_step)} key-steps but grammar has {n_steps}; the file is inconsistent")
    segments = []
    for step, times in enumerate(per_step):
        times = np.asarray(times, dtype=np.float64)
        if times.size == 0:
            continue
        if times.ndim != 2 or times.shape[1] != 2:
            raise ProclError(
                f"{where}, key-step {step + 1}: expected an [n, 2] array of (start, end), got {list(times.shape)}"
            )
        for start, end in times:
            if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end < start:
                raise ProclError(f"{where}, key-step {step + 1}: invalid segment {start:g}..{end:g} s")
            segments.append(Segment(step, float(start), float(end)))
    segments.sort(key=lambda s: (s.start, s.end))
    return segments


def _superframes(times: np.ndarray, path: Path, video: int) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64)  # [S, 2]
    if times.ndim != 2 or times.shape[1] != 2 or times.shape[0] == 0:
        raise ProclError(
            f"{path}: superframe_time of video {video + 1} should be an [S, 2] array of (start, end) "
            f"seconds, got {list(times.shape)}"
        )
    if not np.isfinite(times).all() or (times[:, 1] < times[:, 0]).any():
        raise ProclError(f"{path}: superframe_time of video {video + 1} has a superframe that ends before it starts")
    return times


def _video_names(task_dir: Path, n: int, sources: dict[str, Path]) -> list[str]:
    """The names of the n videos of data.mat, in its order."""
    readme = task_dir / "readme.txt"
    if readme.exists():
        names = []
        with open(readme, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    fields = [f.strip() for f in line.rstrip("\r\n").split("\t")]
                    names.append(fields[1] if len(fields) > 1 and fields[1] else fields[0])
        if len(names) != n:
            raise ProclError(
                f"{readme} lists {len(names)} videos but {task_dir / 'data.mat'} annotates {n}; line i "
                "must describe video i: delete the lines of videos data.mat lacks (the release's "
                "perform_cpr/readme.txt has an extra 'cpr_0041' line)"
            )
        return names
    names = sorted(sources)
    if len(names) != n:
        raise ProclError(
            f"{task_dir} has no readme.txt and {len(names)} video files for the {n} videos of data.mat: "
            "add the readme.txt of the ProceL release"
        )
    return names
