"""procl.viz (figures, overlays) and procl.explore (what the app reads from a run)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from procl import ProclError, explore, viz

# ---------------------------------------------------------------- viz, pure

def _bars(fig):
    return [t for t in fig.data if t.type == "bar"]


def test_timeline_colours_agree_through_the_matching():
    gt = np.array([-1, 0, 0, 1, 1, -1])
    pred = np.array([5, 5, 5, 7, 9, 9])  # state 5 matched step 0, state 7 step 1, state 9 unmatched
    mapping = {"5": 0, "7": 1}
    colors = viz.state_colors(mapping, pred, n_steps=2)
    assert colors[5] == viz.step_color(0) and colors[7] == viz.step_color(1)
    assert colors[9] not in (viz.step_color(0), viz.step_color(1), viz.BACKGROUND_COLOR)
    rows = [{"name": "ground truth", "labels": gt, "colors": {0: viz.step_color(0), 1: viz.step_color(1)},
             "names": {0: "boil", 1: "pour"}},
            {"name": "prediction", "labels": pred, "colors": colors, "names": {5: "s5", 7: "s7", 9: "s9"},
             "legend": {5: "boil", 7: "pour", 9: "state 9"}}]
    times = np.arange(6) * 0.5
    fig = viz.timeline_figure(rows, times, current=1.0)
    bars = _bars(fig)
    by_row_label = {(b.y[0], b.name): b for b in bars}
    # background is grey and one trace holds both background runs of the ground truth
    bg = next(b for b in bars if b.y[0] == "ground truth" and b.marker.color == viz.BACKGROUND_COLOR)
    assert len(bg.x) == 2 and list(bg.base) == [0.0, 2.5]
    # the prediction's state 5 has step 0's colour and shares its legend entry
    assert by_row_label[("prediction", "boil")].marker.color == by_row_label[("ground truth", "boil")].marker.color
    assert sum(1 for b in bars if b.showlegend and b.name == "boil") == 1
    # each bar carries its start time and start index for click-to-jump
    s7 = by_row_label[("prediction", "pour")]
    assert [list(c) for c in s7.customdata] == [[1.5, 3]]
    assert s7.x[0] == pytest.approx(0.5)
    # the marker line is at the current time
    assert [s.x0 for s in fig.layout.shapes] == [1.0]
    assert fig.layout.xaxis.range[1] == pytest.approx(3.0)


def test_timeline_legend_never_gives_one_name_two_colours():
    # two runs whose unmatched states have the same words but their own colours (Compare)
    rows = [{"name": "run-a", "labels": np.array([3, 3, 4]), "colors": {3: "#aa0000", 4: "#00aa00"},
             "legend": {3: "state 3 (unmatched)", 4: "lower car"}},
            {"name": "run-b", "labels": np.array([3, 4, 4]), "colors": {3: "#0000aa", 4: "#00aa00"},
             "legend": {3: "state 3 (unmatched)", 4: "lower car"}}]
    fig = viz.timeline_figure(rows, np.arange(3) * 0.5)
    shown = {b.name: b.marker.color for b in _bars(fig) if b.showlegend}
    assert shown == {"state 3 (unmatched)": "#aa0000", "state 3 (unmatched) · run-b": "#0000aa",
                     "lower car": "#00aa00"}


def test_timeline_rows_may_have_their_own_times():
    rows = [{"name": "a", "labels": np.array([0, 0]), "colors": {0: "#000000"}, "times": np.array([0.0, 1.0])},
            {"name": "b", "labels": np.array([1, 1, 1, 1]), "colors": {1: "#111111"}, "times": np.arange(4) * 1.0}]
    fig = viz.timeline_figure(rows, rows[0]["times"])
    assert fig.layout.xaxis.range[1] == pytest.approx(4.0)
    assert {b.y[0]: b.x[0] for b in _bars(fig)} == {"a": pytest.approx(2.0), "b": pytest.approx(4.0)}


def test_attention_overlay_puts_heat_on_the_attended_cell():
    frame = np.full((70, 70, 3), 128, np.uint8)
    alpha = np.zeros(49)
    alpha[0] = 1.0  # top-left cell
    out = viz.attention_overlay(frame, alpha, (7, 7), opacity=0.6)
    assert out.shape == frame.shape and out.dtype == np.uint8
    # JET: high = red, low = blue
    assert out[3, 3, 0] > out[3, 3, 2] and out[66, 66, 2] > out[66, 66, 0]
    assert np.array_equal(viz.attention_overlay(frame, alpha, (7, 7), opacity=0.0), frame)


def test_pooling_weights_highlight_and_name_the_selected_states():
    beta = np.array([0.1, 0.4, 0.2, 0.3])
    fig = viz.pooling_weights_figure(beta, [1, 3], {1: "boil", 3: "unmatched"}, colors={1: "#ff0000"})
    bar = _bars(fig)[0]
    assert list(bar.x) == ["0", "1: boil", "2", "3: unmatched"]
    assert bar.marker.color[1] == "#ff0000" and bar.marker.color[0] != bar.marker.color[3]
    assert list(bar.y) == pytest.approx(beta.tolist())


def test_metrics_vs_k_sorts_by_k_and_skips_missing():
    rows = [{"run": "b", "k": 10, "recall": 0.5, "precision": 0.2, "f1": 0.3, "accuracy": None},
            {"run": "a", "k": 7, "recall": 0.4, "precision": 0.3, "f1": 0.35, "accuracy": 0.9}]
    fig = viz.metrics_vs_k_figure(rows)
    traces = {t.name: t for t in fig.data}
    recall, acc = traces["found (recall, R)"], traces["task guessed right (accuracy)"]
    assert list(recall.x) == [7, 10] and list(recall.y) == pytest.approx([40, 50]), "in %, as the table"
    assert list(acc.x) == [7]
    assert traces["F1"].mode == "lines+markers"
    assert fig.layout.showlegend and fig.layout.yaxis.title.text == "score (%)"
    assert list(fig.layout.yaxis.range) == [0, 100]
    assert list(fig.layout.xaxis.tickvals) == [7, 10], "ticks at the runs' k only"
    assert "F1 of equal cuts" not in traces, "no reference line for runs that do not have it"
    rows[0]["uniform_f1"], rows[1]["uniform_f1"] = 0.2, 0.25
    cuts = next(t for t in viz.metrics_vs_k_figure(rows).data if t.name == "F1 of equal cuts")
    assert list(cuts.x) == [7, 10] and list(cuts.y) == pytest.approx([25, 20]) and cuts.line.dash == "dash"
    rows.append({"run": "c", "k": 7, "recall": 0.1, "precision": 0.1, "f1": 0.1, "accuracy": 0.1})
    assert viz.metrics_vs_k_figure(rows).data[0].mode == "markers"


def test_stacked_runs_never_share_a_colour_for_different_states(tiny_run):
    """On Compare's stacked timelines, two runs' unmatched states never share a colour; matched
    states take their step's colour; the first run keeps its colours of the other pages."""
    import dataclasses

    info = explore.load_run_info(tiny_run)
    task = info.tasks[0]
    bare = dataclasses.replace(info, metrics={})  # no matching: every state unmatched
    labels = [np.array(info.selected(task))] * 3
    palettes = explore.stacked_state_colors([bare, bare, bare], labels, task)
    into = {s: info.merged_into(task, s) for s in info.selected(task)}
    labels_shown = len({s if r is None else r for s, r in into.items()})  # merged states: one label, one colour
    assert all(len(set(p.values())) == labels_shown for p in palettes)
    assert len({c for p in palettes for c in p.values()}) == 3 * labels_shown, "no colour shared between runs"
    assert palettes[0] == bare.state_colors(task)
    both = explore.stacked_state_colors([info, info], labels[:2], task)
    for s, step in info.mapping(task).items():
        if int(s) in both[0]:
            assert both[0][int(s)] == both[1][int(s)] == viz.step_color(step)


