"""What the app shows about datasets and runs, computed from files (no streamlit here).

A run is read from its folder only (procl.runs): per-video arrays written at the end
of training, predictions.csv (video, task, predicted task and split of every scored
frame), selected.json and metrics.json, whose per-task Hungarian matching names each
state by the ground-truth step it matched. The dataset is needed only for what the
run folder does not hold: the video files (frames) and the ground truth of a preview.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from procl import ProclError, metrics, runs, viz
from procl.config import config_from_saved, task_given
from procl.corrections import CORRECTIONS_FILE, read_corrections, suggest_videos
from procl.data import Dataset, VideoRecord
from procl.decode import labelled_as, merge_maps
from procl.features.video import FrameReader
from procl.infer import segments_frame
from procl.io import read_json
from procl.metrics import annotated
from procl.names import NAMES_FILE, names_by_task, read_names, unit_of
from procl.paths import SAMPLES, data_dir, slug
from procl.selection import SHARED_MIN_TASKS
from procl.words import dataset_name

RUN_FILES = ("config.json", "status.json", "metrics.json", "selected.json", "predictions.csv", NAMES_FILE,
             CORRECTIONS_FILE)
PLAYER_MAX_BYTES = 200 * 1024 * 1024  # larger files are not embedded in the page (it would read them whole)


def scored(metrics: dict | None) -> bool:
    """Whether a run's metrics.json holds localization scores (its videos had ground truth)."""
    return annotated(metrics or {})


def equal_cuts_f1(metrics: dict | None) -> float | None:
    """F1 of equal cuts a run's metrics.json keeps beside its own (`evaluate.uniform_score`);
    None without ground truth or for a run finished before procl kept it."""
    return ((metrics or {}).get("uniform") or {}).get("f1")


