"""The run folder `checkpoints/<name>/`: create, write, read, list.

Files (every one written to a temporary name and renamed into place):
  config.json    every setting, the dataset spec, the backbone and a fingerprint of its features
  status.json    state (queued/running/done/failed/cancelled), epoch, step, losses, timings, pid
  model.pt       state_dict of the network(s), loaded with torch.load(weights_only=True)
  resume.pt      model + optimizer + teacher state after the last completed epoch (for --resume)
  states.npz     k-means centers; selected.json the per-task selected states;
  decoding.json  per network, the background states and each task's key-steps in typical order
                 and how much the network confuses them and how often they make one run (merge_confused)
  task_head.npz  per multi-task network, the state classifier fit after training (procl.task_head)
  metrics.json   the metric protocol's figures (procl.metrics) and the baselines
  predictions.csv  one row per scored frame (the `predict` columns)
  outputs/<video>.npz  per-video arrays the app shows: attention, state probabilities,
                 states, teacher labels, ground truth, task probabilities, pooling weights
  names.json     names the user gave to states on Key-steps (procl.names), when any
  train.log      the training process's output when launched in the background
  STOP           present when a stop was requested (honoured between steps)
  LOCK           the pid of the process training the run, while it trains (`lock_run`)
  .procl-run     written when procl makes the folder: procl writes only in folders that
                 have it, or in folders directly under checkpoints/ (runs of older versions)
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import procl
from procl import ProclError
from procl.io import read_json, read_npz, write_bytes, write_json, write_npz, write_text
from procl.paths import checkpoints_dir
from procl.task_head import TaskHead

TERMINAL = ("done", "failed", "cancelled")
MARKER = ".procl-run"
LOCK = "LOCK"
_LOCK_GRACE_S = 10.0  # an empty LOCK younger than this is being written by its holder
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ProclError(
            f"run name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return name


def create_run(name: str, config: dict, lock: bool = False) -> Path:
    """Make `checkpoints/<name>/` with config.json, a queued status and the marker
    `.procl-run` (and, with `lock`, a LOCK held by this process), atomically.

    The folder is filled under a temporary name and renamed, so a run folder is
    never half-made; an existing name is refused, so two trainings never share one.
    """
    check_name(name)
    root = checkpoints_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if final.exists():
        raise ProclError(f"run {name!r} already exists in {root}: choose another --run name, or --resume it")
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".tmp"))
    try:
        write_json(tmp / "config.json", config)
        write_json(tmp / "status.json", {"state": "queued", "created": time.time()})
        write_json(tmp / MARKER, {"procl_version": procl.__version__, "created": time.time()})
        if lock:
            write_text(tmp / LOCK, f"{os.getpid()}\n")
        os.rename(tmp, final)  # fails if `final` appeared meanwhile
    except OSError as err:
        raise ProclError(f"run {name!r} could not be created in {root}: {err}") from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def unique_name(base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever does not exist yet."""
    root = checkpoints_dir()
    name, i = base, 2
    while (root / name).exists():
        name, i = f"{base}-{i}", i + 1
    return name


def run_dir(run: str | os.PathLike) -> Path:
    """The folder of a run given by name (under checkpoints/) or by path."""
    path = Path(run)
    if (path / "config.json").is_file():
        return path
    by_name = checkpoints_dir() / str(run)
    if (by_name / "config.json").is_file():
        return by_name
    known = ", ".join(r["name"] for r in list_runs()[:10]) or "none"
    raise ProclError(f"unknown run {str(run)!r}: no {by_name}/config.json (runs found: {known})")


def read_config(run: str | os.PathLike) -> dict:
    path = run_dir(run) / "config.json"
    try:
        return read_json(path)
    except (OSError, json.JSONDecodeError) as err:
        raise ProclError(f"{path} is unreadable ({err}): the run folder is damaged") from err


def read_metrics(run: str | os.PathLike) -> dict | None:
    """The run's metrics.json (None before its training finished); ProclError if damaged."""
    path = run_dir(run) / "metrics.json"
    if not path.exists():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError) as err:
        raise ProclError(f"{path} is damaged ({err}): re-run `python -m procl evaluate`") from err


def read_selected(run: str | os.PathLike) -> dict:
    """The run's selected.json (unit -> task -> its k states; empty before the first epoch ends)."""
    path = run_dir(run) / "selected.json"
    if not path.exists():
        return {}
    try:
        return read_json(path)
    except (OSError, ValueError) as err:
        raise ProclError(f"{path} is damaged ({err}): retrain the run") from err


# ---------------------------------------------------------------- writing into a run folder

def check_writable(run: str | os.PathLike) -> Path:
    """The folder of `run` when procl may write in it: one procl made (it holds
    `.procl-run`), or one directly under checkpoints/ (runs of procl versions before
    the marker). Any other folder holding a config.json is only read."""
    path = run_dir(run)
    if (path / MARKER).is_file():
        return path
    try:
        under = path.resolve().parent == checkpoints_dir().resolve()
    except OSError:
        under = False
    if not under:
        raise ProclError(
            f"{path} was not made by procl (it has no {MARKER}) and is not under {checkpoints_dir()}: procl only "
            f"reads it (evaluate, predict, procedure); copy it into {checkpoints_dir()} to resume it or name its states"
        )
    return path


