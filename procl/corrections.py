"""A person's corrections of what a run discovered, and the constraints they put on a refinement.

`corrections.json` in a run folder (or any file given to `refine --corrections`); every
key optional, states are the run's state ids (docs/design.md, "Command line"):

    {"segments": [{"video": "change_tire_003", "start": 4.0, "end": 9.5, "step": "loosen nuts"}],
     "merge": [[12, 31]], "background": [7], "names": {"28": "loosen nuts"}, "split": [5]}

A segment marks the frames of `video` from `start` to `end` seconds as the named step
(`"step": "background"`: as background); `merge` groups states that are one step;
`background` lists states that are no key-step; `names` names states; `split` lists
states that are two steps (a refinement re-clusters their frames into two and keeps
both halves as key-steps of the tasks that had the state). Saving keeps the
versions before it (`corrections.history.json`), so the last change can be undone;
both files are written atomically, and a bad correction is refused with a message
naming the entry before anything is written.

`Constraints` turns checked corrections into what the teacher and the student of a
refinement obey (procl.refine builds them, procl.train applies them).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.spatial.distance import cdist

from procl import ProclError, runs
from procl.decode import relative_time
from procl.io import read_json, write_json
from procl.names import check_name
from procl.selection import TIME_BINS, pairwise_distances, time_bins

CORRECTIONS_FILE = "corrections.json"
HISTORY_FILE = "corrections.history.json"
HISTORY_KEEP = 50  # versions kept for undo
BACKGROUND = "background"
KEYS = ("segments", "merge", "background", "names", "split")


def empty() -> dict:
    return {"segments": [], "merge": [], "background": [], "names": {}, "split": []}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ProclError(f"{what} must be a number of seconds, got {value!r}")
    return float(value)


def _state(value: Any, what: str, M: int | None) -> int:
    if isinstance(value, bool):
        raise ProclError(f"{what}: {value!r} is not a state id")
    try:
        s = int(value)
    except (TypeError, ValueError):
        raise ProclError(f"{what}: {value!r} is not a state id (a whole number)") from None
    if str(s) != str(value).strip() and s != value:
        raise ProclError(f"{what}: {value!r} is not a state id (a whole number)")
    if M is not None and not 0 <= s < M:
        raise ProclError(f"{what}: state {s} does not exist: the run has states 0..{M - 1}")
    return s


def parse(raw: Any, M: int | None = None, durations: dict[str, float] | None = None) -> dict:
    """Checked, normalised corrections from `raw` (a dict as in the module docstring).

    M: the run's number of states (state ids must be 0..M-1); durations: video id ->
    its length in seconds (unknown videos and spans outside the video are refused).
    ProclError names the bad entry and says what to do.
    """
    if not isinstance(raw, dict):
        raise ProclError(f"corrections must be a JSON object with the keys {', '.join(KEYS)}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ProclError(f"corrections: unknown key(s) {', '.join(map(repr, unknown))}: use {', '.join(KEYS)}")
    out = empty()
    segs = raw.get("segments") or []
    if not isinstance(segs, list):
        raise ProclError("corrections: 'segments' must be a list of {video, start, end, step}")
    for i, seg in enumerate(segs):
        what = f"segments[{i}]"
        if not isinstance(seg, dict):
            raise ProclError(f"{what} must be an object {{video, start, end, step}}, got {seg!r}")
        missing = [k for k in ("video", "start", "end", "step") if k not in seg]
        if missing:
            raise ProclError(f"{what} lacks {', '.join(missing)}: give video, start, end and step")
        video = str(seg["video"])
        what = f"segments[{i}] (video {video!r})"
        start, end = _number(seg["start"], f"{what} start"), _number(seg["end"], f"{what} end")
        if end <= start:
            raise ProclError(f"{what}: end {end:g} s is not after start {start:g} s: swap them or widen the span")
        if start < 0:
            raise ProclError(f"{what}: start {start:g} s is before the video begins (0 s)")
        if durations is not None:
            if video not in durations:
                raise ProclError(f"{what}: unknown video {video!r}: it is not one of the run's videos")
            if end > durations[video] + 0.5:
                raise ProclError(f"{what}: end {end:g} s is past the video's end ({durations[video]:.1f} s): "
                                 "shorten the span")
        step = check_name(seg["step"]) if seg["step"] is not None else ""
        if not step:
            raise ProclError(f"{what}: the step name is empty: name the step, or write \"background\"")
        if step.lower() == BACKGROUND:
            step = BACKGROUND
        out["segments"].append({"video": video, "start": start, "end": end, "step": step})
    merges = raw.get("merge") or []
    if not isinstance(merges, list):
        raise ProclError("corrections: 'merge' must be a list of lists of states, e.g. [[12, 31]]")
    seen: dict[int, int] = {}
    for i, group in enumerate(merges):
        what = f"merge[{i}]"
        if not isinstance(group, list) or len(group) < 2:
            raise ProclError(f"{what} must list at least two states to merge, got {group!r}")
        states = []
        for s in group:
            s = _state(s, what, M)
            if s in seen and seen[s] != i:
                raise ProclError(f"{what}: state {s} is already in merge[{seen[s]}]: put it in one group")
            seen[s] = i
            if s not in states:
                states.append(s)
        out["merge"].append(sorted(states))
    bg = raw.get("background") or []
    if not isinstance(bg, list):
        raise ProclError("corrections: 'background' must be a list of states, e.g. [7]")
    out["background"] = sorted({_state(s, f"background[{i}]", M) for i, s in enumerate(bg)})
    names = raw.get("names") or {}
    if not isinstance(names, dict):
        raise ProclError('corrections: \'names\' must map states to names, e.g. {"28": "loosen nuts"}')
    for s, name in names.items():
        state = _state(s, f"names[{s!r}]", M)
        name = check_name(name if name is not None else "")
        if not name:
            raise ProclError(f"names[{s!r}]: the name is empty: give a name, or remove the entry")
        out["names"][str(state)] = name
    splits = raw.get("split") or []
    if not isinstance(splits, list):
        raise ProclError("corrections: 'split' must be a list of states, e.g. [5]")
    out["split"] = sorted({_state(s, f"split[{i}]", M) for i, s in enumerate(splits)})
    for s in out["split"]:
        if s in out["background"]:
            raise ProclError(f"split: state {s} is also marked background: undo one of the two")
        if s in seen:
            raise ProclError(f"split: state {s} is in merge[{seen[s]}]: a state is merged or split, not both")
    return out


def read_file(path: str | os.PathLike) -> dict:
    """The raw corrections of a file (not yet checked against a run)."""
    path = Path(path)
    if not path.exists():
        raise ProclError(f"corrections file {path} does not exist")
    try:
        return read_json(path)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise ProclError(f"{path} is not valid JSON ({err}): fix it, or undo the last change") from err


def durations_of(run: str | os.PathLike) -> dict[str, float]:
    """video id -> length in seconds, of every video the run has outputs for."""
    out = {}
    folder = runs.run_dir(run) / "outputs"
    for f in sorted(folder.glob("*.npz")) if folder.exists() else []:
        times = runs.load_outputs(run, f.stem)["times"]
        step = float(np.median(np.diff(times))) if len(times) > 1 else 0.5
        out[f.stem] = float(times[-1]) + step if len(times) else 0.0
    return out


def read_corrections(run: str | os.PathLike) -> dict:
    """The run's corrections (empty when it has none), normalised."""
    path = runs.run_dir(run) / CORRECTIONS_FILE
    return parse(read_file(path)) if path.exists() else empty()


