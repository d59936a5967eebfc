"""The quality tables of the bench, from its trained runs and procl.baselines.

Every table is {row key: Row}, a Row holding one score dict per seed (`row_scores`:
R, P, F1, Edit, F1@50 and task accuracy as fractions, segments per video and the ground
truth's). Multi-task rows are scored on the test split, single-task rows (and the
multi-task model next to them) on all videos. Baselines are told each video's task.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from procl import ProclError, runs
from procl.baselines import run_baselines
from procl.bench.plan import RECIPE_LABELS, RECIPES, SMALL_K
from procl.bench.trainings import DECODE_LEVERS, Bench, Data, ablated_levers, lever_value
from procl.evaluate import headline, score
from procl.infer import predict_dataset
from procl.io import read_json

BASELINES = {
    "random": "Random",
    "uniform": "Uniform",
    "kmeans": "k-means only (mean-pooled, no attention)",
    "subset_selection": "subset selection only (teacher on mean-pooled)",
}
VARIANT_LABELS = {
    "attention_only": "attention only (uniform pooling)",
    "pooling_only": "learnable pooling only (no attention)",
    "lam0": "attention + learnable pooling, lambda = 0",
    "labels_only": "task labels only (no ranking loss)",
}


@dataclass
class Row:
    label: str
    scores: list[dict]  # one row_scores dict per seed
    note: str = ""
    base: "Row | None" = None  # an ablation row's reference when it is not its table's "full" row


def row_scores(result: dict, accuracy: bool = True) -> dict:
    """A table's numbers of a `score` / `evaluate_localization` result: recall, precision,
    f1, edit, f1_50, accuracy (None when not scored) and segments / gt_segments per video."""
    h = headline(result)
    return {"recall": h["recall"], "precision": h["precision"], "f1": h["f1"], "edit": h["edit"],
            "f1_50": (h["f1_at"] or {}).get("50"), "accuracy": h["accuracy"] if accuracy else None,
            "segments": result.get("n_segments"), "gt_segments": result.get("n_gt_segments")}


def mean_scores(rows: list[dict]) -> dict:
    """The mean of each number over rows (None where no row has one): a per-task average."""
    return {key: float(np.mean(vals)) if (vals := [r[key] for r in rows if r[key] is not None]) else None
            for key in rows[0]}


def _label(recipe: str, what: str = "") -> str:
    return f"procl, {RECIPE_LABELS[recipe]}" + (f": {what}" if what else "")


def run_row(b: Bench, label: str, data: str, recipe: str, row: str, k: int, who: str = "student",
            accuracy: bool = True) -> Row:
    """The student's (or teacher's) scores of a trained row, from each seed's metrics.json."""
    scores = [row_scores(read_json(b.run(data, recipe, row, k, s) / "metrics.json")[who], accuracy)
              for s in b.plan.seeds]
    same = b.same_as.get((data, recipe, row, k, b.plan.seeds[0]))
    note = f"the same settings as row {same[2]} of the {RECIPE_LABELS[same[1]]} here: trained once" if same else ""
    return Row(label, scores, note)


def rescored(b: Bench, data: Data, recipe: str, row: str, k: int, split: str, given_task: bool = False,
             **changes) -> list[dict]:
    """Per seed, a run's predictions scored again on `split`, with decoding settings
    changed (`changes`, TrainConfig fields only the decoding reads), or the student
    localizing with each video's true task (`given_task`)."""
    out = []
    for seed in b.plan.seeds:
        loaded = b.load(b.run(data.name, recipe, row, k, seed))
        loaded = replace(loaded, train_config=replace(loaded.train_config, **changes))
        preds = predict_dataset(loaded, data.dataset, data.features, split=split, given_task=given_task)
        out.append(row_scores(score(preds), accuracy=not given_task))
    return out


def baseline_rows(b: Bench, data: Data, k: int, names=tuple(BASELINES), single: bool = False) -> dict[str, Row]:
    """The baselines per seed: multi-task (M 50, fit on train, test scored) or single-task
    (M 30, fit and scored on all videos)."""
    kw = {"M": 30, "split": "all", "fit_split": "all"} if single else {"M": 50}
    per_seed = [run_baselines(data.dataset, data.features, k, seed=s, names=names, **kw) for s in b.plan.seeds]
    return {n: Row(BASELINES[n], [row_scores(r[n], accuracy=False) for r in per_seed]) for n in names}


# ---------------------------------------------------------------- the tables


def unpaired_share(run: Path, split: str = "test") -> float:
    """The share of a run's key-step frames (of `split`) whose state the metric's one-to-one
    matching left unpaired: always counted wrong, however right the split they make (C5)."""
    mapping = {t: v.get("mapping", {}) for t, v in read_json(run / "metrics.json")["student"]["per_task"].items()}
    with open(run / "predictions.csv", newline="") as f:
        states = [(r["pred_task"], r["state"]) for r in csv.DictReader(f)
                  if r.get("split") == split and int(r["state"]) >= 0]
    return float(np.mean([s not in mapping.get(t, {}) for t, s in states])) if states else 0.0


def builtin_tables(b: Bench) -> dict[int, dict[str, Row]]:
    """Table a: every k of the grid, baselines and both recipes with their teachers (each
    student row also keeps its `unpaired_share` per seed, for C5)."""
    out = {}
    for k in b.ks:
        rows = baseline_rows(b, b.builtin, k)
        for recipe in RECIPES:
            rows[recipe] = run_row(b, _label(recipe, "student"), "builtin", recipe, "full", k)
            for seed, scores in zip(b.plan.seeds, rows[recipe].scores):
                scores["unpaired"] = unpaired_share(b.run("builtin", recipe, "full", k, seed))
            rows[f"{recipe}_teacher"] = run_row(b, f"teacher of the {RECIPE_LABELS[recipe]} (subset selection on "
                                                   "its final attention features)", "builtin", recipe, "full", k,
                                                "teacher", accuracy=False)
            if k == b.k_true:  # C1's like-for-like: the teacher is always given the true task
                rows[f"{recipe}_given"] = Row(_label(recipe, "student given the true task"),
                                              rescored(b, b.builtin, recipe, "full", k, "test", given_task=True),
                                              "the student localizing with each video's true task, as its teacher "
                                              "does: what task errors cost")
        out[k] = rows
    return out


def ablation_tables(b: Bench) -> dict[str, dict[str, Row]]:
    """Table b: per recipe, the recipe at the true k and one row per lever set to the
    other recipe's value (or, off in both, turned on): {recipe: {"full" | lever: Row}}."""
    k = b.k_true
    out = {}
    for recipe in ("default", "paper"):  # procl's recipe first: its levers are the point
        levers = ablated_levers(b.plan, recipe)
        if not levers:
            continue
        rows = {"full": run_row(b, _label(recipe), "builtin", recipe, "full", k)}
        for lever in levers:
            value = lever_value(lever, recipe)
            label = _label(recipe) + f", {lever} = {value}"
            if lever in DECODE_LEVERS:
                rows[lever] = Row(label, rescored(b, b.builtin, recipe, "full", k, "test", **{lever: value}),
                                  "decoding only: the recipe's runs decoded with this value")
            elif lever == "min_steps":
                rows[lever] = run_row(b, label, "small", recipe, f"lever-{lever}", SMALL_K)
                rows[lever].note = "; ".join(filter(None, [
                    f"on the small set (k = {SMALL_K}), where the automatic epochs depend on it, against the "
                    "recipe there (small-data table)", rows[lever].note]))
                rows[lever].base = run_row(b, _label(recipe), "small", recipe, "full", SMALL_K)
            else:
                rows[lever] = run_row(b, label, "builtin", recipe, f"lever-{lever}", k)
        out[recipe] = rows
    return out


def variant_tables(b: Bench) -> dict[str, dict[str, Row]]:
    """Table c: the rows claims C2, C3 and C6 need, per recipe at the true k."""
    k = b.k_true
    return {recipe: {row: run_row(b, _label(recipe, label), "builtin", recipe, row, k)
                     for row, label in VARIANT_LABELS.items() if row in b.plan.claim_rows}
            for recipe in RECIPES}


def single_task_table(b: Bench) -> dict[str, Row]:
    """Table d (Table 1 style), true k, all videos scored: baselines fit per task (M = 30
    states of that task's videos, their per-task scores averaged as the metric's headline
    is), each recipe single-task, and each recipe's multi-task model on the same videos."""
    k, data = b.k_true, b.builtin
    if "single" not in b.plan.claim_rows:
        return {}
    per_task = []
    for task in data.dataset.tasks:
        sub = replace(data, dataset=replace(data.dataset, videos=data.dataset.videos_of(task=task), tasks=[task]))
        per_task.append(baseline_rows(b, sub, k, ("random", "subset_selection"), single=True))
    rows = {name: Row(per_task[0][name].label + " (per task)",
                      [mean_scores([t[name].scores[i] for t in per_task]) for i in range(len(b.plan.seeds))])
            for name in ("random", "subset_selection")}
    for recipe in RECIPES:
        rows[f"{recipe}_single"] = run_row(b, _label(recipe, "single-task"), "builtin", recipe, "single", k,
                                           accuracy=False)
    for recipe in RECIPES:
        rows[f"{recipe}_multi_all"] = Row(_label(recipe, "multi-task, all videos (its training videos included)"),
                                          rescored(b, data, recipe, "full", k, "all"))
    return rows


def robustness_tables(b: Bench) -> dict[str, dict[str, Row]]:
    """Table e: each robustness variant at its true k: Uniform, k-means, both recipes."""
    out = {}
    for name in b.plan.variants:
        data = b.data[name]
        rows = baseline_rows(b, data, data.k_true, ("uniform", "kmeans"))
        for recipe in RECIPES:
            rows[recipe] = run_row(b, _label(recipe), name, recipe, "full", data.k_true)
        out[name] = rows
    return out


def breakfast_tables(b: Bench) -> dict[int, dict[str, Row]]:
    """Table f: the Breakfast sample, single-task, each k of plan.real_ks, all videos."""
    if "breakfast" not in b.data:
        return {}
    out = {}
    for k in b.plan.real_ks:
        rows = baseline_rows(b, b.data["breakfast"], k, single=True)
        for recipe in RECIPES:
            rows[recipe] = run_row(b, _label(recipe, "single-task"), "breakfast", recipe, "single", k,
                                   accuracy=False)
            for seed, scores in zip(b.plan.seeds, rows[recipe].scores):
                scores["train_s"] = b.seconds("breakfast", recipe, "single", k, seed)
        out[k] = rows
    return out


def nogrid_tables(b: Bench) -> dict[str, dict[str, dict[str, Row]]]:
    """Table h: each set of plan.nogrid as precomputed [T, D] features (no grid), at its true
    k: {name: {"multi": rows (test split), "single": rows (all videos)}}, Uniform and
    k-means (fit per task) beside both recipes."""
    out = {}
    for name in b.plan.nogrid:
        data = b.data[f"{name}-nogrid"]
        k = b.data[name].k_true  # the generated set's (actseg knows only the steps some sampled frame shows)
        multi = baseline_rows(b, data, k, ("uniform", "kmeans"))
        single = baseline_rows(b, data, k, ("uniform", "kmeans"), single=True)
        for recipe in RECIPES:
            multi[recipe] = run_row(b, _label(recipe), data.name, recipe, "full", k)
            single[recipe] = run_row(b, _label(recipe, "single-task"), data.name, recipe, "single", k,
                                     accuracy=False)
        out[name] = {"multi": multi, "single": single}
    return out


def small_data_table(b: Bench) -> dict[str, Row]:
    """Table g: the small set at k = SMALL_K, test split: each row's scores plus training
    seconds, the distinct key-step states per test video (min and mean) and the share of
    the test frames called background, against the ground truth's."""
    data = b.data["small"]
    rows = {}
    for recipe in sorted(RECIPES, key=lambda rc: rc != "default"):
        rows[recipe] = (recipe, "full", _label(recipe, "epochs automatic"))
        if "min_steps" in ablated_levers(b.plan, recipe):
            rows[f"{recipe}_min_steps"] = (recipe, "lever-min_steps",
                                           _label(recipe, f"min_steps = {lever_value('min_steps', recipe)}"))
    test = data.videos("test")
    out = {"uniform": baseline_rows(b, data, SMALL_K, ("uniform",))["uniform"]}
    truth = float(np.mean(np.concatenate([v.labels_at(data.features.videos[v.id].times) for v in test]) == -1))
    for scores in out["uniform"].scores:  # equal cuts never say background
        scores.update(background=0.0, gt_background=truth)
    for key, (recipe, row, label) in rows.items():
        base = run_row(b, label, "small", recipe, row, SMALL_K)
        for seed, scores in zip(b.plan.seeds, base.scores):
            run = b.run("small", recipe, row, SMALL_K, seed)
            outputs = [runs.load_outputs(run, v.id) for v in test]
            distinct = [len(np.unique(o["states"][o["states"] >= 0])) for o in outputs]
            states, gt = np.concatenate([o["states"] for o in outputs]), np.concatenate([o["gt"] for o in outputs])
            scores.update(train_s=b.seconds("small", recipe, row, SMALL_K, seed), states_min=float(min(distinct)),
                          states_mean=float(np.mean(distinct)), epochs=float(read_json(run / "config.json")["epochs"]),
                          background=float(np.mean(states == -1)), gt_background=float(np.mean(gt == -1)))
        out[key] = base
    return out


# ---------------------------------------------------------------- attention and the precision bound


def cell_coverage(box: tuple[float, float, float, float], grid: int = 7) -> np.ndarray:
    """Fraction of each grid cell covered by a normalised box (x0, y0, x1, y1): [grid * grid],
    row-major (cell r = row * grid + column, the order of the backbones' R axis)."""
    x0, y0, x1, y1 = box
    edges = np.arange(grid + 1) / grid
    ox = np.clip(np.minimum(x1, edges[1:]) - np.maximum(x0, edges[:-1]), 0, None)  # [grid]
    oy = np.clip(np.minimum(y1, edges[1:]) - np.maximum(y0, edges[:-1]), 0, None)  # [grid]
    return (np.outer(oy, ox) * grid * grid).ravel()


def read_boxes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A boxes CSV (time,x0,y0,x1,y1; empty fields without a key-step): times [N], boxes [N, 4]
    with NaN rows where no key-step is active."""
    times, boxes = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            times.append(float(row["time"]))
            boxes.append([float(row[c]) if row[c] else np.nan for c in ("x0", "y0", "x1", "y1")])
    return np.array(times), np.array(boxes, dtype=np.float64).reshape(-1, 4)


def attention_quality(b: Bench) -> dict[str, dict]:
    """Table h, per recipe: the share of attention mass inside the ground-truth key-step
    box per seed (full runs, true k, test videos, key-step frames), against the uniform
    map's share (the box's area)."""
    data = b.builtin
    out = {}
    for recipe in RECIPES:
        shares, uniform, frames = [], [], 0
        for seed in b.plan.seeds:
            run = b.run("builtin", recipe, "full", b.k_true, seed)
            inside, area = [], []
            for video in data.videos("test"):
                o = runs.load_outputs(run, video.id)
                alpha = o["alpha"].astype(np.float64)  # [T, R]
                times, boxes = read_boxes(data.dataset.boxes_dir / Path(video.source).parent.name / f"{video.id}.csv")
                nearest = np.abs(times[None, :] - o["times"][:, None]).argmin(1)  # [T]
                for t, i in enumerate(nearest):
                    if not np.isnan(boxes[i]).any():
                        inside.append(float(alpha[t] @ cell_coverage(tuple(boxes[i]))))
                        area.append(float((boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])))
            if not inside:
                raise ProclError(f"no key-step frame with a box in the test videos of {data.spec}: "
                                 f"is {data.dataset.boxes_dir} there?")
            shares.append(float(np.mean(inside)))
            uniform.append(float(np.mean(area)))
            frames = len(inside)
        out[recipe] = {"share": shares, "uniform": uniform, "frames": frames}
    return out


def precision_ceiling(b: Bench) -> float:
    """With every frame given a state (--background none), precision cannot pass the share
    of key-step frames: that share on the built-in test split, averaged over tasks."""
    data, shares = b.builtin, []
    for task in data.dataset.tasks:
        gt = [v.labels_at(data.features.videos[v.id].times) for v in data.dataset.videos_of(task=task, split="test")
              if v.id in data.features.videos]
        if gt:
            shares.append(float((np.concatenate(gt) >= 0).mean()))
    return float(np.mean(shares))
