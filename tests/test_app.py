"""The Streamlit app through streamlit.testing.v1.AppTest, on two tiny trained runs.

Every page renders without an exception or an error message, shows its main elements
(plotly figures are read from the element's proto), and its widgets change what is
shown. Damaged, half-written and deleted runs give a message, never an exception.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from procl import explore, framemap, jobs, runs, words
from procl.paths import SAMPLES

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["app_pages/home.py", "app_pages/train.py", "app_pages/explore.py", "app_pages/keysteps.py",
         "app_pages/compare.py"]


@pytest.fixture(scope="module")
def app_env(tiny_synth, tiny_unannotated, tmp_path_factory):
    """PROCL_DATA / PROCL_CHECKPOINTS in a temporary folder holding runs tiny-k2 and tiny-k3
    (annotated videos) and own-k3 (the same videos without annotations)."""
    import streamlit as st

    from procl.train import TrainConfig, train

    root = tmp_path_factory.mktemp("app")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROCL_DATA", str(root / "data"))
        mp.setenv("PROCL_CHECKPOINTS", str(root / "checkpoints"))
        for k in (2, 3):
            train(TrainConfig(dataset=f"folder:{tiny_synth}", k=k, M=8, epochs=2, width=16), run=f"tiny-k{k}",
                  progress=False)
        train(TrainConfig(dataset=f"folder:{tiny_unannotated}", k=3, M=8, epochs=2, width=16), run="own-k3",
              progress=False)
        st.cache_data.clear()
        st.cache_resource.clear()
        yield {"root": root, "checkpoints": root / "checkpoints", "dataset": f"folder:{tiny_synth}",
               "own": f"folder:{tiny_unannotated}"}


def open_page(page: str, run: str | None = "tiny-k3") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if run is not None:
        at.selectbox(key="run").set_value(run)
    at.switch_page(page)
    at.run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def figures(at: AppTest) -> list[dict]:
    """Every plotly figure on the page, as the JSON spec the browser gets."""
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def timeline(at: AppTest) -> dict:
    return next(f for f in figures(at) if any(t.get("orientation") == "h" and "customdata" in t for t in f["data"]))


def row_names(fig: dict) -> list[str]:
    names = []
    for t in fig["data"]:
        if t["y"][0] not in names:
            names.append(t["y"][0])
    return names


def texts(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in [*at.markdown, *at.caption, *at.info, *at.warning])


# ---------------------------------------------------------------- every page

@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_cleanly(app_env, page):
    at = open_page(page)
    assert_clean(at)
    assert at.title, "every page has a title"
    sidebar_run = at.sidebar.selectbox(key="run")
    assert sidebar_run.value == "tiny-k3" and set(sidebar_run.options) >= {"tiny-k2 · done", "tiny-k3 · done",
                                                                           "own-k3 · done"}
    assert "backbone **default**" in "\n".join(c.value for c in at.sidebar.caption)
    assert re.search(r"steps F1 [\d.]+% \(equal cuts [\d.]+%\)", "\n".join(c.value for c in at.sidebar.caption))
    glossary = next(e for e in at.sidebar.expander if e.label == "Words and the paper's terms")
    words = "\n".join(m.value for m in glossary.markdown)
    assert "the clustering's suggestion" in words and "teacher" in words and "pooling weight beta" in words
    shown = "\n".join(str(m.value) for m in [*at.main.markdown, *at.main.caption, *at.main.subheader])
    for jargon in ("mean beta", "Eq. 2", "Eq. 5", "Hungarian matching,", "`folder:"):
        assert jargon not in shown, f"{jargon!r} on {page}: plain words on the page, the paper's in tooltips"


# ---------------------------------------------------------------- Home

def test_home_lists_and_previews_the_dataset(app_env):
    at = open_page("app_pages/home.py")
    assert_clean(at)
    table = at.dataframe[0].value
    row = table[table["dataset"] == app_env["dataset"]].iloc[0]
    assert row["tasks"] == "3" and row["videos"] == "12" and row["annotated"] == "all"
    assert "default-2fps: 12/12" in row["features"]
    builtin = table[table["dataset"] == "synthetic"].iloc[0]
    assert builtin["state"] == "not generated" and builtin["tasks"] == builtin["videos"] == "–"  # never None
    # the real sample a clone ships is listed, ready to train (data/samples, NOTICE.md)
    sample = table[table["dataset"] == f"actseg:{SAMPLES / 'breakfast_coffee'}"].iloc[0]
    assert (sample["name"], sample["state"], sample["tasks"], sample["videos"]) == \
        ("breakfast_coffee (actseg)", "ready", "1", "5"), sample
    assert any(b.label == "Generate the built-in dataset" for b in at.button)
    at.selectbox(key="home_spec").set_value(app_env["dataset"]).run()
    first = row_names(timeline(at))
    assert len(first) == 4 and all(n.startswith(at.selectbox(key="home_preview_task").value) for n in first)
    other = at.selectbox(key="home_preview_task").options[2]
    at.selectbox(key="home_preview_task").set_value(other).run()
    assert_clean(at)
    assert row_names(timeline(at)) != first and all(n.startswith(other) for n in row_names(timeline(at)))


def test_home_generates_the_builtin_dataset_with_progress(app_env, tmp_path, monkeypatch):
    from procl.data import synth

    real = synth.generate
    calls = []

    def tiny(out, progress=True, on_progress=None, **_):  # the default set takes a minute: a tiny one here
        calls.append(out)
        return real(out, n_tasks=2, videos_per_task=3, frame_size=64, min_duration=4.0, max_duration=6.0,
                    progress=False, workers=1, on_progress=on_progress)

    monkeypatch.setattr(synth, "generate", tiny)
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    at = open_page("app_pages/home.py")
    at.button(key="home_generate").click().run()
    assert_clean(at)
    assert calls == [tmp_path / "data" / "synthetic"] and (calls[0] / "dataset.json").is_file()
    assert not any(b.label == "Generate the built-in dataset" for b in at.button)
    assert any(b.label == "Train the demo runs" for b in at.button), "next step: the demo runs"
    table = at.dataframe[0].value
    assert table.set_index("dataset").loc["synthetic", "videos"] == "6"


def test_home_reads_an_added_path_and_refuses_a_missing_one(app_env, tmp_path):
    at = open_page("app_pages/home.py")
    at.text_input(key="home_add_path").input(str(tmp_path / "missing"))
    at.button(key="home_add").click().run()
    assert any("is not a folder" in e.value for e in at.error)
    assert not at.exception
    at.selectbox(key="home_add_kind").set_value("actseg")
    at.text_input(key="home_add_path").input(str(BREAKFAST))
    at.button(key="home_add").click().run()
    assert_clean(at)
    assert [s.value for s in at.success] == [f"Added actseg:{BREAKFAST}: 1 task, 5 videos."]


# ---------------------------------------------------------------- Train

def field_errors(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error)


def test_train_form_validates_next_to_the_fields(app_env):
    at = open_page("app_pages/train.py")
    assert_clean(at)
    assert at.selectbox(key="tr_dataset").value == app_env["dataset"]
    assert "3 tasks, 12 videos" in texts(at)
    assert not at.button(key="tr_launch").disabled

    at.number_input(key="tr_k").set_value(60).run()
    assert "larger than M = 50" in field_errors(at) and at.button(key="tr_launch").disabled
    at.number_input(key="tr_k").set_value(3).run()
    at.text_input(key="tr_run").input("tiny-k3").run()
    assert "exists already" in field_errors(at) and at.button(key="tr_launch").disabled
    at.text_input(key="tr_run").input("bad name!").run()
    assert "not allowed" in field_errors(at)
    at.text_input(key="tr_run").input("").run()
    at.selectbox(key="tr_backbone").set_value("vgg19").run()
    at.text_input(key="tr_weights").input("/no/such/weights.pt").run()
    assert "is not a file" in field_errors(at)
    at.selectbox(key="tr_backbone").set_value("default").run()
    assert not at.error
    at.selectbox(key="tr_dataset").set_value("another folder…").run()
    assert "Give the dataset's folder" in field_errors(at)
    at.text_input(key="tr_path").input("/no/such/folder").run()
    assert "is not a folder" in field_errors(at) and at.button(key="tr_launch").disabled
    at.selectbox(key="tr_dataset").set_value(app_env["dataset"]).run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["run"]) == {"tiny-k2", "tiny-k3", "own-k3"} and set(table["state"]) == {"done"}


def test_train_levers_show_the_defaults_of_features_without_a_grid(app_env):
    """On precomputed [T, D] features the default recipe's time weight is 0 (videos: 2), and
    the field shows the value that launches."""
    at = open_page("app_pages/train.py")
    assert at.number_input(key="tr_time_weight_default").value == 2.0
    assert not at.toggle(key="tr_attention").disabled
    at.selectbox(key="tr_dataset").set_value("another folder…").run()
    at.selectbox(key="tr_kind").set_value("actseg").run()
    at.text_input(key="tr_path").input(str(BREAKFAST)).run()
    assert_clean(at)
    assert at.number_input(key="tr_time_weight_default_nogrid").value == 0.0
    assert at.toggle(key="tr_attention").disabled, "one vector per frame: nothing for attention to weigh"
    at.selectbox(key="tr_dataset").set_value(f"actseg:{BREAKFAST}").run()  # the shipped sample, listed
    assert_clean(at)
    assert at.radio(key="tr_setting_one_task").value == "single" and at.toggle(key="tr_attention").disabled


def test_train_says_the_task_guess_is_weak_on_features_without_a_grid(app_env, tmp_path):
    """Multi-task on precomputed [T, D] features of several tasks: the page says the task
    decision is weak there and what single-task does instead; not for one task, nor single."""
    root = tmp_path / "two_tasks"
    rng = np.random.default_rng(0)
    for task in ("a", "b"):
        for i in range(3):
            vid = f"{task}_{i}"
            (root / "features" / task).mkdir(parents=True, exist_ok=True)
            np.save(root / "features" / task / f"{vid}.npy", rng.standard_normal((12, 4)).astype(np.float32))
    at = open_page("app_pages/train.py")
    note = "telling the tasks apart is weak"
    assert not any(note in i.value for i in at.info)  # the built-in videos have a grid
    at.selectbox(key="tr_dataset").set_value("another folder…").run()
    at.selectbox(key="tr_kind").set_value("actseg").run()
    at.text_input(key="tr_path").input(str(root)).run()
    assert_clean(at)
    assert any(note in i.value for i in at.info)
    at.radio(key="tr_setting").set_value("single").run()
    assert not any(note in i.value for i in at.info)
    at.radio(key="tr_setting").set_value("multi").run()
    at.text_input(key="tr_path").input(str(BREAKFAST)).run()  # one task: nothing to tell apart
    assert_clean(at)
    assert not any(note in i.value for i in at.info)


def test_train_starts_one_task_datasets_from_single(app_env):
    """Recordings of one procedure: the form starts from single (all videos, no classifier)
    and says why when multi is chosen; a dataset of several tasks starts from multi."""
    at = open_page("app_pages/train.py")
    assert at.radio(key="tr_setting").value == "multi"  # the built-in set: six tasks
    at.selectbox(key="tr_dataset").set_value("another folder…").run()
    at.selectbox(key="tr_kind").set_value("actseg").run()
    at.text_input(key="tr_path").input(str(BREAKFAST)).run()
    assert_clean(at)
    assert at.radio(key="tr_setting_one_task").value == "single"
    assert "1 task, 5 videos" in " ".join(c.value for c in at.caption)
    assert not any(words.ONE_TASK_NOTE in i.value for i in at.info)
    assert at.number_input(key="tr_M_single").value == 30
    at.radio(key="tr_setting_one_task").set_value("multi").run()
    assert any(words.ONE_TASK_NOTE in i.value for i in at.info)


def test_train_all_runs_table_never_says_none(app_env):
    """F1 of an unannotated run says so; a queued run's epochs and accuracy are not `None`;
    scores have one decimal; the dataset is named by its folder."""
    path = fake_run(app_env["checkpoints"], "queued-job", {"state": "queued", "created": time.time()})
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "epochs": None}))
    try:
        at = open_page("app_pages/train.py")
        assert_clean(at)
        table = at.dataframe[0].value.set_index("run")
        assert "None" not in table.astype(str).to_numpy().ravel().tolist()
        assert table.loc["own-k3", "F1 %"] == "not annotated" and table.loc["own-k3", "equal cuts F1 %"] == "–"
        assert table.loc["queued-job", "equal cuts F1 %"] == "–"
        for run in ("tiny-k2", "tiny-k3"):  # beside F1, from the run's metrics.json
            kept = json.loads((app_env["checkpoints"] / run / "metrics.json").read_text())["uniform"]["f1"]
            assert table.loc[run, "equal cuts F1 %"] == f"{100 * kept:.1f}"
        assert table.loc["queued-job", "epochs"] == "auto" and table.loc["queued-job", "Acc %"] == "–"
        for v in table.loc[["tiny-k2", "tiny-k3", "own-k3"], "Acc %"]:
            assert re.fullmatch(r"\d+\.\d", v), v
        assert table.loc["tiny-k3", "dataset"] == Path(app_env["dataset"].split(":", 1)[1]).name
    finally:
        shutil.rmtree(path)


def test_train_an_invalid_k_is_said_and_never_launched(app_env):
    """Whatever k the field shows is what launches, or nothing does and a message says why."""
    at = open_page("app_pages/train.py")
    for bad, message in ((0, "k=0: the number of key-steps must be at least 1"),
                         (-3, "k=-3: the number of key-steps must be at least 1"),
                         (150, "k = 150 is larger than M = 50")):
        at.number_input(key="tr_k").set_value(bad).run()
        assert not at.exception
        assert at.number_input(key="tr_k").value == bad, "the field keeps what was typed"
        assert message in field_errors(at) and at.button(key="tr_launch").disabled
    at.number_input(key="tr_M_multi").set_value(0).run()
    assert "M=0" in field_errors(at) and at.button(key="tr_launch").disabled
    at.number_input(key="tr_M_multi").set_value(50).run()
    at.number_input(key="tr_k").set_value(5).run()
    assert_clean(at)
    assert not at.button(key="tr_launch").disabled


def test_train_launches_a_background_job_that_finishes(app_env):
    at = open_page("app_pages/train.py")
    assert at.radio(key="tr_recipe").value == "default" and at.radio(key="tr_recipe").options[0] == "default"
    at.number_input(key="tr_k").set_value(2)
    at.number_input(key="tr_M_multi").set_value(6)
    at.number_input(key="tr_epochs").set_value(1)
    at.number_input(key="tr_width").set_value(8)
    at.number_input(key="tr_batch").set_value(2)
    at.text_input(key="tr_run").input("launched")
    at.run()
    assert_clean(at)
    at.button(key="tr_launch").click().run()
    assert_clean(at)
    path = app_env["checkpoints"] / "launched"
    assert (path / "job.json").exists(), "the job runs in its own process, its pid in the run folder"
    deadline = time.time() + 120
    while runs.read_status(path)["state"] not in runs.TERMINAL and time.time() < deadline:
        time.sleep(0.5)
    status = runs.read_status(path)
    assert status["state"] == "done", (status, (path / "train.log").read_text()[-2000:])
    assert runs.read_config(path)["k"] == 2 and runs.read_config(path)["epochs"] == 1
    assert runs.read_config(path)["batch_size"] == 2
    assert runs.read_config(path)["recipe"] == "default", "a newcomer who changes nothing gets procl's recipe"
    at.run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert table.set_index("run").loc["launched", "state"] == "done"
    assert any(b.label == "Open in Explore" for b in at.button)
    shutil.rmtree(path)


def test_train_tries_several_k_one_job_after_another(app_env):
    at = open_page("app_pages/train.py")
    assert not at.text_input(key="tr_sweep_ks").value and at.button(key="tr_sweep").disabled
    assert "Give two or more values of k" in texts(at)
    at.text_input(key="tr_sweep_ks").input("2, x").run()
    assert "'x' is not a whole number" in field_errors(at) and at.button(key="tr_sweep").disabled
    at.text_input(key="tr_sweep_ks").input("1,2,3,4,5,6,7,8,9").run()
    assert "at most 8" in field_errors(at) and at.button(key="tr_sweep").disabled
    at.number_input(key="tr_M_multi").set_value(6)
    at.number_input(key="tr_k").set_value(2)
    at.text_input(key="tr_sweep_ks").input("3, 9").run()
    assert "k = 9 is more than M = 6" in field_errors(at) and at.button(key="tr_sweep").disabled
    at.text_input(key="tr_sweep_ks").input("3, 2")
    at.number_input(key="tr_epochs").set_value(1)
    at.number_input(key="tr_width").set_value(8)
    at.text_input(key="tr_run").input("sweep")
    at.run()
    assert_clean(at)
    assert at.number_input(key="tr_sweep_seeds").value == jobs.SWEEP_SEEDS == 2
    assert "4 runs: k = 2, 3, 2 seeds each" in texts(at)
    at.number_input(key="tr_sweep_seeds").set_value(1).run()
    assert "2 runs: k = 2, 3, one seed each" in texts(at)
    at.button(key="tr_sweep").click().run()
    assert_clean(at)
    paths = [app_env["checkpoints"] / f"sweep-k{k}" for k in (2, 3)]
    try:
        pids = {json.loads((p / "job.json").read_text())["pid"] for p in paths}
        assert len(pids) == 1, "one background process trains the runs of a sweep one after another"
        assert runs.read_config(paths[1])["k"] == 3 and runs.read_config(paths[1])["epochs"] == 1
        deadline = time.time() + 180
        while any(runs.read_status(p)["state"] not in runs.TERMINAL for p in paths) and time.time() < deadline:
            time.sleep(0.5)
        for p in paths:
            status = runs.read_status(p)
            assert status["state"] == "done", (status, (p / "train.log").read_text()[-2000:])
        ended = [runs.read_status(p)["updated"] for p in paths]
        assert ended[0] <= ended[1], "trained in the order of k"
    finally:
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)


def test_compare_suggests_k_by_the_agreement_of_seeds(app_env):
    """With two seeds of each k, Compare charts their agreement and suggests k by it."""
    copies = [app_env["checkpoints"] / f"{name}-seed" for name in ("tiny-k2", "tiny-k3")]
    for copy in copies:
        shutil.copytree(app_env["checkpoints"] / copy.name.removesuffix("-seed"), copy)
    try:
        at = open_page("app_pages/compare.py")
        at.multiselect(key="cmp_runs").set_value(["tiny-k2", "tiny-k3", "tiny-k2-seed", "tiny-k3-seed"]).run()
        assert_clean(at)
        signals = next(f for f in figures(at) if any(t.get("name") == "steps used per task" for t in f["data"]))
        assert "agreement between seeds (%)" in [a["text"] for a in signals["layout"]["annotations"]]
        agreement = next(t for t in signals["data"] if t.get("name") == "agreement between seeds (%)")
        assert agreement["y"] == [100.0] * 4, "a copy cuts the videos exactly as its run"
        suggestion = next(i.value for i in at.info if "Suggested k" in i.value)
        assert "Suggested k: 2.** k = 2: runs of it with different seeds agree at least as much as at any other k" \
            in suggestion, suggestion
    finally:
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)


def test_a_single_task_run_is_told_its_task_and_every_page_says_so(app_env):
    """One network per task runs each video through its own task's network: its accuracy
    (100 % by construction) is shown as "given" on Train, Compare, the sidebar, Explore
    and the command line, never as a score; the run's settings read as they acted."""
    from procl.evaluate import format_metrics
    from procl.train import TrainConfig, train

    path = Path(train(TrainConfig(dataset=app_env["dataset"], setting="single", k=3, M=8, epochs=1, width=16),
                      run="single-k3", progress=False))
    try:
        assert json.loads((path / "metrics.json").read_text())["accuracy"] == 1.0  # kept: the JSON is a contract
        table = open_page("app_pages/train.py").dataframe[0].value.set_index("run")
        assert table.loc["single-k3", "Acc %"] == "given" and re.fullmatch(r"\d+\.\d", table.loc["tiny-k3", "Acc %"])

        at = open_page("app_pages/explore.py", run="single-k3")
        assert_clean(at)
        side = "\n".join(c.value for c in at.sidebar.caption)
        assert words.TASK_GIVEN in side and "task guessed right" not in side
        assert "no task guess" in side and "learned reliance" not in side and "task-guess weight" not in side
        assert at.selectbox(key="ex_given_single-k3").disabled
        assert "given: one network per task" in texts(at) and "predicted **" not in texts(at)
        assert "task guessed right" in "\n".join(c.value for c in open_page("app_pages/explore.py").sidebar.caption)

        at = open_page("app_pages/compare.py")
        at.multiselect(key="cmp_runs").set_value(["tiny-k3", "single-k3"]).run()
        assert_clean(at)
        acc = dict(zip(at.dataframe[0].value["run"], at.dataframe[0].value["accuracy"]))
        assert acc["single-k3"] == "given" and float(acc["tiny-k3"]) >= 0
        vs_k = next(f for f in figures(at)
                    if f["layout"].get("xaxis", {}).get("title", {}).get("text") == "k (steps per task)")
        guessed = next(t for t in vs_k["data"] if t["name"] == "task guessed right (accuracy)")
        assert guessed["text"] == ["tiny-k3"], "no accuracy point for the run told its task"

        printed = format_metrics(path)
        assert printed.splitlines()[1].split()[-1] == "-" and "the task is given" in printed
        assert "the task is given" not in format_metrics(app_env["checkpoints"] / "tiny-k3")
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fake_run(checkpoints: Path, name: str, status: dict, log: str = "") -> Path:
    path = checkpoints / name
    shutil.copytree(checkpoints / "tiny-k3", path)
    for f in ("metrics.json", "predictions.csv"):
        (path / f).unlink()
    shutil.rmtree(path / "outputs")
    (path / "status.json").write_text(json.dumps(status))
    if log:
        (path / "train.log").write_text(log)
    return path


