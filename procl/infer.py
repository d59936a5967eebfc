"""Predictions of a trained run for one video or a split (scores: procl.evaluate).

For a video (Sec. 2.1; docs/design.md, "The method", step 9): the TCN gives task
probabilities (with `state_classifier`, the run's `procl.task_head` instead; with
`task_evidence`, weighed with how well each task's key-steps fit the frames:
`procl.decode.task_posterior`); each frame gets the argmax of p restricted to the
predicted task's k selected states (decoded by `procl.decode.decode_states`). With
background "unselected" a frame whose argmax over all M states is not one of them is
background (-1). The teacher's labels (each frame's nearest selected state of the
video's true task, on the same attention features) are kept for comparison. In the
single-task setting the video's own task's network is used (the task is given).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from procl import ProclError, runs
from procl.config import TrainConfig, config_from_saved, net_config
from procl.data import Dataset
from procl.decode import (
    bias_background,
    decide_task,
    decode_states_batch,
    distance_loglik,
    fit_bound,
    merge_maps,
    path_fit,
    relabel,
)
from procl.dist import resolve_device
from procl.features.types import FeatureSet
from procl.metrics import segments_of
from procl.model import NetOutput, ProcedureNet
from procl.selection import pairwise_distances
from procl.task_head import TaskHead

PREDICT_COLUMNS = ["video", "task", "pred_task", "frame", "time", "state", "step", "teacher", "gt", "name"]
SEGMENT_COLUMNS = ["video", "task", "pred_task", "start", "end", "frames", "state", "name"]


@dataclass
class VideoPrediction:
    video_id: str
    task: str
    pred_task: str
    task_probs: np.ndarray  # [A] over the run's tasks
    times: np.ndarray  # [T]
    alpha: np.ndarray  # [T, R]
    p: np.ndarray  # [T, M]
    beta: np.ndarray | None  # [M]
    states: np.ndarray  # [T] key-step state per frame, -1 background
    teacher: np.ndarray  # [T] the teacher's state per frame, -1 background
    gt: np.ndarray | None  # [T] ground-truth step, -1 background


@dataclass(frozen=True)
class Decoding:
    """How `predict_video` turns a video's scores into labels: a run's decoding levers
    (procl.config, stage "decode") and what its training left for them."""

    background: str = "none"  # none | unselected | shared
    background_states: Sequence[int] = ()  # "shared": the states all tasks (or every time) use alike
    switch_cost: float = 0.0  # Viterbi's cost of a change of key-step (0: per-frame argmax)
    order: dict[str, list[int]] | None = None  # task -> its key-steps in typical order (ordered decoding)
    task_evidence: float = 0.0  # weight of the key-steps' fit in the task decision
    background_bias: float = 0.0  # log-probability taken off the background label
    task_head: TaskHead | None = None  # the state classifier, deciding in place of the network's
    merge: dict[str, dict[int, int]] | None = None  # task -> state -> the state it is labelled as (merge_confused)


@dataclass
class LoadedRun:
    path: Path
    config: dict
    nets: nn.ModuleDict
    units: dict[str, list[str]]  # unit -> tasks
    centers: dict[str, np.ndarray]  # unit -> [M, D]
    selected: dict[str, dict[str, list[int]]]  # unit -> task -> states
    decoding_states: dict[str, dict]  # unit -> {"background": states, "order": {task: states}, "confusion": ...}
    train_config: TrainConfig  # the run's settings, resolved (old runs: the paper's recipe)
    task_heads: dict[str, TaskHead] = field(default_factory=dict)  # unit -> state classifier (task_head.npz)
    _merges: dict = field(default_factory=dict, repr=False, compare=False)  # (unit, threshold) -> (evidence, maps)

    def merges(self, unit: str) -> dict[str, dict[int, int]]:
        """`merge_maps` of network `unit` at the run's merge_confused, computed once per
        threshold and decoding.json's evidence (not per video)."""
        d = self.decoding_states.get(unit, {})
        key = (unit, self.train_config.merge_confused)
        cached = self._merges.get(key)
        if cached is None or cached[0] is not d:  # another LoadedRun's evidence (dataclasses.replace)
            cached = self._merges[key] = (d, merge_maps(d, self.selected.get(unit, {}), key[1]))
        return cached[1]

    def decoding(self, unit: str) -> Decoding:
        """How predict_video turns scores into labels for this run's network `unit`."""
        cfg = self.train_config
        d = self.decoding_states.get(unit, {})
        return Decoding(background=cfg.background, background_states=d.get("background", []),
                        switch_cost=cfg.switch_cost, order=d.get("order") if cfg.ordered else None,
                        task_evidence=cfg.task_evidence, background_bias=cfg.background_bias,
                        task_head=self.task_heads.get(unit) if cfg.state_classifier else None,
                        merge=self.merges(unit))

    def unit_of(self, task: str) -> str:
        for key, tasks in self.units.items():
            if task in tasks:
                return key
        raise ProclError(f"task {task!r} is not one of run {self.path.name}'s tasks: {', '.join(self.config['tasks'])}")