def test_loss_figure_smooths_each_curve():
    history = {"step": list(range(1, 31)), "loss": [float(i % 2) for i in range(30)], "rank": [], "ce": []}
    fig = viz.loss_figure(history)
    assert [t.name for t in fig.data] == ["loss (all)"]
    assert max(fig.data[0].y[10:]) < 0.6  # the alternation is smoothed away


# ---------------------------------------------------------------- explore, on a trained tiny run

@pytest.fixture(scope="module")
def tiny_run(tiny_synth, tmp_path_factory):
    from procl.train import TrainConfig, train

    root = tmp_path_factory.mktemp("viz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROCL_DATA", str(root / "data"))
        mp.setenv("PROCL_CHECKPOINTS", str(root / "checkpoints"))
        path = train(TrainConfig(dataset=f"folder:{tiny_synth}", k=3, M=16, epochs=30, width=16), run="tiny",
                     progress=False)
        yield path


def test_run_info_and_video_table(tiny_run):
    info = explore.load_run_info(tiny_run)
    assert info.finished and info.grid == (7, 7) and len(info.tasks) == 3
    table = explore.video_table(info)
    assert len(table) == 12 and set(table["split"]) == {"train", "test"}
    assert table["frames"].min() > 0
    assert (table["correct"] == (table["task"] == table["pred_task"])).all()
    test = explore.filter_videos(table, "test")
    assert 0 < len(test) < 12 and (test["split"] == "test").all()
    wrong = explore.filter_videos(table, "all", correct=False)
    assert not wrong["correct"].any()
    task = info.tasks[0]
    assert set(explore.filter_videos(table, "all", task=task)["task"]) == {task}
    for t in info.tasks:
        assert len(info.selected(t)) == 3
        assert set(info.state_names(t)) == set(info.selected(t))