def _history(run: Path) -> list[dict]:
    path = run / HISTORY_FILE
    if not path.exists():
        return []
    try:
        hist = read_json(path)
        return hist if isinstance(hist, list) else []
    except (OSError, ValueError, json.JSONDecodeError):
        return []


def save_corrections(run: str | os.PathLike, raw: dict, config: dict | None = None, what: str = "") -> dict:
    """Check `raw` against the run and save it as the run's corrections, keeping the
    version before it for undo. Nothing is written when a correction is bad."""
    run = runs.check_writable(run)
    config = config if config is not None else runs.read_config(run)
    new = parse(raw, int(config.get("M") or 0) or None, durations_of(run))
    old = read_corrections(run)
    if new == old:
        return new
    hist = (_history(run) + [{"corrections": old, "what": what}])[-HISTORY_KEEP:]
    write_json(run / HISTORY_FILE, hist)
    write_json(run / CORRECTIONS_FILE, new)
    return new


def undo(run: str | os.PathLike) -> tuple[dict, str]:
    """Restore the corrections before the last change; returns them and what was undone."""
    run = runs.check_writable(run)
    hist = _history(run)
    if not hist:
        raise ProclError("there is no change to undo")
    last = hist.pop()
    write_json(run / CORRECTIONS_FILE, last["corrections"])
    write_json(run / HISTORY_FILE, hist)
    return last["corrections"], last.get("what", "")


