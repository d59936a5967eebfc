"""The command line (a contract: docs/design.md; every option: docs/cli.md).

data synth, features, train, evaluate, predict, procedure, refine, videos-to-correct, bench: each command's
arguments and work live in the module that owns it; this module wires them together.
"""
from __future__ import annotations

import argparse
import sys

from procl import ProclError, evaluate, procedure, refine
from procl import train as train_mod
from procl.bench import run as bench
from procl.data import synth
from procl.features import cache

DESCRIPTION = """\
procl finds the steps of a task (say: boil water, add tea bag, pour water) in videos of
several tasks, knowing only each video's task.

typical use:
  procl data synth --out data/synthetic      make the built-in example videos
  procl train --dataset synthetic --k 7      learn 7 steps per task (a run)
  procl evaluate --run NAME                  scores of a run
  procl procedure --run NAME                 each task's steps in their usual order
  streamlit run app.py                       the app: upload videos, train, look

`procl` is installed by `make install` (or `pip install -e .`); `python -m procl` is the
same from procl's folder. `procl COMMAND --help` says more about a command; docs/cli.md
describes every option."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="procl", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("synth", help="generate the built-in instructional-video dataset")
    synth.add_arguments(p)
    p.set_defaults(func=synth.main)

    p = sub.add_parser("features", help="extract (or reuse cached) region features of a dataset")
    cache.add_arguments(p)
    p.set_defaults(func=cache.main)

    p = sub.add_parser("train", help="train a model; prints the run directory last")
    train_mod.add_arguments(p)
    p.set_defaults(func=train_mod.main)

    p = sub.add_parser("evaluate", help="metrics of a trained run")
    evaluate.add_evaluate_arguments(p)
    p.set_defaults(func=evaluate.main_evaluate)

    p = sub.add_parser("predict", help="per-frame predictions of a run on a dataset, as CSV")
    evaluate.add_predict_arguments(p)
    p.set_defaults(func=evaluate.main_predict)

    p = sub.add_parser("procedure", help="the key-steps of each task in their typical order, from a run")
    procedure.add_arguments(p)
    p.set_defaults(func=procedure.main)

    p = sub.add_parser("refine", help="a new run that learns from a person's corrections of a run; "
                                                "prints its directory")
    refine.add_arguments(p)
    p.set_defaults(func=refine.main)

    p = sub.add_parser("videos-to-correct", help="the videos of each task a person's corrections help most, "
                                                 "as CSV (task,rank,video)")
    refine.add_to_correct_arguments(p)
    p.set_defaults(func=refine.main_to_correct)

    p = sub.add_parser("bench", help="reproduce the paper's tables and measure speed")
    bench.add_arguments(p)
    p.set_defaults(func=bench.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ProclError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