def test_timeline_rows_and_video_scores(tiny_run):
    from procl import runs

    info = explore.load_run_info(tiny_run)
    vid, task = explore.video_table(info).iloc[0][["video", "task"]]
    out = runs.load_outputs(tiny_run, vid)
    rows = explore.timeline_rows(info, out, task)
    assert [r["name"] for r in rows] == ["ground truth", "prediction", "suggestion"]
    for s, step in info.mapping(task).items():
        if int(s) in rows[1]["colors"]:
            assert rows[1]["colors"][int(s)] == viz.step_color(step)
    scores = explore.video_scores(out, info.mapping(task))
    assert scores is not None and 0 <= scores["f1"] <= 1
    unannotated = {**out, "gt": np.full_like(out["gt"], -2)}
    assert explore.video_scores(unannotated, {}) is None
    assert [r["name"] for r in explore.timeline_rows(info, unannotated, task, teacher=False)] == ["prediction"]


def test_state_table_and_representative_frames(tiny_run, tiny_synth):
    from procl import runs
    from procl.data import open_dataset

    info = explore.load_run_info(tiny_run)
    task = info.tasks[1]
    table = explore.video_table(info)
    outs = {v: runs.load_outputs(tiny_run, v) for v in table.loc[table["task"] == task, "video"]}
    states = explore.state_table(info, outs, task)
    assert list(states["order"]) == [1, 2, 3] and list(states["state"]) == info.selected(task)
    total = sum(int(np.isin(o["states"], info.selected(task)).sum()) for o in outs.values())
    assert states["frames"].sum() == total  # every frame gets one of the task's states (no background)
    assert ((states["videos"] >= 0) & (states["videos"] <= 1)).all()
    assert states["beta"].notna().all()
    for r in states.itertuples():
        assert (r.step == "") == (str(r.state) not in info.mapping(task))
    shared = {t: set(info.selected(t)) for t in info.tasks if t != task}
    for r in states.itertuples():
        assert set(filter(None, r.shared_with.split(", "))) == {t for t, s in shared.items() if r.state in s}

    used = int(next(iter(outs.values()))["states"][0])  # a state some frame of the task was given
    best = explore.representative_frames(outs, int(used), n=2)
    assert 1 <= len(best) <= 2 and best == sorted(best, key=lambda b: -b["p"])
    assert len({b["video"] for b in best}) == len(best)
    b = best[0]
    assert outs[b["video"]]["states"][b["index"]] == used

    ds = open_dataset(info.config["dataset"], progress=False)
    frames = explore.frames_at(ds.video(b["video"]), [b["time"], 0.0])
    assert frames.shape[0] == 2 and frames.shape[-1] == 3 and frames.dtype == np.uint8


