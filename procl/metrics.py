"""The metric protocol of procl (docs/design.md, "Metrics"): key-step localization and task accuracy.

Frames are the sampled frames of a video (2 fps; ProceL: its superframes). Every
per-frame array is 1-D and integer-valued:

- ground truth `gt[t]`: the 0-based key-step index of frame t, or -1 (background);
- prediction `pred[t]`: the state index given to frame t, or -1 (background / no state).

State indices and key-step indices are different vocabularies; a Hungarian matching
links them.

Matching (`match_states`)
    Overlap O[m, k] = number of frames with pred == m and gt == k. One
    `scipy.optimize.linear_sum_assignment` maximises the total overlap over one-to-one
    pairs (state m, step k). Only pairs with O[m, k] > 0 are kept: a state assigned
    to a step it never overlaps is unmatched. Unmatched states map to nothing.

Scores of a set of frames under a mapping state -> step (`localization_scores`)
    n_gt      = #frames with gt >= 0 (ground-truth key-step frames)
    n_pred    = #frames with pred >= 0 (frames given a state)
    n_correct = #frames with pred >= 0, pred matched, and mapping[pred] == gt
    recall    = n_correct / n_gt
    precision = n_correct / n_pred, and 0.0 when n_pred == 0
    f1        = 2 P R / (P + R), and 0.0 when P + R == 0
    iou       = mean over the steps k present in gt (gt == k somewhere) of
                |{gt == k} & {pred in mapping^-1(k)}| / |{gt == k} | {pred in mapping^-1(k)}|,
                a step with no matched state counting 0.
    When n_gt == 0, recall, f1 and iou are undefined and reported as None (precision
    stays defined: nothing can be correct, so it is 0.0).
    The returned mapping has string keys (state ids as decimal strings) so that
    `json.loads(json.dumps(scores)) == scores`; `localization_scores` accepts a mapping
    with int or string keys, so a mapping read back from metrics.json can be reused.

Per task, pooled (`evaluate_localization`; the primary numbers)
    For each ground-truth task, the frames of all its scored videos are concatenated
    and scored with ONE matching made on the pooled frames. A task whose videos have no
    ground-truth key-step frame (n_gt == 0) is undefined: its scores are None, it is
    excluded from the means and counted in "n_tasks_without_gt". The headline recall,
    precision, f1 and iou are unweighted means over the tasks with ground truth (None
    when there is none).

Per video (secondary)
    The same scores with a separate matching per video. A task's per-video scores are
    means over its videos that have at least one ground-truth key-step frame; the
    headline per-video scores are unweighted means of those over tasks.

Segmental scores (`segmental_scores`; as MS-TCN and the action-segmentation literature)
    They show over-segmentation (flicker), which the frame scores hide. Each video's
    frames are cut into segments (runs of one label); background runs (-1) are left
    out. A predicted segment's label is its state's matched step (the task's pooled
    matching above); a segment of an unmatched state keeps a label no step has.
    edit      = 1 - Levenshtein(predicted labels, ground-truth labels) / max(lengths),
                the normalised edit distance between the two sequences of segment
                labels (1.0 when both are empty); per task the mean over its videos.
    F1@tau    for tau in 0.10, 0.25, 0.50: each predicted segment, in order, is a true
                positive when its best-overlapping ground-truth segment of the same
                label has IoU >= tau and was not hit before, else a false positive;
                ground-truth segments never hit are false negatives. Counts are summed
                over the task's videos; F1 = 2 P R / (P + R) (0.0 when no segment hits).
    Segment ends are exclusive (MS-TCN's reference code uses the last index as the end
    of the final segment; procl does not), so IoU is exact in frames.
    Headline edit and f1_at are unweighted means over tasks with ground truth, like the
    frame scores; n_segments / n_gt_segments give the mean segments per video.

Task accuracy (`task_accuracy`)
    accuracy = share of videos whose predicted task equals the true task; per class:
    the same over the videos of each true task; plus the confusion counts
    {true: {predicted: count}}.

Every function returns plain dicts of Python ints, floats, strings and None, ready for
`json.dumps` (metrics.json, `procl evaluate --json`).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from procl import ProclError

__all__ = [
    "MetricsInputError",
    "evaluate_localization",
    "localization_scores",
    "match_states",
    "segment_f1",
    "segmental_scores",
    "segments_of",
    "task_accuracy",
]

_SCORE_KEYS = ("recall", "precision", "f1", "iou")
OVERLAPS = (0.10, 0.25, 0.50)  # F1@{10, 25, 50}


class MetricsInputError(ProclError, ValueError):
    """Inputs to a metric are malformed (shape, length, label values, missing video)."""


def _labels(values: np.ndarray, what: str) -> np.ndarray:
    """Check and return a 1-D int64 label array (values >= -1)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MetricsInputError(f"{what}: expected a 1-D array of per-frame labels, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise MetricsInputError(f"{what}: labels must be integers (-1 = background), got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < -1:
        raise MetricsInputError(
            f"{what}: label {int(arr.min())} is invalid; use indices >= 0, or -1 for background"
        )
    return arr


def _pair(gt: np.ndarray, pred: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (gt, pred) pair of equal-length label arrays."""
    gt, pred = _labels(gt, f"{what} ground truth"), _labels(pred, f"{what} prediction")
    if gt.shape != pred.shape:
        raise MetricsInputError(
            f"{what}: ground truth has {gt.size} frames but the prediction has {pred.size}; "
            "both must label the same sampled frames"
        )
    return gt, pred


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def match_states(gt: np.ndarray, pred: np.ndarray) -> dict[int, int]:
    """Hungarian matching predicted state -> ground-truth step maximising total overlap.

    Only pairs with positive overlap are returned; a state may be left unmatched.
    """
    gt, pred = _pair(gt, pred, "match_states")
    both = (gt >= 0) & (pred >= 0)
    if not both.any():
        return {}
    states, s_idx = np.unique(pred[both], return_inverse=True)  # [S], [F]
    steps, k_idx = np.unique(gt[both], return_inverse=True)  # [K], [F]
    overlap = np.zeros((states.size, steps.size), dtype=np.int64)  # [S, K]
    np.add.at(overlap, (s_idx, k_idx), 1)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return {int(states[r]): int(steps[c]) for r, c in zip(rows, cols) if overlap[r, c] > 0}


def localization_scores(
    gt: np.ndarray,
    pred: np.ndarray,
    mapping: Mapping[int | str, int] | None = None,
) -> dict:
    """Recall, precision, F1 and IoU of one set of frames (see the module docstring).

    mapping: state -> step (int or string keys); None matches with `match_states` first.
    Returns {"recall", "precision", "f1", "iou", "n_gt", "n_pred", "n_correct",
    "mapping"} with the mapping's keys as strings.
    """
    gt, pred = _pair(gt, pred, "localization_scores")
    if mapping is None:
        mapping = match_states(gt, pred)
    mapping = {int(state): int(step) for state, step in mapping.items()}
    if any(state < 0 for state in mapping):
        raise MetricsInputError(f"localization_scores: mapping keys must be states >= 0, got {mapping}")

    mapped = np.full_like(pred, -1)  # [T] each frame's step through the mapping, -1 if none
    for state, step in mapping.items():
        mapped[pred == state] = step

    n_gt = int((gt >= 0).sum())
    n_pred = int((pred >= 0).sum())
    n_correct = int(((mapped >= 0) & (mapped == gt)).sum())
    recall = _ratio(n_correct, n_gt)
    precision = n_correct / n_pred if n_pred else 0.0
    if recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0

    ious = []
    for step in np.unique(gt[gt >= 0]):
        truth, hit = gt == step, mapped == step
        ious.append(int((truth & hit).sum()) / int((truth | hit).sum()))
    iou = float(np.mean(ious)) if ious else None

    return {
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "iou": iou,
        "n_gt": n_gt,
        "n_pred": n_pred,
        "n_correct": n_correct,
        "mapping": {str(s): k for s, k in sorted(mapping.items())},
    }


def _mean(values: list[float | None]) -> float | None:
    """Mean of the defined values; None when there is none."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _means(rows: list[dict]) -> dict:
    """Per-key means over score dicts, counting only the rows with ground truth."""
    rows = [r for r in rows if r["recall"] is not None]
    out = {key: _mean([r[key] for r in rows]) for key in _SCORE_KEYS}
    out["n_videos"] = len(rows)
    return out


def evaluate_localization(
    gt: Mapping[str, np.ndarray | None],
    pred: Mapping[str, np.ndarray],
    task_of: Mapping[str, str],
) -> dict:
    """Pooled per-task scores (primary) and per-video scores (secondary) of a video set.

    gt:      video id -> per-frame ground truth, or None for an unannotated video (skipped).
    pred:    video id -> per-frame prediction, same length as its ground truth.
    task_of: video id -> ground-truth task.
    The tasks reported are those of the videos keyed in `gt` (including unannotated
    ones); a task with no ground-truth key-step frame is undefined (see the module
    docstring). Returns {"recall", "precision", "f1", "iou", "edit", "f1_at": {"10",
    "25", "50"}, "n_segments", "n_gt_segments", "per_video": {...},
    "per_task": {task: {...}}, "n_tasks", "n_tasks_without_gt", "n_videos"}.
    """
    videos_of: dict[str, list[str]] = defaultdict(list)
    for vid in sorted(gt):
        if vid not in task_of:
            raise MetricsInputError(f"video {vid!r}: no task given for it in task_of")
        videos_of[task_of[vid]].append(vid)

    per_task: dict[str, dict] = {}
    for task in sorted(videos_of):
        pairs = []
        for vid in videos_of[task]:
            if gt[vid] is None:
                continue
            if vid not in pred:
                raise MetricsInputError(f"video {vid!r}: has ground truth but no prediction")
            pairs.append(_pair(gt[vid], pred[vid], f"video {vid!r}"))
        if pairs:
            pooled = localization_scores(
                np.concatenate([g for g, _ in pairs]), np.concatenate([p for _, p in pairs])
            )
        else:
            pooled = localization_scores(np.zeros(0, np.int64), np.zeros(0, np.int64))
        pooled["n_videos"] = len(pairs)
        pooled["per_video"] = _means([localization_scores(g, p) for g, p in pairs])
        pooled.update(segmental_summary([segmental_scores(g, p, pooled["mapping"]) for g, p in pairs]))
        per_task[task] = pooled

    scored = [s for s in per_task.values() if s["recall"] is not None]
    result = {key: _mean([s[key] for s in scored]) for key in _SCORE_KEYS}
    result["per_video"] = {key: _mean([s["per_video"][key] for s in scored]) for key in _SCORE_KEYS}
    for key in ("edit", "n_segments", "n_gt_segments"):
        result[key] = _mean([s[key] for s in scored])
    result["f1_at"] = {key: _mean([s["f1_at"][key] for s in scored]) for key in (str(round(100 * t)) for t in OVERLAPS)}
    result["per_task"] = per_task
    result["n_tasks"] = len(scored)
    result["n_tasks_without_gt"] = len(per_task) - len(scored)
    result["n_videos"] = sum(s["n_videos"] for s in per_task.values())
    return result


def annotated(result: Mapping) -> bool:
    """Whether a scored result (`infer.evaluate`'s, or a run's metrics.json) holds key-step
    scores, i.e. its videos had ground truth. Task accuracy is there either way: it is
    against the videos' task names."""
    return bool((result.get("student") or {}).get("per_task"))


def task_accuracy(true: Mapping[str, str], pred: Mapping[str, str]) -> dict:
    """Share of videos whose predicted task is right, overall and per true task.

    Scores the videos keyed in `true`; each needs a prediction. Returns {"accuracy",
    "per_class": {task: acc}, "n_videos", "confusion": {true: {pred: count}}};
    accuracy is None when there is no video.
    """
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for vid in sorted(true):
        if vid not in pred:
            raise MetricsInputError(f"video {vid!r}: no predicted task")
        confusion[true[vid]][pred[vid]] += 1
    per_class = {t: confusion[t].get(t, 0) / sum(confusion[t].values()) for t in sorted(confusion)}
    n_right = sum(confusion[t].get(t, 0) for t in confusion)
    return {
        "accuracy": _ratio(n_right, len(true)),
        "per_class": per_class,
        "n_videos": len(true),
        "confusion": {t: dict(sorted(row.items())) for t, row in sorted(confusion.items())},
    }


def segments_of(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal labels as (label, start_index, end_index_exclusive), in order."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise MetricsInputError(f"segments_of: expected a 1-D label array, got shape {arr.shape}")
    if arr.size == 0:
        return []
    bounds = np.flatnonzero(arr[1:] != arr[:-1]) + 1  # starts of every run but the first
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [arr.size]])
    return [(int(arr[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def _foreground_segments(labels: np.ndarray) -> list[tuple[int, int, int]]:
    return [seg for seg in segments_of(labels) if seg[0] != -1]


def _levenshtein(a: list, b: list) -> int:
    """Edit distance (insertions, deletions, substitutions of cost 1) between two sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def segmental_scores(
    gt: np.ndarray, pred: np.ndarray, mapping: Mapping[int | str, int], overlaps: tuple[float, ...] = OVERLAPS,
) -> dict:
    """Edit score and segment hit counts of one video under a state -> step mapping.

    Returns {"edit", "n_segments", "n_gt_segments", "counts": {"10": [tp, fp, fn], ...}}
    (see the module docstring); keys of "counts" are the overlaps in percent.
    """
    gt, pred = _pair(gt, pred, "segmental_scores")
    mapping = {int(state): int(step) for state, step in mapping.items()}
    # an unmatched state m gets the label -2 - m: never a step, never background
    steps_of = np.array([mapping.get(int(s), -2 - int(s)) if s >= 0 else -1 for s in pred], dtype=np.int64)
    p_segs, g_segs = _foreground_segments(steps_of), _foreground_segments(gt)
    p_lab, g_lab = [s[0] for s in p_segs], [s[0] for s in g_segs]
    longest = max(len(p_lab), len(g_lab))
    edit = 1.0 - _levenshtein(p_lab, g_lab) / longest if longest else 1.0
    counts = {}
    g_start = np.array([s[1] for s in g_segs])
    g_end = np.array([s[2] for s in g_segs])
    g_lab_arr = np.array(g_lab)
    for tau in overlaps:
        hit = np.zeros(len(g_segs), dtype=bool)
        tp = fp = 0
        for label, start, end in p_segs:
            if len(g_segs):
                inter = np.clip(np.minimum(end, g_end) - np.maximum(start, g_start), 0, None)
                union = np.maximum(end, g_end) - np.minimum(start, g_start)
                iou = np.where(g_lab_arr == label, inter / union, 0.0)
                best = int(iou.argmax())
                if iou[best] >= tau and not hit[best]:
                    tp += 1
                    hit[best] = True
                    continue
            fp += 1
        counts[str(round(100 * tau))] = [tp, fp, int(len(g_segs) - hit.sum())]
    return {"edit": edit, "n_segments": len(p_segs), "n_gt_segments": len(g_segs), "counts": counts}


def segment_f1(tp: int, fp: int, fn: int) -> float:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def segmental_summary(rows: list[dict]) -> dict:
    """The segmental scores of several videos (a task's, or one) from their `segmental_scores`:
    Edit and segment counts averaged, F1@tau from the summed hits, misses and false alarms."""
    if not rows:
        return {"edit": None, "f1_at": {str(round(100 * t)): None for t in OVERLAPS},
                "n_segments": None, "n_gt_segments": None}
    f1_at = {}
    for key in rows[0]["counts"]:
        tp, fp, fn = (sum(r["counts"][key][i] for r in rows) for i in range(3))
        f1_at[key] = segment_f1(tp, fp, fn)
    return {"edit": float(np.mean([r["edit"] for r in rows])), "f1_at": f1_at,
            "n_segments": float(np.mean([r["n_segments"] for r in rows])),
            "n_gt_segments": float(np.mean([r["n_gt_segments"] for r in rows]))}


def _name_key(name) -> str | None:
    if name is None:
        return None
    name = str(name).strip().lower()
    return name or None


def named_scores(gt: Mapping[str, Sequence], pred: Mapping[str, Sequence], task_of: Mapping[str, str]) -> dict:
    """Named F1: a frame is right when its predicted step *name* equals its ground-truth
    step name (compared without case and outer spaces), with no matching.

    gt, pred: video -> per-frame names, None for background (ground truth) or a frame
    whose state has no name (prediction). Per task: recall = right frames / key-step
    frames, precision = right frames / frames given a name, F1 = 2PR/(P+R); `named_f1`
    etc. are the unweighted means over tasks (as the other frame scores).
    """
    rows = {}
    for vid, g in gt.items():
        p = pred[vid]
        if len(g) != len(p):
            raise ValueError(f"video {vid!r}: {len(g)} ground-truth frames but {len(p)} predicted")
        g = [_name_key(x) for x in g]
        p = [_name_key(x) for x in p]
        row = rows.setdefault(task_of[vid], [0, 0, 0])
        row[0] += sum(1 for a, b in zip(g, p) if a is not None and a == b)
        row[1] += sum(1 for a in g if a is not None)
        row[2] += sum(1 for b in p if b is not None)
    per_task = {}
    for task, (right, n_gt, n_pred) in rows.items():
        r, p = _ratio(right, n_gt), _ratio(right, n_pred)
        f1 = 2 * p * r / (p + r) if p and r else (0.0 if p is not None and r is not None else None)
        per_task[task] = {"named_recall": r, "named_precision": p, "named_f1": f1}
    out = {k: _mean([v[k] for v in per_task.values()]) for k in ("named_recall", "named_precision", "named_f1")}
    out["per_task"] = per_task
    return out