@dataclass
class RunInfo:
    """A run's settings, status, metrics and selected states, read once."""

    path: Path
    config: dict
    status: dict
    metrics: dict | None
    selected_states: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # unit -> task -> states
    names: dict[str, dict[int, str]] = field(default_factory=dict)  # unit -> state -> the user's name
    merged: list[list[int]] = field(default_factory=list)  # the person's merges: states that are one step
    auto_merged: dict[str, dict[int, int]] = field(default_factory=dict)  # task -> state -> the state it is
    # labelled as (the decoding lever merge_confused: states the network does not tell apart)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def state(self) -> str:
        return str(self.status.get("state", "unknown"))

    @property
    def finished(self) -> bool:
        """Whether the run has its results (metrics, predictions and per-video outputs)."""
        return self.state == "done" and self.metrics is not None

    @property
    def tasks(self) -> list[str]:
        return list(self.config.get("tasks", []))

    @property
    def features(self) -> dict:
        return self.config.get("features") or {}

    @property
    def grid(self) -> tuple[int, int] | None:
        """The attention grid (gh, gw), or None when the features have no grid (R = 1)."""
        g = self.features.get("grid")
        if not g or int(self.features.get("R") or 1) <= 1:
            return None
        return int(g[0]), int(g[1])

    def mapping(self, task: str) -> dict[str, int]:
        """state (as string) -> matched ground-truth step of `task` (pooled matching)."""
        if not self.metrics:
            return {}
        return self.metrics.get("student", {}).get("per_task", {}).get(task, {}).get("mapping") or {}

    def selected(self, task: str) -> list[int]:
        """The task's k selected states in pick order (empty before the first epoch)."""
        for unit in self.selected_states.values():
            if task in unit:
                return [int(s) for s in unit[task]]
        return []

    def step_names(self, task: str) -> list[str]:
        return list(self.config.get("steps", {}).get(task, []))

    def step_name(self, task: str, state: int) -> str | None:
        """The name of the ground-truth step `state` matched in `task`, or None."""
        step = self.mapping(task).get(str(int(state)))
        steps = self.step_names(task)
        if step is None:
            return None
        return steps[step] if step < len(steps) else f"step {step + 1}"

    @property
    def annotated(self) -> bool:
        """Whether the run was scored against ground truth (some video of it is annotated)."""
        return scored(self.metrics)

    def given_name(self, task: str, state: int) -> str | None:
        """The name the user gave `state` (in `task`'s network), or None."""
        if state < 0:
            return None
        try:
            return self.names.get(unit_of(self.config, task), {}).get(int(state))
        except ProclError:
            return None

    def state_label(self, task: str, state: int) -> str:
        """What to call a state in a legend or a list: its given name, else its matched
        step's name, else "state m" (with "(unmatched)" when the run has ground truth)."""
        if state < 0:
            return "background"
        name = self.given_name(task, state) or self.step_name(task, state)
        if name:
            return name
        return f"state {state} (unmatched)" if self.annotated else f"state {state}"

    def state_text(self, task: str, state: int) -> str:
        """A state in full: 'state 28 "loosen nuts" → remove wheel' (name and matched step
        when there are), 'state 28 (unmatched)', 'state 28', or 'background'."""
        if state < 0:
            return "background"
        text = f"state {state}"
        name = self.given_name(task, state)
        if name:
            text += f" “{name}”"
        step = self.step_name(task, state)
        if step:
            text += f" → {step}"
        elif self.annotated:
            text += " (unmatched)"
        return text

    def state_colors(self, task: str, extra=()) -> dict[int, str]:
        """Colour per state for `task`, the same on every page: a state matched to a step
        takes the step's colour; the task's other selected states take colours of their
        own in state order, then any state of `extra` (say, of another task's selection)."""

        sel = sorted(self.selected(task))
        others = sorted({int(s) for s in np.asarray(extra).reshape(-1) if int(s) >= 0} - set(sel))
        return self.merge_colors(viz.state_colors(self.mapping(task), sel + others, len(self.step_names(task))), task)

    def merge_colors(self, colors: dict[int, str], task: str) -> dict[int, str]:
        """`colors` with each merged group in one colour, a matched member's first: a person's
        merges (one step) and the decoding's (merge_confused: one label)."""
        mapping = self.mapping(task)
        groups = list(self.merged)
        groups += [self.labelled_as_one(task, rep) for rep in sorted(set(self.auto_merged.get(task, {}).values()))]
        for group in groups:
            present = sorted((str(s) not in mapping and s not in mapping, s) for s in group if s in colors)
            for _, s in present:
                colors[s] = colors[present[0][1]]
        return colors

    def merged_into(self, task: str, state: int) -> int | None:
        """The state that `state` is labelled as in `task` (the decoding merged it, merge_confused), or None."""
        rep = self.auto_merged.get(task, {}).get(int(state))
        return None if rep is None or rep == int(state) else rep

    def label_colors(self, task: str, extra=()) -> dict[str, str]:
        """The task's states' labels (`state_label`) -> their colours (`state_colors`, with the
        states of `extra`), and background grey: a chart keyed by label (the map of frames)
        in the colours of the timelines."""
        colors = {self.state_label(task, s): c for s, c in self.state_colors(task, extra).items()}
        return {**colors, "background": viz.BACKGROUND_COLOR}

    def label_order(self, task: str, order: Sequence[int], labels: Iterable[str]) -> list[str]:
        """`labels` (of a chart keyed by label, the map of frames) in the procedure's order:
        those of the task's states in `order` first (a merged group once), then the others
        sorted, background last."""
        labels = set(labels)
        first = [lab for lab in dict.fromkeys(self.state_label(task, int(s)) for s in order) if lab in labels]
        rest = sorted(labels - set(first) - {"background"})
        return first + rest + (["background"] if "background" in labels else [])

    def labelled_as_one(self, task: str, states: int | Sequence[int]) -> list[int]:
        """`states` with the states the decoding labels as each of them in `task`
        (merge_confused): what a person sees as those states on every timeline, so that a
        correction of a state reaches the frames shown as it. A merged state given by its
        own number stays alone."""
        picked = {int(s) for s in np.atleast_1d(states)}
        merge = self.auto_merged.get(task, {})
        return sorted(picked.union(*(labelled_as(merge, p) for p in picked)))

    def state_names(self, task: str) -> dict[int, str]:
        """Selected state -> its label (given name, matched step, or 'state m')."""
        return {s: self.state_label(task, s) for s in self.selected(task)}