def _lock_holder(lock: Path) -> int | None:
    """The pid in a LOCK file, or None (empty, unreadable or gone)."""
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def lock_run(run: str | os.PathLike) -> Path:
    """Take the run folder for this process, so that one process at a time trains a run.

    LOCK is created atomically (O_EXCL) and holds the pid; a LOCK whose process has
    died is broken. ProclError when a living process holds it, or the folder is not
    one procl may write in (`check_writable`). Released by `unlock_run`."""
    path = check_writable(run)
    lock = path / LOCK
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            return path
        holder = _lock_holder(lock)
        if holder == os.getpid():
            return path
        if holder is None:
            try:
                young = time.time() - lock.stat().st_mtime < _LOCK_GRACE_S
            except FileNotFoundError:
                continue
            alive = young  # being written by the process that just made it
        else:
            alive = _pid_alive(holder)
        if alive:
            raise ProclError(
                f"run {path.name!r} is in use by process {holder or '(starting)'}, which trains it: wait for it to end "
                f"or cancel it; if no such process runs any more, delete {lock}"
            )
        _break_lock(lock, holder)
    raise ProclError(f"could not take {lock}: other processes keep taking it; try again")


def _break_lock(lock: Path, holder: int | None) -> None:
    """Remove a LOCK left by the dead process `holder`. It is renamed away first (one
    process wins the rename); should a living process have replaced it meanwhile, it is
    put back."""
    grave = lock.with_name(f".{LOCK}.{os.getpid()}.stale")
    try:
        os.rename(lock, grave)
    except FileNotFoundError:
        return  # another process broke it
    if _lock_holder(grave) != holder:
        try:
            os.link(grave, lock)
        except OSError:
            pass
    grave.unlink(missing_ok=True)


def unlock_run(run: str | os.PathLike) -> None:
    """Release a run folder this process locked (a LOCK of another process is left)."""
    lock = Path(run) / LOCK
    if _lock_holder(lock) == os.getpid():
        lock.unlink(missing_ok=True)


# ---------------------------------------------------------------- status

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_status(run: str | os.PathLike) -> dict:
    """status.json, with a running/queued run whose process died reported as failed."""
    path = Path(run) / "status.json" if Path(run, "status.json").exists() else run_dir(run) / "status.json"
    try:
        status = read_json(path)
    except (OSError, json.JSONDecodeError) as err:
        return {"state": "failed", "error": f"{path} is unreadable: {err}"}
    pid = status.get("pid") or _job_pid(path.parent)
    if status.get("state") in ("running", "queued") and pid and not _pid_alive(int(pid)):
        status["state"] = "failed"
        status.setdefault(
            "error",
            f"the training process (pid {pid}) ended without finishing (killed?); "
            "`python -m procl train --run NAME --resume` continues from the last completed epoch",
        )
    return status


