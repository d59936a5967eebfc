"""Corrections (corrections.json: checks, atomic save, undo), refinement (`refine`) and named F1 (issue 21)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_folders

from procl import ProclError, corrections, metrics, runs
from procl.bench.human import pick_videos, simulated_corrections, vote_names
from procl.cli import main as cli
from procl.evaluate import evaluate, open_for_run
from procl.infer import load_run, predict_dataset
from procl.names import read_names
from procl.paths import checkpoints_dir
from procl.refine import refine
from procl.selection import subset_selection
from procl.train import TrainConfig, train

TINY = dict(k=3, M=16, epochs=12, width=32)


@pytest.fixture(scope="module")
def env(tiny_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("refine")
    with run_folders(root):
        yield {"spec": f"folder:{tiny_synth}", "root": root}


@pytest.fixture(scope="module")
def parent(env):
    return train(TrainConfig(dataset=env["spec"], seed=0, **TINY), run="parent", progress=False)


DUR = {"v1": 10.0}


@pytest.mark.parametrize("raw, message", [
    ({"segments": [{"video": "nope", "start": 1, "end": 2, "step": "a"}]}, "segments[0] (video 'nope'): unknown video"),
    ({"segments": [{"video": "v1", "start": 3, "end": 2, "step": "a"}]}, "(video 'v1'): end 2 s is not after"),
    ({"segments": [{"video": "v1", "start": 3, "end": 20, "step": "a"}]}, "past the video's end"),
    ({"segments": [{"video": "v1", "start": 1, "end": 2, "step": "  "}]}, "(video 'v1'): the step name is empty"),
    ({"segments": [{"video": "v1", "start": 1, "step": "a"}]}, "segments[0] lacks end"),
    ({"merge": [[1, 99]]}, "merge[0]: state 99 does not exist"),
    ({"merge": [[1, 2], [2, 3]]}, "merge[1]: state 2 is already in merge[0]"),
    ({"background": [-1]}, "background[0]: state -1 does not exist"),
    ({"names": {"3": ""}}, "names['3']: the name is empty"),
    ({"names": {"x": "a"}}, "is not a state id"),
    ({"splits": []}, "unknown key(s) 'splits'"),
    ({"split": [99]}, "split[0]: state 99 does not exist"),
    ({"split": [3], "background": [3]}, "split: state 3 is also marked background"),
    ({"merge": [[1, 2]], "split": [2]}, "split: state 2 is in merge[0]"),
])
def test_bad_corrections_name_the_entry(raw, message):
    with pytest.raises(ProclError, match=None) as err:
        corrections.parse(raw, M=16, durations=DUR)
    assert message in str(err.value), str(err.value)


def test_parse_normalises():
    out = corrections.parse({"segments": [{"video": "v1", "start": 1, "end": 2.5, "step": "Background"}],
                             "merge": [[31, 12, 12]], "background": [7, 7], "names": {28: " loosen nuts "},
                             "split": [5, "5", 3]}, M=50, durations=DUR)
    assert out == {"segments": [{"video": "v1", "start": 1.0, "end": 2.5, "step": "background"}],
                   "merge": [[12, 31]], "background": [7], "names": {"28": "loosen nuts"}, "split": [3, 5]}


def test_subset_selection_keeps_fixed_states():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 3)).astype(np.float32)
    videos = [centers[[0, 1, 2]].repeat(5, 0) + 0.01]
    free = subset_selection(videos, centers, 3)
    assert sorted(free.selected) == [0, 1, 2]
    sel = subset_selection(videos, centers, 3, fixed=[5])
    assert sel.selected[0] == 5 and len(sel.selected) == 3
    assert all(np.diff(sel.costs) <= 1e-6)
    barred = subset_selection(videos, centers, 3, exclude=[0, 1])
    assert 0 not in barred.selected and 1 not in barred.selected


def test_videos_to_correct_first_are_the_typical_ones():
    """Per task, the videos by how typical their course profiles are (which key-step falls
    where): the medoid first, the one whose steps come in another order last; empty videos
    are never suggested; tasks are ranked apart."""
    def video(cuts, order=(3, 5, 7), T=30):
        edges = [0, *cuts, T]
        return np.concatenate([np.full(edges[i + 1] - edges[i], s) for i, s in enumerate(order)])

    states = {"a0": video((9, 19)), "a1": video((10, 20)), "a2": video((11, 21)), "a3": video((10, 21)),
              "odd": video((10, 20), order=(7, 5, 3)), "empty": np.array([], dtype=int),
              "b0": video((5, 25), order=(1, 2, 4)), "b1": video((5, 25), order=(1, 2, 4))}
    task_of = {v: ("b" if v.startswith("b") else "a") for v in states}
    steps = {"a": [3, 5, 7], "b": [1, 2, 4]}
    profile = corrections.course_profile(states["a1"], steps["a"])
    assert profile.shape == (40,) and profile.sum() == pytest.approx(1.0)
    assert corrections.course_profile(np.array([-1, 9, 3]), [3, 5, 7]).reshape(4, 10)[3].sum() == pytest.approx(2 / 3)
    first = corrections.suggest_videos(states, task_of, steps, 1)
    assert first["a"] == ["a1"] and len(first["b"]) == 1
    two = corrections.suggest_videos(states, task_of, steps, 2)["a"]
    assert two[0] == "a1" and "odd" not in two, two
    ranked = corrections.suggest_videos(states, task_of, steps, 5)["a"]
    assert ranked[-1] == "odd" and ranked[0] == "a1", ranked
    everyone = corrections.suggest_videos(states, task_of, steps, 9)
    assert sorted(everyone["a"]) == ["a0", "a1", "a2", "a3", "odd"] and sorted(everyone["b"]) == ["b0", "b1"]


def test_named_scores():
    gt = {"a": ["x", "x", None, "y"], "b": ["z", None]}
    pred = {"a": ["X ", None, "x", "y"], "b": ["z", "z"]}
    out = metrics.named_scores(gt, pred, {"a": "t1", "b": "t2"})
    assert out["per_task"]["t1"]["named_recall"] == pytest.approx(2 / 3)
    assert out["per_task"]["t1"]["named_precision"] == pytest.approx(2 / 3)
    assert out["per_task"]["t2"]["named_f1"] == pytest.approx(2 * 0.5 / 1.5)


def test_save_undo_and_history(parent):
    video = next(p.stem for p in (parent / "outputs").glob("*.npz"))
    corrections.add(parent, "background", 3)
    corrections.add(parent, "merge", [4, 5])
    corrections.add(parent, "segments", {"video": video, "start": 0.5, "end": 2.0, "step": "first step"})
    saved = json.loads((parent / "corrections.json").read_text())
    assert saved["background"] == [3] and saved["merge"] == [[4, 5]] and len(saved["segments"]) == 1
    with pytest.raises(ProclError, match="unknown video 'nope'"):
        corrections.add(parent, "segments", {"video": "nope", "start": 0, "end": 1, "step": "a"})
    assert json.loads((parent / "corrections.json").read_text()) == saved  # nothing saved is lost
    before, what = corrections.undo(parent)
    assert before["segments"] == [] and "first step" in what
    assert corrections.read_corrections(parent)["merge"] == [[4, 5]]
    corrections.undo(parent)
    corrections.undo(parent)
    assert corrections.is_empty(corrections.read_corrections(parent))
    with pytest.raises(ProclError, match="no change to undo"):
        corrections.undo(parent)
    assert not list(parent.glob("*.tmp*"))


def test_refine_learns_names_and_constraints(env, parent, tmp_path, capsys):
    loaded = load_run(parent)
    dataset, features = open_for_run(loaded.config, None)
    labelled = pick_videos(dataset, loaded.config, 1)
    raw = simulated_corrections(dataset, features, labelled)
    sel = loaded.selected["all"]
    a, b = sel[loaded.config["tasks"][0]][:2]
    raw["merge"] = [[int(a), int(b)]]
    raw["background"] = [int(s) for s in range(16) if not any(s in v for v in sel.values())][:1]
    path = tmp_path / "corr.json"
    path.write_text(json.dumps(raw))
    assert cli(["refine", "--run", "parent", "--corrections", str(path), "--run-name", "child", "--epochs", "3"]) == 0
    child = runs.run_dir("child")
    assert capsys.readouterr().out.strip().endswith("child")
    config = runs.read_config(child)
    assert config["parent"] == "parent" and config["epochs"] == 3 and config["corrections"]["merge"] == [[a, b]]
    names = read_names(child)["all"]
    steps = {n for task in dataset.steps.values() for n in task}
    assert set(names.values()) <= steps and len(names) >= 3  # the person's step names, on states
    child_sel = runs.read_selected(child)["all"]
    for task_sel in child_sel.values():
        assert b not in task_sel  # merged into a
        assert raw["background"][0] not in task_sel
    anchors = config["refine"]["anchors"]["all"]
    for task, states in anchors.items():
        assert set(states) <= set(child_sel[task])
        others = {s for t, st in anchors.items() if t != task for s in st} - set(states)
        assert not others & set(child_sel[task])  # another task's named steps are not this task's
    # its predictions on other videos carry the names; evaluate --json reports named_f1
    assert cli(["evaluate", "--run", "child", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["named_f1"] <= 1
    assert "named_f1" not in evaluate("parent")  # no names: absent
    child_loaded = load_run(child)
    preds = predict_dataset(child_loaded, dataset, features, split="test")
    named = [names.get(int(s)) for p in preds for s in p.states]
    assert any(n is not None for n in named)
    assert vote_names(predict_dataset(loaded, dataset, features, split="all")[:3], dataset.steps)


def test_a_split_state_becomes_two_key_steps(env, parent, tmp_path):
    """Split: the state's frames re-clustered in two; the state and a state no task used
    are both key-steps of the task afterwards, each starting at its half's center."""
    loaded = load_run(parent)
    task = loaded.config["tasks"][0]
    state = int(loaded.selected["all"][task][0])
    used = {int(s) for sel in loaded.selected["all"].values() for s in sel}
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"split": [state]}))
    child = refine("parent", "split-child", path, epochs=2, progress=False)
    halves = runs.read_config(child)["refine"]["anchors"]["all"][task]
    other = [s for s in halves if s != state]
    assert state in halves and len(other) == 1 and other[0] not in used
    assert {state, other[0]} <= set(runs.read_selected(child)["all"][task])
    assert "state %d is two steps (split)" % state in corrections.describe(runs.read_config(child)["corrections"])


def test_a_stopped_refinement_resumes_to_the_same_model(env, parent, tmp_path, capsys):
    """refine --resume continues a stopped refinement with the corrections it started with
    and ends where an uninterrupted one ends."""
    loaded = load_run(parent)
    dataset, features = open_for_run(loaded.config, None)
    path = tmp_path / "corr.json"
    path.write_text(json.dumps(simulated_corrections(dataset, features, pick_videos(dataset, loaded.config, 1))))
    whole = refine("parent", "whole", path, epochs=3, progress=False)
    stopped = {"n": 0}

    def stop_after_first_epoch(info):
        if info.get("phase") == "train" and info["epoch"] == 1 and not stopped["n"]:
            stopped["n"] = 1
            runs.request_stop("halves")

    halves = refine("parent", "halves", path, epochs=3, progress=False, on_progress=stop_after_first_epoch)
    assert runs.read_status(halves)["state"] == "cancelled"
    path.write_text("{}")  # the resumed run uses the corrections it started with, not the file's
    assert cli(["refine", "--run", "parent", "--run-name", "halves", "--resume"]) == 0
    assert capsys.readouterr().out.strip().endswith("halves")
    assert runs.read_status(halves)["state"] == "done"
    a, b = runs.load_torch(whole / "model.pt"), runs.load_torch(halves / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_names(halves) == read_names(whole)
    assert cli(["refine", "--run", "parent", "--run-name", "whole", "--resume", "--epochs", "2"]) == 2
    assert "leave out --corrections and --epochs" in capsys.readouterr().err
    assert cli(["refine", "--run", "parent", "--run-name", "missing-child", "--resume"]) == 2


def test_refine_refuses_bad_input(env, parent, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"segments": [{"video": "nope", "start": 0, "end": 1, "step": "x"}]}))
    assert cli(["refine", "--run", "parent", "--corrections", str(bad), "--run-name", "bad1"]) == 2
    assert "unknown video 'nope'" in capsys.readouterr().err
    assert not (checkpoints_dir() / "bad1").exists()
    assert cli(["refine", "--run", "missing", "--run-name", "bad2"]) == 2
    assert "unknown run 'missing'" in capsys.readouterr().err
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    assert cli(["refine", "--run", "parent", "--corrections", str(empty), "--run-name", "bad3"]) == 2
    assert "no corrections" in capsys.readouterr().err