def test_a_queued_sweep_run_says_it_waits_its_turn(app_env):
    """A run of "try several k" whose turn has not come says so (not "preparing")."""
    path = fake_run(app_env["checkpoints"], "sweep-wait", {"state": "queued", "created": time.time()})
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "sweep": [2, 3]}))
    try:
        at = open_page("app_pages/train.py")
        assert_clean(at)
        bars = [b.text for b in at.get("progress")]
        assert any("waiting: the runs of k before it train first" in (t or "") for t in bars), bars
        (path / "train.log").write_text("features (default): 12/12\n")  # its turn came
        at = open_page("app_pages/train.py")
        bars = [b.text for b in at.get("progress")]
        assert any("preparing" in (t or "") for t in bars) and not any("waiting" in (t or "") for t in bars)
    finally:
        shutil.rmtree(path)


def test_train_shows_live_progress_and_cancels(app_env):
    history = {"step": [1, 2, 3, 4, 5], "loss": [3.0, 2.5, 2.0, 1.8, 1.5], "rank": [2.5, 2, 1.6, 1.4, 1.2],
               "ce": [1.0, 1.0, 0.8, 0.8, 0.6]}
    path = fake_run(app_env["checkpoints"], "running-job", {
        "state": "running", "pid": os.getpid(), "epoch": 1, "epochs": 2, "step": 5, "steps": 10,
        "elapsed": 12.0, "eta": 12.0, "history": history, "created": time.time()})
    try:
        at = open_page("app_pages/train.py")
        assert_clean(at)
        bars = at.get("progress")
        assert bars and bars[0].proto.value == 50
        assert "step 5/10" in bars[0].proto.text and "ETA 12 s" in bars[0].proto.text
        loss = next(f for f in figures(at) if f["data"] and f["data"][0].get("mode") == "lines")
        assert {t["name"] for t in loss["data"]} == {"loss (all)", "learning the suggestion (rank)", "task guess (ce)"}
        at.button(key="tr_cancel_running-job").click().run()
        assert (path / "STOP").exists()
        assert at.button(key="tr_cancel_running-job").label == "Stopping…"
        # Explore says the run is still training instead of failing
        at.selectbox(key="run").set_value("running-job")
        at.switch_page("app_pages/explore.py").run()
        assert not at.exception and "still running" in at.info[0].value
    finally:
        shutil.rmtree(path)