def run_stamp(run: str | os.PathLike) -> tuple:
    """A value that changes whenever the run's results change (for cache keys).

    Raises ProclError when the run folder is gone.
    """
    path = Path(run)
    if not (path / "config.json").is_file():
        raise ProclError(f"run folder {path} is gone or has no config.json (deleted while viewed?)")
    stamp = [str(path)]
    for name in RUN_FILES:
        try:
            stamp.append((path / name).stat().st_mtime_ns)
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def load_run_info(run: str | os.PathLike) -> RunInfo:
    """Config, status, metrics and selected states of a run; ProclError if damaged."""
    path = runs.run_dir(run)
    try:
        merged = read_corrections(path)["merge"]
    except ProclError:  # a damaged corrections file: the Key-steps page says so where they are edited
        merged = []
    config, selected = runs.read_config(path), runs.read_selected(path)
    return RunInfo(path, config, runs.read_status(path), runs.read_metrics(path), selected, read_names(path), merged,
                   auto_merges(path, config, selected))


def auto_merges(path: Path, config: dict, selected: dict[str, dict[str, list[int]]]) -> dict[str, dict[int, int]]:
    """task -> state -> the state the run's decoding labels it as (`procl.decode.merge_maps` at the
    run's merge_confused), as its predictions were made; {} for runs without merges."""
    threshold = config_from_saved(config).resolved().merge_confused
    out: dict[str, dict[int, int]] = {}
    for unit, d in runs.load_decoding(path).items():
        out.update(merge_maps(d, selected.get(unit, {}), threshold))
    return out


def describe_run(config: dict) -> str:
    """A run's settings (its config.json) in plain words, the paper's symbol in brackets,
    as they acted: a single-task run has no task guess to weigh or pool for, features
    without a grid give attention nothing to choose among, and a network of fewer than
    three tasks finds background over the procedure's course rather than across tasks."""
    c = config
    single = c.get("setting") == "single"
    parts = ["one network per task" if single else "one network for all tasks",
             f"{c.get('k')} steps per task (k)", f"{c.get('M')} kinds of moment (M)"]
    if single:
        parts.append("no task guess")
    else:
        parts.append(f"task-guess weight {c.get('lam')} (λ)")
    parts.append(f"{c.get('epochs') or 'automatic'} epochs")
    if (c.get("features") or {}).get("R", 2) == 1:
        parts.append("no grid to look at (attention)")
    else:
        parts.append(f"where-it-looks {'on' if c.get('attention') else 'off'} (attention)")
    if not single:
        parts.append(f"learned reliance {'on' if c.get('learnable_pooling') else 'off'} (pooling)")
    per_network = 1 if single else len(c.get("tasks") or [])
    if c.get("background") == "none":
        parts.append("no background (every frame a step)")
    elif c.get("background") != "shared":
        parts.append("background: frames whose best kind of moment is not one of the task's steps")
    elif per_network and per_network < SHARED_MIN_TASKS:
        parts.append("background: what every part of the procedure shows alike")
    else:
        parts.append("background: what every task shows alike")
    return ", ".join(parts)


def read_predictions(info: RunInfo, **read_csv) -> pd.DataFrame:
    """The run's predictions.csv (video, task and pred_task as text; pandas' `read_csv`
    options such as `usecols` passed on); a ProclError naming the file when it is missing
    (the run has not finished) or unreadable."""
    path = info.path / "predictions.csv"
    if not path.exists():
        raise ProclError(f"{path} is missing: the run has not finished (state: {info.state})")
    try:
        return pd.read_csv(path, dtype={"video": str, "task": str, "pred_task": str}, **read_csv)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ProclError(f"{path} is unreadable ({err}): re-run `python -m procl evaluate`") from err


def video_table(info: RunInfo) -> pd.DataFrame:
    """One row per scored video: video, task, pred_task, correct, frames, split.

    Read from predictions.csv, so it needs neither the dataset nor the outputs.
    """
    df = read_predictions(info, usecols=lambda c: c in ("video", "task", "pred_task", "frame", "split"))
    if "split" not in df:
        df["split"] = ""
    g = df.groupby("video", sort=True).agg(task=("task", "first"), pred_task=("pred_task", "first"),
                                            frames=("frame", "size"), split=("split", "first"))
    g["correct"] = g["task"] == g["pred_task"]
    g["split"] = g["split"].fillna("").astype(str)
    return g.reset_index()[["video", "task", "pred_task", "correct", "frames", "split"]]


def videos_to_correct(info: RunInfo, per_task: int = 3) -> dict[str, list[str]]:
    """task -> the videos the run trained on that a person should correct first, best first
    (`corrections.suggest_videos` over the states predictions.csv holds: the most typical
    of what the run found in the task first)."""
    df = read_predictions(info, usecols=["video", "task", "frame", "state"])
    trained = set(info.config.get("train_videos") or df["video"])
    df = df[df["video"].isin(trained)].sort_values(["video", "frame"], kind="stable")
    states = {v: g["state"].to_numpy() for v, g in df.groupby("video", sort=True)}
    task_of = df.groupby("video")["task"].first().to_dict()
    return suggest_videos(states, task_of, {t: info.selected(t) for t in info.tasks}, per_task)


def corrected_videos(info: RunInfo) -> set[str]:
    """The videos the person has marked a span of (corrections.json's segments)."""
    return {s["video"] for s in read_corrections(info.path).get("segments", [])}


def named_predictions(info: RunInfo) -> pd.DataFrame:
    """The run's predictions.csv with its `name` column filled from the names given so far
    (the file is written at the end of training, before any state has a name)."""
    df = read_predictions(info, keep_default_na=False)
    given = names_by_task(info.config, info.names)
    names = [given.get(t, {}).get(int(s), "") for t, s in zip(df["task"], df["state"])]
    if "name" in df:
        df["name"] = names
    else:  # a run from before names: the column goes after gt, as `predict` writes it
        df.insert(list(df.columns).index("gt") + 1 if "gt" in df else len(df.columns), "name", names)
    return df


def predictions_csv(info: RunInfo) -> bytes:
    """`named_predictions` as the CSV the app downloads (`predict`'s columns and `split`)."""
    return named_predictions(info).to_csv(index=False).encode("utf-8")


def segments_csv(info: RunInfo) -> bytes:
    """The run's predictions as segments with the names given so far (`predict --segments`'s
    columns, `procl.infer.segments_frame`): every video as an annotation."""
    return segments_frame(named_predictions(info)).to_csv(index=False).encode("utf-8")