def can_undo(run: str | os.PathLike) -> bool:
    return bool(_history(runs.run_dir(run)))


STATE_KEYS = ("merge", "background", "names", "split")  # corrections that name states


def states_ambiguous(config: dict) -> str | None:
    """Why corrections that name states cannot apply to this run, or None when they can: a
    single-task run of several tasks has one network, and its own states 0..M-1, per task,
    so a state number alone does not say which task's state it is. Spans (segments) name a
    video, and so a task: they always apply."""
    units = config.get("units") or {}
    if config.get("setting") == "single" and len(units) > 1:
        return (f"this single-task run has one network per task ({len(units)} tasks), each with its own states, so "
                "a state number alone is ambiguous: mark spans of videos instead (Explore), or train a run of one "
                "task")
    return None


def add(run: str | os.PathLike, kind: str, value: Any, config: dict | None = None) -> dict:
    """One correction added to the run's saved ones: kind "segments" (a {video, start,
    end, step}), "merge" (a list of states), "background" (a state or a list), "names" ((state,
    name)) or "split" (a state). States only where they are unambiguous (`states_ambiguous`)."""
    if kind in STATE_KEYS and config is not None and (why := states_ambiguous(config)):
        raise ProclError(f"{kind}: {why}")
    corr = read_corrections(run)
    if kind == "segments":
        corr["segments"].append(dict(value))
        what = f"{value['video']} {float(value['start']):.1f}-{float(value['end']):.1f} s as {value['step']!r}"
    elif kind == "merge":
        states = {int(s) for s in value}
        keep = [g for g in corr["merge"] if not states & set(g)]
        joined = sorted(states.union(*[set(g) for g in corr["merge"] if states & set(g)]))
        corr["merge"] = keep + [joined]
        what = "merge states " + ", ".join(map(str, joined))
    elif kind == "background":
        states = sorted({int(s) for s in np.atleast_1d(value)})
        corr["background"] = sorted(set(corr["background"]) | set(states))
        what = (f"state {states[0]} is" if len(states) == 1 else f"states {', '.join(map(str, states))} are") + \
            " background"
    elif kind == "names":
        state, name = value
        corr["names"][str(int(state))] = name
        what = f"state {int(state)} named {name!r}"
    elif kind == "split":
        corr["split"] = sorted(set(corr["split"]) | {int(value)})
        what = f"state {int(value)} is two steps"
    else:
        raise ProclError(f"unknown kind of correction {kind!r}: use segments, merge, background, names or split")
    return save_corrections(run, corr, config, what)


def describe(corr: dict) -> list[str]:
    """One line per correction, saying what it touches."""
    lines = [f"{s['video']} {s['start']:.1f}-{s['end']:.1f} s is {s['step']!r}" for s in corr.get("segments", [])]
    lines += ["states " + " + ".join(map(str, g)) + " are one step" for g in corr.get("merge", [])]
    lines += [f"state {s} is background" for s in corr.get("background", [])]
    lines += [f"state {s} is named {n!r}" for s, n in corr.get("names", {}).items()]
    lines += [f"state {s} is two steps (split)" for s in corr.get("split", [])]
    return lines


def is_empty(corr: dict) -> bool:
    return not any(corr.get(k) for k in KEYS)


# ------------------------------------------------------------------ which videos to correct first

def course_profile(states: np.ndarray, steps: Sequence[int], bins: int = TIME_BINS) -> np.ndarray:
    """What a run found in one video, and where: the share of the video's frames that fall
    in each (key-step, tenth of the video's course) pair, with background and every other
    state in one last row. [(len(steps) + 1) * bins], summing to 1 (zeros for no frame)."""
    states = np.asarray(states)
    T = len(states)
    rows = np.full(T, len(steps), dtype=np.int64)  # background and states that are not key-steps: the last row
    for i, s in enumerate(steps):
        rows[states == s] = i
    profile = np.zeros((len(steps) + 1, bins))
    np.add.at(profile, (rows, time_bins(relative_time(T), bins)), 1.0)
    return (profile / max(T, 1)).ravel()