def test_failed_run_shows_the_tail_of_its_error(app_env):
    path = fake_run(app_env["checkpoints"], "failed-job", {"state": "failed", "error": "ProclError: boom at epoch 1",
                                                           "traceback": "Traceback\n  line\nProclError: boom"},
                    log="features 1/12\nfeatures 12/12\ntrain: 3/9\nboom\n")
    try:
        at = open_page("app_pages/train.py")
        assert_clean(at)
        expander = next(e for e in at.expander if "failed-job" in e.label)
        assert "boom at epoch 1" in "\n".join(m.value for m in expander.markdown)
        assert "train: 3/9" in "\n".join(c.value for c in expander.code)
    finally:
        shutil.rmtree(path)


# ---------------------------------------------------------------- Explore

def frame_key(at: AppTest) -> str:
    return next(s.key for s in at.slider if s.label == "Frame")


def test_explore_frame_viewer_and_timeline(app_env):
    at = open_page("app_pages/explore.py")
    assert_clean(at)
    video = at.selectbox(key="ex_video_tiny-k3").value
    out = runs.load_outputs(app_env["checkpoints"] / "tiny-k3", video)
    assert at.get("video"), "the video is playable"
    assert at.get("image"), "the frame is shown"
    fig = timeline(at)
    assert row_names(fig) == ["ground truth", "prediction", "suggestion"]
    assert fig["layout"]["shapes"][0]["x0"] == pytest.approx(out["times"][0])
    image = at.get("image")[0].value[0]

    key = frame_key(at)
    at.slider(key=key).set_value(4).run()
    assert_clean(at)
    assert timeline(at)["layout"]["shapes"][0]["x0"] == pytest.approx(out["times"][4])
    assert "frame 5 of" in texts(at)
    assert at.get("image")[0].value[0] != image
    next(b for b in at.button if b.label == "Next ▶").click().run()
    assert at.slider(key=key).value == 5
    next(b for b in at.button if b.label == "◀ Previous").click().run()
    next(b for b in at.button if b.label == "◀ Previous").click().run()
    assert at.slider(key=key).value == 3

    before = at.get("image")[0].value[0]
    at.slider(key="ex_opacity").set_value(0.0).run()
    assert at.get("image")[0].value[0] != before

    probs = next(f for f in figures(at) if f["data"][0].get("orientation") == "h" and "customdata" not in f["data"][0])
    assert probs["data"][0]["y"] == ["change_tire", "make_coffee", "make_tea"]
    assert sum(probs["data"][0]["x"]) == pytest.approx(1.0, abs=1e-3)
    beta = next(f for f in figures(at) if f["data"][0].get("type") == "bar" and f["layout"].get("yaxis", {})
                .get("title", {}).get("text") == "pooling weight beta")
    assert len(beta["data"][0]["x"]) == 8 and sum(":" in x for x in beta["data"][0]["x"]) == 3
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels == {"predictions.csv of tiny-k3", "metrics.json of tiny-k3"}
    assert [m.label for m in at.metric] == ["Recall", "Precision", "F1", "IoU", "Edit", "F1@50"]


def test_explore_filters_change_the_videos(app_env):
    at = open_page("app_pages/explore.py")
    table = runs.run_dir("tiny-k3")
    import pandas as pd

    pred = pd.read_csv(table / "predictions.csv").groupby("video").first()
    at.selectbox(key="ex_split_tiny-k3").set_value("all").run()
    assert len(at.selectbox(key="ex_video_tiny-k3").options) == 12
    at.selectbox(key="ex_task_tiny-k3").set_value("make_tea").run()
    assert all(o.startswith("make_tea") for o in at.selectbox(key="ex_video_tiny-k3").options)
    at.selectbox(key="ex_task_tiny-k3").set_value("all tasks")
    at.selectbox(key="ex_correct_tiny-k3").set_value("incorrect").run()
    assert_clean(at)
    wrong = sorted(pred.index[pred["task"] != pred["pred_task"]])
    if wrong:
        shown = at.selectbox(key="ex_video_tiny-k3").options
        assert [o.split()[0] for o in shown] == wrong
    else:
        assert "No video matches" in at.info[0].value
    videos = [o.split()[0] for o in at.selectbox(key="ex_video_tiny-k3").options] if wrong else []
    if len(videos) > 1:
        at.selectbox(key="ex_video_tiny-k3").set_value(videos[1]).run()
        assert f"task **{pred.loc[videos[1], 'task']}**" in texts(at)


def test_explore_one_state_one_colour_on_a_misclassified_video(app_env):
    """On a video whose task is predicted wrong, a state has one colour on the timeline, the
    key-step strength and the pooling bars; and Explore opens on a correctly classified video."""
    import pandas as pd

    path = app_env["checkpoints"] / "mis-k3"
    shutil.copytree(app_env["checkpoints"] / "tiny-k3", path)
    try:
        df = pd.read_csv(path / "predictions.csv", dtype={"video": str, "task": str, "pred_task": str},
                         keep_default_na=False)
        first = sorted(df.loc[df["split"] == "test", "video"].unique())[0]
        task = df.loc[df["video"] == first, "task"].iloc[0]
        other = next(t for t in sorted(df["task"].unique()) if t != task)
        df.loc[df["video"] == first, "pred_task"] = other
        df.to_csv(path / "predictions.csv", index=False)
        at = open_page("app_pages/explore.py", run="mis-k3")
        assert_clean(at)
        opened = at.selectbox(key="ex_video_mis-k3").value
        assert opened != first and df.loc[df["video"] == opened, "pred_task"].iloc[0] == \
            df.loc[df["video"] == opened, "task"].iloc[0], "Explore opens on a correctly classified video"
        at.selectbox(key="ex_video_mis-k3").set_value(first).run()
        assert_clean(at)
        info = explore.load_run_info(path)
        out = runs.load_outputs(path, first)
        colors = explore.video_colors(info, out, task, other)
        beta = next(f for f in figures(at) if f["data"][0].get("type") == "bar" and f["layout"].get("yaxis", {})
                    .get("title", {}).get("text") == "pooling weight beta")["data"][0]
        highlighted = {int(x.split(":")[0]): c for x, c in zip(beta["x"], beta["marker"]["color"]) if ":" in x}
        assert set(highlighted) == set(info.selected(other))
        assert highlighted == {s: colors[s] for s in highlighted}
        strength = next(f for f in figures(at)
                        if f["layout"].get("yaxis", {}).get("title", {}).get("text") == "p × beta")
        for s in info.selected(other):
            trace = next((t for t in strength["data"] if t.get("name") == info.state_text(other, s)), None)
            if trace is not None:
                assert trace["marker"]["color"] == colors[s]
        line = timeline(at)
        for s in {int(v) for v in out["states"] if v >= 0}:
            trace = next(t for t in line["data"] if t["y"][0] == "prediction"
                         and t["hovertemplate"].startswith(f"prediction: {info.state_text(task, s)}<br>"))
            assert trace["marker"]["color"] == colors[s]
    finally:
        shutil.rmtree(path)


def test_explore_decodes_only_the_frames_it_shows_of_an_hour_long_video(app_env, tmp_path, monkeypatch):
    """An hour of video (7200 samples at 2 fps): opening Explore decodes the one frame it
    shows, each slider move one more, and going back to a frame seen decodes nothing."""
    import streamlit as st

    from procl import viz
    from procl.bench.explore_page import TASKS, count_decoded, make_explore_run, read_index, write_long_video

    video = write_long_video(tmp_path / "dataset" / "videos" / TASKS[0] / "hour.mp4", 3600.0)
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path / "checkpoints"))
    make_explore_run(tmp_path, video)
    shown = []  # the frames the viewer draws (under the attention overlay)
    real = viz.attention_overlay
    monkeypatch.setattr(viz, "attention_overlay", lambda frame, *a, **k: shown.append(frame) or real(frame, *a, **k))
    st.cache_resource.clear()
    with count_decoded() as counter:
        at = open_page("app_pages/explore.py", run="long")
        assert_clean(at)
        assert "frame 1 of 7200" in texts(at)
        assert counter["decoded"] == 1, "the first frame only, not the whole video"
        assert read_index(shown[-1]) == 0
        key = frame_key(at)
        for i in (7199, 3600, 3601):
            at.slider(key=key).set_value(i).run()
            assert_clean(at)
            assert read_index(shown[-1]) == i, "the frame shown is the one at the slider's time"
        assert counter["decoded"] == 4
        at.slider(key=key).set_value(7199).run()  # seen before: from the reader's cache
        assert read_index(shown[-1]) == 7199
        assert counter["decoded"] == 4 and counter["opened"] <= 2
    st.cache_resource.clear()


# ---------------------------------------------------------------- Key-steps

def test_keysteps_lists_states_with_frames(app_env):
    at = open_page("app_pages/keysteps.py")
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["order"]) == [1, 2, 3]
    assert len(at.get("image")) >= 1 and len(at.get("image")[0].proto.imgs) >= 1
    selected = json.loads((runs.run_dir("tiny-k3") / "selected.json").read_text())["all"]
    assert sorted(table["state"]) == sorted(selected["change_tire"])
    assert [selected["change_tire"][p - 1] for p in table["suggested as"]] == list(table["state"]), "pick order beside"
    assert {"step", "iou", "at", "occurs in", "typical duration"} <= set(table.columns)
    # the map of frames: labelled and coloured as the timelines are (state_label, state_colors)
    info = explore.load_run_info(runs.run_dir("tiny-k3"))
    fig = next(f for f in figures(at) if f["layout"].get("xaxis", {}).get("title", {}).get("text") == "PC 1")
    data = framemap.frame_map(runs.run_dir("tiny-k3"))
    colors = info.label_colors("change_tire", data.loc[data["task"] == "change_tire", "state"].unique())
    shown = {t["name"]: t["marker"]["color"] for t in fig["data"]}
    assert shown and all(colors.get(name) == color for name, color in shown.items()), (shown, colors)
    # ... and its legend in the procedure's order (the table's), background last
    order = [info.state_label("change_tire", int(s)) for s in table["state"]]
    legend = [t["name"] for t in fig["data"]]
    assert legend == [lab for lab in order if lab in shown] + [lab for lab in legend if lab not in order], legend
    assert "background" not in legend[:-1]
    at.selectbox(key="ks_task_tiny-k3").set_value("make_tea").run()
    assert_clean(at)
    assert sorted(at.dataframe[0].value["state"]) == sorted(selected["make_tea"])
    at.slider(key="ks_frames").set_value(2).run()
    assert all(len(el.value) <= 2 for el in at.get("image"))
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"procedure.csv (every task)", "procedure.json (every task)", "predictions.csv of tiny-k3",
            "segments.csv of tiny-k3"} <= labels


def test_keysteps_says_which_state_a_merged_one_is_labelled_as(app_env):
    """States the decoding merges (merge_confused) are listed with the state they are labelled
    as, their card says why, and the two share a colour."""
    path = app_env["checkpoints"] / "merged"
    shutil.copytree(app_env["checkpoints"] / "tiny-k3", path)
    try:
        decoding = json.loads((path / "decoding.json").read_text())
        selected = json.loads((path / "selected.json").read_text())
        task, states = next(iter(selected["all"].items()))
        first, second, third = states
        # the network confuses the first two picks (and they make one run): one key-step
        decoding["all"]["confusion"] = {task: [[None, 0.5, 0.01], [0.5, None, 0.01], [0.01, 0.01, None]]}
        decoding["all"]["contiguity"] = {task: [[None, 1.0, 1.0], [1.0, None, 1.0], [1.0, 1.0, None]]}
        (path / "decoding.json").write_text(json.dumps(decoding))
        from procl.explore import load_run_info
        info = load_run_info(path)
        assert info.merged_into(task, second) == first and info.merged_into(task, first) is None
        colors = info.state_colors(task)
        assert colors[first] == colors[second] != colors[third]
        at = open_page("app_pages/keysteps.py", run="merged")
        assert_clean(at)
        at.selectbox(key="ks_task_merged").set_value(task).run()
        table = at.dataframe[0].value.set_index("state")
        assert table.loc[second, "labelled as"] == f"state {first}" and table.loc[first, "labelled as"] == ""
        assert f"Labelled as state {first}" in texts(at)
        # marking the state it is labelled as background marks the frames shown as it: both states
        at.selectbox(key=f"corr_bg_{task}").set_value(first).run()
        at.button(key=f"corr_bg_btn_{task}").click().run()
        assert_clean(at)
        corr = json.loads((path / "corrections.json").read_text())
        assert corr["background"] == sorted([first, second])
        at.selectbox(key=f"corr_bg_{task}").set_value(third).run()  # a state labelled as itself alone
        at.button(key=f"corr_bg_btn_{task}").click().run()
        assert json.loads((path / "corrections.json").read_text())["background"] == sorted([first, second, third])
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_keysteps_names_a_state_everywhere(app_env):
    """A name typed on Key-steps is written to the run folder and shows on Explore, Compare and in the procedure."""
    from procl.procedure import run_procedure

    path = app_env["checkpoints"] / "named"
    shutil.copytree(app_env["checkpoints"] / "own-k3", path)
    try:
        at = open_page("app_pages/keysteps.py", run="named")
        assert_clean(at)
        state = int(at.dataframe[0].value["state"].iloc[0])
        box = at.text_input(key=f"ks_name_named_all_{state}")
        box.input("loosen nuts").run()
        assert_clean(at)
        assert json.loads((path / "names.json").read_text()) == {"all": {str(state): "loosen nuts"}}
        table = at.dataframe[0].value
        assert table.set_index("state").loc[state, "name"] == "loosen nuts"
        assert "loosen nuts" in texts(at), "the procedure line and the key-step's title use the name"
        info, proc = run_procedure(path)
        assert (proc.loc[proc["state"] == state, "name"] == "loosen nuts").all()
        at.text_input(key=f"ks_name_named_all_{state}").input("x" * 61).run()
        assert any("keep it to 60" in e.value for e in at.error) or len(at.text_input(
            key=f"ks_name_named_all_{state}").value) <= 60
        # Explore: the prediction's legend and hover use it
        at.switch_page("app_pages/explore.py").run()
        assert_clean(at)
        out = runs.load_outputs(path, at.selectbox(key="ex_video_named").value)
        if state in set(out["states"].tolist()):
            names = {t["name"] for t in timeline(at)["data"]}
            assert "loosen nuts" in names
        at.switch_page("app_pages/compare.py").run()
        assert_clean(at)
        at.multiselect(key="cmp_runs").set_value(["named"]).run()
        fig = timeline(at)
        hover = " ".join(t["hovertemplate"] for t in fig["data"])
        shown = runs.load_outputs(path, at.selectbox(key="cmp_video").value)  # the video Compare shows
        assert "loosen nuts" in hover or state not in set(shown["states"].tolist())
        # an empty name removes it
        at.switch_page("app_pages/keysteps.py").run()
        at.text_input(key=f"ks_name_named_all_{state}").input("").run()
        assert json.loads((path / "names.json").read_text()) == {}
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_unannotated_run_on_every_page(app_env):
    """No ground-truth wording, legend or row; localization metrics say "not annotated";
    the prediction, the teacher and the key-step strength are shown."""
    at = open_page("app_pages/explore.py", run="own-k3")
    assert_clean(at)
    assert row_names(timeline(at)) == ["prediction", "suggestion"]
    shown = texts(at)
    assert "ground truth" not in shown.lower().replace("no ground truth", "")
    assert "not annotated" in shown
    assert [m.value for m in at.metric] == ["–"] * 6
    strength = next(f for f in figures(at) if f["layout"].get("yaxis", {}).get("title", {}).get("text") == "p × beta")
    out = runs.load_outputs("own-k3", at.selectbox(key="ex_video_own-k3").value)
    info = explore.load_run_info("own-k3")
    _, strongest = explore.keystep_strength(out, info.selected(info.tasks[int(np.argmax(out["task_probs"]))]))
    assert {t["name"] for t in strength["data"][1:]} == {f"state {s}" for s in set(strongest.tolist())}
    assert "not annotated" in "\n".join(c.value for c in at.sidebar.caption)
    at.switch_page("app_pages/keysteps.py").run()
    assert_clean(at)
    assert not {"step", "iou"} & set(at.dataframe[0].value.columns)
    assert "ground-truth" not in texts(at).lower()
    at.switch_page("app_pages/compare.py").run()
    assert_clean(at)
    at.multiselect(key="cmp_runs").set_value(["own-k3", "tiny-k3"]).run()
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["own-k3", "f1"] == "not annotated" and table.loc["tiny-k3", "f1"] != "not annotated"
    # two datasets: the signals compare the runs of the one chosen, without ground truth
    at.selectbox(key="cmp_k_dataset").set_value(app_env["own"]).run()
    assert_clean(at)
    assert "Only k = 3 was tried" in next(i.value for i in at.info if "Suggested k" in i.value)
    at.switch_page("app_pages/home.py").run()
    at.selectbox(key="home_spec").set_value(app_env["own"]).run()
    assert_clean(at)
    assert "Ground-truth timelines" not in [h.value for h in at.subheader]
    videos = at.dataframe[-1].value
    assert list(videos.columns[:3]) == ["video", "split", "seconds"] and len(videos) == 4
    assert (videos["seconds"] > 7).all()


