"""One run of `python -m procl bench` (the package docstring says what it measures): the
datasets, the trainings, the tables and verdicts, speed, and the report."""
from __future__ import annotations

import argparse
import os
import sys
import time

from procl.bench import speed
from procl.bench.choose_k import choose_k_table
from procl.bench.claims import claims, lever_gains, targets
from procl.bench.human import human_table
from procl.bench.plan import (
    FULL,
    QUICK,
    REAL_DATA,
    RECIPES,
    RESULTS_PATH,
    TINY,
    Plan,
    bench_env,
    combine,
    compare,
    cores,
    machine,
    true_k,
    versions,
)
from procl.bench.quality import (
    ablation_tables,
    attention_quality,
    breakfast_tables,
    builtin_tables,
    cell_coverage,
    nogrid_tables,
    precision_ceiling,
    robustness_tables,
    single_task_table,
    small_data_table,
    variant_tables,
)
from procl.bench.report import format_report
from procl.bench.trainings import Bench, Data, clear, estimate, planned_shapes, prepare, train_all
from procl.dist import add_device_argument, resolve_device, threads
from procl.io import write_text
from procl.paths import data_dir

__all__ = ["FULL", "QUICK", "TINY", "Plan", "REAL_DATA", "RESULTS_PATH", "add_arguments", "bench_env",
           "cell_coverage", "combine", "compare", "format_report", "main", "run_bench", "true_k"]


def describe(d: Data) -> dict:
    """A dataset's line in the report."""
    return {"spec": d.spec, "generator": d.generator, "videos": len(d.features.videos), "train": len(d.videos("train")),
            "test": len(d.videos("test")), "frames": d.frames, "k_true": d.k_true, "D": d.features.D,
            "R": d.features.R}


def run_bench(plan: Plan, progress: bool = True, command: str = "python -m procl bench",
              device: str = "auto") -> tuple[str, dict]:
    """Run every training, table and measurement of `plan`; returns (markdown report, results dict)."""
    root = (data_dir() / "bench" / plan.name).resolve()
    load = os.getloadavg()[0]
    b = Bench(plan, root, progress, device)
    n, expected = estimate(plan, planned_shapes(plan), b.cores)
    b.log(f"plan {plan.name}: {n} trainings (about {plan.train_s:g} s each for a built-in one, on "
          f"{b.cores} processes); expected about {expected / 60:.1f} min. Working folder: {root}")
    clear(root)
    with bench_env(root), threads(b.cores):
        prepare(b)
        shapes = {name: d.shape() for name, d in b.data.items()}
        n, expected = estimate(plan, shapes, b.cores)
        b.log(f"datasets ready: {n} trainings, about {(expected - plan.fixed_s) / 60:.1f} min of training")
        train_all(b)
        b.log("tables")
        r: dict = {"k_true": b.k_true, "ks": b.ks, "real_skipped": b.real_skipped}
        r["builtin"] = builtin_tables(b)
        r["ablations"] = ablation_tables(b)
        r["variants"] = variant_tables(b)
        r["single"] = single_task_table(b)
        r["attention"] = attention_quality(b)
        r["precision_ceiling"] = precision_ceiling(b)
        r["robustness"] = robustness_tables(b)
        r["breakfast"] = breakfast_tables(b)
        r["nogrid"] = nogrid_tables(b)
        r["small"] = small_data_table(b)
        r["human"] = human_table(b)
        r["choose_k"] = choose_k_table(b)
        r["speed"] = speed.measure(b)
    r["datasets"] = {name: describe(d) for name, d in b.data.items()}
    r["claims"] = {recipe: claims(r, recipe) for recipe in RECIPES}
    r["gains"] = lever_gains(r["ablations"])
    r["targets"] = targets(r)
    r["meta"] = {
        "command": command, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
        "versions": versions(), "plan": plan, "device": str(resolve_device(device)), "workers": min(cores(), n),
        "trainings": len(set(b.runs.values())),
        "steps_per_task": {t: len(s) for t, s in b.builtin.dataset.steps.items()},
        "minutes": (time.perf_counter() - b.start) / 60, "expected_minutes": expected / 60,
        "load": (load, os.getloadavg()[0]),
    }
    b.log(f"done in {r['meta']['minutes']:.1f} min")
    return format_report(r), r


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a reduced plan (one seed, the true k only, a smaller built-in set, fewer rows) in "
                             "about 5 minutes; never writes docs/RESULTS.md")
    parser.add_argument("--out", default=None, help="also write the markdown report to FILE")
    add_device_argument(parser, "the speed measurements run the backbones and inference (trainings: the CPU)")


def main(args: argparse.Namespace, plan: Plan | None = None) -> int:
    """Run the bench (FULL, or QUICK with --quick; `plan` overrides, for tests), print the
    report, write it to --out, and to docs/RESULTS.md only for the full plan."""
    plan = plan or (QUICK if args.quick else FULL)
    device = getattr(args, "device", "auto")
    resolve_device(device)  # cuda on a machine without one: the message now, not after an hour
    command = ("python -m procl bench" + (" --quick" if args.quick else "") + (f" --out {args.out}" if args.out else "")
               + (f" --device {device}" if device != "auto" else ""))
    report, _ = run_bench(plan, progress=sys.stderr.isatty(), command=command, device=device)
    print(report)
    if args.out:
        write_text(args.out, report)
        print(f"report written to {args.out}", file=sys.stderr)
    if plan is FULL and not args.quick:
        write_text(RESULTS_PATH, report)
        print(f"report written to {RESULTS_PATH}", file=sys.stderr)
    return 0
