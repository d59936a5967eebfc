"""Help choosing k: the k-list of "try several k", the sweep's runs, the label-free signals
of a run folder and the rule that suggests k."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from procl import ProclError, choosek, jobs, runs
from procl.config import TrainConfig
from procl.io import write_json


@pytest.mark.parametrize("text, ks", [("5, 7, 10", [5, 7, 10]), ("7 5;5", [5, 7]), (" 3,4 , 8 ", [3, 4, 8])])
def test_parse_k_list(text, ks):
    assert jobs.parse_k_list(text, M=50) == ks


@pytest.mark.parametrize("text, message", [
    ("5, seven, 10", "'seven' is not a whole number"), ("5, 0", "k = 0 is too small"),
    ("5, 60", "k = 60 is more than M = 50"), ("", "Give the values"), ("5", "at least two"),
    ("1,2,3,4,5,6,7,8,9", "at most 8"), ("2.5, 3", "'2.5' is not a whole number")])
def test_parse_k_list_names_the_bad_value(text, message):
    with pytest.raises(ProclError, match=message):
        jobs.parse_k_list(text, M=50)


def test_sweep_plan_names_and_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path))
    cfg = TrainConfig(dataset="synthetic", k=7, M=10, epochs=3, seed=4)
    plan = jobs.sweep_plan(cfg, [3, 5], run="mine")
    assert [n for n, _ in plan] == ["mine-k3", "mine-k5"]
    assert [c.k for _, c in plan] == [3, 5] and all(c.epochs == 3 and c.seed == 4 and c.M == 10 for _, c in plan)
    auto = jobs.sweep_plan(cfg, [3, 5])
    assert len({n for n, _ in auto}) == 2 and "k3" in auto[0][0] and "k5" in auto[1][0]
    (tmp_path / "mine-k5").mkdir()
    with pytest.raises(ProclError, match="mine-k5"):
        jobs.sweep_plan(cfg, [3, 5], run="mine")
    with pytest.raises(ProclError, match="larger than M"):
        jobs.sweep_plan(cfg, [3, 11])
    two = jobs.sweep_plan(cfg, [3, 5], run="two", seeds=2)
    assert [n for n, _ in two] == ["two-k3-s4", "two-k3-s5", "two-k5-s4", "two-k5-s5"]
    assert [(c.k, c.seed) for _, c in two] == [(3, 4), (3, 5), (5, 4), (5, 5)]
    assert len({n for n, _ in jobs.sweep_plan(cfg, [3, 5], seeds=2)}) == 4, "automatic names never collide"
    with pytest.raises(ProclError, match="6 seeds per k: give 1 to 5"):
        jobs.sweep_plan(cfg, [3, 5], seeds=6)


def test_segments_and_states_used():
    assert choosek.segments(np.array([-1, 0, 0, -1, 0, 2, 2, -1])) == 3
    assert choosek.segments(np.array([], dtype=int)) == 0
    states = np.array([0] * 60 + [1] * 39 + [2] * 1 + [-1] * 50)  # state 2: 1% of the step frames
    assert choosek.states_used(states) == 2 and choosek.states_used(states, share=0.0) == 3


def fake_finished_run(root, name, k, states_by_video, probs=(0.9, 0.1)):
    path = runs.create_run(name, {"k": k, "dataset": "folder:/x"})
    rows = []
    (path / "outputs").mkdir()
    for video, (task, states) in states_by_video.items():
        rows += [{"video": video, "task": task, "pred_task": task, "frame": i, "state": s}
                 for i, s in enumerate(states)]
        np.savez(path / "outputs" / f"{video}.npz", task_probs=np.array(probs), states=np.array(states))
    pd.DataFrame(rows).to_csv(path / "predictions.csv", index=False)
    write_json(path / "status.json", {"state": "done"})
    return path


def test_run_signals_from_the_folder_only(tmp_path, monkeypatch):
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path))
    path = fake_finished_run(tmp_path, "r-k3", 3, {
        "a1": ("a", [-1, 0, 0, 1, 1, -1]), "a2": ("a", [0, 1, 1, 1, -1, -1]),
        "b1": ("b", [5, 5, 5, 5, 6, 6])})
    sig = choosek.run_signals(path)
    assert sig["k"] == 3 and sig["per_task"] == {"a": 2, "b": 2}
    assert sig["states_used"] == 2 and sig["segments_per_video"] == pytest.approx(2.0)
    assert sig["background_share"] == pytest.approx(4 / 18) and sig["task_confidence"] == pytest.approx(0.9)
    table = choosek.signals_table([path, tmp_path / "missing"])
    assert list(table["run"]) == ["r-k3"]


def table(used: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame({"run": [f"r{k}" for k in used], "k": list(used), "states_used": list(used.values())})


def test_suggest_k_where_steps_used_stop_growing():
    k, why = choosek.suggest_k(table({3: 3.0, 4: 4.0, 5: 5.0, 6: 6.0, 7: 6.3, 8: 6.2}))
    assert k == 6 and why.startswith("k = 6:") and "6.0" in why and "6.2" in why
    assert choosek.suggest_k(table({3: 3.0, 5: 4.0, 7: 4.2}))[0] == 5


def test_suggest_k_still_growing_or_too_few_runs():
    k, why = choosek.suggest_k(table({3: 3.0, 4: 4.0, 5: 5.0}))
    assert k == 5 and "try larger k" in why
    k, why = choosek.suggest_k(table({4: 4.0}))
    assert k == 4 and "Only k = 4" in why
    assert choosek.suggest_k(table({}))[0] is None


def test_suggest_k_averages_runs_sharing_a_k():
    t = pd.concat([table({3: 3.0, 4: 3.6}), table({3: 3.0, 4: 4.4}), table({5: 4.6})])
    k, why = choosek.suggest_k(t)  # 4.0 at k = 4 (3.6 and 4.4), 4.6 at k = 5: still growing beyond 4
    assert k == 5 and "4.0 at k = 4" not in why
    k, why = choosek.suggest_k(pd.concat([t, table({6: 4.7})]))
    assert k == 5 and "4.6 steps used per task at k = 5" in why


def test_bench_measures_the_suggestion_against_the_true_k(tmp_path, monkeypatch):
    from procl.bench import choose_k

    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path / "ckpt"))
    data = tmp_path / "set"
    (data / "steps").mkdir(parents=True)
    (data / "steps" / "a.txt").write_text("one\ntwo\nthree\n\n")
    (data / "steps" / "b.txt").write_text("one\ntwo\nthree\nfour\nfive\n")
    assert choose_k.true_ks(data) == {"a": 3, "b": 5}
    paths = []
    for k in (2, 3, 4, 5):
        used = list(range(min(k, 3)))  # the tasks never use more than 3 steps
        path = fake_finished_run(tmp_path, f"s-k{k}", k, {"a1": ("a", used * 3), "b1": ("b", used * 3)})
        write_json(path / "config.json", {"k": k, "dataset": f"folder:{data}"})
        paths.append(path)
    (row,) = choose_k.measure(paths)
    assert row["ks"] == [2, 3, 4, 5] and row["suggested"] == 3 and row["true_k"] == {"a": 3, "b": 5}
    assert row["tasks_within_1"] == 1 and row["tasks"] == 2 and not row["within_1_of_max"]
    assert row["per_task_suggested"] == {"a": 3, "b": 3} and row["per_task_within_1"] == 1
    assert row["best_within_1"] == 2 and row["best_ks"] == [4], "k = 4 is within 1 of both 3 and 5"
    text = "\n".join(choose_k.format_choose_k({"default": row}))
    assert "| 2, 3, 4, 5 | 3 | 1/2 | 2/2 (k = 4) | 1/2 | no |" in text


def test_suggest_k_per_task():
    signals = pd.DataFrame({"run": ["r3", "r4", "r5"], "k": [3, 4, 5], "states_used": [3.0, 3.5, 4.0],
                            "per_task": [{"a": 3, "b": 3}, {"a": 3, "b": 4}, {"a": 3, "b": 5}]})
    per_task = choosek.suggest_k_per_task(signals)
    assert per_task["a"][0] == 3 and per_task["b"][0] == 5 and "try larger k" in per_task["b"][1]


def test_seed_agreement_compares_how_runs_cut_the_same_videos(tmp_path, monkeypatch):
    """The adjusted Rand index of two runs' states over each task's frames: the state ids do
    not matter, where the cuts fall does; runs of other settings are not seeds of the same k."""
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path))
    a = {"a1": ("a", [0, 0, 0, 1, 1, 1, -1, -1]), "b1": ("b", [4, 4, 5, 5, 6, 6, 6, 6])}
    renamed = {"a1": ("a", [7, 7, 7, 2, 2, 2, -1, -1]), "b1": ("b", [1, 1, 0, 0, 3, 3, 3, 3])}
    shifted = {"a1": ("a", [0, 1, 1, 1, 1, -1, -1, -1]), "b1": ("b", [4, 4, 5, 5, 6, 6, 6, 6])}
    p0 = fake_finished_run(tmp_path, "x-k3-s0", 3, a)
    p1 = fake_finished_run(tmp_path, "x-k3-s1", 3, renamed)
    p2 = fake_finished_run(tmp_path, "x-k3-s2", 3, shifted)
    assert choosek.seed_agreement([p0, p1]) == (1.0, {"a": 1.0, "b": 1.0})
    mean, per_task = choosek.seed_agreement([p0, p2])
    assert per_task["b"] == 1.0 and per_task["a"] < 0.5 and mean == pytest.approx((1 + per_task["a"]) / 2)
    assert choosek.seed_agreement([p0]) == (None, {})
    other = fake_finished_run(tmp_path, "y-k3", 3, shifted)
    write_json(other / "config.json", {"k": 3, "dataset": "folder:/x", "recipe": "paper"})
    table = choosek.signals_table([p0, p1, other]).set_index("run")
    assert table.loc["x-k3-s0", "seed_agreement"] == 1.0 and table.loc["x-k3-s1", "per_task_agreement"]["a"] == 1.0
    assert pd.isna(table.loc["y-k3", "seed_agreement"]), "a run of other settings is no seed of the same k"


def test_suggest_k_by_agreement_between_seeds():
    """With the agreement at two or more k the suggestion is where it is highest (the smaller
    k on a tie), whatever the steps used say; without it, the older rule and a hint."""
    t = pd.DataFrame({"run": ["r4a", "r4b", "r5a", "r5b", "r6a", "r6b"], "k": [4, 4, 5, 5, 6, 6],
                      "states_used": [4.0, 4.0, 5.0, 5.0, 6.0, 6.0],
                      "seed_agreement": [0.6, 0.6, 0.8, 0.8, 0.7, 0.7]})
    k, why = choosek.suggest_k(t)
    assert k == 5 and why.startswith("k = 5: runs of it with different seeds agree most")
    assert "80 % against 60 % at k = 4 and 70 % at k = 6" in why
    t.loc[t.k == 6, "seed_agreement"] = 0.8
    k, why = choosek.suggest_k(t)
    assert k == 5 and "agree at least as much as at any other k" in why, "a tie: the smaller k, said as such"
    t["seed_agreement"] = [None, None, 0.8, 0.8, None, None]  # one k with seeds: not enough to compare
    k, why = choosek.suggest_k(t)
    assert k == 6 and "try larger k" in why and "two seeds of each k" in why


def test_only_signals_with_values_are_charted():
    t = pd.DataFrame({"run": ["r3", "r4"], "k": [3, 4], "states_used": [3.0, 4.0], "segments_per_video": [2.0, 3.0],
                      "background_share": [0.1, 0.2], "task_confidence": [None, None], "seed_agreement": [None, None]})
    assert [c for c, _, _ in choosek.shown_signals(t)] == ["states_used", "segments_per_video", "background_share"]
    t["seed_agreement"] = [0.5, None]
    assert [c for c, _, _ in choosek.shown_signals(t)][-1] == "seed_agreement"


def test_the_choose_k_command_names_a_bad_folder(tmp_path, capsys):
    from procl.bench import choose_k

    for args, message in (([str(tmp_path / "nope")], "nope is not a folder"),
                          ([str(tmp_path)], "no run folder (one with a config.json) in")):
        with pytest.raises(SystemExit) as exit_:
            choose_k.main(args)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