def test_frame_reader_seeks_to_the_sampled_frames_and_bounds_the_size(tmp_path, tiny_synth):
    import cv2

    from procl.features.video import FrameReader, sample_frames

    video = next((tiny_synth / "videos").rglob("*.mp4"))
    frames, times = sample_frames(video, fps=2.0)
    reader = FrameReader(video, max_side=480)
    order = [len(times) - 1, 0, 5, 6, 2, 5]
    for i in order:  # backwards, forwards, sequential: each is the frame the sampler takes
        np.testing.assert_array_equal(reader.frame_at(times[i]), frames[i])
    assert reader.reads == len(set(order)) and reader.frame_at(times[5]).shape == (112, 112, 3)  # small: kept
    reader.close()
    wide = tmp_path / "wide.avi"
    writer = cv2.VideoWriter(str(wide), cv2.VideoWriter_fourcc(*"MJPG"), 4.0, (640, 320))
    for i in range(8):
        writer.write(np.full((320, 640, 3), 30 * i, np.uint8))
    writer.release()
    reader = FrameReader(wide, max_side=200)
    assert reader.frame_at(1.0).shape == (100, 200, 3)
    assert reader.frame_at(99.0).shape == (100, 200, 3), "a time past the end shows the last frame"
    with pytest.raises(ProclError, match="missing.mp4"):
        FrameReader(tmp_path / "missing.mp4")


def test_damaged_run_files_are_proclerrors(tiny_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "metrics.json").write_text("{ not json")
    with pytest.raises(ProclError, match="metrics.json"):
        explore.load_run_info(broken)
    (broken / "metrics.json").write_text(json.dumps({"split": "test"}))
    (broken / "predictions.csv").unlink()
    info = explore.load_run_info(broken)
    with pytest.raises(ProclError, match="predictions.csv"):
        explore.video_table(info)
    with pytest.raises(ProclError, match="predictions.csv"):
        explore.videos_to_correct(info)
    (broken / "predictions.csv").write_text("video,task\nx,y\n")  # no frames or states
    with pytest.raises(ProclError, match="predictions.csv is unreadable"):
        explore.videos_to_correct(info)
    shutil.rmtree(broken)
    with pytest.raises(ProclError, match="gone"):
        explore.run_stamp(broken)


def test_dataset_summary_and_preview(tiny_synth):
    from procl.data import open_dataset

    ds = open_dataset(f"folder:{tiny_synth}", progress=False)
    summary = explore.dataset_summary(ds)
    assert isinstance(summary, pd.DataFrame) and list(summary["videos"]) == [4, 4, 4]
    assert (summary["train"] + summary["test"] == summary["videos"]).all()
    v = ds.videos[0]
    times, gt = explore.preview_labels(v, duration=10.0)
    assert len(times) == 20 and len(gt) == 20 and gt.max() >= 0
    assert explore.feature_caches("folder:/nowhere") == []
    assert Path(v.source).exists()


# ---------------------------------------------------------------- names, strength, the procedure

def test_names_live_in_the_run_folder(tiny_run, tmp_path):
    import shutil

    from procl import names

    run = tmp_path / "named"
    shutil.copytree(tiny_run, run)
    info = explore.load_run_info(run)
    task, other = info.tasks[0], info.tasks[1]
    state = info.selected(task)[0]
    assert info.names == {} and info.given_name(task, state) is None
    names.set_name(run, info.config, task, state, "  loosen nuts ")
    assert json.loads((run / "names.json").read_text()) == {"all": {str(state): "loosen nuts"}}
    assert not list(run.glob(".*.tmp")), "written atomically: no temporary file is left"
    info = explore.load_run_info(run)
    assert info.given_name(task, state) == "loosen nuts"
    assert info.given_name(other, state) == "loosen nuts", "a multi-task run's states are shared by its tasks"
    assert info.state_label(task, state) == "loosen nuts" and info.state_names(task)[state] == "loosen nuts"
    assert info.state_text(task, state).startswith(f"state {state} “loosen nuts”")
    assert explore.state_table(info, {}, task).set_index("state").loc[state, "name"] == "loosen nuts"
    row = explore.state_row("prediction", np.array([state, -1]), {}, info, task)
    assert row["legend"][state] == "loosen nuts" and "loosen nuts" in row["names"][state]
    before = explore.run_stamp(run)
    names.set_name(run, info.config, task, state, "")
    assert explore.load_run_info(run).names == {} and explore.run_stamp(run) != before, "caches see the change"
    for bad, message in (("two\nlines", "one line"), ("x" * 61, "keep it to 60")):
        with pytest.raises(ProclError, match=message):
            names.set_name(run, info.config, task, state, bad)
    M = info.config["M"]
    with pytest.raises(ProclError, match=f"states 0..{M - 1}"):
        names.set_name(run, info.config, task, M, "nope")
    with pytest.raises(ProclError, match="not one of the run's tasks"):
        names.set_name(run, info.config, "no_such_task", state, "nope")
    (run / "names.json").write_text("{ broken")
    with pytest.raises(ProclError, match="names.json is damaged"):
        explore.load_run_info(run)


def test_predictions_download_carries_the_names(tiny_run, tmp_path):
    import io
    import shutil

    from procl import names

    run = tmp_path / "named"
    shutil.copytree(tiny_run, run)
    info = explore.load_run_info(run)
    stored = pd.read_csv(run / "predictions.csv")
    assert list(stored.columns[:10]) == ["video", "task", "pred_task", "frame", "time", "state", "step", "teacher",
                                         "gt", "name"]
    state = int(stored.loc[stored["state"] >= 0, "state"].mode()[0])  # the key-step state most predicted
    task = stored.loc[stored["state"] == state, "task"].iloc[0]
    names.set_name(run, info.config, task, state, "pour water")
    info = explore.load_run_info(run)
    df = pd.read_csv(io.BytesIO(explore.predictions_csv(info)), keep_default_na=False)
    assert list(df.columns) == list(stored.columns)
    assert (df.loc[df["state"] == state, "name"] == "pour water").all()
    assert (df.loc[df["state"] != state, "name"] == "").all()
    old = stored.drop(columns="name")  # a run written before names existed
    old.to_csv(run / "predictions.csv", index=False)
    df = pd.read_csv(io.BytesIO(explore.predictions_csv(info)), keep_default_na=False)
    assert list(df.columns).index("name") == list(df.columns).index("gt") + 1


def test_segments_tile_each_video_with_its_states_and_names():
    from procl.infer import SEGMENT_COLUMNS, segments_frame

    frames = pd.DataFrame({
        "video": ["b"] * 5 + ["a"],
        "task": ["tea"] * 5 + ["coffee"], "pred_task": ["tea"] * 4 + ["tea", "coffee"],
        "frame": [4, 0, 1, 2, 3, 0],  # out of order: segments follow the frames, not the rows
        "time": [2.0, 0.0, 0.5, 1.0, 1.5, 3.0],
        "state": [5, -1, -1, 3, 3, 7],
        "name": ["", "", "", "pour water", "pour water", ""],
    })
    segs = segments_frame(frames)
    assert list(segs.columns) == SEGMENT_COLUMNS
    assert segs.values.tolist() == [
        ["b", "tea", "tea", 0.0, 1.0, 2, -1, ""],
        ["b", "tea", "tea", 1.0, 2.0, 2, 3, "pour water"],
        ["b", "tea", "tea", 2.0, 2.5, 1, 5, ""],  # the last frame lasts the video's median interval
        ["a", "coffee", "coffee", 3.0, 3.0, 1, 7, ""],  # one frame: no interval to go by
    ]


def test_segments_download_is_the_named_predictions_as_segments(tiny_run, tmp_path):
    import io
    import shutil

    from procl import names

    run = tmp_path / "named"
    shutil.copytree(tiny_run, run)
    info = explore.load_run_info(run)
    stored = pd.read_csv(run / "predictions.csv")
    state = int(stored.loc[stored["state"] >= 0, "state"].mode()[0])
    names.set_name(run, info.config, stored.loc[stored["state"] == state, "task"].iloc[0], state, "pour water")
    info = explore.load_run_info(run)
    segs = pd.read_csv(io.BytesIO(explore.segments_csv(info)), keep_default_na=False)
    assert segs.groupby("video")["frames"].sum().to_dict() == stored.groupby("video").size().to_dict()
    assert (segs.loc[segs["state"] == state, "name"] == "pour water").all() and (segs["state"] == state).any()
    for _, g in segs.groupby("video", sort=False):
        assert (g["start"].to_numpy()[1:] == g["end"].to_numpy()[:-1]).all(), "segments tile the video"
        assert (np.diff(g["state"].to_numpy()) != 0).all(), "a segment is a whole run of one state"


