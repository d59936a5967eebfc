"""Where procl reads and writes: `data/` and `checkpoints/` under the working folder.

Both can be moved with the environment variables PROCL_DATA and PROCL_CHECKPOINTS
(the tests point them at temporary folders). Nothing is written anywhere else.
"""
from __future__ import annotations

import hashlib
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"  # the real samples a clone ships (NOTICE.md)


def data_dir() -> Path:
    return Path(os.environ.get("PROCL_DATA", "data"))


def checkpoints_dir() -> Path:
    return Path(os.environ.get("PROCL_CHECKPOINTS", "checkpoints"))


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables set to `values` for the duration, restored (or removed)
    after: PROCL_DATA and PROCL_CHECKPOINTS of a bench or a scratch run, say."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def slug(text: str) -> str:
    """A short, filesystem-safe, unique name for any string (a dataset spec, say)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[-40:]
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest
