"""The app's corrections (issue 21): merge and background on Key-steps, a span on Explore, undo, refine."""
from __future__ import annotations

import re
import time

import pytest
from test_app import app_env, assert_clean, open_page  # noqa: F401 (app_env: the fixture)

from procl import corrections, explore, runs


def test_correct_merge_background_span_undo_and_refine(app_env):  # noqa: F811
    path = app_env["checkpoints"] / "tiny-k3"
    at = open_page("app_pages/keysteps.py")
    assert_clean(at)
    task = at.selectbox(key="ks_task_tiny-k3").value
    states = at.multiselect(key=f"corr_merge_{task}").options
    at.multiselect(key=f"corr_merge_{task}").set_value([states[0], states[1]]).run()
    at.button(key=f"corr_merge_btn_{task}").click().run()
    assert_clean(at)
    merged = corrections.read_corrections(path)["merge"]
    assert len(merged) == 1 and len(merged[0]) == 2
    colors = explore.load_run_info(path).state_colors(task)
    assert colors[merged[0][0]] == colors[merged[0][1]]  # one step, one colour on every page
    at.button(key=f"corr_bg_btn_{task}").click().run()
    assert len(corrections.read_corrections(path)["background"]) == 1
    at.button(key=f"corr_undo_ks_{task}").click().run()
    assert corrections.read_corrections(path)["background"] == []
    at.selectbox(key=f"corr_split_{task}").set_value(merged[0][0]).run()
    at.button(key=f"corr_split_btn_{task}").click().run()
    assert any("merged or split, not both" in e.value for e in at.error)  # refused, named, nothing lost
    shown = [int(re.search(r"state (\d+)", o).group(1)) for o in at.selectbox(key=f"corr_split_{task}").options]
    split = next(s for s in shown if s not in merged[0])
    at.selectbox(key=f"corr_split_{task}").set_value(split).run()
    at.button(key=f"corr_split_btn_{task}").click().run()
    assert corrections.read_corrections(path)["split"] == [split]
    assert any("is two steps (split)" in m.value for m in at.markdown)
    at.button(key=f"corr_undo_ks_{task}").click().run()
    assert corrections.read_corrections(path)["split"] == []

    ex = open_page("app_pages/explore.py")
    video = ex.selectbox(key="ex_video_tiny-k3").value
    times = runs.load_outputs(path, video)["times"]
    frame = ex.slider(key=f"ex_frame_tiny-k3_{video}")  # as the slider, or a click on the timeline, leaves it
    frame.set_value(3).run()
    ex.button(key=f"corr_start_here_{video}").click().run()
    ex.slider(key=f"ex_frame_tiny-k3_{video}").set_value(6).run()
    ex.button(key=f"corr_end_here_{video}").click().run()
    step = float(times[1] - times[0])
    assert ex.number_input(key=f"corr_start_{video}").value == pytest.approx(times[3], abs=0.01)
    assert ex.number_input(key=f"corr_end_{video}").value == pytest.approx(times[6] + step, abs=0.01)
    ex.number_input(key=f"corr_start_{video}").set_value(0.5)
    ex.number_input(key=f"corr_end_{video}").set_value(2.0)
    ex.text_input(key=f"corr_step_{video}").set_value("first step")
    ex.button(key=f"corr_mark_{video}").click().run()
    assert_clean(ex)
    segs = corrections.read_corrections(path)["segments"]
    assert segs == [{"video": video, "start": 0.5, "end": 2.0, "step": "first step"}]
    ex.number_input(key=f"corr_end_{video}").set_value(0.0)
    ex.button(key=f"corr_mark_{video}").click().run()
    assert any("is not after start" in e.value for e in ex.error)  # refused, named, nothing lost
    assert corrections.read_corrections(path)["segments"] == segs

    at = open_page("app_pages/keysteps.py")
    at.text_input(key="refine_name_tiny-k3").set_value("tiny-k3-fixed").run()
    at.button(key="refine_btn_tiny-k3").click().run()
    target = app_env["checkpoints"] / "tiny-k3-fixed"
    deadline = time.time() + 240
    while time.time() < deadline and not ((target / "config.json").exists()
                                          and runs.read_status(target).get("state") in runs.TERMINAL):
        time.sleep(1)
    assert runs.read_status(target)["state"] == "done", (path / "refine-tiny-k3-fixed.log").read_text()[-2000:]
    assert runs.read_config(target)["parent"] == "tiny-k3"
    assert "first step" in (target / "names.json").read_text()

    cmp = open_page("app_pages/compare.py")
    cmp.multiselect(key="cmp_runs").set_value(["tiny-k3", "tiny-k3-fixed"]).run()
    assert_clean(cmp)
    assert any("changed step" in i.value and "refines **tiny-k3**" in i.value for i in cmp.info)


