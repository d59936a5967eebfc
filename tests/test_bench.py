"""`procl bench`: the plans, the rules behind its verdicts, and the --quick code path on a tiny plan."""
from __future__ import annotations

import argparse
import os
import re

import numpy as np
import pytest
import torch

from procl import runs
from procl.bench import run as bench
from procl.bench.nogrid import write_without_grid
from procl.bench.plan import RECIPE_LABELS, RECIPES
from procl.bench.quality import unpaired_share
from procl.bench.report import format_scale
from procl.bench.trainings import LEVER_ON, RECIPE_LEVERS, dedupe, estimate, plan_jobs, planned_shapes
from procl.cli import build_parser
from procl.config import LEVERS, config_from_saved
from procl.data import open_dataset
from procl.features.cache import load_or_extract
from procl.io import read_json
from procl.train import train

NUMBER = r"-?\d+\.\d+"
CELL = rf"{NUMBER}( ± {NUMBER})?"
VERDICT = r"(holds|does not hold|inconclusive)"
QUALITY_HEADER = "| method | R | P | F1 | Edit | F1@50 | Acc | Seg/video (GT "


def test_compare_rule():
    assert bench.compare([0.60, 0.62, 0.61], [0.50, 0.52, 0.51])["verdict"] == "holds"
    assert bench.compare([0.50, 0.52, 0.51], [0.60, 0.62, 0.61])["verdict"] == "does not hold"
    # a difference inside the seeds' spread decides nothing
    assert bench.compare([0.50, 0.70, 0.60], [0.55, 0.56, 0.57])["verdict"] == "inconclusive"
    # one seed: the one-point floor of the margin
    assert bench.compare([0.505], [0.50])["verdict"] == "inconclusive"
    assert bench.compare([0.52], [0.50])["verdict"] == "holds"
    assert bench.combine(["holds", "inconclusive"]) == "inconclusive"
    assert bench.combine(["holds", "does not hold"]) == "does not hold"
    assert bench.combine(["holds", "holds"]) == "holds"


def test_cell_coverage_and_true_k():
    cov = bench.cell_coverage((1 / 7, 2 / 7, 2 / 7, 3 / 7))  # exactly cell (row 2, column 1)
    assert cov.shape == (49,)
    assert cov[2 * 7 + 1] == pytest.approx(1.0)
    assert cov.sum() == pytest.approx(1.0)
    box = (0.1, 0.2, 0.45, 0.5)
    # attention spread uniformly gets exactly the box's area share
    assert (np.full(49, 1 / 49) @ bench.cell_coverage(box)) == pytest.approx(0.35 * 0.3)
    assert bench.true_k({"a": ["x"] * 5, "b": ["y"] * 8}) == 8


def test_a_set_without_its_grid_keeps_its_frames_and_labels(tiny_synth, tmp_path, monkeypatch):
    """bench.nogrid: each frame's region features averaged into one [T, D] row, read back
    through actseg: with the same tasks, steps, frames and per-frame ground truth."""
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    dataset = open_dataset(f"folder:{tiny_synth}", progress=False)
    features = load_or_extract(dataset, progress=False)
    flat = open_dataset(f"actseg:{write_without_grid(dataset, features, tmp_path / 'flat')}", progress=False)
    flat_features = load_or_extract(flat, progress=False)
    assert flat.tasks == dataset.tasks and flat_features.R == 1
    def names(steps: list[str], labels: np.ndarray) -> list[str]:
        return ["-" if g < 0 else steps[g].split("/")[-1].replace(" ", "_") for g in labels]

    for video in dataset.videos:
        fv, gv = features.videos[video.id], flat_features.videos[video.id]
        assert gv.feats.shape == (fv.T, 1, features.D)
        np.testing.assert_allclose(gv.feats[:, 0], fv.feats.mean(1), rtol=1e-6)
        assert (names(flat.steps[video.task], flat.video(video.id).labels_at(gv.times))
                == names(dataset.steps[video.task], video.labels_at(fv.times)))
    for task in dataset.tasks:  # the steps some frame shows, in the same order (actseg knows no others)
        shown = {s for v in dataset.videos_of(task=task) for s in names(dataset.steps[task], v.labels_at(
            features.videos[v.id].times))} - {"-"}
        assert [s.split("/", 1)[1] for s in flat.steps[task]] == [
            s.replace(" ", "_") for s in dataset.steps[task] if s.replace(" ", "_") in shown]