def _job_pid(run: Path) -> int | None:
    """The pid of the background process that `procl.jobs.launch` started, if any."""
    try:
        return int(read_json(run / "job.json")["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_status(run: Path, status: dict) -> None:
    write_json(Path(run) / "status.json", {**status, "updated": time.time()})


def request_stop(run: str | os.PathLike) -> None:
    write_bytes(check_writable(run) / "STOP", b"stop requested\n")


def stop_requested(run: Path) -> bool:
    return (Path(run) / "STOP").exists()


def list_runs() -> list[dict[str, Any]]:
    """Every run folder under checkpoints/, newest first; a damaged one is listed with its error."""
    root = checkpoints_dir()
    out = []
    if not root.is_dir():
        return out
    for path in root.iterdir():
        if path.name.startswith(".") or not path.is_dir():
            continue
        entry: dict[str, Any] = {"name": path.name, "path": str(path)}
        try:
            entry["config"] = read_json(path / "config.json")
        except (OSError, json.JSONDecodeError) as err:
            entry["error"] = f"config.json unreadable: {err}"
            entry["status"] = {"state": "failed"}
            entry["mtime"] = path.stat().st_mtime
            out.append(entry)
            continue
        entry["status"] = read_status(path)
        if (path / "metrics.json").exists():
            try:
                entry["metrics"] = read_metrics(path)
            except ProclError:
                entry["metrics"] = None
        entry["mtime"] = entry["status"].get("created", path.stat().st_mtime)
        out.append(entry)
    out.sort(key=lambda e: e["mtime"], reverse=True)
    return out


# ---------------------------------------------------------------- tensors and arrays

def save_torch(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def load_torch(path: Path) -> Any:
    """torch.load with weights_only=True; a damaged or foreign file gives a clear error."""
    if not path.is_file():
        raise ProclError(f"{path} is missing: the run has not finished an epoch yet, or was deleted")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        raise ProclError(
            f"{path} is not a procl checkpoint or is damaged ({type(err).__name__}: {err}); "
            "retrain the run or restore the file"
        ) from err


def save_states(run: Path, centers: dict[str, np.ndarray], selected: dict[str, dict[str, list[int]]],
                background: dict[str, list[int]] | None = None,
                order: dict[str, dict[str, list[int]]] | None = None) -> None:
    """centers: unit -> [M, D]; selected: unit -> task -> k state indices in pick order;
    background: unit -> the background states (procl's "shared" background);
    order: unit -> task -> the selected states in their typical order (for decoding)."""
    arrays = {f"centers/{u}": c for u, c in centers.items()}
    write_npz(Path(run) / "states.npz", **arrays)
    write_json(Path(run) / "decoding.json", {u: {"background": (background or {}).get(u, []),
                                                 "order": (order or {}).get(u, {})} for u in centers})
    write_json(Path(run) / "selected.json", selected)


def load_states(run: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, list[int]]]]:
    run = Path(run)
    try:
        centers = {k.split("/", 1)[1]: v for k, v in read_npz(run / "states.npz").items()}
        selected = read_json(run / "selected.json")
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise ProclError(f"the states of run {run} are missing or damaged ({err})") from err
    return centers, selected


def load_decoding(run: Path) -> dict[str, dict]:
    """unit -> {"background": [states], "order": {task: [states]}, and what `save_merge_evidence`
    added: "confusion" and "contiguity", task -> [k, k] arrays over the task's selected
    states} ({} for runs made before procl decoded with them; no "confusion" and
    "contiguity" for runs made before they were measured)."""
    path = Path(run) / "decoding.json"
    if not path.exists():
        return {}

    def matrices(d: dict, key: str) -> dict[str, np.ndarray]:
        return {t: np.array(c, dtype=np.float64).reshape(len(c), len(c)) for t, c in d.get(key, {}).items()}

    try:
        return {u: {"background": [int(s) for s in d.get("background", [])],
                    "order": {t: [int(s) for s in o] for t, o in d.get("order", {}).items()},
                    **{key: matrices(d, key) for key in MERGE_EVIDENCE if key in d}}
                for u, d in read_json(path).items()}
    except (OSError, ValueError, AttributeError, TypeError) as err:
        raise ProclError(f"{path} is damaged ({err}); retrain the run or delete the file") from err


MERGE_EVIDENCE = ("confusion", "contiguity")  # decoding.json's matrices that merge_confused reads


def save_merge_evidence(run: Path, evidence: dict[str, dict[str, dict[str, np.ndarray]]]) -> None:
    """Add to decoding.json, per network, what the decoding lever merge_confused reads
    (unit -> {"confusion" | "contiguity": task -> [k, k] over its selected states in pick
    order}: `procl.decode.state_confusion`, `state_contiguity`; NaN written as null)."""
    path = Path(run) / "decoding.json"
    raw = read_json(path) if path.exists() else {}
    for unit, kinds in evidence.items():
        entry = raw.setdefault(unit, {"background": [], "order": {}})
        for key, tasks in kinds.items():
            entry[key] = {t: [[round(float(x), 6) if np.isfinite(x) else None for x in row] for row in np.asarray(c)]
                          for t, c in tasks.items()}
    write_json(path, raw)


def save_task_heads(run: Path, heads: dict[str, TaskHead]) -> None:
    """unit -> its state classifier (procl.task_head), in task_head.npz."""
    arrays = {f"{part}/{u}": getattr(h, part) for u, h in heads.items() for part in ("weight", "bias")}
    write_npz(Path(run) / "task_head.npz", **arrays)


def load_task_heads(run: Path) -> dict[str, TaskHead]:
    """unit -> its state classifier ({} for runs that have none: not finished, or made
    before procl fit one; their network's classifier decides)."""
    path = Path(run) / "task_head.npz"
    if not path.exists():
        return {}
    try:
        z = read_npz(path)
        units = {k.split("/", 1)[1] for k in z}
        return {u: TaskHead(z[f"weight/{u}"], z[f"bias/{u}"]) for u in units}
    except (OSError, ValueError, KeyError) as err:
        raise ProclError(f"{path} is damaged ({err}); delete it (the network's classifier then decides) "
                         "or train the run again") from err


def outputs_path(run: Path, video_id: str) -> Path:
    return Path(run) / "outputs" / f"{video_id}.npz"


def save_outputs(run: Path, video_id: str, **arrays: np.ndarray) -> None:
    write_npz(outputs_path(run, video_id), **arrays)


def load_outputs(run: str | os.PathLike, video_id: str) -> dict[str, np.ndarray]:
    path = outputs_path(run_dir(run), video_id)
    try:
        return read_npz(path)
    except (OSError, ValueError) as err:
        raise ProclError(f"{path} is missing or damaged ({err}); re-run `python -m procl evaluate --run ...`") from err