def test_a_single_task_run_takes_spans_not_state_numbers(app_env):  # noqa: F811
    """A single-task run of several tasks: Explore marks spans; Key-steps says why it offers
    no state buttons (each task has its own states) and still lists the spans and refines."""
    import shutil

    from procl.train import TrainConfig, train

    path = train(TrainConfig(dataset=app_env["dataset"], setting="single", k=3, M=8, epochs=2, width=16),
                 run="single-k3", progress=False)
    try:
        ks = open_page("app_pages/keysteps.py", run="single-k3")
        assert_clean(ks)
        task = ks.selectbox(key="ks_task_single-k3").value
        assert any("Merging, splitting or marking states is not offered here" in c.value for c in ks.caption)
        assert not [m for m in ks.multiselect if m.key == f"corr_merge_{task}"]
        assert ks.button(key="refine_btn_single-k3").disabled, "nothing to refine with yet"
        ex = open_page("app_pages/explore.py", run="single-k3")
        assert_clean(ex)
        video = ex.selectbox(key="ex_video_single-k3").value
        ex.number_input(key=f"corr_start_{video}").set_value(0.5)
        ex.number_input(key=f"corr_end_{video}").set_value(2.0)
        ex.text_input(key=f"corr_step_{video}").set_value("first step")
        ex.button(key=f"corr_mark_{video}").click().run()
        assert_clean(ex)
        assert corrections.read_corrections(path)["segments"] == [
            {"video": video, "start": 0.5, "end": 2.0, "step": "first step"}]
        ks = open_page("app_pages/keysteps.py", run="single-k3")
        assert_clean(ks)
        assert not ks.button(key="refine_btn_single-k3").disabled
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_explore_opens_the_videos_to_correct_first(app_env):  # noqa: F811
    """Explore names the training videos of the shown video's task that procl suggests
    correcting first (explore.videos_to_correct), ticks those with a marked span, and opens
    the next one not corrected yet, widening the filters so that it can be shown."""
    path = app_env["checkpoints"] / "tiny-k3"
    info = explore.load_run_info(path)
    suggested = explore.videos_to_correct(info)
    trained = set(runs.read_config(path)["train_videos"])
    assert set(suggested) == set(info.tasks)
    assert all(1 <= len(v) <= 3 and set(v) <= trained and len(set(v)) == len(v) for v in suggested.values())

    ex = open_page("app_pages/explore.py")
    assert_clean(ex)
    video = ex.selectbox(key="ex_video_tiny-k3").value
    assert video not in trained, "the page opens on a scored (test) video"
    task = explore.video_table(info).set_index("video").loc[video, "task"]
    line = next(c.value for c in ex.caption if c.value.startswith(f"Correct these first for **{task}**"))
    assert all(v in line for v in suggested[task])
    done = explore.corrected_videos(info)
    upcoming = [v for v in suggested[task] if v not in done]
    ex.button(key=f"corr_next_{video}").click().run()
    assert_clean(ex)
    assert ex.selectbox(key="ex_split_tiny-k3").value == "all"
    assert ex.selectbox(key="ex_video_tiny-k3").value == upcoming[0]

    ex.number_input(key=f"corr_start_{upcoming[0]}").set_value(0.0)
    ex.number_input(key=f"corr_end_{upcoming[0]}").set_value(1.0)
    ex.text_input(key=f"corr_step_{upcoming[0]}").set_value("first step")
    ex.button(key=f"corr_mark_{upcoming[0]}").click().run()
    assert_clean(ex)
    line = next(c.value for c in ex.caption if c.value.startswith(f"Correct these first for **{task}**"))
    assert f"**{upcoming[0]}** ✓" in line
    nxt = ex.button(key=f"corr_next_{upcoming[0]}")
    if len(upcoming) > 1:
        nxt.click().run()
        assert ex.selectbox(key="ex_video_tiny-k3").value == upcoming[1]
    else:
        assert nxt.disabled
