"""Scores of a trained run: the metric protocol over its predictions, the end of a
training (`finish_run`: state classifiers, per-video outputs, predictions.csv,
metrics.json), and the `evaluate` and `predict` commands.

Per-video inference is `procl.infer`; the metric protocol itself is `procl.metrics`
(docs/design.md, "Metrics").
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from procl import ProclError, baselines, metrics, runs
from procl.config import task_given
from procl.data import Dataset, open_dataset
from procl.decode import keep_apart, state_confusion, state_contiguity
from procl.dist import add_device_argument
from procl.features.cache import load_or_extract
from procl.features.types import FeatureSet
from procl.infer import (
    LoadedRun,
    VideoPrediction,
    load_run,
    predict_dataset,
    predictions_frame,
    segments_frame,
    video_outputs,
)
from procl.io import write_json, write_text
from procl.names import names_by_task, read_names
from procl.task_head import TaskHead, fit_task_head, state_summary


def score(preds: list[VideoPrediction], field: str = "states") -> dict:
    """The metric protocol over predictions: localization of `field` and task accuracy."""
    gt = {p.video_id: p.gt for p in preds}
    pred = {p.video_id: getattr(p, field) for p in preds}
    task_of = {p.video_id: p.task for p in preds}
    result = metrics.evaluate_localization(gt, pred, task_of) if any(g is not None for g in gt.values()) else {}
    result["task"] = metrics.task_accuracy(task_of, {p.video_id: p.pred_task for p in preds})
    result["accuracy"] = result["task"]["accuracy"]
    return result



def named_score(preds: list[VideoPrediction], steps: dict[str, list[str]],
                names: dict[str, dict[int, str]]) -> dict | None:
    """Named F1 of predictions (`procl.metrics.named_scores`): each frame's state's name
    (names: task -> state -> name) against its ground-truth step's name (steps: task ->
    step names). None when no state has a name or no video is annotated."""
    if not any(names.get(p.task) for p in preds):
        return None
    scored = [p for p in preds if p.gt is not None and steps.get(p.task)]
    if not scored:
        return None
    def gt_names(p):
        return [steps[p.task][g] if 0 <= g < len(steps[p.task]) else None for g in p.gt]
    return metrics.named_scores({p.video_id: gt_names(p) for p in scored},
                                {p.video_id: [names.get(p.task, {}).get(int(s)) for s in p.states] for p in scored},
                                {p.video_id: p.task for p in scored})


def default_split(config: dict) -> str:
    return "test" if config["setting"] == "multi" else "all"


def fit_task_heads(loaded: LoadedRun, dataset: Dataset, features: FeatureSet) -> dict[str, TaskHead]:
    """Each multi-task network's state classifier (`procl.task_head`), fit on the
    summaries of its training videos' state probabilities. Fit for every run, whatever
    its recipe, so that the lever `state_classifier` is a decoding choice."""
    task_of = {v.id: v.task for v in dataset.videos}
    heads = {}
    for unit, tasks in loaded.units.items():
        ids = [v for v in loaded.config["train_videos"] if v in features.videos and task_of.get(v) in tasks]
        if len(tasks) < 2 or not ids:
            continue
        z = [state_summary(video_outputs(loaded.nets[unit], features.videos[v].feats).p.numpy()) for v in ids]
        head = fit_task_head(np.stack(z), np.array([tasks.index(task_of[v]) for v in ids]), len(tasks))
        if head is not None:
            heads[unit] = head
    return heads


def merge_evidence(loaded: LoadedRun, dataset: Dataset, features: FeatureSet) -> dict[str, dict[str, dict]]:
    """What the decoding lever merge_confused reads, per network: unit -> {"confusion",
    "contiguity"} -> task -> [k, k] (`procl.decode.state_confusion`, `state_contiguity`),
    on its training videos decoded without merges; a video counts for its task when that
    task is the one predicted. Two states a person named differently (a refinement's
    names.json), or split apart where the parent's decoding had merged them (config.json's
    refine "apart"), are kept apart (`keep_apart`). Measured for every run, whatever its
    recipe, so that merge_confused is a decoding choice."""
    names = read_names(loaded.path)
    apart = loaded.config.get("refine", {}).get("apart", {})
    unmerged = replace(loaded, decoding_states={u: {k: v for k, v in d.items() if k not in runs.MERGE_EVIDENCE}
                                                for u, d in loaded.decoding_states.items()})
    preds = predict_dataset(unmerged, dataset, features, only=set(loaded.config["train_videos"]))
    out: dict[str, dict[str, dict]] = {}
    for unit, tasks in loaded.units.items():
        out[unit] = {"confusion": {}, "contiguity": {}}
        for task in tasks:
            mine = [p for p in preds if p.task == task and p.pred_task == task]
            states = loaded.selected[unit][task]
            C = state_confusion([p.states for p in mine], [p.p for p in mine], states)
            out[unit]["confusion"][task] = keep_apart(C, states, names.get(unit, {}), apart.get(unit, []))
            out[unit]["contiguity"][task] = state_contiguity([p.states for p in mine], states)
    return out


def finish_run(path: Path, dataset: Dataset, features: FeatureSet) -> dict:
    """After training: the state classifiers (task_head.npz), the states' confusions
    and runs (decoding.json), per-video outputs for the app, predictions.csv and metrics.json."""
    loaded = load_run(path, device=runs.read_config(path).get("device", "cpu"))
    loaded.task_heads = fit_task_heads(loaded, dataset, features)
    runs.save_task_heads(path, loaded.task_heads)
    runs.save_merge_evidence(path, merge_evidence(loaded, dataset, features))
    loaded.decoding_states = runs.load_decoding(path)
    preds = predict_dataset(loaded, dataset, features, split="all")
    split = default_split(loaded.config)
    scored = [p for p in preds if split == "all" or dataset.split.get(p.video_id) == split]
    result = {"split": split, "student": score(scored, "states"), "teacher": score(scored, "teacher"),
              "train": score([p for p in preds if p.video_id in set(loaded.config["train_videos"])])}
    for p in preds:
        runs.save_outputs(path, p.video_id, times=p.times, alpha=p.alpha.astype(np.float16),
                          p=p.p.astype(np.float16), states=p.states, teacher=p.teacher,
                          gt=p.gt if p.gt is not None else np.full(len(p.times), -2),
                          task_probs=p.task_probs,
                          beta=p.beta if p.beta is not None else np.zeros(0))
    mapping = {t: v["mapping"] for t, v in result["student"].get("per_task", {}).items()}
    frame = predictions_frame(preds, dataset.steps, mapping)
    frame["split"] = [dataset.split.get(v, "") for v in frame["video"]]
    write_text(path / "predictions.csv", frame.to_csv(index=False))
    uniform = uniform_score(scored, int(loaded.config["k"]))
    if uniform is not None:
        result["uniform"] = uniform
    metrics_out = {**headline(result["student"]), "split": split, **result}
    write_json(path / "metrics.json", metrics_out)
    return metrics_out


HEADLINE = ("recall", "precision", "f1", "iou", "edit", "f1_at", "accuracy")


def headline(result: dict) -> dict:
    """The headline scores of a `score` result: frame scores, segmental scores
    (edit, f1_at = {"10", "25", "50"}) and task accuracy, as fractions."""
    return {k: result.get(k) for k in HEADLINE}


def uniform_score(preds: list[VideoPrediction], k: int) -> dict | None:
    """The headline scores of equal cuts (`baselines.uniform_scores`) on the annotated videos of
    `preds`, without accuracy (equal cuts are told each video's task); None when none is annotated."""
    gt = {p.video_id: p.gt for p in preds}
    if all(g is None for g in gt.values()):
        return None
    result = baselines.uniform_scores(gt, {p.video_id: p.task for p in preds}, k)
    return {key: result.get(key) for key in HEADLINE if key != "accuracy"}


def format_scores(result: dict, split: str, given: bool = False) -> str:
    """A small table of the student's and the teacher's headline scores, and equal cuts' (uniform)
    when the result has them, in %. given: the run is told each video's task
    (`config.task_given`), so Acc is '-' and a line says why."""
    def fmt(v):
        return "-" if v is None else f"{100 * v:.1f}"
    cols = [("R", "recall"), ("P", "precision"), ("F1", "f1"), ("IoU", "iou"), ("Edit", "edit"),
            ("F1@10", "10"), ("F1@25", "25"), ("F1@50", "50"), ("Acc", "accuracy")]
    lines = [f"{'':8} " + " ".join(f"{c:>6}" for c, _ in cols) + f"   (split: {split}, %)"]
    for who in ("student", "teacher", "uniform"):
        r = result.get(who)
        if r is None:  # no equal cuts without ground truth (or in a run finished before they were kept)
            continue
        at = r.get("f1_at") or {}
        r = {**r, "accuracy": None} if given else r
        lines.append(f"{who:8} " + " ".join(f"{fmt(at.get(k) if k.isdigit() else r.get(k)):>6}" for _, k in cols))
    if result.get("uniform") is not None:
        lines.append("uniform: each video cut into k equal parts, told its task (the trivial reference)")
    if given:
        lines.append("Acc '-': one network per task, each video is run through its own task's (the task is given)")
    if not metrics.annotated(result):
        lines.append("not annotated: these videos have no ground-truth key-steps, so the key-step scores are '-'; "
                     "Acc is the task classifier against the videos' task names (the dataset's task folders)")
    return "\n".join(lines)


def format_metrics(path: Path) -> str:
    m = runs.read_metrics(path)
    return format_scores(m, m["split"], task_given(runs.read_config(path)))


def open_for_run(config: dict, spec: str | None, device: str = "auto"):
    """The dataset a run is scored on (its own, or `spec`) and its features, checked against the run's."""
    dataset = open_dataset(spec or config["dataset"])
    f = config["features"]
    features = load_or_extract(dataset, backbone=config["backbone"], fps=config["fps"], weights=config.get("weights"),
                               device=device)
    if features.D != f["D"]:
        raise ProclError(f"features of {dataset.spec} have D={features.D}, run expects D={f['D']}")
    return dataset, features


def evaluate(run: str, split: str | None = None, device: str = "cpu") -> dict:
    loaded = load_run(run, device)
    dataset, features = open_for_run(loaded.config, None, device)
    split = split or default_split(loaded.config)
    preds = predict_dataset(loaded, dataset, features, split=split)
    if not preds:
        raise ProclError(f"no videos in split {split!r} of {dataset.spec}")
    out = {**headline(score(preds)), "split": split, "student": score(preds), "teacher": score(preds, "teacher")}
    uniform = uniform_score(preds, int(loaded.config["k"]))
    if uniform is not None:
        out["uniform"] = uniform
    named = named_score(preds, dataset.steps, names_by_task(loaded.config, read_names(loaded.path)))
    if named is not None:
        out["named"] = named
        out["named_f1"] = named["named_f1"]
    return out


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run name (under checkpoints/) or folder")
    p.add_argument("--split", choices=("test", "all", "train"), default=None,
                   help="videos to score (default: test for multi-task runs, all for single-task)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_device_argument(p)


def main_evaluate(args: argparse.Namespace) -> int:
    result = evaluate(args.run, args.split, args.device)
    if args.json:
        out = {"annotated": metrics.annotated(result), **headline(result["student"]), "split": result["split"],
               "per_task": result["student"].get("per_task", {}),
               "per_class_accuracy": result["student"]["task"]["per_class"],
               "per_video": result["student"].get("per_video"), "teacher": headline(result["teacher"])}
        if "named_f1" in result:
            out["named_f1"] = result["named_f1"]
        if "uniform" in result:
            out["uniform"] = result["uniform"]
        print(json.dumps(out, indent=2))
    else:
        def fmt(v):
            return "-" if v is None else f"{100 * v:.1f}"
        print(f"run {args.run}")
        print(format_scores(result, result["split"], task_given(runs.read_config(args.run))))
        for task, r in result["student"].get("per_task", {}).items():
            print(f"  {task:28} R {fmt(r.get('recall'))}  P {fmt(r.get('precision'))}  F1 {fmt(r.get('f1'))}  "
                  f"Edit {fmt(r.get('edit'))}")
        if "named_f1" in result:
            print(f"named F1 {fmt(result['named_f1'])} (frames whose state's name is the true step's name)")
    return 0


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True)
    p.add_argument("--dataset", required=True, help="dataset spec to predict on")
    p.add_argument("--split", choices=("test", "all", "train"), default="all")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--segments", action="store_true",
                   help="one row per predicted segment (video, task, pred_task, start, end, frames, state, name; "
                        "times in seconds) instead of one per frame")
    add_device_argument(p)


def main_predict(args: argparse.Namespace) -> int:
    loaded = load_run(args.run, args.device)
    dataset, features = open_for_run(loaded.config, args.dataset, args.device)
    preds = predict_dataset(loaded, dataset, features, split=args.split)
    result = score(preds) if preds else {}
    mapping = {t: v["mapping"] for t, v in result.get("per_task", {}).items()}
    frame = predictions_frame(preds, dataset.steps, mapping, names_by_task(loaded.config, read_names(loaded.path)))
    if args.segments:
        segs = segments_frame(frame)
        write_text(args.out, segs.to_csv(index=False))
        print(f"{len(segs)} segments ({len(frame)} frames) of {len(preds)} videos -> {args.out}", file=sys.stderr)
        return 0
    write_text(args.out, frame.to_csv(index=False))
    print(f"{len(frame)} frames of {len(preds)} videos -> {args.out}", file=sys.stderr)
    return 0