def keystep_strength(out: dict[str, np.ndarray], selected: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The key-step strength of a video over time (the paper's Fig. 4), for a task's selected states.

    At each frame t: s*(t) = the most probable of the `selected` states (argmax of p[t, m]
    over them) and strength(t) = p[t, s*] * beta[s*] (its probability times its pooling
    weight, Eq. 5). Returns (strength [T], s* [T]), or None when the run has no pooling
    weights (single-task setting) or no state is selected.
    """
    beta = np.asarray(out["beta"], dtype=np.float64)
    sel = np.asarray(selected, dtype=int)
    if beta.size == 0 or sel.size == 0:
        return None
    p = np.asarray(out["p"], dtype=np.float64)[:, sel]  # [T, k]
    best = p.argmax(1)
    state = sel[best]
    return p[np.arange(len(p)), best] * beta[state], state


def filter_videos(table: pd.DataFrame, split: str = "all", task: str | None = None,
                  correct: bool | None = None) -> pd.DataFrame:
    """Rows of `video_table` in a split ("all", "train", "test"), of a task, right or wrong."""
    keep = np.ones(len(table), dtype=bool)
    if split != "all":
        keep &= (table["split"] == split).to_numpy()
    if task is not None:
        keep &= (table["task"] == task).to_numpy()
    if correct is not None:
        keep &= (table["correct"] == correct).to_numpy()
    return table[keep]


def task_probs_caption(config: dict) -> str:
    """What Explore's task bars show for a run (its saved config.json): the state
    classifier's or the network classifier's probabilities, weighed with the key-steps'
    fit when the run decides so (task_evidence)."""
    cfg = config_from_saved(config).resolved()
    if cfg.setting == "single":
        return "Single-task run: one network per task and no classifier; the video's task is given."
    weight = cfg.task_evidence
    fit = (f", weighed with how well each task's key-steps fit the frames (task evidence {weight:g}: docs/method.md)"
           if weight else "")
    who = ("The state classifier's probabilities (from how much of the video each state takes)"
           if cfg.state_classifier else "The network's task guess (its classifier's probabilities)")
    return f"{who}{fit}; the video's true task in green."


def pooling_role(config: dict) -> str:
    """A sentence for Explore's pooling bars when they do not decide the task (the run
    decides with its state classifier), else ''."""
    cfg = config_from_saved(config).resolved()
    if cfg.setting != "single" and cfg.state_classifier:
        return (" These are the network's classifier's weights; this run decides the task with its state "
                "classifier (the bars above).")
    return ""


def video_scores(outputs: dict[str, np.ndarray], mapping: dict) -> dict | None:
    """R/P/F1/IoU, Edit and F1@{10,25,50} of one video under the run's pooled matching of
    its task, and its segment counts (None: no ground truth)."""
    gt = outputs["gt"]
    if (gt == -2).all():
        return None
    mapping = {int(k): v for k, v in mapping.items()}
    scores = metrics.localization_scores(gt, outputs["states"], mapping=mapping)
    return {**scores, **metrics.segmental_summary([metrics.segmental_scores(gt, outputs["states"], mapping)])}


def video_colors(info: RunInfo, outputs: dict[str, np.ndarray], task: str, pred_task: str | None = None
                 ) -> dict[int, str]:
    """One colour per state for everything drawn of one video (its timelines, its key-step
    strength, its pooling bars): `RunInfo.state_colors` of its true task over the states
    the network and the teacher give its frames and the predicted task's selection (on a
    misclassified video the pooling bars show the predicted task's states)."""
    extra = [np.asarray(outputs["states"]).reshape(-1), np.asarray(outputs["teacher"]).reshape(-1)]
    if pred_task is not None:
        extra.append(np.asarray(info.selected(pred_task), dtype=int))
    return info.state_colors(task, np.concatenate(extra))


def default_video(table: pd.DataFrame) -> str | None:
    """The video a page opens on: the first whose task was predicted right, else the first."""
    if table.empty:
        return None
    right = table[table["correct"].astype(bool)]
    return str((right if len(right) else table)["video"].iloc[0])


def timeline_rows(info: RunInfo, outputs: dict[str, np.ndarray], task: str, teacher: bool = True,
                  label: str = "prediction", colors: dict[int, str] | None = None) -> list[dict]:
    """Rows for `viz.timeline_figure`: ground truth, then the prediction (and the teacher).

    Colours agree through the run's matching for `task` (the video's true task): a state
    matched to step j takes step j's colour and its legend entry; background is grey.
    `colors` (say `video_colors`) replaces the colours worked out here.
    """
    steps = info.step_names(task)
    rows = []
    gt = outputs["gt"]
    if not (gt == -2).all():
        rows.append(gt_row(gt, steps))
    # the teacher's row reads "suggestion": the clustering's suggestion the network learned from
    kinds = [(label, outputs["states"])] + ([("suggestion", outputs["teacher"])] if teacher else [])
    if colors is None:
        colors = info.state_colors(task, np.concatenate([s for _, s in kinds]))
    for name, labels in kinds:
        rows.append(state_row(name, labels, colors, info, task))
    return rows


def gt_row(gt: np.ndarray, steps: list[str], name: str = "ground truth") -> dict:

    present = sorted({int(s) for s in np.unique(gt) if s >= 0})
    names = {s: steps[s] if s < len(steps) else f"step {s + 1}" for s in present}
    return {"name": name, "labels": gt, "colors": {s: viz.step_color(s) for s in present},
            "names": names, "legend": names}


def state_row(name: str, labels: np.ndarray, colors: dict[int, str], info: RunInfo, task: str) -> dict:
    """A timeline row of states: hover `RunInfo.state_text`, legend `RunInfo.state_label`
    (the given name, else the matched step, so that a matched state shares its step's entry)."""
    present = sorted({int(s) for s in np.unique(labels) if s >= 0})
    names = {s: info.state_text(task, s) for s in present}
    legend = {s: info.state_label(task, s) for s in present}
    return {"name": name, "labels": labels, "colors": colors, "names": names, "legend": legend, "rank_offset": 1000}


def stacked_state_colors(infos: list[RunInfo], labels: list[np.ndarray], task: str) -> list[dict[int, str]]:
    """Colours of several runs' states stacked on one chart (Compare): a state matched to a
    ground-truth step takes the step's colour (the same meaning in every run); every other
    state has a colour no other run's state has (without ground truth states of different runs
    are not the same thing). The first run's colours are its colours on the other pages."""

    spare = max((len(i.step_names(task)) for i in infos), default=0)
    out = []
    for info, states in zip(infos, labels):
        sel = sorted(info.selected(task))
        order = sel + sorted({int(s) for s in np.asarray(states).reshape(-1) if int(s) >= 0} - set(sel))
        mapping = info.mapping(task)
        colors = viz.state_colors(mapping, order, 0, spare=spare)
        spare += sum(1 for s in order if mapping.get(str(s), mapping.get(s)) is None)
        out.append(info.merge_colors(colors, task))
    return out


def state_table(info: RunInfo, outputs: dict[str, dict[str, np.ndarray]], task: str) -> pd.DataFrame:
    """The task's k selected states in pick order with what they matched and how often they occur.

    outputs: video id -> its arrays, for the task's videos. Columns: order, state, name
    (the user's, or ''), step (matched ground-truth step or ''), iou (of the state's frames with that step's, over
    these videos), frames (given the state by the student), videos (share of the videos where it occurs),
    teacher_frames (given it by the teacher), beta (mean pooling weight, None for
    single-task runs), shared_with (other tasks of the same network that selected it).
    """
    selected = info.selected(task)
    mapping = info.mapping(task)
    # states are shared only inside one network (unit): all tasks (multi), or none (single)
    unit = next((u for u in info.selected_states.values() if task in u), {})
    others = {t: set(s) for t, s in unit.items() if t != task}
    states, teachers, gts, betas, present = [], [], [], [], []
    for o in outputs.values():
        states.append(o["states"])
        teachers.append(o["teacher"])
        gts.append(o["gt"])
        if o["beta"].size:
            betas.append(o["beta"].astype(np.float64))
        present.append(set(np.unique(o["states"]).tolist()))
    st = np.concatenate(states) if states else np.zeros(0, int)
    te = np.concatenate(teachers) if teachers else np.zeros(0, int)
    gt = np.concatenate(gts) if gts else np.zeros(0, int)
    beta = np.mean(betas, axis=0) if betas else None
    rows = []
    for order, s in enumerate(selected, 1):
        step = mapping.get(str(s))
        iou = None
        if step is not None:
            a, b = st == s, gt == step
            iou = float((a & b).sum() / max((a | b).sum(), 1))
        rows.append({
            "order": order, "state": s, "name": info.given_name(task, s) or "", "step": info.step_name(task, s) or "",
            "iou": iou,
            "frames": int((st == s).sum()), "teacher_frames": int((te == s).sum()),
            "videos": sum(s in p for p in present) / max(len(present), 1),
            "beta": None if beta is None or s >= len(beta) else float(beta[s]),
            "shared_with": ", ".join(sorted(t for t, sel in others.items() if s in sel)),
        })
    return pd.DataFrame(rows, columns=["order", "state", "name", "step", "iou", "frames", "teacher_frames", "videos",
                                       "beta", "shared_with"])


def representative_frames(outputs: dict[str, dict[str, np.ndarray]], state: int, n: int = 5,
                          field: str = "states") -> list[dict]:
    """Up to n frames labelled `state` in `field` ("states": the student's prediction, or
    "teacher"), one per video, those the network is surest of (highest p) first.

    outputs: video id -> its arrays. Each result: {"video", "index", "time", "p"}.
    """
    best = []
    for vid, o in outputs.items():
        idx = np.flatnonzero(o[field] == state)
        if idx.size and state < o["p"].shape[1]:
            i = int(idx[np.argmax(o["p"][idx, state])])
            best.append({"video": vid, "index": i, "time": float(o["times"][i]), "p": float(o["p"][i, state])})
    best.sort(key=lambda r: -r["p"])
    return best[:n]


def frames_at(video: VideoRecord, times: np.ndarray, max_side: int | None = None) -> np.ndarray | None:
    """RGB frames [n, H, W, 3] shown at `times` (seconds), by seeking; None when no video file.

    A time t shows frame floor(t * native_fps + 0.5), as the feature sampler does; only
    these frames are decoded (see `FrameReader`).
    """
    if video.kind != "video":
        return None
    reader = FrameReader(video.source, max_side=max_side, cache=0)
    try:
        return reader.frames_at(times) if len(times) else None
    finally:
        reader.close()


def video_reader(video: VideoRecord, max_side: int = 480) -> FrameReader | None:
    """A `FrameReader` of the video's file for a viewer (frames at most `max_side` px), or
    None for precomputed features. It stays open; only the frames asked for are decoded."""
    if video.kind != "video":
        return None
    return FrameReader(video.source, max_side=max_side)


def playable(video: VideoRecord) -> bool:
    """Whether the page may embed the video's file in a player (it reads the file whole)."""
    try:
        return video.kind == "video" and Path(video.source).stat().st_size <= PLAYER_MAX_BYTES
    except OSError:
        return False


def nearest_frames(frame_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index into `frame_times` of the sample nearest to each of `times`."""
    frame_times = np.asarray(frame_times, dtype=float)
    return np.abs(frame_times[None, :] - np.asarray(times, dtype=float)[:, None]).argmin(1)


# ---------------------------------------------------------------- comparing runs

def compare_row(info: RunInfo) -> dict:
    """One line of the Compare table: the settings that tell runs apart and their scores
    (no accuracy for a run told each video's task: `config.task_given`)."""
    c, m = info.config, info.metrics or {}
    feats = info.features
    teacher = m.get("teacher") or {}
    return {
        "run": info.name, "k": c.get("k"),
        "recall": m.get("recall"), "precision": m.get("precision"), "f1": m.get("f1"),
        "iou": m.get("iou"), "accuracy": None if task_given(c) else m.get("accuracy"), "teacher_f1": teacher.get("f1"),
        "uniform_f1": equal_cuts_f1(m),
        "split": m.get("split"), "setting": c.get("setting"), "M": c.get("M"), "lambda": c.get("lam"),
        "attention": c.get("attention"), "learnable_pooling": c.get("learnable_pooling"),
        "background": c.get("background"), "epochs": c.get("epochs"), "seed": c.get("seed"),
        "backbone": feats.get("backbone"), "weights": feats.get("weights"), "dataset": c.get("dataset"),
    }


# ---------------------------------------------------------------- datasets

def runs_table(entries: list[dict]) -> pd.DataFrame:
    """The Train page's "All runs": one row per `runs.list_runs()` entry, every cell text so
    that nothing reads `None`: scores in % with one decimal ("75.0"), "not annotated" for
    F1 of a run without ground truth, "–" for what is not there yet (a queued run's
    accuracy, equal cuts of a run without ground truth or finished before procl kept them),
    "given" for the accuracy of a single-task run (told each video's task: `config.task_given`),
    "auto" for epochs not decided yet; the dataset by its name."""
    def pct(v) -> str:
        return "–" if v is None or v != v else f"{100 * float(v):.1f}"

    def num(v) -> str:
        return "–" if v is None else str(v)

    rows = []
    for e in entries:
        c, s, m = e.get("config") or {}, e.get("status") or {}, e.get("metrics") or {}
        state = s.get("state", "?")
        f1 = ("not annotated" if m and not annotated(m) else pct(m.get("f1")))
        rows.append({
            "run": e["name"], "state": state, "dataset": dataset_name(c.get("dataset")),
            "setting": c.get("setting") or "–", "k": num(c.get("k")), "M": num(c.get("M")),
            "epochs": num(c.get("epochs")) if c.get("epochs") is not None else ("auto" if c else "–"),
            "backbone": (c.get("features") or {}).get("backbone", c.get("backbone")) or "–",
            "F1 %": f1, "Acc %": "given" if m and task_given(c) else pct(m.get("accuracy")),
            "equal cuts F1 %": pct(equal_cuts_f1(m)),
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(e.get("mtime", 0))),
        })
    return pd.DataFrame(rows, columns=["run", "state", "dataset", "setting", "k", "M", "epochs", "backbone", "F1 %",
                                       "Acc %", "equal cuts F1 %", "created"])


def dataset_summary(dataset: Dataset) -> pd.DataFrame:
    """One row per task: videos, train, test, annotated videos, key-steps."""
    rows = []
    for task in dataset.tasks:
        vids = dataset.videos_of(task=task)
        rows.append({
            "task": task, "videos": len(vids),
            "train": sum(dataset.split.get(v.id) == "train" for v in vids),
            "test": sum(dataset.split.get(v.id) == "test" for v in vids),
            "annotated": sum(v.annotated for v in vids),
            "key-steps": len(dataset.steps.get(task, [])),
        })
    return pd.DataFrame(rows, columns=["task", "videos", "train", "test", "annotated", "key-steps"])


def sample_datasets() -> list[str]:
    """Specs of the real samples shipped in the repository (data/samples, NOTICE.md there):
    the Breakfast coffee sample, precomputed features of one task. [] where procl was
    installed without them."""
    coffee = SAMPLES / "breakfast_coffee"
    return [f"actseg:{coffee}"] if (coffee / "groundTruth").is_dir() else []


def local_datasets() -> list[str]:
    """Specs of the folder datasets directly under data/ (those made from uploads, say),
    besides the built-in one: every data/<name>/videos/ folder, by name."""
    root = data_dir()
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or folder.name in ("synthetic", "features") or not (folder / "videos").is_dir():
            continue
        out.append(f"folder:{folder}")
    return out


def feature_caches(spec: str) -> list[dict]:
    """The feature caches of a dataset spec: {"setting", "backbone", "weights", "fps", "videos"}."""
    root = data_dir() / "features" / slug(spec)
    out = []
    if not root.is_dir():
        return out
    for folder in sorted(root.iterdir()):
        try:
            manifest = read_json(folder / "manifest.json")
        except (OSError, ValueError):
            continue
        out.append({"setting": folder.name, "backbone": manifest.get("backbone"),
                    "weights": manifest.get("weights"), "fps": manifest.get("fps"),
                    "videos": len(manifest.get("videos", {})), "skipped": len(manifest.get("skipped", {}))})
    return out


def preview_labels(video: VideoRecord, duration: float | None,
                   fps: float = 2.0) -> tuple[np.ndarray, np.ndarray] | None:
    """(times [T], ground truth [T]) of a video sampled at `fps`, or None when not annotated.

    duration: the video's length in seconds; None takes the end of its last segment.
    """
    if not video.annotated:
        return None
    if video.frame_labels is not None:
        labels = np.asarray(video.frame_labels, dtype=np.int64)
        rate = video.feature_fps or fps
        return np.arange(len(labels)) / rate, labels
    if duration is None:
        duration = max((s.end for s in video.segments or []), default=0.0)
    times = np.arange(0.0, max(duration, 1.0 / fps), 1.0 / fps)
    return times, video.labels_at(times)