def load_run(run: str | Path, device: str = "cpu") -> LoadedRun:
    """Config, networks (weights_only load, on `device`) and teacher states of a finished epoch."""
    path = runs.run_dir(run)
    config = runs.read_config(path)
    state = runs.load_torch(path / "model.pt")
    centers, selected = runs.load_states(path)

    cfg = config_from_saved(config).resolved()
    nets = nn.ModuleDict()
    for key, tasks in config["units"].items():
        nets[key] = ProcedureNet(net_config(cfg, config["features"]["D"], len(tasks)))
    try:
        nets.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ProclError(f"{path / 'model.pt'} does not fit run {path.name}'s config ({err}); "
                         "is it from another run?") from err
    nets.eval().to(resolve_device(device))
    return LoadedRun(path, config, nets, config["units"], centers, selected, runs.load_decoding(path), cfg,
                     runs.load_task_heads(path))


@torch.no_grad()
def video_outputs(net: ProcedureNet, y: np.ndarray) -> NetOutput:
    """The network's outputs (eval mode, on the CPU) for one video's region features y [T, R, D]."""
    if net.training:  # (eval() walks every submodule: a tenth of a short video's time)
        net.eval()
    out = net(torch.from_numpy(np.asarray(y, dtype=np.float32)).to(next(net.parameters()).device)[None]).video(0)
    return type(out)(**{k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in vars(out).items()})


@torch.no_grad()
def predict_video(
    net: ProcedureNet, y: np.ndarray, tasks: list[str], selected: dict[str, list[int]],
    centers: np.ndarray, true_task: str, decoding: Decoding = Decoding(), given_task: bool = False,
) -> dict:
    """The network's outputs for one video's region features y [T, R, D], and its labels.

    Student: log p over the predicted task's selected states (and the background
    states, pooled into one background label); teacher: -distance to the true task's
    ones (`procl.decode.distance_loglik`). Both decoded by `procl.decode.decode_states`
    as `decoding` says (Viterbi with `switch_cost`; 0 is the per-frame argmax of the
    paper; with `order`, task -> its selected states in typical order, the key-steps keep
    that order). Task probabilities: the classifier's, combined with how well each task's
    decoded key-steps fit the frames when `task_evidence` > 0 (`procl.decode.task_posterior`,
    computed by `decide_task`, which decodes only the tasks that can come near the best).
    `task_head`: the run's state classifier (`procl.task_head`), whose probabilities stand
    in for the network's classifier's when given.
    `background_bias`: log-probability taken off the background label in the student's
    decoding (`procl.decode.bias_background`; the fit is scored on the unbiased p).
    `given_task`: the student localizes with the true task's key-steps instead of the
    predicted task's (a diagnostic: what task errors cost; the teacher always does).
    `merge`: the student's states the network confuses are labelled as one (merge_confused).
    """
    background, switch_cost, task_evidence = decoding.background, decoding.switch_cost, decoding.task_evidence
    task_head, order = decoding.task_head, decoding.order or {}
    out = video_outputs(net, y)
    p = out.p.numpy()  # [T, M]
    logp = np.log(np.maximum(p, 1e-30))
    bg = list(decoding.background_states) if background == "shared" else []

    logp_decode = bias_background(logp, bg, decoding.background_bias)
    x = out.x.numpy()  # the teacher's space
    dist = pairwise_distances(x, centers)  # [T, M]

    def keysteps(task: str) -> np.ndarray:  # task's selected states, in typical order when decoded so
        return np.array(order.get(task, selected[task]))

    decoded: dict[str, np.ndarray] = {}  # task -> the student's labels with task's key-steps
    teachers: dict[str, np.ndarray] = {}  # task -> the teacher's labels with task's key-steps

    def decode(student: list[str], teacher: str | None = None) -> None:
        """The student's labels with each of these tasks' key-steps, and the teacher's with
        `teacher`'s (those not decoded yet), in one batched decoding."""
        student = [t for t in dict.fromkeys(student) if t not in decoded]
        teacher = teacher if teacher is not None and teacher not in teachers else None
        problems = [(logp_decode, keysteps(t), t in order) for t in student]
        if teacher is not None:
            problems.append((distance_loglik(dist, keysteps(teacher), bg), keysteps(teacher), teacher in order))
        labels = decode_states_batch(problems, bg, switch_cost)
        decoded.update(zip(student, labels))
        if teacher is not None:
            teachers[teacher] = labels[-1]

    def localize(task: str) -> np.ndarray:  # [T] the student's labels with task's key-steps
        decode([task])
        return decoded[task]

    known_teacher = true_task if true_task in selected else None  # else the predicted task's
    if out.logits is not None:
        probs = np.exp(task_head.logprob(p)) if task_head is not None else torch.softmax(out.logits, 0).numpy()
        if task_evidence > 0 and len(tasks) > 1:
            # decide_task decodes the tasks that can come near the best: decoding them all
            # (and the teacher) in one batch costs about what one did
            decode(list(tasks), known_teacher)

            def fit(a: int) -> float:
                return path_fit(logp, localize(tasks[a]), bg)

            bound = np.array([fit_bound(logp, order.get(a, selected[a]), bg) for a in tasks])
            probs, _ = decide_task(np.log(np.maximum(probs, 1e-30)), fit, bound, task_evidence)
        pred_task = tasks[int(probs.argmax())]
    else:  # single-task: the video's task is given
        probs = np.array([1.0 if t == true_task else 0.0 for t in tasks])
        pred_task = true_task
    task = true_task if given_task and true_task in selected else pred_task
    teacher_task = known_teacher or pred_task
    teacher_sel = keysteps(teacher_task)
    decode([task], teacher_task)
    states, teacher = decoded[task], teachers[teacher_task]
    if background == "unselected":
        states = np.where(np.isin(p.argmax(1), selected[task]), states, -1)
        teacher = np.where(np.isin(dist.argmin(1), teacher_sel), teacher, -1)
    # the network's confused states as one key-step (merge_confused); the teacher's labels stay as
    # subset selection gives them: the merges are read from the network, and C1 compares the two
    states = relabel(states, (decoding.merge or {}).get(task, {}))
    return {
        "task_probs": probs, "pred_task": pred_task, "p": p, "alpha": out.alpha.numpy(),
        "beta": None if out.beta is None else out.beta.numpy(), "states": states, "teacher": teacher,
    }


