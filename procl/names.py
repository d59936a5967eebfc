"""Names a person gives to discovered states ("state 28" -> "loosen nuts"), kept in the run folder.

`names.json` in the run folder maps each network (unit: "all" in a multi-task run, the
task in a single-task run) to its named states: {"all": {"28": "loosen nuts"}}. States
are shared by the tasks of one network, so a name holds in every task that selected
the state. The file is small and written atomically; a missing file means no names.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from procl import ProclError, runs
from procl.io import read_json, write_json

NAMES_FILE = "names.json"
MAX_LENGTH = 60


def read_names(run: str | os.PathLike) -> dict[str, dict[int, str]]:
    """unit -> state -> name, from `run/names.json` (empty when there is none)."""
    path = Path(run) / NAMES_FILE
    if not path.exists():
        return {}
    try:
        raw = read_json(path)
        return {str(unit): {int(s): str(n) for s, n in states.items()} for unit, states in raw.items()}
    except (OSError, ValueError, AttributeError, TypeError, json.JSONDecodeError) as err:
        raise ProclError(f"{path} is damaged ({err}): fix it or delete it (the names are then lost)") from err


def unit_of(config: dict, task: str) -> str:
    """The network (unit) of the run that holds `task`'s states."""
    for unit, tasks in (config.get("units") or {}).items():
        if task in tasks:
            return str(unit)
    raise ProclError(f"task {task!r} is not one of the run's tasks: {', '.join(config.get('tasks', []))}")


def check_name(name: str) -> str:
    """`name` stripped; ProclError when it is too long or spans lines ('' removes a name)."""
    name = str(name).strip()
    if "\n" in name or "\r" in name:
        raise ProclError("a state's name must be one line: remove the line break")
    if len(name) > MAX_LENGTH:
        raise ProclError(f"the name {name[:20]!r}... is {len(name)} characters long: keep it to {MAX_LENGTH}")
    return name


def set_name(run: str | os.PathLike, config: dict, task: str, state: int, name: str) -> dict[str, dict[int, str]]:
    """Name `state` of `task`'s network ('' removes its name); returns every name of the run.

    States outside 0..M-1 are refused; the file is rewritten atomically, only in a run
    folder procl may write in (`runs.check_writable`).
    """
    name = check_name(name)
    run = runs.check_writable(run)
    M = int(config.get("M") or 0)
    if not 0 <= int(state) < max(M, 1):
        raise ProclError(f"state {state} does not exist: the run has states 0..{M - 1}")
    unit = unit_of(config, task)
    names = read_names(run)
    states = names.setdefault(unit, {})
    if name:
        states[int(state)] = name
    else:
        states.pop(int(state), None)
    if not states:
        names.pop(unit)
    write_json(Path(run) / NAMES_FILE, {u: {str(s): n for s, n in sorted(st.items())} for u, st in names.items()})
    return names


def names_by_task(config: dict, names: dict[str, dict[int, str]]) -> dict[str, dict[int, str]]:
    """task -> state -> name, for every task of the run."""
    out = {}
    for task in config.get("tasks", []):
        try:
            out[task] = dict(names.get(unit_of(config, task), {}))
        except ProclError:
            out[task] = {}
    return out
