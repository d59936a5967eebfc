"""Dataset specs: the one string that names a dataset on the command line and in the app.

```
synthetic          the built-in dataset, generated on first use under data/synthetic
folder:PATH        your own videos (layout in procl/data/folder.py)
crosstask:PATH     the CrossTask release
procel:PATH        the ProceL release
actseg:PATH        the action-segmentation layout (features/, groundTruth/, mapping/)
```

`open_dataset(spec)` returns a `Dataset` whatever the source; `load_feature_array`
reads the precomputed features of a video of kind "features" in procl's orientation.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from procl.data.synth import ensure_synthetic
from procl import ProclError
from procl.data.actseg import open_actseg
from procl.data.crosstask import open_crosstask
from procl.data.folder import open_folder
from procl.data.procel import open_procel
from procl.data.records import Dataset, VideoRecord

SYNTHETIC = "synthetic"
ADAPTERS: dict[str, Callable[[Path, str], Dataset]] = {
    "folder": open_folder,
    "crosstask": open_crosstask,
    "procel": open_procel,
    "actseg": open_actseg,
}
VALID_FORMS = "synthetic, folder:PATH, crosstask:PATH, procel:PATH or actseg:PATH"


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """(kind, path) of a spec; path is None for "synthetic". Unknown forms are a ProclError."""
    text = spec.strip()
    if text.lower() == SYNTHETIC:
        return SYNTHETIC, None
    kind, sep, path = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in ADAPTERS:
        hint = f" (to read the folder {text}, write folder:{text})" if text and Path(text).is_dir() else ""
        raise ProclError(f"unknown dataset spec {spec!r}{hint}: use {VALID_FORMS}")
    if not path.strip():
        raise ProclError(f"dataset spec {spec!r} names no folder: write {kind}:PATH")
    return kind, Path(os.path.normpath(os.path.expanduser(path.strip())))


def normalise_spec(spec: str) -> str:
    """The canonical spelling of a spec ("Folder:./x/" -> "folder:x")."""
    kind, path = parse_spec(spec)
    return kind if path is None else f"{kind}:{path}"


def open_dataset(spec: str, progress: bool = True) -> Dataset:
    """Open the dataset a spec names; `progress` shows the synthetic generator's progress."""
    kind, path = parse_spec(spec)
    if path is None:
        root = Path(ensure_synthetic(progress=progress))
        dataset = open_folder(root, SYNTHETIC)
        dataset.boxes_dir = root / "boxes"
        return dataset
    return ADAPTERS[kind](path, f"{kind}:{path}")


def has_region_grid(dataset: Dataset) -> bool:
    """Whether the dataset's frames come with a region grid (R > 1), read without loading
    them: videos do (the backbones pool a grid of cells); precomputed features do when
    their first array is [T, R, D] with R > 1 (`.txt` rows are [T, D]). Some levers'
    default values depend on it (`procl.config.Lever.no_grid`)."""
    first = dataset.videos[0] if dataset.videos else None
    if first is None or first.kind != "features":
        return True
    path = Path(first.source)
    if path.suffix.lower() != ".npy":
        return False
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError):
        return False  # unreadable: training says so, naming the file
    return len(shape) == 3 and shape[1] > 1


def load_feature_array(video: VideoRecord) -> np.ndarray:
    """The precomputed features of a video of kind "features": float32 [T, D] or [T, R, D].

    `.npy` or `.txt` (rows = frames). A 2-D array whose rows do not match the video's
    per-row ground truth but whose columns do is stored [D, T] (MS-TCN) and is transposed.
    """
    if video.kind != "features":
        raise ValueError(f"video {video.id} is a video file, not precomputed features")
    path = Path(video.source)
    try:
        if path.suffix.lower() == ".txt":
            array = np.loadtxt(path, dtype=np.float32, ndmin=2)
        else:
            array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ProclError(f"cannot read the features {path} ({err}): replace the file") from err
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise ProclError(f"features {path} have shape {list(array.shape)}; expected [T, D] or [T, R, D]")
    if video.frame_labels is not None:
        n = len(video.frame_labels)
        if array.ndim == 2 and array.shape[0] != n and array.shape[1] == n:
            array = array.T  # [D, T] -> [T, D]
        if array.shape[0] != n:
            raise ProclError(
                f"features {path} have {array.shape[0]} rows but the video's ground truth has {n} frames: "
                "the two must describe the same frames"
            )
    return np.ascontiguousarray(array, dtype=np.float32)
