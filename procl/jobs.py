"""Training in a background process: launch, status, cancel.

The app never trains inside its own script: `launch` creates the run folder (so it is
listed at once, as queued) and starts `python -m procl train --run NAME --queued` in a
new process session with its output in the run's train.log. Everything about a job
lives in its run folder, so it survives a page reload or an app restart.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from procl import ProclError, runs
from procl.config import TrainConfig
from procl.io import write_json
from procl.paths import checkpoints_dir
from procl.train import default_run_name


def launch(cfg: TrainConfig, run: str | None = None) -> Path:
    """Validate cfg, create the run folder (queued) and start training it in the background."""
    cfg = cfg.resolved()
    cfg.validate()
    name = runs.check_name(run) if run else default_run_name(cfg)
    path = runs.create_run(name, {**asdict(cfg), "launched": True})
    log = open(path / "train.log", "ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "procl", "train", "--run", name, "--queued"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env=env, cwd=os.getcwd(),
    )
    log.close()
    # reap the child when it ends, so a long-lived app holds no zombie processes
    threading.Thread(target=proc.wait, name=f"procl-job-{name}", daemon=True).start()
    write_json(path / "job.json", {"pid": proc.pid})
    return path


def launch_refine(parent: str | Path, name: str, epochs: int | None = None) -> Path:
    """Start `python -m procl refine --run PARENT --run-name NAME` in the background; returns
    the folder the refined run will have (it appears once its features are loaded). Its
    output goes to the parent's refine-NAME.log (`refine_log`)."""
    parent = runs.check_writable(parent)
    runs.check_name(name)
    target = checkpoints_dir() / name
    if target.exists():
        raise ProclError(f"run {name!r} already exists: choose another name for the refined run")
    log = open(parent / f"refine-{name}.log", "ab")
    cmd = [sys.executable, "-m", "procl", "refine", "--run", str(parent), "--run-name", name]
    proc = subprocess.Popen(cmd + (["--epochs", str(int(epochs))] if epochs else []), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=os.getcwd())
    log.close()
    threading.Thread(target=proc.wait, name=f"procl-refine-{name}", daemon=True).start()
    return target


def refine_log(parent: str | Path, name: str, lines: int = 20) -> str:
    path = runs.run_dir(parent) / f"refine-{name}.log"
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").replace("\r", "\n")
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


def cancel(run: str | Path) -> None:
    """Ask a job to stop; it stops between two steps and keeps its last completed epoch."""
    runs.request_stop(run)


def log_tail(run: str | Path, lines: int = 30) -> str:
    path = runs.run_dir(run) / "train.log"
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").replace("\r", "\n")
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])