def suggest_videos(states: Mapping[str, np.ndarray], task_of: Mapping[str, str],
                   steps: Mapping[str, Sequence[int]], per_task: int) -> dict[str, list[str]]:
    """task -> the `per_task` videos a person should correct first, most typical first: the
    videos whose `course_profile` (which key-step the run found where in the video's course)
    lies nearest to the task's other videos' (least summed distance; the first is the
    medoid). The names and spans a person gives in a typical video carry furthest to the
    other videos: on generated sets one video per task chosen so gave the refined run 3 to 11
    points more named F1 than one drawn at random (docs/method.md, "Which videos to correct
    first"). Ties go to the video id that sorts first.

    states: video -> its per-frame states (-1 background), for the videos to choose from;
    task_of: video -> task; steps: task -> its k key-step states."""
    out: dict[str, list[str]] = {}
    for task in sorted(set(task_of[v] for v in states)):
        ids = sorted(v for v in states if task_of[v] == task and len(states[v]))
        if not ids or per_task < 1:
            continue
        profiles = np.stack([course_profile(states[v], steps.get(task, ())) for v in ids])
        spread = cdist(profiles, profiles).sum(1)  # [videos] float64: exact, so ties stay ties
        out[task] = [ids[i] for i in np.argsort(spread, kind="stable")[:per_task]]
    return out


# ------------------------------------------------------------------ constraints

@dataclass
class Constraints:
    """What a refinement's teacher and student obey, for one network (unit).

    fixed:      video -> [T] the state each labelled frame must have (-1: free)
    merge_map:  [M] state -> the state that stands for its merged group (itself if none)
    background: states a person marked background (never selected)
    anchors:    task -> states every selection of that task keeps (the person's named steps)
    names:      state -> name, the refined run's names
    split:      state -> the center it starts the refinement at (a split state's two
                halves: the state itself and a state no task used)
    weight:     how much more a labelled frame weighs in the ranking loss
    """

    fixed: dict[str, np.ndarray] = field(default_factory=dict)
    merge_map: np.ndarray | None = None
    background: list[int] = field(default_factory=list)
    anchors: dict[str, list[int]] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    split: dict[int, np.ndarray] = field(default_factory=dict)
    weight: float = 3.0
    labelled_tasks: set[str] = field(default_factory=set)  # tasks with a labelled video
    free_picks: bool = True  # a labelled task also keeps the teacher's other picks

    def excluded(self) -> dict[str, list[int]]:
        """task -> the states other tasks' named steps hold (not its own): it may not select them."""
        every = {s for states in self.anchors.values() for s in states}
        return {task: sorted(every - set(states)) for task, states in self.anchors.items()}

    def selection(self, task: str, selected: list[int]) -> list[int]:
        """A task's key-steps from the teacher's picks: merged groups as one state; with
        free_picks off, a labelled task keeps only its anchored steps."""
        mm = self.merge_map if self.merge_map is not None else np.arange(max(selected, default=0) + 1)
        out = list(dict.fromkeys(int(mm[s]) for s in selected))
        if not self.free_picks and task in self.labelled_tasks and self.anchors.get(task):
            out = [s for s in out if s in self.anchors[task]]
        return out

    def seed_centers(self, centers: np.ndarray, feats: dict[str, np.ndarray]) -> np.ndarray:
        """Each anchored state's center moved to the mean of the frames labelled with it
        (feats: video -> [T, D] in the teacher's space), so it stands for what the
        person labelled and finds the same step in the other videos."""
        centers = centers.copy()
        sums: dict[int, list] = {}
        for vid, fixed in self.fixed.items():
            if vid not in feats:
                continue
            for s in np.unique(fixed[fixed >= 0]):
                if int(s) in self.background:
                    continue
                sums.setdefault(int(s), []).append(feats[vid][fixed == s])
        for s, parts in sums.items():
            centers[s] = np.concatenate(parts).mean(0)
        return centers

    def labels(self, vid: str, x: np.ndarray, centers: np.ndarray, selected: list[int],
               background: list[int]) -> np.ndarray:
        """A video's pseudo-labels [T]: each frame's nearest chosen state (a merged
        group's members all stand for it), mapped to its group, and the labelled
        frames fixed."""
        mm = self.merge_map if self.merge_map is not None else np.arange(len(centers))
        groups = set(int(mm[s]) for s in selected)
        chosen = np.array(sorted({m for m in range(len(centers)) if int(mm[m]) in groups} | set(background)))
        d = pairwise_distances(np.asarray(x, dtype=np.float32), centers[chosen])
        lab = mm[chosen[d.argmin(1)]].astype(np.int64)
        fixed = self.fixed.get(vid)
        if fixed is not None:
            lab = np.where(fixed >= 0, fixed, lab)
        return lab

    def frame_weights(self, vid: str, T: int) -> np.ndarray:
        fixed = self.fixed.get(vid)
        w = np.ones(T, dtype=np.float32)
        if fixed is not None:
            w[fixed >= 0] = self.weight
        return w
