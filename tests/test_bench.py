"""`procl bench`: the --quick code path on a tiny plan, and the rules behind its verdicts."""
from __future__ import annotations

import argparse
import os
import re

import numpy as np
import pytest

from procl import bench
from procl.cli import build_parser

NUMBER = r"-?\d+\.\d"


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


def test_cli_wires_bench():
    args = build_parser().parse_args(["bench", "--quick", "--out", "r.md"])
    assert args.func is bench.main and args.quick and args.out == "r.md"


def _section(text: str, heading: str) -> str:
    """The text from a "## " heading to the next one."""
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def _numeric_row(text: str, label: str, n: int) -> list[str]:
    """The first n cells of every table row named `label`; fails unless all are numbers."""
    rows = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
    assert rows, f"no row {label!r}"
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        for cell in cells[:n]:
            assert re.fullmatch(rf"{NUMBER}( ± {NUMBER})?", cell), f"{label}: cell {cell!r} is not a number"
    return rows


def test_quick_path_on_tiny_plan(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path / "checkpoints"))
    results = bench.RESULTS_PATH
    before = results.stat().st_mtime_ns if results.exists() else None
    out = tmp_path / "report.md"

    assert bench.main(argparse.Namespace(quick=True, out=str(out)), plan=bench.TINY) == 0

    text = out.read_text()
    assert text in capsys.readouterr().out  # printed and written alike
    # nothing outside the bench folder; the environment is restored
    assert (tmp_path / "data" / "bench" / "tiny" / "checkpoints").is_dir()
    assert not (tmp_path / "checkpoints").exists()
    assert os.environ["PROCL_CHECKPOINTS"] == str(tmp_path / "checkpoints")
    # docs/RESULTS.md is written by the full plan only
    assert (results.stat().st_mtime_ns if results.exists() else None) == before

    assert "Command: `python -m procl bench --quick --out" in text
    for heading in ("## Quality: multi-task", "### k = 4", "### k = 6 (true k)", "## Single-task setting",
                    "## Student against teacher", "## Attention quality", "## Real data", "## The paper's claims",
                    "## Calibration of the built-in dataset", "## Speed"):
        assert heading in text, heading
    quality = _section(text, "## Quality: multi-task")
    for _, label in bench.QUALITY_ROWS:
        assert len(_numeric_row(quality, label, 3)) == 2  # R, P, F1 at both k
    for key in ("attention_only", "pooling_only", "full", "lam0", "background_unselected", "labels_only"):
        _numeric_row(quality, dict(bench.QUALITY_ROWS)[key], 4)  # and accuracy
    single = _section(text, "## Single-task setting")
    for _, label in bench.SINGLE_ROWS:
        assert len(_numeric_row(single, label, 3)) == 2
    assert len(re.findall(rf"^\| [46] \| {NUMBER} \| {NUMBER} \| [+-]{NUMBER} \|$",
                          _section(text, "## Student against teacher"), re.M)) == 2
    real = _section(text, "## Real data")
    if (bench.REAL_DATA / "features").is_dir():
        for _, label in bench.REAL_ROWS:
            assert len(_numeric_row(real, label, 3)) == 1
    else:
        assert "Skipped:" in real

    for cid in ("C1", "C2", "C3", "C4", "C5", "C6"):
        assert re.search(rf"^- \*\*{cid}\*\* .+: \*\*(holds|does not hold|inconclusive)\*\*\. .*{NUMBER}", text,
                         re.M), cid
    assert re.search(rf"k-means \(mean-pooled\) F1: {NUMBER}", text)
    assert re.search(rf"full method \(--background none\): F1 {NUMBER}, accuracy {NUMBER}: \*\*(holds|does not hold)",
                     text)
    assert re.search(rf"\*\*{NUMBER} %\*\* against \*\*{NUMBER} %\*\* for a uniform map", text)

    assert re.search(rf"^\| default \| \d+ \| {NUMBER}\d* \| {NUMBER}\d* \| {NUMBER}\d* \((met|missed)\) \|", text, re.M)
    assert re.search(rf"Training: {NUMBER}\d* s per epoch", text)
    assert re.search(rf"= {NUMBER}\d* GFLOP/s, against {NUMBER} GFLOP/s", text)
    assert re.search(rf"share of an epoch: {NUMBER} %", text)
    assert re.search(rf"Subset selection at N = 10,000, M = 50, k = 15, D = 36: {NUMBER}\d* s", text)
    assert re.search(rf"Inference: {NUMBER} ms per 100-frame video", text)
    assert re.search(rf"End to end from an empty data folder .*: {NUMBER}\d* min", text)
    assert re.search(r"^\| 1x \| \d+ \|", text, re.M) and re.search(r"^\| 2x \| \d+ \|", text, re.M)
    assert not re.search(r"\b(nan|None|inf)\b", text)
