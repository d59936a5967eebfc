"""Training in a background process: launch, status, cancel.

The app never trains inside its own script: `launch` creates the run folder (so it is
listed at once, as queued) and starts `python -m procl train --run NAME --queued` in a
new process session with its output in the run's train.log. Everything about a job
lives in its run folder, so it survives a page reload or an app restart.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
from dataclasses import asdict, replace
from pathlib import Path

from procl import ProclError, runs
from procl.config import TrainConfig
from procl.io import write_json
from procl.paths import checkpoints_dir
from procl.train import default_run_name


def launch(cfg: TrainConfig, run: str | None = None) -> Path:
    """Validate cfg, create the run folder (queued) and start training it in the background."""
    cfg.resolved().validate()
    cfg = cfg.resolved(grid=None)  # the levers that depend on a region grid: decided when the features are read
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


MAX_SWEEP = 8  # values of k one "try several k" may launch
MAX_SEEDS = 5  # seeds per k one "try several k" may launch
SWEEP_SEEDS = 2  # the Train page's default: two seeds of each k let Compare suggest k by their agreement


def parse_k_list(text: str, M: int | None = None) -> list[int]:
    """The values of k in "5, 7, 10" (commas, spaces or semicolons), sorted without repeats;
    ProclError naming the first bad value."""
    values = [v for v in re.split(r"[,;\s]+", (text or "").strip()) if v]
    if not values:
        raise ProclError("Give the values of k to try, e.g. 5, 7, 10.")
    ks: list[int] = []
    for v in values:
        try:
            k = int(v)
        except ValueError:
            raise ProclError(f"{v!r} is not a whole number: give values of k such as 5, 7, 10.") from None
        if k < 1:
            raise ProclError(f"k = {k} is too small: each value must be at least 1.")
        if M is not None and k > M:
            raise ProclError(f"k = {k} is more than M = {M} (the steps of a task are chosen among M kinds of "
                             "moment): give smaller values or raise M.")
        if k not in ks:
            ks.append(k)
    if len(ks) < 2:
        raise ProclError("Give at least two different values of k to compare, e.g. 5, 7, 10.")
    if len(ks) > MAX_SWEEP:
        raise ProclError(f"{len(ks)} values of k: at most {MAX_SWEEP} at once (each is a training).")
    return sorted(ks)


def sweep_plan(cfg: TrainConfig, ks: list[int], run: str | None = None,
               seeds: int = 1) -> list[tuple[str, TrainConfig]]:
    """(run name, settings) of each run of a sweep: cfg with each k and, with `seeds` > 1,
    each of the seeds cfg.seed, cfg.seed + 1, ... (runs of one k with different seeds let
    Compare measure how alike they come out: procl.choosek.seed_agreement). Named RUN-kK
    (RUN-kK-sS with several seeds) when `run` is given, else automatically. ProclError for
    invalid settings or a name already taken."""
    if not 1 <= seeds <= MAX_SEEDS:
        raise ProclError(f"{seeds} seeds per k: give 1 to {MAX_SEEDS} (each is a training).")
    plan = []
    for k in ks:
        for seed in range(cfg.seed, cfg.seed + seeds):
            c = replace(cfg, k=int(k), seed=seed)
            c.resolved().validate()
            c = c.resolved(grid=None)  # the levers that depend on a region grid: decided when the features are read
            tag = f"-s{seed}" if seeds > 1 else ""
            if run:
                name = runs.check_name(f"{run}-k{k}{tag}")
                if (checkpoints_dir() / name).exists():
                    raise ProclError(f"run {name!r} already exists: choose another run name")
            else:
                name = default_run_name(c)
            if name in [n for n, _ in plan]:
                name = runs.unique_name(f"{name}-{k}{tag}")
            plan.append((name, c))
    return plan


def launch_sweep(cfg: TrainConfig, ks: list[int] | str, run: str | None = None, seeds: int = 1) -> list[Path]:
    """Create one queued run per k (and seed: `sweep_plan`) with cfg's other settings and train
    them one after another in one background process, so that they do not share the CPU or
    GPU. Each run keeps its own train.log and can be cancelled alone (a queued run's STOP
    ends it before it trains)."""
    if isinstance(ks, str):
        ks = parse_k_list(ks, cfg.resolved().M)
    plan = sweep_plan(cfg, ks, run, seeds)
    paths = [runs.create_run(name, {**asdict(c), "launched": True, "sweep": list(ks)}) for name, c in plan]
    steps = [f"{shlex.quote(sys.executable)} -m procl train --run {shlex.quote(p.name)} --queued "
             f">> {shlex.quote(str((p / 'train.log').resolve()))} 2>&1" for p in paths]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(["/bin/sh", "-c", "; ".join(steps)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
                            env=env, cwd=os.getcwd())
    threading.Thread(target=proc.wait, name=f"procl-sweep-{paths[0].name}", daemon=True).start()
    for p in paths:  # the queued runs are alive while the chain is
        write_json(p / "job.json", {"pid": proc.pid})
    return paths


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


def waiting_in_sweep(run: str | Path) -> bool:
    """Whether a queued run of a "try several k" chain has not started: the runs before it
    are training (its train.log holds nothing yet)."""
    path = runs.run_dir(run)
    if runs.read_status(path).get("state") != "queued" or "sweep" not in runs.read_config(path):
        return False
    log = path / "train.log"
    return not log.exists() or log.stat().st_size == 0


def log_tail(run: str | Path, lines: int = 30) -> str:
    path = runs.run_dir(run) / "train.log"
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").replace("\r", "\n")
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])