# ---------------------------------------------------------------- uploads

def _upload(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "video/mp4")


def test_home_creates_a_dataset_from_uploaded_videos(app_env, tiny_synth):
    from procl.paths import data_dir

    videos = sorted((tiny_synth / "videos").rglob("*.mp4"))
    by_task = {}
    for v in videos:
        by_task.setdefault(v.parent.name, []).append(v)
    (t1, v1), (t2, v2) = list(by_task.items())[:2]
    at = open_page("app_pages/home.py")
    at.text_input(key="up_name_0").input("my-videos")
    at.text_input(key="up_task_0_0").input("change tire")
    at.text_input(key="up_task_0_1").input("make tea")
    # bad uploads, all said in one round: a text file, a text file renamed .mp4, a zero-byte .mp4, one video
    # only for the second task, the same id twice
    at.file_uploader(key="up_files_0_0").set_value([_upload(v1[0]), _upload(v1[1]), _upload(v1[2]),
                                                    ("notes.txt", b"hello", "text/plain"),
                                                    ("renamed.mp4", b"hello\n", "video/mp4"),
                                                    ("zero.mp4", b"", "video/mp4")])
    at.file_uploader(key="up_files_0_1").set_value([_upload(v1[0])])
    at.run()
    at.button(key="up_create").click().run()
    assert not at.exception
    message = "\n".join(e.value for e in at.error)
    assert "notes.txt (task 'change tire') is not a video" in message
    assert "'make tea' has one video" in message
    assert f"video id {v1[0].stem!r}" in message
    assert "renamed.mp4 (task 'change tire') is not a video OpenCV can decode" in message
    assert "zero.mp4 (task 'change tire') is empty" in message
    assert not (data_dir() / "my-videos").exists(), "nothing is written"
    assert at.text_input(key="up_task_0_0").value == "change tire", "what was typed is kept"
    # a file named like a video that is not one
    at.file_uploader(key="up_files_0_0").set_value([_upload(v1[0]), _upload(v1[1]),
                                                    ("fake.mp4", b"\x00" * 2048, "video/mp4")])
    at.file_uploader(key="up_files_0_1").set_value([_upload(v) for v in v2[:3]])
    at.run()
    at.button(key="up_create").click().run()
    assert "fake.mp4 (task 'change tire') is not a video OpenCV can decode" in "\n".join(e.value for e in at.error)
    assert not (data_dir() / "my-videos").exists() and not list(data_dir().glob(".my-videos*"))
    # good ones
    at.file_uploader(key="up_files_0_0").set_value([_upload(v) for v in v1[:3]])
    at.run()
    at.button(key="up_create").click().run()
    assert_clean(at)
    root = data_dir() / "my-videos"
    try:
        assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mp4")) == sorted(
            [f"videos/change tire/{v.name}" for v in v1[:3]] + [f"videos/make tea/{v.name}" for v in v2[:3]])
        assert (root / "videos" / "change tire" / v1[0].name).read_bytes() == v1[0].read_bytes()
        spec = f"folder:{root}"
        assert any(spec in s.value for s in at.success)
        table = at.dataframe[0].value.set_index("dataset")
        assert table.loc[spec, "videos"] == "6" and table.loc[spec, "annotated"] == "no"
        assert at.selectbox(key="home_spec").value == spec
        assert at.text_input(key="up_name_1").value == "", "a fresh form for the next dataset"
        at.switch_page("app_pages/train.py").run()
        assert at.selectbox(key="tr_dataset").value == spec, "Train offers the new dataset"
        assert "not annotated" in texts(at)
        # a new session lists it too (it is a folder under data/)
        at = open_page("app_pages/home.py")
        assert spec in set(at.dataframe[0].value["dataset"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- Compare

def test_compare_stacks_runs(app_env):
    at = open_page("app_pages/compare.py")
    assert_clean(at)
    assert set(at.multiselect(key="cmp_runs").value) == {"tiny-k2", "tiny-k3"}
    table = at.dataframe[0].value
    assert sorted(table["k"]) == [2, 3]
    # equal cuts beside every run: the run's own metrics.json, the same videos, in %
    for _, row in table.iterrows():
        kept = json.loads((app_env["checkpoints"] / row["run"] / "metrics.json").read_text())["uniform"]["f1"]
        assert row["uniform_f1"] == pytest.approx(100 * kept)
    vs_k = next(f for f in figures(at)
                if f["layout"].get("xaxis", {}).get("title", {}).get("text") == "k (steps per task)")
    assert {t["name"] for t in vs_k["data"]} >= {"found (recall, R)", "right (precision, P)", "F1",
                                                 "F1 of equal cuts"}
    # a run finished before procl kept equal cuts reads "–", never None
    kept = app_env["checkpoints"] / "tiny-k2" / "metrics.json"
    before = kept.read_text()
    try:
        kept.write_text(json.dumps({k: v for k, v in json.loads(before).items() if k != "uniform"}))
        again = open_page("app_pages/compare.py")
        assert_clean(again)
        cuts = dict(zip(again.dataframe[0].value["run"], again.dataframe[0].value["uniform_f1"]))
        assert cuts["tiny-k2"] == "–" and float(cuts["tiny-k3"]) > 0
    finally:
        kept.write_text(before)
    assert vs_k["data"][0]["x"] == [2, 3] and vs_k["layout"]["xaxis"]["tickvals"] == [2, 3]
    assert row_names(timeline(at)) == ["ground truth", "tiny-k3 (k=3)", "tiny-k2 (k=2)"]
    assert len(at.get("download_button")) == 4
    # the label-free signals against k, always, and the suggestion in one sentence
    signals = next(f for f in figures(at) if any(t.get("name") == "steps used per task" for t in f["data"]))
    titles = [a["text"] for a in signals["layout"]["annotations"]]
    assert titles == ["steps used per task", "segments per video", "share called background (%)",
                      "task confidence (%)"]
    assert signals["data"][0]["x"] == [2, 3]
    suggestion = next(i.value for i in at.info if "Suggested k" in i.value)
    assert re.search(r"Suggested k: [23]\.\*\* k = [23]", suggestion), suggestion
    at.multiselect(key="cmp_runs").unselect("tiny-k2").run()
    assert_clean(at)
    assert len(at.dataframe[0].value) == 1 and row_names(timeline(at)) == ["ground truth", "tiny-k3 (k=3)"]
    video = at.selectbox(key="cmp_video").options[-1]
    at.selectbox(key="cmp_video").set_value(video).run()
    assert_clean(at)


# ---------------------------------------------------------------- damaged runs

def damage(path: Path, how: str) -> None:
    if how == "metrics-corrupt":
        (path / "metrics.json").write_text('{"recall": 0.1, ')
    elif how == "config-corrupt":
        (path / "config.json").write_text("{")
    elif how == "outputs-missing":
        shutil.rmtree(path / "outputs")
    elif how == "outputs-corrupt":
        for f in (path / "outputs").iterdir():
            f.write_bytes(b"not an npz")
    elif how == "predictions-missing":
        (path / "predictions.csv").unlink()
    elif how == "status-corrupt":
        (path / "status.json").write_text("")
    elif how == "dataset-moved":
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**config, "dataset": f"folder:{path / 'moved-away'}"}))


