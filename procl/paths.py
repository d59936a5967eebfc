"""Where procl reads and writes: `data/` and `checkpoints/` under the working folder.

Both can be moved with the environment variables PROCL_DATA and PROCL_CHECKPOINTS
(the tests point them at temporary folders). Nothing is written anywhere else.
"""
from __future__ import annotations

import os
import re
import hashlib
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("PROCL_DATA", "data"))


def checkpoints_dir() -> Path:
    return Path(os.environ.get("PROCL_CHECKPOINTS", "checkpoints"))


def slug(text: str) -> str:
    """A short, filesystem-safe, unique name for any string (a dataset spec, say)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[-40:]
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest
