"""How often the suggested k (procl.choosek.suggest_k) is within 1 of the true k.

Given finished runs of datasets at several k, each dataset's runs give one suggestion; the
true k of a task is the number of lines of the dataset's steps/<task>.txt (the generator
writes them). `python -m procl bench` measures it on its built-in runs of the k grid
(`choose_k_table`: each recipe's runs at every k and seed, which C5 trains anyway); on
any other runs:

    python -m procl.bench.choose_k RUN_FOLDER...   (or a folder of runs)
"""
from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

from procl import choosek, runs
from procl.bench.plan import RECIPE_LABELS, RECIPES
from procl.data.specs import normalise_spec


def true_ks(dataset_root: str | os.PathLike) -> dict[str, int]:
    """task -> number of key-steps, from the dataset's steps/<task>.txt (empty lines left out)."""
    steps = Path(dataset_root) / "steps"
    return {p.stem: len([ln for ln in p.read_text().splitlines() if ln.strip()]) for p in sorted(steps.glob("*.txt"))}


def dataset_folder(spec: str | None) -> Path | None:
    if not spec or ":" not in spec:
        return None
    return Path(normalise_spec(spec).split(":", 1)[1])


def suggestion(run_paths: list[str | os.PathLike]) -> dict:
    """The suggestion for runs of one dataset at several k: {"k", "why", "ks", "signals"}."""
    table = choosek.signals_table(run_paths)
    k, why = choosek.suggest_k(table)
    return {"k": k, "why": why, "ks": sorted(set(int(x) for x in table["k"])), "signals": table}


def measure(run_paths: list[str | os.PathLike]) -> list[dict]:
    """One row per dataset among the runs: the k tried, the suggestion, the true k per task,
    whether the suggestion is within 1 of each task's true k (and of the largest), and the
    most tasks any one k tried is within 1 of (a run has one k for every task: tasks of 5 and
    8 steps cannot both be within 1 of it)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in run_paths:
        try:
            groups[runs.read_config(p).get("dataset")].append(Path(p))
        except (OSError, ValueError):
            continue
    rows = []
    for spec, paths in sorted(groups.items(), key=lambda kv: str(kv[0])):
        s = suggestion(paths)
        folder = dataset_folder(spec)
        truth = true_ks(folder) if folder and (folder / "steps").is_dir() else {}
        near = {t: abs(s["k"] - k) <= 1 for t, k in truth.items()} if s["k"] is not None else {}
        reach = {k: sum(abs(k - t) <= 1 for t in truth.values()) for k in s["ks"]}  # one k for every task
        best = max(reach.values(), default=0)
        own = {t: k for t, (k, _) in choosek.suggest_k_per_task(s["signals"]).items()}
        own_near = {t: own.get(t) is not None and abs(own[t] - k) <= 1 for t, k in truth.items()}
        rows.append({"dataset": spec, "ks": s["ks"], "suggested": s["k"], "why": s["why"], "true_k": truth,
                     "tasks_within_1": sum(near.values()), "tasks": len(near), "per_task_suggested": own,
                     "per_task_within_1": sum(own_near.values()),
                     "within_1_of_max": bool(truth) and s["k"] is not None and abs(s["k"] - max(truth.values())) <= 1,
                     "best_within_1": best, "best_ks": [k for k, n in reach.items() if n == best]})
    return rows


def choose_k_table(b) -> dict[str, dict]:
    """The bench's measurement (issue 18): per recipe, `measure` over its built-in runs of the
    multi-task setting at every k of the grid and every seed."""
    out = {}
    for recipe in RECIPES:
        paths = [b.run("builtin", recipe, "full", k, seed) for k in b.ks for seed in b.plan.seeds
                 if ("builtin", recipe, "full", k, seed) in b.runs]
        rows = measure(paths)
        if rows:
            out[recipe] = rows[0]
    return out


def format_choose_k(c: dict | None) -> list[str]:
    """The report's "Choosing k" section."""
    L = ["## Choosing k without labels (issue 18)", ""]
    if not c:
        return L + ["Not in this plan.", ""]
    L += ["The rule of `procl.choosek.suggest_k` (shown on Compare) on the built-in set's runs at every k of the grid, "
          "no ground truth used: with several seeds of each k, as here, the k whose runs agree most on where the "
          "steps are (adjusted Rand index between the seeds' predicted states, mean over tasks); the suggested k "
          "against each task's true number of key-steps. Target: within 1 of the true k.", "",
          "| recipe | k tried | suggested | tasks within 1 | the best one k tried: tasks within 1 | each task's own "
          "suggestion: within 1 | within 1 of the largest true k |", "|---|---|---|---|---|---|---|"]
    for recipe, r in c.items():
        best = f"{r['best_within_1']}/{r['tasks']} (k = {', '.join(map(str, r['best_ks']))})"
        L.append(f"| {RECIPE_LABELS[recipe]} | {', '.join(map(str, r['ks']))} | {r['suggested']} | "
                 f"{r['tasks_within_1']}/{r['tasks']} | {best} | {r['per_task_within_1']}/{r['tasks']} | "
                 f"{'yes' if r['within_1_of_max'] else 'no'} |")
    truth = next(iter(c.values()))["true_k"]
    L += ["", "True k per task: " + ", ".join(f"{t} {k}" for t, k in truth.items()) + ".", ""]
    return L


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m procl.bench.choose_k", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders, or folders holding runs")
    args = ap.parse_args(argv)
    paths = []
    for r in map(Path, args.runs):
        if not r.is_dir():
            ap.error(f"{r} is not a folder: give run folders, or folders holding runs")
        paths += [r] if (r / "config.json").exists() else sorted(p for p in r.iterdir() if (p / "config.json").exists())
    if not paths:
        ap.error(f"no run folder (one with a config.json) in {', '.join(args.runs)}")
    rows = measure(paths)
    for r in rows:
        print(f"{r['dataset']}: k tried {r['ks']}, suggested {r['suggested']}, true k {r['true_k']}; "
              f"within 1: {r['tasks_within_1']}/{r['tasks']} tasks (the best one k tried: {r['best_within_1']}, "
              f"k = {r['best_ks']}). {r['why']}")
        print(f"  per task: suggested {r['per_task_suggested']}, within 1: {r['per_task_within_1']}/{r['tasks']}")
    tasks = sum(r["tasks"] for r in rows)
    print(f"within 1 of the true k: {sum(r['tasks_within_1'] for r in rows)}/{tasks} tasks, "
          f"{sum(r['within_1_of_max'] for r in rows)}/{len(rows)} datasets (largest true k); each task's own "
          f"suggestion: {sum(r['per_task_within_1'] for r in rows)}/{tasks} tasks")


if __name__ == "__main__":
    main()
