"""Refinement: a new run that learns from a person's corrections of a finished run (issue 21).

`python -m procl refine --run PARENT [--corrections FILE] --run-name NEW [--epochs E]`
trains a new run folder, warm-started from the parent's networks and latent states,
whose config.json names its parent ("parent") and holds the corrections it obeyed.
The corrections (procl.corrections) are constraints on the teacher and the student:

- a span a person labelled with a step is a fixed pseudo-label: the step gets one state
  (the state already carrying that name, else the parent's state most of the span's
  frames are nearest to, among those not taken); each refresh moves that state's center
  to the mean of the labelled frames, the task's selection always keeps it, and its
  frames keep that label whatever the teacher finds (and weigh `Constraints.weight`
  times more in the ranking loss); a span labelled "background" is fixed to a
  background state;
- merged states share one label (the group's smallest state stands for it), and states
  with the same name are merged;
- background states are never selected;
- a split state's frames are re-clustered into two: the state keeps one half, a state no
  task used takes the other, both start at their half's center and stay key-steps of the
  tasks that had the state; a split state the parent's decoding had merged with others
  (merge_confused: one step on every timeline, several states) is already several
  states: they become steps of their own, kept key-steps and never merged again
  (config.json's refine "apart", read by `procl.evaluate.merge_evidence`);
- named steps keep their names: the refined run's names.json, so its predictions on
  every other video carry the person's names. After training, each other selected
  state takes the name most of its labelled frames have (`name_by_vote`; which ones in
  voted_names.json).

By default the refinement trains a quarter of the parent's epochs (at least 1): it
starts from the parent, so it costs at most the parent's training time.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from procl import ProclError, corrections, runs
from procl.config import config_from_saved
from procl.corrections import BACKGROUND, Constraints
from procl.decode import labelled_as
from procl.evaluate import format_metrics, open_for_run
from procl.explore import load_run_info, videos_to_correct
from procl.infer import load_run, predict_video
from procl.io import write_json
from procl.names import NAMES_FILE, read_names
from procl.selection import fit_states, nearest_state
from procl.train import TrainHooks, attention_features, train

EPOCH_SHARE = 0.25  # default epochs: this share of the parent's
FREE_PICKS = True  # a task with a labelled video also keeps the teacher's other picks


def _merge_map(M: int, groups: list[list[int]]) -> np.ndarray:
    """state -> the smallest state of its group (union of overlapping groups)."""
    parent = list(range(M))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for g in groups:
        for s in g[1:]:
            a, b = find(g[0]), find(s)
            parent[max(a, b)] = min(a, b)
    return np.array([find(m) for m in range(M)], dtype=np.int64)


class RefineHooks(TrainHooks):
    """The training changes of a refinement (procl.train.TrainHooks)."""

    def __init__(self, parent: Path, raw: dict):
        self.parent = parent
        self.raw = raw
        self.loaded = load_run(parent)
        self.constraints: dict[str, Constraints] = {}
        self.apart: dict[str, list[list[int]]] = {}  # unit -> groups of states kept apart (`_apart`)

    def prepare(self, cfg, dataset, features, units) -> dict:
        loaded = self.loaded
        if {u.key: u.tasks for u in units} != loaded.units:
            raise ProclError(f"the dataset {cfg.dataset} no longer has the tasks run {self.parent.name} was trained on")
        durations = {vid: float(vf.times[-1]) + (float(np.median(np.diff(vf.times))) if vf.T > 1 else 0.5)
                     for vid, vf in features.videos.items()}
        corr = corrections.parse(self.raw, cfg.M, durations)
        if corrections.is_empty(corr):
            raise ProclError(f"run {self.parent.name} has no corrections to learn from: correct it first "
                             "(corrections.json, or --corrections FILE)")
        self.corr = corr
        task_of = {v.id: v.task for v in dataset.videos}
        for u in units:
            labelled = {s["video"] for s in corr["segments"]} - set(u.videos)
            u.videos += sorted(v for v in labelled if task_of.get(v) in u.tasks)  # a person's labels train
            self.constraints[u.key] = self._constraints(u, cfg, features, task_of, corr)
            u.constraints = self.constraints[u.key]
        return {"parent": self.parent.name, "corrections": corr,
                "refine": {"parent_epochs": int(loaded.config.get("epochs") or 0),
                           "anchors": {u: c.anchors for u, c in self.constraints.items()},
                           "apart": {u: groups for u, groups in self.apart.items() if groups},
                           "names": {u: {str(s): n for s, n in c.names.items()} for u, c in self.constraints.items()}}}

    def _constraints(self, u, cfg, features, task_of: dict[str, str], corr: dict) -> Constraints:
        loaded, M = self.loaded, cfg.M
        names = {int(s): n for s, n in read_names(self.parent).get(u.key, {}).items()}
        names.update({int(s): n for s, n in corr["names"].items()})
        by_name: dict[str, list[int]] = {}
        for s, n in names.items():
            by_name.setdefault(n.lower(), []).append(s)
        mm = _merge_map(M, corr["merge"] + [g for g in by_name.values() if len(g) > 1])
        background = sorted({int(mm[s]) for s in corr["background"]})
        state_names = {int(mm[s]): n for s, n in names.items()}
        given = set(state_names)  # states named by the person (names.json, "names")
        anchor_of = {n.lower(): s for s, n in state_names.items() if s not in background}
        shown = {}  # the name as the person wrote it
        segs = [s for s in corr["segments"] if task_of.get(s["video"]) in u.tasks and s["video"] in features.videos]
        frames: dict[str, list[tuple[str, np.ndarray]]] = {}
        for s in segs:
            t = features.videos[s["video"]].times
            frames.setdefault(s["step"].lower(), []).append((s["video"], (t >= s["start"]) & (t < s["end"])))
            shown.setdefault(s["step"].lower(), s["step"])
        # the parent's nearest state of every labelled frame picks a state for a new step name
        vids = sorted({s["video"] for s in segs})
        ys = {v: torch.from_numpy(np.ascontiguousarray(features.videos[v].feats, dtype=np.float32)) for v in vids}
        x = attention_features(loaded.nets[u.key], ys, vids) if vids else {}
        near = {v: mm[nearest_state(x[v], loaded.centers[u.key])] for v in vids}
        taken = set(anchor_of.values()) | set(background)
        order = sorted((k for k in frames if k not in anchor_of), key=lambda k: -sum(m.sum() for _, m in frames[k]))
        for key in order:
            votes = Counter(int(s) for v, m in frames[key] for s in near[v][m])
            if key == BACKGROUND:
                if background:
                    continue
                pick = [s for s, _ in votes.most_common() if s not in taken] or [m for m in range(M) if m not in taken]
                background.append(pick[0])
                taken.add(pick[0])
                continue
            pick = [s for s, _ in votes.most_common() if s not in taken] or \
                   [m for m in range(M) if int(mm[m]) == m and m not in taken]
            if not pick:
                raise ProclError(f"no state is left for the step {shown[key]!r}: the run has only {M} states")
            anchor_of[key] = pick[0]
            state_names[pick[0]] = shown[key]
            taken.add(pick[0])
        fixed = {}
        for key, parts in frames.items():
            label = background[0] if key == BACKGROUND else anchor_of[key]
            for v, m in parts:
                fixed.setdefault(v, np.full(len(m), -1, dtype=np.int64))[m] = label
        self.apart[u.key], unmerged = self._apart(u, corr, mm)
        split, split_centers = self._split(u, cfg, features, corr, mm, taken | set(background), unmerged)
        anchors: dict[str, list[int]] = {}
        for task in u.tasks:
            mine = {anchor_of[key] for key, parts in frames.items() if key != BACKGROUND
                    for v, _ in parts if task_of[v] == task}
            had = {int(mm[s]) for s in loaded.selected[u.key].get(task, [])}
            halves = [s for s, other in split.items() if s in had or other in had]  # both halves of a split state
            halves += [s for s in sorted(unmerged.get(task, ())) if s in had]  # a split merged step's states
            named = {s for s in had if s in given}
            anchors[task] = list(dict.fromkeys(sorted(mine) + halves + sorted(named - mine - set(background))))[: cfg.k]
        return Constraints(fixed=fixed, merge_map=mm, background=background, anchors=anchors,
                           names={s: n for s, n in state_names.items() if s not in background},
                           split=split_centers,
                           labelled_tasks={task_of[v] for v in fixed}, free_picks=FREE_PICKS)

    def _apart(self, u, corr: dict, mm: np.ndarray) -> tuple[list[list[int]], dict[str, set[int]]]:
        """The split states that the parent's decoding labels as one step with others
        (merge_confused, in any task of unit `u`): a person who calls that step two steps
        sees states that are already several, so each group's states become steps of their
        own, kept apart in the refined run (`procl.decode.keep_apart`), with no state
        re-clustered. Returns (the groups kept apart, the parent's own kept too when it is a
        refinement; task -> the states of its groups)."""
        merges = self.loaded.merges(u.key)  # task -> state -> the state it is labelled as
        inherited = self.loaded.config.get("refine", {}).get("apart", {}).get(u.key, [])
        groups = [sorted(int(s) for s in g) for g in inherited]
        states: dict[str, set[int]] = {}
        for s in sorted({int(mm[s]) for s in corr["split"]}):
            for task in u.tasks:
                m = merges.get(task, {})
                if s not in m:
                    continue
                group = sorted({int(mm[x]) for x in labelled_as(m, m[s])})
                if len(group) > 1:
                    groups.append(group)
                    states.setdefault(task, set()).update(group)
        return [list(g) for g in dict.fromkeys(tuple(g) for g in groups)], states

    def _split(self, u, cfg, features, corr: dict, mm: np.ndarray, taken: set[int],
               unmerged: dict[str, set[int]]) -> tuple[dict[int, int], dict[int, np.ndarray]]:
        """Each split state's frames (the unit's training frames nearest to it in the parent's
        teacher space) re-clustered into two (2-means): the state keeps one half and a state
        no task selected, nobody named and nobody marked takes the other; not the states of a
        merged step (`unmerged`, `_apart`). Returns (state -> its other half, both ways;
        state -> the center its half starts at, for `warm`)."""
        done = set().union(*unmerged.values()) if unmerged else set()
        todo = sorted({int(mm[s]) for s in corr["split"]} - done)
        if not todo:
            return {}, {}
        loaded, M = self.loaded, cfg.M
        ys = {v: torch.from_numpy(np.ascontiguousarray(features.videos[v].feats, dtype=np.float32)) for v in u.videos}
        x = attention_features(loaded.nets[u.key], ys, u.videos)
        X = np.concatenate([x[v] for v in u.videos])  # [N, D'] the unit's training frames
        nearest = mm[nearest_state(X, loaded.centers[u.key])]
        used = {int(mm[s]) for sel in loaded.selected[u.key].values() for s in sel} | taken
        free = [m for m in range(M) if int(mm[m]) == m and m not in used]
        out: dict[int, int] = {}
        halves: dict[int, np.ndarray] = {}
        for s in todo:
            frames = X[nearest == s]
            if len(frames) < 2:
                raise ProclError(f"split: state {s} is the nearest state of {len(frames)} training frame(s): "
                                 "there is nothing to split; undo the split")
            if not free:
                raise ProclError(f"split: no state is left for the second half of state {s}: the run has only {M} "
                                 "states (train the parent with a larger M)")
            other = free.pop(0)
            halves[s], halves[other] = fit_states(frames, 2, seed=cfg.seed)
            out[s], out[other] = other, s
        return out, halves

    def warm(self, path, nets, units) -> None:
        nets.load_state_dict(self.loaded.nets.state_dict())
        for u in units:
            u.centers = self.loaded.centers[u.key].copy()
            for s, center in self.constraints[u.key].split.items():  # a split state's two halves
                u.centers[s] = center
        write_json(path / corrections.CORRECTIONS_FILE, self.corr)
        write_json(path / NAMES_FILE, {u: {str(s): n for s, n in sorted(c.names.items())}
                                       for u, c in self.constraints.items() if c.names})


def refine(parent: str | Path, run_name: str, corrections_file: str | Path | None = None,
           epochs: int | None = None, progress: bool = True,
           on_progress: Callable[[dict], None] | None = None, resume: bool = False) -> Path:
    """Train the refined run `run_name` from `parent` and its corrections (module docstring);
    with `resume`, continue the refined run `run_name` (stopped or killed) from its last
    completed epoch, with the corrections and settings it started with."""
    if resume:
        return _resume(parent, run_name, progress, on_progress)
    path = runs.run_dir(parent)
    status = runs.read_status(path)
    if status.get("state") != "done" or not (path / "model.pt").exists():
        raise ProclError(f"run {path.name!r} has not finished training ({status.get('state')}): refine a finished run")
    config = runs.read_config(path)
    runs.check_name(run_name)
    if corrections_file is not None:
        raw = corrections.read_file(corrections_file)
    elif (path / corrections.CORRECTIONS_FILE).exists():
        raw = corrections.read_file(path / corrections.CORRECTIONS_FILE)
    else:
        raise ProclError(f"run {path.name!r} has no corrections.json: correct it in the app, "
                         "or give --corrections FILE")
    named = [key for key in corrections.STATE_KEYS if isinstance(raw, dict) and raw.get(key)]
    if named and (why := corrections.states_ambiguous(config)):
        raise ProclError(f"run {path.name!r}: the corrections name states ({', '.join(named)}), but {why}")
    if epochs is not None and epochs < 1:
        raise ProclError(f"--epochs {epochs}: give at least 1")
    cfg = config_from_saved(config)
    parent_epochs = int(config.get("epochs") or 1)
    cfg = replace(cfg, epochs=epochs or max(1, math.ceil(EPOCH_SHARE * parent_epochs)))
    hooks = RefineHooks(path, raw)
    out = train(cfg, run=run_name, progress=progress, on_progress=on_progress, hooks=hooks)
    if runs.read_status(out).get("state") == "done":
        name_by_vote(out, hooks.constraints)
    return out


def _resume(parent: str | Path, run_name: str, progress: bool, on_progress: Callable | None) -> Path:
    """Continue the refinement `run_name` of `parent` (see `refine`)."""
    child = runs.run_dir(run_name)
    config = runs.read_config(child)
    if config.get("parent") is None or "corrections" not in config:
        raise ProclError(f"run {child.name!r} is not a refinement: continue it with `procl train --run "
                         f"{child.name} --resume`")
    path = runs.run_dir(parent)
    if config["parent"] != path.name:
        raise ProclError(f"run {child.name!r} refines {config['parent']!r}, not {path.name!r}: give --run "
                         f"{config['parent']}")
    hooks = RefineHooks(path, config["corrections"])
    out = train(config_from_saved(config), run=str(child), resume=True, progress=progress,
                on_progress=on_progress, hooks=hooks)
    if runs.read_status(out).get("state") == "done":
        name_by_vote(out, hooks.constraints)
    return out


def name_by_vote(path: Path, constraints: dict[str, Constraints]) -> dict[str, dict[int, str]]:
    """After a refinement: each selected state the person's labels did not name takes the
    step name most of its frames have among the labelled frames of the refined run's own
    predictions (background: no name); written into names.json (and, which ones, into
    voted_names.json). Returns unit -> state -> the name voted."""
    loaded = load_run(path)
    dataset, features = open_for_run(loaded.config, None)
    task_of = {v.id: v.task for v in dataset.videos}
    names = read_names(path)
    voted: dict[str, dict[int, str]] = {}
    for unit, con in constraints.items():
        have = dict(names.get(unit, {}))
        anchor_name = {s: n for s, n in con.names.items()}
        votes: dict[int, Counter] = {}
        for vid, fixed in con.fixed.items():
            if vid not in features.videos or task_of.get(vid) not in loaded.units[unit]:
                continue
            r = predict_video(loaded.nets[unit], features.videos[vid].feats, loaded.units[unit], loaded.selected[unit],
                              loaded.centers[unit], task_of[vid], loaded.decoding(unit))
            for st, f in zip(r["states"], fixed):
                if f >= 0 and st >= 0:
                    votes.setdefault(int(st), Counter())[anchor_name.get(int(f))] += 1
        chosen = {}
        for st, c in votes.items():
            name = c.most_common(1)[0][0]
            if st not in have and name is not None and st not in con.background:
                chosen[st] = name
        if chosen:
            voted[unit] = chosen
            names.setdefault(unit, {}).update(chosen)
    if voted:
        write_json(path / NAMES_FILE, {u: {str(s): n for s, n in sorted(st.items())} for u, st in names.items()})
        write_json(path / "voted_names.json", {u: {str(s): n for s, n in v.items()} for u, v in voted.items()})
    return voted


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="the parent run (name under checkpoints/ or folder)")
    p.add_argument("--corrections", default=None, help="corrections file (default: the parent's corrections.json)")
    p.add_argument("--run-name", required=True, help="name of the new, refined run")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"epochs of the refinement (default: {int(EPOCH_SHARE * 100)}%% of the parent's, at least 1)")
    p.add_argument("--resume", action="store_true",
                   help="continue the refinement --run-name (stopped or killed) from its last completed epoch, "
                        "with the corrections and settings it started with")


def main(args: argparse.Namespace) -> int:
    if args.resume and (args.corrections or args.epochs):
        raise ProclError("--resume continues with the corrections and epochs the refinement started with: "
                         "leave out --corrections and --epochs")
    path = refine(args.run, args.run_name, args.corrections, args.epochs, resume=args.resume)
    status = runs.read_status(path)
    if status.get("state") == "done":
        print(format_metrics(path), file=sys.stderr)
    else:
        print(f"run ended: {status.get('state')}", file=sys.stderr)
    print(path)
    return 0 if status.get("state") == "done" else 1


def changed_frames(parent: str | Path, child: str | Path) -> dict:
    """How a refinement changed the predictions of the videos nobody labelled: the frames
    (and videos) whose state differs between the parent and the refined run (states keep
    their ids: the refined run starts from the parent's), from both runs' outputs."""
    parent, child = runs.run_dir(parent), runs.run_dir(child)
    labelled = {s["video"] for s in runs.read_config(child).get("corrections", {}).get("segments", [])}
    frames = changed = videos = 0
    for f in sorted((child / "outputs").glob("*.npz")):
        vid = f.stem
        if vid in labelled or not runs.outputs_path(parent, vid).exists():
            continue
        a, b = runs.load_outputs(parent, vid)["states"], runs.load_outputs(child, vid)["states"]
        if len(a) != len(b):
            continue
        diff = int((a != b).sum())
        frames, changed, videos = frames + len(a), changed + diff, videos + (diff > 0)
    return {"frames": frames, "changed": changed, "videos_changed": videos, "labelled_videos": len(labelled),
            "share": changed / frames if frames else None}


def add_to_correct_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="a finished run (name under checkpoints/ or folder)")
    p.add_argument("--per-task", type=int, default=3, help="videos per task, most typical first (default 3)")


def main_to_correct(args: argparse.Namespace) -> int:
    """`videos-to-correct`: the videos of each task to correct first, as CSV `task,rank,video`
    (`explore.videos_to_correct`, the rule Explore shows), for a person who labels them in
    another tool and gives the spans to `refine --corrections`."""
    if args.per_task < 1:
        raise ProclError(f"--per-task {args.per_task}: ask for at least 1 video per task")
    info = load_run_info(args.run)
    picked = videos_to_correct(info, args.per_task)
    print("task,rank,video")
    for task in info.tasks:
        for rank, video in enumerate(picked.get(task, []), 1):
            print(f"{task},{rank},{video}")
    return 0