def test_unpaired_share_counts_key_step_frames_of_unpaired_states(tmp_path):
    """C5's measure: of the key-step frames of the split, those whose state the matching left unpaired."""
    (tmp_path / "metrics.json").write_text('{"student": {"per_task": {"a": {"mapping": {"1": 0, "2": 1}}}}}')
    rows = ["video,task,pred_task,frame,time,state,step,teacher,gt,name,split"]
    for state, split in ((1, "test"), (2, "test"), (5, "test"), (-1, "test"), (5, "train"), (7, "test")):
        rows.append(f"v,a,a,0,0.0,{state},,0,0,,{split}")
    (tmp_path / "predictions.csv").write_text("\n".join(rows) + "\n")
    assert unpaired_share(tmp_path) == pytest.approx(2 / 4)  # states 5 and 7 of 1, 2, 5, 7; background left out
    assert unpaired_share(tmp_path, "train") == 1.0


def test_cli_wires_bench():
    args = build_parser().parse_args(["bench", "--quick", "--out", "r.md", "--device", "cpu"])
    assert args.func is bench.main and args.quick and args.out == "r.md" and args.device == "cpu"
    assert build_parser().parse_args(["bench"]).device == "auto"


def test_plans_fit_their_budget():
    """FULL within 60 minutes and QUICK near 5 on 2 cores, by the plan's own estimate;
    every training has a valid, unique run name."""
    for plan, minutes in ((bench.FULL, 60), (bench.QUICK, 6)):
        shapes = planned_shapes(plan)
        jobs = plan_jobs(plan, shapes)
        assert len({j.name for j in jobs}) == len(jobs)
        for job in jobs:
            runs.check_name(job.name)
        todo, same = dedupe(plan, jobs, shapes)
        assert len(todo) + len(same) == len(jobs)
        n, seconds = estimate(plan, shapes, workers=2)
        assert n == len(todo) and seconds <= 60 * minutes, (plan.name, n, seconds / 60)
    full = plan_jobs(bench.FULL, planned_shapes(bench.FULL))
    for recipe in RECIPES:  # the grid, the claims' variants and single-task, per recipe
        rows = {j.row for j in full if j.recipe == recipe and j.data == "builtin"}
        assert {"full", "attention_only", "pooling_only", "lam0", "labels_only", "single"} <= rows


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables(text: str, header: str) -> list[list[list[str]]]:
    """Every markdown table whose header line starts with `header`: its rows' cells."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            out.append(rows)
    return out


def _section(text: str, heading: str) -> str:
    """The text from a "## " heading to the next one."""
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_quick_path_on_tiny_plan(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path / "checkpoints"))
    results = bench.RESULTS_PATH
    before = results.stat().st_mtime_ns if results.exists() else None
    out = tmp_path / "report.md"

    assert bench.main(argparse.Namespace(quick=True, out=str(out), device="cpu"), plan=bench.TINY) == 0

    text = out.read_text()
    assert text in capsys.readouterr().out  # printed and written alike
    # nothing outside the bench folder; the environment is restored
    root = tmp_path / "data" / "bench" / "tiny"
    assert (root / "checkpoints").is_dir()
    assert not (tmp_path / "checkpoints").exists()
    assert os.environ["PROCL_CHECKPOINTS"] == str(tmp_path / "checkpoints")
    # docs/RESULTS.md is written by the full plan only
    assert (results.stat().st_mtime_ns if results.exists() else None) == before
    assert "Command: `python -m procl bench --quick --out" in text and "--device cpu`" in text
    assert not re.search(r"\b(nan|None|inf)\b", text)

    for heading in ("## Targets (issues 8 and 19)", "## Built-in dataset, multi-task", "### k = 4",
                    "### k = 6 (true k)", "## Levers: each one's measured gain", "## The paper's claims, both recipes",
                    "## Single-task setting", "## Attention quality", "## Robustness", "## Real data",
                    "## No grid", "### builtin without its grid", "## Small data", "## Human in the loop",
                    "### builtin", "### harder", "## Choosing k without labels (issue 18)", "## Speed", "### Scale",
                    "### Explore on a 1-minute video"):
        assert heading in text, heading
    assert "| default recipe | 4, 6 | " in _section(text, "## Choosing k without labels")  # measured, not skipped

    # every quality table: numbers in every cell, task accuracy for procl's multi-task rows only
    tables = _tables(text, QUALITY_HEADER)
    # two k, two recipes' levers, variants, single, robustness, Breakfast, no grid multi- and single-task
    assert len(tables) == 2 + 2 + 1 + 1 + 1 + 1 + 2
    labels = []
    for rows in tables:
        for cells in rows:
            label, scores, acc, seg = cells[0], cells[1:6], cells[6], cells[7]
            labels.append(label)
            for cell in (*scores, seg):
                assert re.fullmatch(CELL, cell), f"{label}: {cell!r}"
            multi = label.startswith("procl") and "single-task" not in label and "given the true task" not in label
            assert re.fullmatch(CELL, acc) if multi else acc == "–", f"{label}: accuracy {acc!r}"
    for recipe in RECIPES:  # both recipes, each with its teacher, and given the true task at the true k
        assert sum(lab == f"procl, {RECIPE_LABELS[recipe]}: student" for lab in labels) == 2
        assert sum(lab == f"procl, {RECIPE_LABELS[recipe]}: student given the true task" for lab in labels) == 1
        assert sum(lab.startswith(f"teacher of the {RECIPE_LABELS[recipe]}") for lab in labels) == 2
    # one row per lever: every lever in the default recipe, those that differ in the paper's
    gains = _tables(text, "| lever | row | F1 gain | Edit gain | Acc gain |")
    differ = [lv for lv in LEVERS if RECIPE_LEVERS["paper"][lv] != RECIPE_LEVERS["default"][lv]]
    assert [[r[0] for r in g] for g in gains] == [[lv for lv in LEVERS if lv in differ or lv in LEVER_ON], differ]
    for recipe, rows in zip(("default", "paper"), gains):
        for cells in rows:
            assert any(lab.startswith(f"procl, {RECIPE_LABELS[recipe]}, {cells[0]} = ") for lab in labels), cells
            for cell in cells[2:]:
                assert re.fullmatch(rf"[+-]{NUMBER} \({VERDICT}\)", cell), cells

    claims = _section(text, "## The paper's claims")
    (summary,) = _tables(claims, "| claim | paper recipe | default recipe |")
    assert [c[0].split()[0] for c in summary] == ["C1", "C2", "C3", "C4", "C5", "C6"]
    for cid in ("C1", "C2", "C3", "C4", "C5", "C6"):
        for recipe in RECIPES:
            assert re.search(rf"^- \*\*{cid}\*\* \({RECIPE_LABELS[recipe]}\) .+: \*\*{VERDICT}\*\*\. .*{NUMBER}",
                             claims, re.M), (cid, recipe)

    (target_rows,) = _tables(text, "| target | measured | |")
    assert len(target_rows) == 15  # 11; no-grid built-in multi, single; small data F1 and background; Breakfast cost
    for target, measured, met in target_rows:
        assert re.search(NUMBER, measured), target
        assert met in ("**met**", "**missed**", "**not measured**"), target

    human = _section(text, "## Human in the loop")  # both ways of picking the labelled videos, 1 and 3 per task
    for name in ("builtin", "harder"):
        part = human.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
        (rows,) = _tables(part, "| labelled videos | labelled / task |")
        assert [(r[0], r[1]) for r in rows] == [(w, n) for w in ("drawn at random", "procl's suggestion")
                                                for n in ("1", "3")], rows
        for cells in rows:
            assert all(re.fullmatch(rf"{CELL}|[+-]{NUMBER}|-", c) for c in cells[2:]), cells  # "-": no name yet
            assert re.fullmatch(CELL, cells[6]) and re.fullmatch(NUMBER, cells[8]), cells  # F1 parent, time ratio

    (small,) = _tables(text, "| method | epochs | training s | Acc |")
    assert len(small) == 5  # Uniform, each recipe, and each with min_steps changed
    assert small[0][0] == "Uniform"
    for cells in small[1:]:
        assert all(re.fullmatch(rf"\d+|{CELL}", c) for c in cells[1:]), cells

    for recipe in RECIPES:
        assert re.search(rf"- {RECIPE_LABELS[recipe]}: \*\*{NUMBER} %\*\* against \*\*{NUMBER} %\*\* for a uniform",
                         text), recipe
    assert re.search(rf"precision <= the share of key-step frames \({NUMBER} % of test frames\)", text)

    assert re.search(rf"^\| default \| \d+ \| {NUMBER} \| {NUMBER} \| {NUMBER} \((met|missed)\) \|", text, re.M)
    assert re.search(rf"Training: {NUMBER} s per epoch", text)
    assert re.search(rf"= {NUMBER} GFLOP/s, against {NUMBER} GFLOP/s", text)
    assert re.search(rf"share of an epoch: {NUMBER} %", text)
    assert re.search(r"the attention features of every training video take \d+ ms \(\d+ %", text)
    assert re.search(rf"Subset selection at N = 10,000, M = 50, k = 15, D = 36: {NUMBER} s", text)
    assert re.search(rf"Inference: {NUMBER} ms per 100-frame video on cpu", text)
    assert re.search(rf"End to end from an empty data folder .*: {NUMBER} min", text)
    assert re.search(r"^\| 1x \| \d+ \|", text, re.M) and re.search(r"^\| 2x \| \d+ \|", text, re.M)
    assert re.search(rf"{NUMBER} s in one process, {NUMBER} s on 2 ranks \({NUMBER}x\), the same picks", text)
    assert re.search(rf"{NUMBER} s in one process, {NUMBER} s with torchrun --nproc_per_node 2 \({NUMBER}x\), "
                     "the same cache", text)
    assert re.search(rf"B = 1 video per step \d+ frames/s .* B = 8: \d+ frames/s .*speed-up {NUMBER}x", text)
    assert re.search(rf"Training in 1 against 2 processes .*wall time {NUMBER} s against {NUMBER} s", text)
    assert re.search(rf"Duration: {NUMBER} min \(expected {NUMBER} min .*load average {NUMBER} at the start", text)
    assert re.search(rf"First render of Explore \(caches cold\): {NUMBER} s", text)

    # a training in the pool equals the same training in this process
    pooled = root / "checkpoints" / "builtin-default-full-k6-s0"
    with bench.bench_env(root):
        again = train(config_from_saved(read_json(pooled / "config.json")), run="sequential", progress=False)
    assert read_json(again / "metrics.json") == read_json(pooled / "metrics.json")
    a, b = runs.load_torch(pooled / "model.pt"), runs.load_torch(again / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_scale_report_says_what_a_one_gpu_machine_skipped():
    # on one GPU, features_scale and training_scale skip the n-process runs: the report says so
    sel = dict(N=1000, videos=10, M=5, k=2, D=4, one_process_s=1.0, two_ranks_s=0.6, selection_speedup=1.67, equal=True,
               bytes_per_pick=40, kmeans_one_process_s=0.2, kmeans_two_ranks_s=0.1, kmeans_speedup=2.0,
               kmeans_max_diff=0.0)
    feat = dict(videos=10, one_process_s=3.0, processes=2, n_processes_s=None, ratio=None, same_cache=None,
                differences=[], skipped="2 processes need 2 GPUs, this machine has 1")
    batch = dict(frames_per_s=100.0, epoch_frames_per_s=80.0, f1=0.5, accuracy=0.9)
    training = dict(epochs=2, train_videos=4, frames_per_epoch=400, device_used="cuda", batch={1: batch, 8: batch},
                    batch_speedup=1.0, processes=dict(n=2, skipped="2 processes need 2 GPUs"))
    text = "\n".join(format_scale({"selection": sel, "features": feat, "training": training}))
    assert "2 processes skipped (2 processes need 2 GPUs, this machine has 1)" in text
    assert "Training in 1 against 2 processes: skipped" in text


def test_a_failed_torchrun_keeps_the_ranks_messages():
    from procl.bench.scale import failure_text
    ranks = "[rank1]: ProclError: features of video 'v3' contain NaN or inf\n"
    launcher = ("Traceback (most recent call last):\n  File \"torch/distributed/run.py\", line 1138, in main\n"
                + "    run(args)\n" * 200 + "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n"
                "Root Cause (first observed failure):\n[0]:\n  rank      : 1 (local_rank: 1)\n  exitcode  : 1")
    text = failure_text("warnings\n" + ranks + launcher)
    assert "contain NaN or inf" in text and "Root Cause" in text and "run(args)" not in text
    assert failure_text("plain error\n" * 500).endswith("plain error") and len(failure_text("x" * 5000)) == 1500


def test_choosing_k_section_counts_tasks_within_one_of_their_true_k():
    from procl.bench.choose_k import format_choose_k
    row = {"ks": [4, 6, 8], "suggested": 6, "true_k": {"a": 5, "b": 8}, "tasks_within_1": 1, "tasks": 2,
           "per_task_within_1": 2, "within_1_of_max": False, "best_within_1": 1, "best_ks": [4, 6, 8]}
    text = "\n".join(format_choose_k({"default": row}))
    assert "| default recipe | 4, 6, 8 | 6 | 1/2 | 1/2 (k = 4, 6, 8) | 2/2 | no |" in text
    assert "True k per task: a 5, b 8." in text
    assert "Not in this plan." in "\n".join(format_choose_k({}))
