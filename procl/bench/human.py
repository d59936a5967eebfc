"""The bench's "Human in the loop" measurement (issue 21).

A simulated person labels the ground truth of some training videos (`per_task` of each
task, drawn at random or the ones procl suggests correcting first: every key-step span by
its step name, and the background between them) as
corrections of a finished run; the run is refined with them (procl.refine) and scored
on the test split:
- named F1 (procl.metrics.named_scores) of the refined run, against the *vote*
  baseline: no retraining, each state of the parent takes the step name most of its
  frames have in the labelled videos (the parent's predicted states there);
- Hungarian F1 of the refined run against the parent's;
- the refinement's training time against the parent's.

`python -m procl.bench.human --run PARENT [--run ...] [--per-task 1 3] [--pick drawn|suggested] [--out FILE.json]`
measures finished runs now; the bench runs it on its own trainings.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from procl import runs
from procl.corrections import suggest_videos
from procl.evaluate import named_score, open_for_run, score
from procl.infer import load_run, predict_dataset
from procl.io import write_json
from procl.names import names_by_task, read_names
from procl.refine import refine


def simulated_corrections(dataset, features, videos: list[str]) -> dict:
    """The ground truth of `videos` as corrections: one segment per run of equal labels."""
    segs = []
    for vid in videos:
        video = next(v for v in dataset.videos if v.id == vid)
        times = features.videos[vid].times
        gt = video.labels_at(times)
        step_s = float(np.median(np.diff(times))) if len(times) > 1 else 0.5
        names = dataset.steps.get(video.task, [])
        start = 0
        for t in range(1, len(gt) + 1):
            if t == len(gt) or gt[t] != gt[start]:
                g = int(gt[start])
                step = names[g] if 0 <= g < len(names) else "background"
                segs.append({"video": vid, "start": round(float(times[start]), 3),
                             "end": round(float(times[t - 1]) + step_s, 3), "step": step})
                start = t
    return {"segments": segs}


def pick_videos(dataset, config: dict, per_task: int, seed: int = 0) -> list[str]:
    """`per_task` training videos of each task (seeded draw)."""
    rng = np.random.default_rng(seed)
    train = set(config["train_videos"])
    out = []
    for task in config["tasks"]:
        ids = sorted(v.id for v in dataset.videos if v.task == task and v.id in train)
        out += [ids[i] for i in sorted(rng.choice(len(ids), size=min(per_task, len(ids)), replace=False))]
    return out


def suggested_videos(loaded, preds: dict, per_task: int) -> list[str]:
    """`per_task` training videos of each task as procl suggests them to a person
    (`corrections.suggest_videos` over the run's own predictions `preds`: video -> prediction)."""
    train = set(loaded.config["train_videos"])
    steps = {task: states for unit in loaded.selected.values() for task, states in unit.items()}
    picked = suggest_videos({v: p.states for v, p in preds.items() if v in train},
                            {v: p.task for v, p in preds.items()}, steps, per_task)
    return [v for task in loaded.config["tasks"] for v in picked.get(task, [])]


def vote_names(preds, steps: dict[str, list[str]]) -> dict[str, dict[int, str]]:
    """task -> state -> the step name most of the state's frames have in `preds`' videos
    (their ground truth); states mostly on background get no name. States are shared by
    the tasks, so the vote is over all labelled videos."""
    votes: dict[int, Counter] = {}
    for p in preds:
        names = steps.get(p.task, [])
        for s, g in zip(p.states, p.gt):
            if s >= 0:
                votes.setdefault(int(s), Counter())[names[g] if 0 <= g < len(names) else None] += 1
    named = {s: c.most_common(1)[0][0] for s, c in votes.items()}
    named = {s: n for s, n in named.items() if n is not None}
    return {task: named for task in steps}


def measure(parent: str, per_task: int, seed: int = 0, epochs: int | None = None, tag: str = "",
            pick: str = "drawn") -> dict:
    """One row: the parent, its vote baseline and its refinement with `per_task` labelled videos
    per task, drawn with `seed` (pick "drawn") or the ones procl suggests (pick "suggested")."""
    loaded = load_run(parent)
    dataset, features = open_for_run(loaded.config, None)
    all_preds = {p.video_id: p for p in predict_dataset(loaded, dataset, features, split="all")}
    labelled = (suggested_videos(loaded, all_preds, per_task) if pick == "suggested"
                else pick_videos(dataset, loaded.config, per_task, seed))
    test = [p for p in all_preds.values() if dataset.split.get(p.video_id) == "test"]
    vote = vote_names([all_preds[v] for v in labelled], dataset.steps)
    corr_file = runs.run_dir(parent) / f"sim-corrections-{per_task}.json"
    write_json(corr_file, simulated_corrections(dataset, features, labelled))
    name = runs.unique_name(f"{Path(parent).name}-refined{per_task}{tag}")
    t0 = time.time()
    path = refine(parent, name, corr_file, epochs=epochs, progress=False)
    refine_s = time.time() - t0
    child = load_run(path)
    child_preds = predict_dataset(child, dataset, features, split="test")
    child_names = names_by_task(child.config, read_names(path))
    parent_status = runs.read_status(parent)
    child_status = runs.read_status(path)
    return {
        "parent": Path(parent).name, "refined": path.name, "per_task": per_task, "pick": pick, "labelled": labelled,
        "parent_f1": score(test)["f1"], "refined_f1": score(child_preds)["f1"],
        "vote_named_f1": (named_score(test, dataset.steps, vote) or {}).get("named_f1"),
        "refined_named_f1": (named_score(child_preds, dataset.steps, child_names) or {}).get("named_f1"),
        "parent_train_s": float(sum(parent_status.get("epoch_seconds", []))),
        "refine_train_s": float(sum(child_status.get("epoch_seconds", []))), "refine_wall_s": refine_s,
        "parent_epochs": loaded.config.get("epochs"), "refine_epochs": child.config.get("epochs"),
    }


def format_rows(rows: list[dict]) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"
    lines = ["| parent | labelled/task | named F1 refined | named F1 vote | F1 refined | F1 parent | refine s "
             "| parent s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['parent']} | {r['per_task']} | {pct(r['refined_named_f1'])} | {pct(r['vote_named_f1'])} | "
                     f"{pct(r['refined_f1'])} | {pct(r['parent_f1'])} | {r['refine_train_s']:.0f} | "
                     f"{r['parent_train_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m procl.bench.human", description=__doc__)
    p.add_argument("--run", action="append", required=True, help="a finished multi-task run (repeat for seeds)")
    p.add_argument("--per-task", type=int, nargs="+", default=[1, 3])
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--pick", choices=PICKS, default="drawn",
                   help="the labelled videos: drawn at random (seed 0) or the ones procl suggests correcting first")
    p.add_argument("--tag", default="")
    p.add_argument("--out", default=None, help="JSON file for the rows")
    args = p.parse_args(argv)
    rows = []
    for run in args.run:
        for n in args.per_task:
            rows.append(measure(run, n, seed=0, epochs=args.epochs, tag=args.tag, pick=args.pick))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(format_rows(rows))
    if args.out:
        write_json(args.out, rows)
    return 0



HUMAN_DATA = ("builtin", "harder")  # the bench's sets the section measures (each at its true k)
PER_TASK = (1, 3)
PICKS = ("drawn", "suggested")  # which videos the person labels: a seeded draw, or procl's suggestion
PICK_WORDS = {"drawn": "drawn at random", "suggested": "procl's suggestion"}


def human_table(b) -> dict:
    """The bench's section: per set of HUMAN_DATA it has, per seed of the plan, per way of
    picking the labelled videos (PICKS) and per number of them per task, one `measure`
    row of the default recipe's training at the true k. The vote baseline and the
    refinement see the same labels."""
    out = {}
    for name in HUMAN_DATA:
        if name not in b.data:
            continue
        k = b.data[name].k_true
        out[name] = [measure(str(b.run(name, "default", "full", k, seed)), n, seed=seed, pick=pick,
                             tag="" if pick == "drawn" else "s")
                     for seed in b.plan.seeds for pick in PICKS for n in PER_TASK]
    return out


def format_human(h: dict | None) -> list[str]:
    """The report's "Human in the loop" section: means over seeds, and each row."""
    L = ["## Human in the loop (issue 21)", ""]
    if not h:
        return L + ["Not in this plan.", ""]
    L += ["A simulated person labels the ground truth of training videos (1, then 3 per task) as corrections; "
          "`refine` learns from them; scored on the test split. The labelled videos are drawn at random (seeded), "
          "or are the ones procl suggests correcting first (Explore: the most typical of what the parent found, "
          "`corrections.suggest_videos`). Named F1: a frame is right when its predicted step name is the true "
          "step's name. Vote: no retraining, each parent state takes the name most of its frames have in the "
          "same labelled videos. Targets: named F1 >= vote + 10; F1 >= parent + 5 (1 video/task), + 10 (3).", ""]
    for name, rows in h.items():
        L += [f"### {name}", "", "| labelled videos | labelled / task | named F1 refined | named F1 vote | gain "
              "| F1 refined | F1 parent | gain | refine s / parent s |", "|---|---|---|---|---|---|---|---|---|"]
        for pick in [p for p in PICKS if any(r.get("pick", "drawn") == p for r in rows)]:
            for n in sorted({r["per_task"] for r in rows}):
                sub = [r for r in rows if r["per_task"] == n and r.get("pick", "drawn") == pick]

                def m(key, sub=sub):
                    vals = [100 * r[key] for r in sub if r[key] is not None]
                    return f"{np.mean(vals):.1f} ± {np.std(vals, ddof=1) if len(vals) > 1 else 0:.1f}" if vals else "-"

                def gain(a, b, sub=sub):
                    vals = [100 * (r[a] - r[b]) for r in sub if r[a] is not None and r[b] is not None]
                    return f"{np.mean(vals):+.1f}" if vals else "-"
                ratio = np.mean([r["refine_train_s"] / max(r["parent_train_s"], 1e-9) for r in sub])
                L.append(f"| {PICK_WORDS[pick]} | {n} | {m('refined_named_f1')} | {m('vote_named_f1')} | "
                         f"{gain('refined_named_f1', 'vote_named_f1')} | {m('refined_f1')} | {m('parent_f1')} | "
                         f"{gain('refined_f1', 'parent_f1')} | {ratio:.2f} |")
        L.append("")
    return L


if __name__ == "__main__":
    sys.exit(main())