def test_videos_to_correct_command_lists_the_app_s_suggestion(env, parent, capsys):
    """`procl videos-to-correct` prints, per task, the training videos Explore suggests
    correcting first, as CSV; a bad count or run is a message."""
    from procl.explore import load_run_info, videos_to_correct

    assert cli(["videos-to-correct", "--run", "parent", "--per-task", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "task,rank,video"
    rows = [line.split(",") for line in lines[1:]]
    expected = videos_to_correct(load_run_info(parent), 2)
    assert rows == [[task, str(rank), v] for task in expected for rank, v in enumerate(expected[task], 1)]
    assert {task for task, _, _ in rows} == set(runs.read_config(parent)["tasks"])
    assert cli(["videos-to-correct", "--run", "parent", "--per-task", "0"]) == 2
    assert "--per-task 0" in capsys.readouterr().err
    assert cli(["videos-to-correct", "--run", "missing"]) == 2
    assert "unknown run 'missing'" in capsys.readouterr().err


def test_frame_map_is_capped_and_labelled(parent):
    from procl.framemap import frame_map

    data = frame_map(parent, cap=50)
    assert 0 < len(data) <= 50
    assert {"x", "y", "video", "task", "time", "frame", "state"} <= set(data.columns)
    assert data["x"].notna().all() and data["video"].nunique() > 1


def test_a_single_task_run_refines_from_spans(env, tmp_path, capsys):
    """One network per task: spans name a video, so a task, and refine them; a state
    number would not say whose state it is (refused, at adding and at refining), except
    in a run of one task."""
    single = train(TrainConfig(dataset=env["spec"], seed=0, setting="single", **TINY), run="single", progress=False)
    loaded = load_run(single)
    dataset, features = open_for_run(loaded.config, None)
    raw = simulated_corrections(dataset, features, pick_videos(dataset, loaded.config, 1))
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(raw))
    assert cli(["refine", "--run", "single", "--corrections", str(path), "--run-name", "single-child",
                "--epochs", "2"]) == 0
    child = runs.run_dir("single-child")
    names = read_names(child)
    assert set(names) == set(loaded.units) and all(names.values()), "every task's network names its steps"
    for unit, unit_names in names.items():
        (task,) = loaded.units[unit]
        assert set(unit_names.values()) <= set(dataset.steps[task]), "the person's names of the unit's task"
    with_states = tmp_path / "states.json"
    with_states.write_text(json.dumps({**raw, "background": [1]}))
    assert cli(["refine", "--run", "single", "--corrections", str(with_states), "--run-name", "single-bad"]) == 2
    assert "the corrections name states (background)" in capsys.readouterr().err
    assert not (checkpoints_dir() / "single-bad").exists()
    with pytest.raises(ProclError, match="merge: this single-task run has one network per task"):
        corrections.add(single, "merge", [1, 2], loaded.config)
    one_task = {**loaded.config, "units": {"a": ["a"]}}
    assert corrections.states_ambiguous(one_task) is None and corrections.states_ambiguous(
        {"setting": "multi", "units": {"all": ["a", "b"]}}) is None


def test_splitting_a_merged_step_keeps_its_states_apart(env, parent, tmp_path):
    """Split of a step the decoding merged (merge_confused: two states shown as one on every
    timeline): its states become steps of their own, no state is re-clustered, and the
    refined run's decoding never merges them again."""
    import shutil

    src = runs.run_dir("parent")
    shutil.copytree(src, src.parent / "merged-parent")
    dst = runs.run_dir("merged-parent")
    loaded = load_run(dst)
    task = loaded.config["tasks"][0]
    states = [int(s) for s in loaded.selected["all"][task]]
    decoding = json.loads((dst / "decoding.json").read_text())
    sizes = {t: len(sel) for t, sel in loaded.selected["all"].items()}
    decoding["all"]["confusion"] = {t: np.zeros((n, n)).tolist() for t, n in sizes.items()}
    decoding["all"]["contiguity"] = {t: np.ones((n, n)).tolist() for t, n in sizes.items()}
    decoding["all"]["confusion"][task][0][1] = decoding["all"]["confusion"][task][1][0] = 1.0  # the first two picks
    (dst / "decoding.json").write_text(json.dumps(decoding))
    assert load_run(dst).merges("all")[task] == {states[0]: states[0], states[1]: states[0]}
    (dst / corrections.CORRECTIONS_FILE).write_text(json.dumps({"split": [states[0]]}))

    child = refine("merged-parent", "unmerged-child", epochs=2, progress=False)
    config = runs.read_config(child)
    assert config["refine"]["apart"] == {"all": [sorted(states[:2])]}
    anchors = config["refine"]["anchors"]["all"][task]
    used = {int(s) for sel in loaded.selected["all"].values() for s in sel}
    assert set(states[:2]) <= set(anchors) <= used, "both stay key-steps; no new state (nothing re-clustered)"
    again = load_run(child)
    sel = [int(s) for s in again.selected["all"][task]]
    C = np.asarray(again.decoding_states["all"]["confusion"][task], dtype=float)
    assert np.isnan(C[sel.index(states[0]), sel.index(states[1])])
    merged = again.merges("all").get(task, {})
    assert merged.get(states[0], states[0]) != merged.get(states[1], states[1])
