"""Atomic file writes: every file procl writes goes to a temporary name, then is renamed.

Also the readers that turn a damaged file into one clear error: `read_npz` (any damage
of an .npz archive is a ValueError naming the file) and `read_text` (text that is not
UTF-8 is a ProclError naming the file and the line).
"""
from __future__ import annotations

import errno
import io
import json
import os
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from procl import ProclError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder; rename it onto `path` on success.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically; a full disk is a ProclError naming the folder
    (the file is then left as it was, and so is everything written before)."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        folder = Path(path).parent
        raise ProclError(
            f"no space left to write {Path(path).name} in {folder} ({err.strerror or err}): free some space on "
            "that disk (or point PROCL_DATA / PROCL_CHECKPOINTS elsewhere) and run the command again; "
            "what was written before is kept"
        ) from err


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file's content; ProclError naming the file and line when it is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ProclError(
            f"{path} line {line} is not UTF-8 text (byte 0x{data[err.start]:02x}): save the file as UTF-8"
        ) from None


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an .npz file (no pickles). A missing file is an OSError; a damaged
    one (truncated, bad CRC, not a zip) is a ValueError that names it."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err})") from err


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    write_bytes(path, buf.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