@pytest.mark.parametrize("how", ["metrics-corrupt", "config-corrupt", "outputs-missing", "outputs-corrupt",
                                 "predictions-missing", "status-corrupt", "dataset-moved"])
def test_damaged_run_gives_a_message_and_other_runs_work(app_env, how):
    path = app_env["checkpoints"] / f"damaged-{how}"
    shutil.copytree(app_env["checkpoints"] / "tiny-k3", path)
    try:
        damage(path, how)
        for page in ("app_pages/explore.py", "app_pages/keysteps.py"):
            at = open_page(page, run=path.name)
            assert not at.exception, [e.value for e in at.exception]
            assert at.error or at.warning or at.info, f"{page} says nothing about a damaged run ({how})"
            at.selectbox(key="run").set_value("tiny-k2")
            at.run()
            assert_clean(at)
        for page in ("app_pages/home.py", "app_pages/train.py", "app_pages/compare.py"):
            at = open_page(page, run="tiny-k2")
            assert not at.exception, [e.value for e in at.exception]
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_run_deleted_while_viewed(app_env):
    path = app_env["checkpoints"] / "doomed"
    shutil.copytree(app_env["checkpoints"] / "tiny-k3", path)
    at = open_page("app_pages/explore.py", run="doomed")
    assert_clean(at)
    (path / "outputs" / f"{at.selectbox(key='ex_video_doomed').value}.npz").unlink()
    at.run()
    assert not at.exception and any("missing" in e.value for e in at.error)
    shutil.rmtree(path)
    at.run()
    assert not at.exception
    assert any("doomed" in w.value and "gone" in w.value for w in at.warning)
    assert at.selectbox(key="run").value != "doomed"


# ---------------------------------------------------------------- other kinds of runs

BREAKFAST = SAMPLES / "breakfast_coffee"


def test_single_task_run_has_no_classifier_views(app_env, tiny_synth):
    from procl.train import TrainConfig, train

    train(TrainConfig(dataset=f"folder:{tiny_synth}", k=2, M=6, epochs=1, width=8, setting="single"),
          run="single", progress=False)
    try:
        at = open_page("app_pages/explore.py", run="single")
        assert_clean(at)
        assert "no pooling weights" in texts(at) and "Single-task run" in texts(at)
        at.switch_page("app_pages/keysteps.py").run()
        assert_clean(at)
        assert (at.dataframe[0].value["shared with"] == "").all(), "single-task networks share no state"
        assert at.dataframe[0].value["reliance"].eq("–").all()
    finally:
        shutil.rmtree(app_env["checkpoints"] / "single")


@pytest.mark.skipif(not BREAKFAST.is_dir(), reason="the Breakfast sample is not here")
def test_features_without_grid_explain_the_missing_heatmap(app_env):
    from procl.train import TrainConfig, train

    train(TrainConfig(dataset=f"actseg:{BREAKFAST}", k=3, M=8, epochs=1, width=8), run="nogrid", progress=False)
    try:
        at = open_page("app_pages/explore.py", run="nogrid")
        assert_clean(at)
        assert "no spatial grid (R = 1" in texts(at)
        assert not at.get("image") and "no video files" in texts(at)
        assert row_names(timeline(at)) == ["ground truth", "prediction", "suggestion"]
        at.switch_page("app_pages/keysteps.py").run()
        assert_clean(at)
        assert "precomputed features" in texts(at)
    finally:
        shutil.rmtree(app_env["checkpoints"] / "nogrid")


def test_home_cnn_backbone_offline_says_where_the_weights_go(app_env, tmp_path, monkeypatch):
    """Choosing a CNN backbone fetches its ImageNet weights; offline, the page says which
    file to put in which folder, or to use --weights PATH (no network in tests)."""
    import urllib.error

    import torch

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    at = open_page("app_pages/home.py")
    at.selectbox(key="home_spec").set_value(app_env["dataset"]).run()
    at.selectbox(key="home_backbone").set_value("resnet18").run()
    at.button(key="home_extract").click().run()
    assert not at.exception
    message = "\n".join(e.value for e in at.error)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "--weights PATH" in message
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth").exists()


def test_task_probs_caption_says_what_the_bars_show():
    """Explore's task bars: the classifier alone, or weighed with the key-steps' fit, or
    no classifier at all (single-task runs, whatever their recipe's task evidence)."""
    assert "weighed" not in explore.task_probs_caption({"setting": "multi", "task_evidence": 0.0})
    assert "task evidence 10" in explore.task_probs_caption({"setting": "multi", "task_evidence": 10.0})
    assert explore.task_probs_caption({"setting": "multi", "task_evidence": 2.0, "state_classifier": True}).startswith(
        "The state classifier's probabilities")
    caption = explore.task_probs_caption({"setting": "multi", "state_classifier": False})
    assert "the network's task guess" in caption.lower()
    assert "state classifier" in explore.pooling_role({"setting": "multi", "state_classifier": True})
    assert explore.pooling_role({"setting": "multi"}) == ""  # runs saved before the lever: the network decides
    assert "weighed" not in explore.task_probs_caption({"setting": "multi"})  # runs saved before the lever
    single = explore.task_probs_caption({"setting": "single", "task_evidence": 10.0})
    assert "no classifier" in single and "weighed" not in single
