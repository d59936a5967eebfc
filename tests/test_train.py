"""Training, inference, runs and the train/evaluate/predict commands on a tiny built-in dataset."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEST_LEVERS, run_folders

from procl import ProclError, baselines, runs
from procl.cli import main as cli
from procl.decode import bias_background, decode_states, merge_maps, path_fit, relabel
from procl.evaluate import evaluate
from procl.infer import PREDICT_COLUMNS, SEGMENT_COLUMNS, load_run, predict_dataset
from procl.paths import SAMPLES
from procl.train import TrainConfig, config_from_saved, load_inputs, train

TINY = dict(k=3, M=16, epochs=30, width=32)  # M well above tasks x k: the tiny set has 3 x 3 steps


@pytest.fixture(scope="module")
def env(tiny_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    with run_folders(root):
        yield {"spec": f"folder:{tiny_synth}", "root": root}


@pytest.fixture(scope="module")
def random_f1(env) -> float:
    """The random baseline's F1 on every video of the tiny set (what a training must beat)."""
    dataset, features = load_inputs(TrainConfig(dataset=env["spec"], **TINY).resolved(), progress=False)
    base = baselines.run_baselines(dataset, features, k=3, M=16, split="all", fit_split="all", names=("random",))
    return base["random"]["f1"]


@pytest.fixture(scope="module")
def trained(env):
    path = train(TrainConfig(dataset=env["spec"], seed=0, **TINY), run="tiny", progress=False)
    return path


def test_training_beats_random_and_loss_falls(trained, random_f1):
    # scored on every video: the tiny test split holds one video per task
    m = evaluate("tiny", "all")
    assert m["f1"] > random_f1 + 0.05, (m["f1"], random_f1)
    hist = runs.read_status(trained)["history"]
    steps = len(hist["loss"]) // 4
    assert np.mean(hist["loss"][-steps:]) < np.mean(hist["loss"][:steps])
    assert runs.read_status(trained)["state"] == "done"


def test_batched_training_beats_random(env, random_f1):
    """4 videos per step, padded and masked: fewer, larger steps still learn the procedure."""
    path = train(TrainConfig(dataset=env["spec"], seed=0, batch_size=4, **TINY, **TEST_LEVERS), run="tiny-b4",
                 progress=False)
    m = evaluate("tiny-b4", "all")
    assert m["f1"] > random_f1 + 0.05, (m["f1"], random_f1)
    status = runs.read_status(path)
    assert status["state"] == "done" and status["steps"] == 30 * 9  # videos, as with one per step
    assert len(status["history"]["step"]) == 30 * 3  # 9 videos in steps of 4, 4 and 1
    assert json.loads((path / "config.json").read_text())["batch_size"] == 4
    assert cli(["train", "--resume", "--run", "tiny-b4", "--batch-size", "2"]) == 0  # the saved config wins


def test_an_epochs_video_order_depends_only_on_seed_and_epoch():
    from procl.train import epoch_videos

    videos = [f"v{i}" for i in range(7)]
    one = epoch_videos(videos, videos, 7, np.random.default_rng([0, 3]))
    assert sorted(one) == videos and one == epoch_videos(videos, videos, 7, np.random.default_rng([0, 3]))
    assert one != epoch_videos(videos, videos, 7, np.random.default_rng([0, 4]))
    # 2 ranks holding 4 and 3 videos: each keeps the epoch's order, the smaller repeats its first
    mine = epoch_videos(videos, ["v0", "v2", "v4", "v6"], 4, np.random.default_rng([0, 3]))
    theirs = epoch_videos(videos, ["v1", "v3", "v5"], 4, np.random.default_rng([0, 3]))
    assert mine == [v for v in one if v in ("v0", "v2", "v4", "v6")]
    assert theirs == [v for v in one if v in ("v1", "v3", "v5")] + [theirs[0]]