def predict_dataset(
    loaded: LoadedRun, dataset: Dataset, features: FeatureSet, split: str = "all", given_task: bool = False,
    only: Collection[str] | None = None,
) -> list[VideoPrediction]:
    """Predictions of every video of `split` that has features (`given_task`: see predict_video;
    `only`: of these video ids alone)."""
    feats = loaded.config["features"]
    if features.D != feats["D"]:
        raise ProclError(
            f"features of {dataset.spec} have D={features.D} but run {loaded.path.name} expects "
            f"D={feats['D']} (backbone {feats['backbone']}): extract features with that backbone"
        )
    all_tasks = loaded.config["tasks"]
    out = []
    for video in dataset.videos_of(split=split):
        if video.id not in features.videos or (only is not None and video.id not in only):
            continue
        vf = features.videos[video.id]
        if not np.isfinite(vf.feats).all():
            raise ProclError(f"features of video {video.id!r} contain NaN or inf")
        unit = loaded.unit_of(video.task) if video.task in all_tasks else next(iter(loaded.units))
        tasks = loaded.units[unit]
        r = predict_video(loaded.nets[unit], vf.feats, tasks, loaded.selected[unit], loaded.centers[unit],
                          video.task, loaded.decoding(unit), given_task=given_task)
        probs = np.zeros(len(all_tasks))
        probs[[all_tasks.index(t) for t in tasks]] = r["task_probs"]
        out.append(VideoPrediction(
            video_id=video.id, task=video.task, pred_task=r["pred_task"], task_probs=probs,
            times=vf.times, alpha=r["alpha"], p=r["p"], beta=r["beta"], states=r["states"],
            teacher=r["teacher"], gt=video.labels_at(vf.times),
        ))
    return out


def predictions_frame(preds: list[VideoPrediction], steps: dict[str, list[str]], mapping: dict,
                      names: dict[str, dict[int, str]] | None = None) -> pd.DataFrame:
    """One row per scored frame: the `predict` columns (docs/design.md) plus the matched step name,
    and last the name the user gave the frame's state (names: task -> state -> name)."""
    rows = []
    for p in preds:
        task_map = mapping.get(p.task, {})
        step_names = steps.get(p.task, [])
        given = (names or {}).get(p.task, {})
        for t in range(len(p.times)):
            s = int(p.states[t])
            step = task_map.get(str(s))
            rows.append((p.video_id, p.task, p.pred_task, t, round(float(p.times[t]), 3), s,
                         step_names[step] if step is not None and step < len(step_names) else "",
                         int(p.teacher[t]), -1 if p.gt is None else int(p.gt[t]), given.get(s, "")))
    return pd.DataFrame(rows, columns=PREDICT_COLUMNS)


def segments_frame(frames: pd.DataFrame) -> pd.DataFrame:
    """Per-frame predictions (`predictions_frame`'s columns, or a run's predictions.csv) as
    segments: one row per run of one state in a video (`procl.metrics.segments_of`), with
    the `SEGMENT_COLUMNS`. start = the time of its first frame, end = the time of the frame
    after it (after a video's last frame: its time plus the video's median frame interval),
    both in seconds, so a video's segments tile it; state -1 is background; name = the
    name given to the state ("" if none). What a run turned every video into: an
    annotation to read, edit or train another model on."""
    rows = []
    for vid, g in frames.groupby("video", sort=False):
        g = g.sort_values("frame")
        times = g["time"].to_numpy(dtype=np.float64)
        step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        ends = np.append(times[1:], times[-1] + step)  # [T] the time each frame's sample ends
        names = g["name"].to_numpy() if "name" in g else np.full(len(g), "")
        task, pred_task = g["task"].iloc[0], g["pred_task"].iloc[0]
        for state, a, b in segments_of(g["state"].to_numpy(dtype=np.int64)):
            name = names[a]
            rows.append((vid, task, pred_task, round(float(times[a]), 3), round(float(ends[b - 1]), 3), b - a, state,
                         "" if not isinstance(name, str) else name))
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)