def test_keystep_strength_is_the_most_probable_states_p_times_beta():
    p = np.array([[0.1, 0.6, 0.3, 0.0], [0.5, 0.1, 0.2, 0.2], [0.0, 0.1, 0.1, 0.8]])
    beta = np.array([0.4, 0.3, 0.2, 0.1])
    strength, best = explore.keystep_strength({"p": p, "beta": beta}, [1, 2])
    assert best.tolist() == [1, 2, 1], "the most probable of the selected states (0 and 3 are not selected)"
    np.testing.assert_allclose(strength, [0.6 * 0.3, 0.2 * 0.2, 0.1 * 0.3])
    assert explore.keystep_strength({"p": p, "beta": np.zeros(0)}, [1, 2]) is None, "single-task: no beta"
    fig = viz.strength_figure(np.arange(3) * 0.5, strength, best, {1: "#ff0000", 2: "#00ff00"},
                              {1: "state 1 “boil”", 2: "state 2"}, current=0.5)
    line, dots = fig.data[0], {t.name: t for t in fig.data[1:]}
    assert list(line.y) == pytest.approx(strength)
    assert set(dots) == {"state 1 “boil”", "state 2"}, "one trace of dots per state, named for the hover"
    assert dots["state 1 “boil”"].marker.color == "#ff0000" and list(dots["state 1 “boil”"].x) == [0.0, 1.0]
    assert dots["state 2"].marker.color == "#00ff00" and list(dots["state 2"].y) == pytest.approx([strength[1]])
    assert [s.x0 for s in fig.layout.shapes] == [0.5]
    assert fig.layout.xaxis.range[1] == pytest.approx(1.5), "aligned with the timeline (the last sample lasts a step)"


def _info(tmp_path, selected: dict[str, list[int]], names: dict | None = None) -> explore.RunInfo:
    config = {"tasks": list(selected), "units": {"all": list(selected)}, "steps": {}, "M": 10, "setting": "multi"}
    return explore.RunInfo(tmp_path, config, {"state": "done"}, None, {"all": selected}, names or {})


def _video(states: list[int], fps: float = 2.0) -> dict:
    states = np.array(states)
    return {"states": states, "teacher": states, "gt": np.full(len(states), -2), "times": np.arange(len(states)) / fps,
            "beta": np.full(10, 0.1), "p": np.full((len(states), 10), 0.1)}


def test_procedure_orders_key_steps_by_their_median_relative_time(tmp_path):
    from procl.procedure import procedure_json, task_procedure

    info = _info(tmp_path, {"a": [7, 3, 5, 9], "b": [3, 4]}, names={"all": {3: "loosen nuts"}})
    outs = {  # 10 samples at 2 fps: 5 s each; state 5 first, then 3, then 7; 9 never
        "v1": _video([5, 5, 3, 3, 3, -1, 7, 7, 7, 7]),
        "v2": _video([5, 3, 3, -1, -1, -1, -1, -1, 7, 7]),
        "v3": _video([-1, -1, 5, 5, 5, 5, -1, -1, -1, -1]),
    }
    table = task_procedure(info, outs, "a")
    assert table["state"].tolist() == [5, 3, 7, 9] and table["order"].tolist() == [1, 2, 3, 4]
    assert table["pick"].tolist() == [3, 2, 1, 4], "subset selection's pick order is kept beside"
    row = table.set_index("state")
    # state 5: v1 frames 0-1 (median time 0.25 s of 5 s), v2 frame 0 (0 s), v3 frames 2-5 (1.75 s)
    assert row.loc[5, "at"] == pytest.approx(0.05) and row.loc[5, "occurs_in"] == pytest.approx(1.0)
    assert row.loc[5, "duration"] == pytest.approx(1.0) and row.loc[5, "videos"] == 3  # median of 1, 0.5, 2 s
    assert row.loc[7, "occurs_in"] == pytest.approx(2 / 3) and row.loc[7, "duration"] == pytest.approx(1.5)
    assert row.loc[9, "videos"] == 0 and pd.isna(row.loc[9, "at"])
    assert row.loc[3, "name"] == "loosen nuts" and row.loc[3, "shared_with"] == "b"
    assert row.loc[5, "step"] == "" and pd.isna(row.loc[5, "iou"]), "no ground truth: nothing matched"
    js = procedure_json(info, table.assign(task="a"))
    assert [s["state"] for s in js["tasks"]["a"]] == [5, 3, 7, 9] and js["tasks"]["a"][1]["shared_with"] == ["b"]
    assert js["tasks"]["a"][3]["at"] is None and js["annotated"] is False
    json.dumps(js)  # plain JSON: no NaN, no numpy types