def test_run_folder_contract(trained):
    for name in ("config.json", "status.json", "model.pt", "states.npz", "selected.json",
                 "metrics.json", "predictions.csv"):
        assert (trained / name).is_file(), name
    assert not list(trained.glob("*.tmp")) and not list(trained.glob(".*.tmp"))
    state = torch.load(trained / "model.pt", weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    config = json.loads((trained / "config.json").read_text())
    assert config["features"]["backbone"] == "default" and config["features"]["fingerprint"]
    selected = json.loads((trained / "selected.json").read_text())
    assert all(len(s) == 3 for unit in selected.values() for s in unit.values())
    df = pd.read_csv(trained / "predictions.csv")
    assert list(df.columns[: len(PREDICT_COLUMNS)]) == PREDICT_COLUMNS
    video = df["video"].iloc[0]
    o = runs.load_outputs(trained, video)
    assert o["alpha"].shape[1] == 49 and o["p"].shape[1] == TINY["M"]
    assert len(o["states"]) == (df["video"] == video).sum()
    np.testing.assert_allclose(o["alpha"].astype(float).sum(1), 1.0, atol=1e-2)


def test_evaluate_json_and_predict_csv(env, trained, capsys, tmp_path):
    assert cli(["evaluate", "--run", "tiny", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["annotated"] is True
    assert cli(["evaluate", "--run", "tiny"]) == 0
    table = capsys.readouterr().out
    assert "not annotated" not in table
    assert re.search(r"^uniform +[\d.]+ +[\d.]+ +[\d.]+", table, re.M) and "k equal parts" in table
    for key in ("recall", "precision", "f1", "accuracy", "per_task", "edit", "f1_at"):
        assert key in out
    assert set(out["f1_at"]) == {"10", "25", "50"} and all(0 <= v <= 1 for v in out["f1_at"].values())
    assert 0 <= out["edit"] <= 1
    m = json.loads((trained / "metrics.json").read_text())
    assert out["f1"] == pytest.approx(m["f1"])  # same split, same model, same numbers
    # equal cuts on the same videos, beside the run: the bench's Uniform baseline, same protocol
    dataset, features = load_inputs(TrainConfig(dataset=env["spec"], **TINY).resolved(), progress=False)
    bench_uniform = baselines.run_baselines(dataset, features, k=TINY["k"], split="test", names=("uniform",))
    assert out["uniform"]["f1"] == pytest.approx(bench_uniform["uniform"]["f1"])
    assert out["uniform"]["edit"] == pytest.approx(bench_uniform["uniform"]["edit"])
    assert "accuracy" not in out["uniform"], "equal cuts are told each video's task"
    assert m["uniform"] == out["uniform"], "metrics.json keeps the same reference"
    csv = tmp_path / "pred.csv"
    from procl import names

    config = runs.read_config(trained)
    stored = pd.read_csv(trained / "predictions.csv")
    stored = stored[(stored["split"] == "test") & (stored["state"] >= 0)]
    named = int(stored["state"].mode()[0])  # the key-step state most predicted in the test split
    names.set_name(trained, config, stored.loc[stored["state"] == named, "task"].iloc[0], named, "loosen nuts")
    assert cli(["predict", "--run", "tiny", "--dataset", env["spec"], "--split", "test", "--out", str(csv)]) == 0
    (trained / "names.json").unlink()
    df = pd.read_csv(csv, keep_default_na=False)
    assert list(df.columns) == PREDICT_COLUMNS and PREDICT_COLUMNS[-1] == "name", "name comes after the others"
    assert (df["state"] == named).any() and (df.loc[df["state"] == named, "name"] == "loosen nuts").all()
    assert (df.loc[df["state"] != named, "name"] == "").all()
    assert (df.groupby("video")["frame"].apply(lambda f: (np.diff(f) == 1).all())).all()
    assert np.allclose(df[df.frame == 1]["time"], 0.5)  # 2 fps samples
    # --segments: the same predictions, one row per segment, with the names
    names.set_name(trained, config, stored.loc[stored["state"] == named, "task"].iloc[0], named, "loosen nuts")
    seg_csv = tmp_path / "segments.csv"
    assert cli(["predict", "--run", "tiny", "--dataset", env["spec"], "--split", "test", "--segments",
                "--out", str(seg_csv)]) == 0
    (trained / "names.json").unlink()
    segs = pd.read_csv(seg_csv, keep_default_na=False)
    assert list(segs.columns) == SEGMENT_COLUMNS
    assert segs.groupby("video")["frames"].sum().to_dict() == df.groupby("video").size().to_dict()
    assert (segs.loc[segs["state"] == named, "name"] == "loosen nuts").all()
    first = segs.groupby("video").first()
    assert (first["start"] == 0.0).all()
    assert np.allclose(segs.groupby("video")["end"].last(), df.groupby("video")["time"].last() + 0.5)


def test_train_says_when_single_suits_a_one_task_dataset(env, capsys):
    """Recordings of one procedure: `train` keeps its default (multi) but says what single does."""
    from procl import words
    from procl.config import suggested_setting

    assert (suggested_setting(1), suggested_setting(2)) == ("single", "multi")
    spec = f"actseg:{SAMPLES / 'breakfast_coffee'}"  # one task, precomputed features
    tiny = ["--k", "2", "--M", "4", "--width", "8", "--epochs", "1"]
    assert cli(["train", "--dataset", spec, *tiny, "--run", "one-multi"]) == 0
    assert f"note: {words.ONE_TASK_NOTE} (--setting single)" in capsys.readouterr().err
    assert cli(["train", "--dataset", spec, *tiny, "--setting", "single", "--run", "one-single"]) == 0
    assert words.ONE_TASK_NOTE not in capsys.readouterr().err


def test_evaluate_says_when_a_run_is_not_annotated(env, tiny_unannotated, capsys):
    train(TrainConfig(dataset=f"folder:{tiny_unannotated}", k=3, M=8, epochs=1, width=8), run="own",
          progress=False)
    assert cli(["evaluate", "--run", "own", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["annotated"] is False and out["f1"] is None and out["accuracy"] is not None
    assert "uniform" not in out, "no equal cuts to score without ground truth"
    assert cli(["evaluate", "--run", "own"]) == 0
    table = capsys.readouterr().out
    assert "not annotated" in table and "task names" in table and "uniform" not in table


def test_help_speaks_to_users(capsys):
    with pytest.raises(SystemExit):
        cli(["--help"])
    text = capsys.readouterr().out
    assert "typical use" in text and "train --dataset synthetic --k 7" in text
    assert "wires sub-commands" not in text, "the help speaks to users, not to developers"


def test_single_task_setting(env):
    path = train(TrainConfig(dataset=env["spec"], setting="single", k=3, M=6, epochs=1, width=16),
                 run="tiny-single", progress=False)
    m = json.loads((path / "metrics.json").read_text())
    assert m["split"] == "all" and m["accuracy"] == 1.0  # the task is given
    assert len(json.loads((path / "selected.json").read_text())) == 3  # one network per task


def test_automatic_epochs_add_steps_for_the_classifier_only():
    """Multi-task small data trains longer (min_steps, for the task classifier); single-task
    has no classifier and trains the default epochs; --epochs wins over both."""
    multi, single = TrainConfig(k=3).resolved(), TrainConfig(k=3, setting="single").resolved()
    assert multi.epochs_for(5) == 320 and multi.epochs_for(200) == 20
    assert single.epochs_for(5) == 20
    assert dataclasses.replace(single, epochs=7).epochs_for(5) == 7


def test_default_recipe_resolves_levers_by_region_grid(env, tmp_path):
    """The default recipe's time weight is 2 on videos (a region grid) and 0 on precomputed
    [T, D] features (Lever.no_grid), decided when the features are read, for a run the CLI
    starts and for a job the app queues; a value given explicitly is kept."""
    from procl import jobs
    videos = json.loads((train(TrainConfig(dataset=env["spec"], setting="single", k=3, M=6, epochs=1, width=8),
                               run="grid-tw", progress=False) / "config.json").read_text())
    assert videos["time_weight"] == 2.0 and videos["features"]["R"] > 1
    coffee = f"actseg:{SAMPLES / 'breakfast_coffee'}"
    plain = TrainConfig(dataset=coffee, setting="single", k=3, M=8, epochs=1, width=8)
    nogrid = json.loads((train(plain, run="nogrid-tw", progress=False) / "config.json").read_text())
    assert nogrid["time_weight"] == 0.0 and nogrid["features"]["R"] == 1
    given = train(dataclasses.replace(plain, time_weight=1.5), run="nogrid-tw-given", progress=False)
    assert json.loads((given / "config.json").read_text())["time_weight"] == 1.5
    assert TrainConfig().resolved(grid=None).time_weight is None  # a queued job decides it when it trains
    queued = jobs.sweep_plan(plain, [3])[0][1]
    assert queued.time_weight is None and queued.M == 8


@pytest.mark.parametrize("change, message", [
    (dict(k=0), "k=0"), (dict(k=9, M=8), "k = 9 is larger than M = 8"), (dict(M=0), "M=0"),
    (dict(lam=-1.0), "lambda=-1.0"), (dict(epochs=0), "epochs=0"), (dict(setting="both"), "setting"),
    (dict(batch_size=0), "batch size 0 must be at least 1"),
])
def test_bad_settings_fail_before_any_work(env, change, message):
    checkpoints = Path(os.environ["PROCL_CHECKPOINTS"])
    before = set(os.listdir(checkpoints)) if checkpoints.exists() else set()
    with pytest.raises(ProclError, match=message):
        train(TrainConfig(dataset=env["spec"], **{**TINY, **change}), run="bad", progress=False)
    after = set(os.listdir(checkpoints)) if checkpoints.exists() else set()
    assert after == before


def test_task_with_too_few_training_videos(env, tiny_synth, tmp_path):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(tiny_synth, root)
    rows = [ln.split(",") for ln in (root / "split.csv").read_text().split()]
    first_task = sorted((root / "videos").iterdir())[0].name
    rows = [(v, "test" if v.startswith(first_task) else s) for v, s in rows]
    (root / "split.csv").write_text("".join(f"{v},{s}\n" for v, s in rows))
    with pytest.raises(ProclError, match="at least 2 per task"):
        train(TrainConfig(dataset=f"folder:{root}", **TINY), run="few", progress=False)
    assert not (Path(os.environ["PROCL_CHECKPOINTS"]) / "few").exists()


def test_nan_features_and_wrong_D(tmp_path, monkeypatch):
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path / "ck"))
    rng = np.random.default_rng(0)
    for D, name in ((8, "a"), (5, "b")):
        for task in ("t1", "t2"):
            d = tmp_path / name / "videos" / task
            d.mkdir(parents=True)
            for i in range(3):
                np.save(d / f"{name}{task}_{i}.npy", rng.normal(size=(20, D)).astype(np.float32))
    path = train(TrainConfig(dataset=f"folder:{tmp_path / 'a'}", k=2, M=4, epochs=1, width=8), run="a", progress=False)
    assert json.loads((path / "config.json").read_text())["features"]["R"] == 1
    with pytest.raises(ProclError, match="D=5"):
        cli_args = ["predict", "--run", "a", "--dataset", f"folder:{tmp_path / 'b'}", "--out", str(tmp_path / "x.csv")]
        from procl.cli import build_parser
        args = build_parser().parse_args(cli_args)
        args.func(args)
    bad = tmp_path / "a" / "videos" / "t1" / "at1_0.npy"
    arr = np.load(bad)
    arr[3, 2] = np.nan
    np.save(bad, arr)
    with pytest.raises(ProclError, match="NaN"):
        train(TrainConfig(dataset=f"folder:{tmp_path / 'a'}", k=2, M=4, epochs=1, width=8), run="n", progress=False)


def test_unknown_run_and_damaged_model(trained, tmp_path):
    with pytest.raises(ProclError, match="unknown run 'nope'"):
        load_run("nope")
    import shutil
    copy = Path(os.environ["PROCL_CHECKPOINTS"]) / "damaged"
    shutil.copytree(trained, copy)
    (copy / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ProclError, match="model.pt"):
        load_run("damaged")
    foreign = {"weight": torch.zeros(3)}
    torch.save(foreign, copy / "model.pt")
    with pytest.raises(ProclError, match="does not fit"):
        load_run("damaged")


def test_run_names_are_never_shared(env, trained):
    with pytest.raises(ProclError, match="already exists"):
        runs.create_run("tiny", {})
    with pytest.raises(ProclError, match="not allowed"):
        runs.create_run("../evil", {})


def test_cancel_then_resume_equals_uninterrupted(env, trained):
    """A stop between steps, then --resume, ends in the same model as one uninterrupted run."""
    seen = {"n": 0}

    def stop_after_first_epoch(info):
        if info.get("phase") == "train" and info["epoch"] == 1 and not seen["n"]:
            seen["n"] = 1
            runs.request_stop("resumed")

    path = train(TrainConfig(dataset=env["spec"], seed=0, **TINY), run="resumed", progress=False,
                 on_progress=stop_after_first_epoch)
    assert runs.read_status(path)["state"] == "cancelled"
    train(TrainConfig(), run="resumed", resume=True, progress=False)
    assert runs.read_status(path)["state"] == "done"
    a = torch.load(trained / "model.pt", weights_only=True)
    b = torch.load(path / "model.pt", weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_cancel_while_queued_is_honoured(env):
    """A job cancelled while it prepares (queued, STOP written) ends cancelled without training;
    resuming it afterwards trains it (the stop was for that attempt)."""
    cfg = TrainConfig(dataset=env["spec"], seed=0, k=3, M=8, epochs=1, width=8)
    path = runs.create_run("queued-cancel", {**dataclasses.asdict(cfg), "launched": True})
    runs.request_stop(path)
    train(TrainConfig(), run="queued-cancel", resume=True, progress=False)
    status = runs.read_status(path)
    assert status["state"] == "cancelled" and "before training" in status["error"]
    assert not (path / "model.pt").exists() and not (path / "resume.pt").exists()
    train(TrainConfig(), run="queued-cancel", resume=True, progress=False)
    assert runs.read_status(path)["state"] == "done" and not (path / "STOP").exists()


def test_kill_9_is_reported_and_resumable(env):
    envs = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "procl", "train", "--dataset", env["spec"], "--k", "3", "--M", "8",
         "--epochs", "30", "--width", "16", "--run", "killed"],
        env=envs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    path = Path(os.environ["PROCL_CHECKPOINTS"]) / "killed"
    deadline = time.time() + 120
    while time.time() < deadline:
        if (path / "resume.pt").exists():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = runs.read_status(path)
    assert status["state"] == "failed" and "resume" in status["error"]
    config = json.loads((path / "config.json").read_text())
    config["epochs"] = int(json.loads((path / "status.json").read_text())["epoch"]) + 1
    (path / "config.json").write_text(json.dumps(config))  # finish soon: one more epoch
    train(TrainConfig(), run="killed", resume=True, progress=False)
    assert runs.read_status(path)["state"] == "done"
    assert (path / "metrics.json").exists()


def test_task_decision_weighs_each_tasks_key_step_fit(env, trained):
    """predict_video: task probabilities are the (state) classifier's times exp(task_evidence * fit),
    fit = path_fit of the video decoded with that task's key-steps; the labels shown are the
    chosen task's; runs saved before the levers decide and decode as they did."""
    run = load_run("tiny")
    assert run.train_config.task_evidence == 2.0 and run.train_config.state_classifier  # the default recipe's
    dataset, features = load_inputs(run.train_config, progress=False)
    joint = predict_dataset(run, dataset, features)
    run.train_config = dataclasses.replace(run.train_config, task_evidence=0.0)
    alone = predict_dataset(run, dataset, features)
    dec = run.decoding("all")
    bg = dec.background_states if dec.background == "shared" else []
    changed = 0
    for a, j in zip(alone, joint):
        logp = np.log(np.maximum(a.p, 1e-30))
        biased = bias_background(logp, bg, dec.background_bias)  # the decoding's; the fit reads the plain p
        fit = np.array([path_fit(logp, decode_states(biased, (dec.order or run.selected["all"])[t], bg,
                                                     ordered=bool(dec.order)), bg) for t in run.units["all"]])
        want = a.task_probs * np.exp(2.0 * (fit - fit.max()))
        assert np.allclose(j.task_probs, want / want.sum(), atol=1e-6)
        assert j.pred_task == run.units["all"][int(j.task_probs.argmax())]
        changed += a.pred_task != j.pred_task
    assert changed < len(alone)  # the classifier still counts
    saved = json.loads((trained / "config.json").read_text())
    saved.pop("task_evidence"), saved.pop("background_bias"), saved.pop("state_classifier")
    old = config_from_saved(saved).resolved()
    assert (old.task_evidence, old.background_bias, old.state_classifier) == (0.0, 0.0, False)


def test_a_finished_run_decides_tasks_with_its_state_classifier(env, trained):
    """finish_run fits the state classifier on the training videos (task_head.npz); with the
    lever on, the task probabilities are its own (task evidence 0), else the network's."""
    assert (trained / "task_head.npz").exists()
    run = load_run("tiny")
    head = run.task_heads["all"]
    assert head.weight.shape == (len(run.units["all"]), run.train_config.M)
    dataset, features = load_inputs(run.train_config, progress=False)
    run.train_config = dataclasses.replace(run.train_config, task_evidence=0.0)
    for p in predict_dataset(run, dataset, features, split="test"):
        np.testing.assert_allclose(p.task_probs, np.exp(head.logprob(p.p)), atol=1e-5)  # p is saved as float32
    run.train_config = dataclasses.replace(run.train_config, state_classifier=False)
    net = run.nets["all"]
    for p in predict_dataset(run, dataset, features, split="test"):
        logits = net(torch.from_numpy(np.asarray(features.videos[p.video_id].feats, dtype=np.float32))[None]).logits[0]
        np.testing.assert_allclose(p.task_probs, torch.softmax(logits, 0).detach().numpy(), atol=1e-6)


def test_kept_medians_give_the_same_teacher_features_and_steps():
    """The teacher's pass and the training steps with each video's median computed once
    (video_medians, as the training loop keeps them) equal those that compute it anew,
    to the last bit: one video at a time and in padded batches (masked)."""
    import copy

    from procl.config import net_config
    from procl.model import ProcedureNet, pad_videos
    from procl.train import attention_features, batch_medians, train_step, video_medians

    cfg = TrainConfig(k=3, M=6, width=8).resolved()
    assert cfg.region_center, "the default recipe centres regions"
    torch.manual_seed(0)
    net = ProcedureNet(net_config(cfg, D=5, n_tasks=2))
    ys = {f"v{i}": torch.randn(7 + i, 9, 5) for i in range(4)}
    medians = video_medians(cfg, ys)
    assert all(m.is_contiguous() and m.shape == (1, 1, 9, 5) for m in medians.values())
    for batch in (1, 3):
        kept = attention_features(net, ys, list(ys), batch, medians=medians)
        anew = attention_features(net, ys, list(ys), batch)
        assert all(np.array_equal(kept[v], anew[v]) for v in ys)
    nets = {True: net, False: copy.deepcopy(net)}
    opts = {kept: torch.optim.RMSprop(n.parameters(), lr=1e-3) for kept, n in nets.items()}
    for ids in (["v0"], ["v1", "v3"]):
        y, mask = pad_videos([ys[v] for v in ids])
        r = torch.zeros(y.shape[:2], dtype=torch.int64)
        for kept in (True, False):
            torch.manual_seed(1)  # the same dropout
            median = batch_medians(medians, ids) if kept else None
            train_step(cfg, nets[kept], opts[kept], y, r, torch.zeros(len(ids), dtype=torch.int64), mask, median=median)
    assert all(torch.equal(a, b) for a, b in zip(nets[True].state_dict().values(), nets[False].state_dict().values()))
    assert video_medians(TrainConfig(recipe="paper").resolved(), ys) is None


def test_a_finished_run_merges_the_states_its_network_confuses(env, trained):
    """finish_run measures each task's state confusion on the training videos (decoding.json);
    the decoding lever merge_confused labels the confused states as one in the network's
    timeline (the teacher's stays subset selection's), and 0 decodes every state on its own."""
    run = load_run("tiny")
    dataset, features = load_inputs(run.train_config, progress=False)
    for task, states in run.selected["all"].items():
        for key in ("confusion", "contiguity"):
            C = run.decoding_states["all"][key][task]
            assert C.shape == (len(states), len(states))
            finite = C[np.isfinite(C)]
            assert len(finite) and (finite >= 0).all() and (key == "confusion" or (finite <= 1).all())
    low = 1e-3  # low enough that the tiny run's states merge
    run.train_config = dataclasses.replace(run.train_config, merge_confused=low)
    maps = run.decoding("all").merge
    assert maps and all(set(m.values()) <= set(m) for m in maps.values())
    merged = predict_dataset(run, dataset, features, split="all")
    run.train_config = dataclasses.replace(run.train_config, merge_confused=0.0)
    assert run.decoding("all").merge == {}
    apart = predict_dataset(run, dataset, features, split="all")
    changed = 0
    for m, a in zip(merged, apart):
        assert m.pred_task == a.pred_task
        np.testing.assert_array_equal(m.states, relabel(a.states, maps.get(a.pred_task, {})))
        np.testing.assert_array_equal(m.teacher, a.teacher)  # the teacher's labels are subset selection's
        absorbed = [s for s, rep in maps.get(m.pred_task, {}).items() if s != rep]
        assert not np.isin(m.states, absorbed).any()
        changed += int((m.states != a.states).sum())
    assert changed > 0
    # the run as saved decodes at its own threshold: predictions.csv holds no merged-away state
    frame = pd.read_csv(trained / "predictions.csv")
    saved = config_from_saved(runs.read_config(trained)).resolved().merge_confused
    for task, m in merge_maps(run.decoding_states["all"], run.selected["all"], saved).items():
        gone = [s for s, rep in m.items() if s != rep]
        assert not frame.loc[frame["pred_task"] == task, "state"].isin(gone).any()