def test_procedure_command(tiny_run, capsys, monkeypatch):
    from procl.cli import main as cli

    assert cli(["procedure", "--run", str(tiny_run)]) == 0
    text = capsys.readouterr().out
    info = explore.load_run_info(tiny_run)
    for task in info.tasks:
        assert f"\n{task}\n" in text
    assert text.count("  1. ") == len(info.tasks)
    assert cli(["procedure", "--run", str(tiny_run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["tasks"]) == set(info.tasks) and out["annotated"] is True
    for task, steps in out["tasks"].items():
        assert sorted(s["state"] for s in steps) == sorted(info.selected(task))
        assert [s["order"] for s in steps] == list(range(1, len(steps) + 1))
        ats = [s["at"] for s in steps if s["at"] is not None]
        assert ats == sorted(ats)
    assert cli(["procedure", "--run", "no-such-run"]) == 2
    assert "unknown run 'no-such-run'" in capsys.readouterr().err
    monkeypatch.setattr(explore.RunInfo, "finished", property(lambda self: False))
    assert cli(["procedure", "--run", str(tiny_run)]) == 2
    assert "has no results yet" in capsys.readouterr().err


def test_state_colours_are_the_same_on_every_page(tiny_run):
    info = explore.load_run_info(tiny_run)
    task = info.tasks[0]
    base = info.state_colors(task)
    assert set(base) == set(info.selected(task))
    with_extra = info.state_colors(task, np.array([99, -1, *info.selected(task)]))
    assert all(with_extra[s] == c for s, c in base.items()), "extra states never change a selected state's colour"


def test_plain_words_name_a_dataset_and_map_to_the_paper():
    from procl import words

    assert words.dataset_name("folder:data/own5") == "own5"
    assert words.dataset_name("folder:/x/y/own5/") == "own5"
    assert words.dataset_name("synthetic") == "built-in (synthetic)"
    assert words.dataset_name("crosstask:/data/CrossTask") == "CrossTask (crosstask)"
    terms = " ".join(term for _, term, _ in words.GLOSSARY)
    for paper in ("teacher", "beta", "Hungarian", "KLN", "λ", "M, latent states", "ranking loss"):
        assert paper in terms
    assert words.glossary_markdown().count("\n|") == len(words.GLOSSARY) + 1


def test_a_run_is_described_as_its_settings_acted():
    """What a setting could not do is not listed as on: no task guess or pooling with one
    network per task, no attention to choose without a grid; the background rule that ran."""
    multi = {"setting": "multi", "k": 7, "M": 50, "lam": 0.5, "epochs": 20, "attention": True,
             "learnable_pooling": True, "background": "shared", "tasks": ["a", "b", "c"],
             "features": {"R": 49}}
    text = explore.describe_run(multi)
    assert "one network for all tasks" in text and "task-guess weight 0.5 (λ)" in text
    assert "where-it-looks on (attention)" in text and "learned reliance on (pooling)" in text
    assert text.endswith("background: what every task shows alike")
    two = explore.describe_run({**multi, "tasks": ["a", "b"]})  # fewer than 3 tasks: background over time
    assert two.endswith("background: what every part of the procedure shows alike")
    single = explore.describe_run({**multi, "setting": "single", "lam": 0.0, "features": {"R": 1}})
    assert "one network per task" in single and "no task guess" in single
    assert "λ" not in single and "pooling" not in single and "where-it-looks" not in single
    assert "no grid to look at (attention)" in single
    assert single.endswith("background: what every part of the procedure shows alike")
    assert explore.describe_run({**multi, "background": "none"}).endswith("no background (every frame a step)")
    assert "not one of the task's steps" in explore.describe_run({**multi, "background": "unselected"})
