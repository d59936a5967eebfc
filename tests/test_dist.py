"""procl.dist, the distributed teacher and torchrun features: 2 gloo processes on this CPU."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TEST_LEVERS as LEVERS
from test_selection import procedure_states

from procl import ProclError, dist
from procl.bench.scale import compare_caches, features_command
from procl.cli import main as cli_main
from procl.decode import order_by_places, state_places, typical_order
from procl.features.cache import load_or_extract
from procl.selection import (
    background_over_time,
    fit_states,
    fit_states_distributed,
    pairwise_distances,
    subset_selection,
    subset_selection_distributed,
)

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- one process: no-op path, sharding, devices


def test_one_process_is_a_no_op():
    assert not dist.init_from_env("cpu")
    assert (dist.rank(), dist.world_size(), dist.is_main(), dist.is_distributed()) == (0, 1, True, False)
    t = torch.arange(3.0)
    s = dist.all_reduce_sum(t)
    assert torch.equal(s, t) and s is not t
    assert dist.all_gather_object({"a": 1}) == [{"a": 1}]
    dist.barrier()
    dist.check_same_settings({"anything": 1})
    assert dist.shard(["a", "b"]) == ["a", "b"]
    assert dist.main_first(lambda: 7, "x") == 7


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_shard_is_disjoint_deterministic_and_balanced(monkeypatch, world, weighted):
    items = [f"v{i}" for i in range(11)]
    weights = [1, 50, 3, 3, 40, 7, 2, 9, 30, 1, 5] if weighted else None
    monkeypatch.setattr(dist, "world_size", lambda: world)
    parts = []
    for r in range(world):
        monkeypatch.setattr(dist, "rank", lambda r=r: r)
        parts.append(dist.shard(items, weights))
        assert dist.shard(items, weights) == parts[-1]  # deterministic
    flat = [x for p in parts for x in p]
    assert sorted(flat) == sorted(items) and len(flat) == len(items)  # disjoint and complete
    assert all(p == sorted(p, key=items.index) for p in parts)  # order kept
    if weighted:
        loads = [sum(weights[items.index(x)] for x in p) for p in parts]
        assert max(loads) - min(loads) <= max(weights)
    with pytest.raises(ProclError, match=f"{world} ranks but only {world - 1} videos.*at most {world - 1}"):
        dist.shard(items[: world - 1], what="videos")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_gpu_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path))
    assert dist.resolve_device("auto") == torch.device("cpu") == dist.resolve_device("cpu")
    with pytest.raises(ProclError, match="not one of auto, cpu, cuda"):
        dist.resolve_device("tpu")
    for argv in (["features", "--dataset", "synthetic", "--device", "cuda"],
                 ["train", "--dataset", "synthetic", "--k", "3", "--device", "cuda"]):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert "--device cuda: no CUDA GPU is available" in err and "--device cpu" in err, err


# ---------------------------------------------------------------- the distributed teacher on 2 ranks


def _task_videos(seed: int, n_videos: int = 9, D: int = 6, M: int = 12):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(M, D)).astype(np.float32)
    videos = []
    for _ in range(n_videos):
        T = int(rng.integers(3, 40))
        videos.append((centers[rng.integers(0, M, T)] + rng.normal(size=(T, D))).astype(np.float32))
    return videos, centers


# (seed, k, rank 0's videos of the 9): uneven, interleaved, and rank 1 holding none of the task
SPLITS = [(0, 5, [0, 1, 2, 3, 4, 5, 6, 7]), (1, 12, [1, 3, 5, 7]), (2, 7, [0, 4, 8]),
          (3, 1, list(range(9))), (4, 6, [2])]


def _rank_worker(root: str, few: str) -> dict:
    """Rank r's side of the 2-rank tests that share one spawn (starting processes is
    the slow part): its share of each teacher case, a dataset with fewer videos than
    ranks, the training teacher's refresh, and a single-task training with a task of
    one video."""
    from procl.data import open_dataset

    me = dist.rank()
    out = {"selection": [], "kmeans": []}
    for seed, k, rank0 in SPLITS:
        videos, centers = _task_videos(seed)
        ids = [i for i in range(len(videos)) if (i in rank0) == (me == 0)]
        sel = subset_selection_distributed([videos[i] for i in ids], centers, k)
        out["selection"].append({"selected": sel.selected, "costs": sel.costs,
                                 "labels": {i: lab for i, lab in zip(ids, sel.labels)}})
    for seed, _, rank0 in SPLITS[:3]:
        videos, centers = _task_videos(seed)
        ids = [i for i in range(len(videos)) if (i in rank0) == (me == 0)]
        local = np.concatenate([videos[i] for i in ids]) if ids else np.zeros((0, centers.shape[1]), np.float32)
        warm = fit_states_distributed(local, len(centers), init=centers + 0.5, seed=seed)
        fresh = fit_states_distributed(local, len(centers), seed=seed)
        out["kmeans"].append({"warm": warm, "fresh": fresh})
    ds = open_dataset(f"folder:{root}")
    ds.videos = ds.videos[:1]
    try:
        load_or_extract(ds, progress=False)
    except ProclError as err:
        out["one_video"] = str(err)
    out["refresh"] = _refresh_case([v for i, v in enumerate(REFRESH_VIDEOS) if (i % 3 == 0) == (me == 0)])
    states, times = procedure_states(12)
    mine = [i for i in range(12) if (i % 4 == 0) == (me == 0)]  # 3 videos on rank 0, 9 on rank 1
    out["over_time"] = background_over_time(np.concatenate([states[i] for i in mine]),
                                            np.concatenate([times[i] for i in mine]), len(mine), M=6,
                                            distributed=True)
    from procl.train import TrainConfig, train

    try:  # the single-task setting with a task of 1 video: more ranks than its videos
        train(TrainConfig(dataset=f"folder:{few}", setting="single", k=2, M=4, epochs=1, width=8, device="cpu"),
              run="few", progress=False)
    except ProclError as err:
        out["few"] = str(err)
    return out


REFRESH_VIDEOS = [f"v{i:02d}" for i in range(15)]


def _refresh_case(ids: list[str]) -> dict:
    """Two warm-started teacher refreshes of a fixed network on fixed region features of 3
    tasks, with background states: `ids` are the videos this rank holds. (A cold start
    seeds k-means++ with a sample of each rank's frames, which depends on the split.)"""
    from procl.model import ProcedureNet
    from procl.train import TrainConfig, Unit, attention_features, net_config, refresh_teacher

    rng = np.random.default_rng(5)
    looks = rng.normal(scale=3.0, size=(12, 6))  # 3 per task, 3 shared by all
    ys, task_of = {}, {}
    for i, vid in enumerate(REFRESH_VIDEOS):
        T, task = int(rng.integers(6, 40)), i % 3
        which = np.where(rng.random(T) < 0.3, rng.integers(9, 12, T), 3 * task + rng.integers(0, 3, T))
        ys[vid] = torch.from_numpy((looks[which][:, None, :] + rng.normal(size=(T, 4, 6))).astype(np.float32))
        task_of[vid] = f"t{task}"
    cfg = TrainConfig(k=2, M=12, width=8, background="shared", background_threshold=0.5).resolved()
    torch.manual_seed(0)
    net = ProcedureNet(net_config(cfg, 6, 3))
    every = attention_features(net, ys, REFRESH_VIDEOS)
    frames = np.concatenate(list(every.values()))
    unit = Unit("all", ["t0", "t1", "t2"], list(ids), centers=frames[np.linspace(0, len(frames) - 1, 12).astype(int)])
    refresh_teacher(cfg, net, unit, ys, task_of, distributed=True)
    refresh_teacher(cfg, net, unit, ys, task_of, distributed=True)
    return {"centers": unit.centers, "background": unit.background, "selected": unit.selected,
            "labels": {v: unit.labels[v].numpy() for v in ids}}


@pytest.fixture(scope="module")
def rank_runs(tiny_synth, tmp_path_factory):
    data = tmp_path_factory.mktemp("ranks")
    few = data / "few"
    rng = np.random.default_rng(0)
    for task, n in (("t1", 1), ("t2", 3)):
        (few / "videos" / task).mkdir(parents=True)
        for i in range(n):
            np.save(few / "videos" / task / f"{task}_{i}.npy", rng.normal(size=(12, 5)).astype(np.float32))
    results = dist.spawn(_rank_worker, 2, args=(str(tiny_synth), str(few)), timeout=120,
                         env={"PROCL_DATA": str(data), "PROCL_CHECKPOINTS": str(data / "checkpoints")})
    return [r.get() for r in results]


def test_distributed_background_over_time_equals_one_process(rank_runs):
    """Each rank holds fewer videos than tenths (3 and 9): the counts, videos included, are
    summed over the ranks before the rule decides, as one process with all 12 does."""
    states, times = procedure_states(12)
    one = background_over_time(np.concatenate(states), np.concatenate(times), 12, M=6)
    assert one == [4]
    assert [run["over_time"] for run in rank_runs] == [one, one]


def test_distributed_selection_equals_one_process(rank_runs):
    for case, (seed, k, _) in enumerate(SPLITS):
        videos, centers = _task_videos(seed)
        one = subset_selection(videos, centers, k)
        labels = {}
        for run in rank_runs:
            got = run["selection"][case]
            assert got["selected"] == one.selected, (seed, k)  # same states, same order, on every rank
            np.testing.assert_allclose(got["costs"], one.costs, rtol=1e-6)  # float32 distances
            labels.update(got["labels"])
        assert sorted(labels) == list(range(len(videos)))  # every video labelled once, where it lies
        for i, lab in labels.items():
            np.testing.assert_array_equal(lab, one.labels[i])
        # and the one-process selection is the plain greedy of Eq. 2 on the whole task
        assert subset_selection_distributed(videos, centers, k).selected == one.selected


def test_distributed_kmeans_is_identical_on_ranks_and_matches_one_process(rank_runs):
    for case, (seed, _, _) in enumerate(SPLITS[:3]):
        videos, centers = _task_videos(seed)
        a, b = (run["kmeans"][case] for run in rank_runs)
        np.testing.assert_array_equal(a["warm"], b["warm"])  # bitwise the same on both ranks
        np.testing.assert_array_equal(a["fresh"], b["fresh"])
        # the 2-rank Lloyd refresh = the one-process one on the concatenated frames
        one = fit_states_distributed(np.concatenate(videos), len(centers), init=centers + 0.5, seed=seed)
        np.testing.assert_allclose(a["warm"], one, atol=1e-5)
        assert np.isfinite(a["fresh"]).all() and a["fresh"].shape == centers.shape


def test_the_training_teachers_refresh_on_2_ranks_equals_one_process(rank_runs):
    """k-means, background states (all-reduced counts), subset selection and pseudo-labels
    of the training loop's refresh: 2 ranks holding 10 and 5 of the videos compute what
    one process computes on all of them with the same (distributed) algorithms."""
    one = _refresh_case(REFRESH_VIDEOS)
    assert one["background"], "the case has background states"
    labels = {}
    for run in rank_runs:
        got = run["refresh"]
        np.testing.assert_allclose(got["centers"], one["centers"], atol=1e-5)  # float64 sums, another order
        assert got["background"] == one["background"] and got["selected"] == one["selected"]
        labels.update(got["labels"])
    np.testing.assert_array_equal(rank_runs[0]["refresh"]["centers"], rank_runs[1]["refresh"]["centers"])
    assert sorted(labels) == REFRESH_VIDEOS
    for vid, lab in labels.items():
        np.testing.assert_array_equal(lab, one["labels"][vid])


def test_typical_order_from_places_gathered_in_any_order():
    rng = np.random.default_rng(0)
    selected = [4, 1, 7, 2]
    labels = [rng.choice([1, 2, 4, 7, 9], size=int(rng.integers(1, 30))) for _ in range(11)]
    labels.append(np.full(5, 9))  # a video showing none of them
    places = [state_places(lab, selected) for lab in labels]
    assert all(len(p) <= len(selected) for p in places)  # k numbers per video at most
    halves = places[1::2] + places[::2]  # what 2 ranks holding alternate videos gather
    assert order_by_places(halves, selected) == typical_order(labels, selected)
    assert typical_order([np.array([7, 7, 1, 1])], selected) == [7, 1, 4, 2]  # absent states last, in order


def test_more_ranks_than_a_tasks_videos_in_the_single_task_setting(rank_runs):
    for run in rank_runs:
        assert "2 ranks but only 1 videos of task 't1'" in run["few"] and "at most 1 processes" in run["few"], run


def test_lloyd_refresh_replaces_the_minibatch_refresh():
    """World size 1: warm-started, never worse than its start, and state m stays state m."""
    rng = np.random.default_rng(0)
    true = rng.normal(scale=4.0, size=(8, 5)).astype(np.float32)
    X = (true[rng.integers(0, 8, 4000)] + rng.normal(size=(4000, 5))).astype(np.float32)
    init = true + rng.normal(scale=0.5, size=true.shape).astype(np.float32)

    def inertia(c):
        return float(np.square(pairwise_distances(X, c).min(1)).mean())

    lloyd = fit_states_distributed(X, 8, init=init)
    minibatch = fit_states(X, 8, init=init)
    assert inertia(lloyd) <= inertia(init) and inertia(lloyd) <= inertia(minibatch) * 1.01
    assert (pairwise_distances(lloyd, true).argmin(1) == np.arange(8)).all()
    with pytest.raises(ProclError, match="M=9000 latent states need at least 9000"):
        fit_states_distributed(X, 9000)


# ---------------------------------------------------------------- failures: a dead rank, different settings


def _dies_worker(mode: str) -> str:
    if dist.rank() == 1:
        if mode == "dies":
            os._exit(3)
        time.sleep(60)  # hangs: the parent kills it after rank 0 gave up
    if mode == "dies":
        dist.all_reduce_sum(torch.ones(2), what="summing the candidate costs")
    else:
        dist.barrier("the end of the extraction")
    return "no error"


@pytest.mark.parametrize("mode", ["dies", "hangs"])
def test_a_dead_or_hung_rank_stops_the_others_with_a_message(mode):
    start = time.monotonic()
    results = dist.spawn(_dies_worker, 2, args=(mode,), timeout=60, env={dist.TIMEOUT_ENV: "3"}, grace=1.0)
    assert time.monotonic() - start < 45  # bounded (the test's own limit; no timing is asserted beyond it)
    zero = results[0]
    assert zero.error and "rank 0 of 2" in zero.error, zero
    if mode == "dies":
        assert "summing the candidate costs failed: another rank stopped" in zero.error
        assert results[1].exitcode == 3
    else:
        assert "the end of the extraction" in zero.error and "Ranks 1 failed" in zero.error  # names it
        assert "within 3 s" in zero.error


def _env(tmp: Path, rank: int, world: int, port: int) -> dict:
    return {**os.environ, "PROCL_DATA": str(tmp), "RANK": str(rank), "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port), dist.TIMEOUT_ENV: "30", "PYTHONPATH": str(ROOT)}


def test_ranks_started_with_different_settings_get_a_clear_message(tiny_synth, tmp_path):
    port = dist.free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "procl", "features", "--dataset", f"folder:{tiny_synth}",
                               "--fps", fps], env=_env(tmp_path, r, 2, port), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r, fps in enumerate(["2", "1"])]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 2, err
        assert "rank 1 was started with different feature settings than rank 0" in err, err
        assert "fps: 1.0 on rank 1, 2.0 on rank 0" in err, err
    assert not list(tmp_path.rglob("*.npz"))  # nothing was extracted


def test_more_ranks_than_videos_is_a_clear_message(rank_runs):
    for run in rank_runs:
        assert "2 ranks but only 1 videos in folder:" in run["one_video"], run["one_video"]
        assert "start at most 1 processes" in run["one_video"]


# ---------------------------------------------------------------- torchrun -m procl features


def test_torchrun_features_equals_one_process_and_redoes_a_killed_ranks_videos(tiny_synth, tmp_path, monkeypatch):
    spec = f"folder:{tiny_synth}"
    from procl.data import open_dataset

    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "one"))
    ds = open_dataset(spec)
    one = load_or_extract(ds, progress=False)
    folder_one = Path(one.manifest["cache_dir"])

    env = {**os.environ, "PROCL_DATA": str(tmp_path / "two"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(features_command(spec, 2), env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "12 extracted, 0 reused, 0 skipped by 2 processes" in done.stdout
    assert done.stdout.count("dataset:") == 1  # rank 0 prints, once
    folder_two = tmp_path / "two" / folder_one.relative_to(tmp_path / "one")
    assert compare_caches(folder_one, folder_two) == []

    # A run whose rank 1 was killed: rank 0's part lists its videos, rank 1 left nothing
    # and no manifest.json was written. The rerun reuses rank 0's videos, redoes rank 1's.
    manifest = json.loads((folder_two / "manifest.json").read_text())
    kept = sorted(manifest["videos"])[::2]
    part = {**manifest, "videos": {v: manifest["videos"][v] for v in kept}, "run": "killed"}
    (folder_two / "manifest.part-0.json").write_text(json.dumps(part))
    (folder_two / "manifest.json").unlink()
    for vid, entry in manifest["videos"].items():
        if vid not in kept:
            (folder_two / entry["file"]).unlink()
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "two"))
    again = load_or_extract(open_dataset(spec), progress=False)
    assert again.manifest["counts"] == {"extracted": 12 - len(kept), "reused": len(kept), "skipped": 0}
    assert compare_caches(folder_one, folder_two) == []  # the parts are merged and removed
    shutil.rmtree(tmp_path / "two")


# ---------------------------------------------------------------- torchrun -m procl train

TRAIN = dict(k=3, M=8, width=16, device="cpu")
LEVER_OPTIONS = ["--region-center", "--attention-prior", "10", "--background", "shared", "--occupancy",
                 "--background-bias", "0", "--switch-cost", "1", "--no-ordered", "--task-evidence", "0",
                 "--time-weight", "0"]


def _train_worker(spec: str) -> dict:
    """Rank r's side of 2-rank trainings in one spawn: a run of 2 epochs; the same run
    stopped (STOP file) in its second epoch, then resumed; and a run whose rank 1 dies."""
    import procl.train as T
    from procl import runs
    from procl.train import TrainConfig, train

    cfg = TrainConfig(dataset=spec, epochs=2, **TRAIN)
    train(cfg, run="two", progress=False)
    asked = []

    def stop_in_the_second_epoch(info: dict) -> None:  # called on rank 0
        if info.get("phase") == "train" and info["epoch"] == 1 and not asked:
            asked.append(info["step"])
            runs.request_stop("stopped")

    stopped = train(cfg, run="stopped", progress=False, on_progress=stop_in_the_second_epoch)
    out = {"after_stop": runs.read_status(stopped) if dist.is_main() else None, "stopped_at": asked}
    train(TrainConfig(), run="stopped", resume=True, progress=False)
    if dist.rank() == 1:
        step = T.train_step

        def dies_at_its_third_step(*args, **kwargs):
            asked.append(1)
            if len(asked) == 3:
                os._exit(3)
            return step(*args, **kwargs)

        T.train_step = dies_at_its_third_step
    try:
        train(cfg, run="dies", progress=False)
    except ProclError as err:
        out["dies"] = str(err)
    return out


def test_two_ranks_train_stop_resume_and_survive_a_dead_rank(tiny_synth, tmp_path):
    spec = f"folder:{tiny_synth}"
    env = {"PROCL_DATA": str(tmp_path / "data"), "PROCL_CHECKPOINTS": str(tmp_path / "ck"), dist.TIMEOUT_ENV: "20"}
    results = dist.spawn(_train_worker, 2, args=(spec,), timeout=240, env=env, grace=15)
    zero = results[0].get()
    assert results[1].exitcode == 3
    ck = tmp_path / "ck"
    assert sorted(p.name for p in ck.iterdir()) == ["dies", "stopped", "two"]  # each run once, nothing half-made
    assert not [p for p in ck.rglob("*") if p.name.endswith(".tmp")]
    config = json.loads((ck / "two" / "config.json").read_text())
    assert config["processes"] == 2 and len(config["train_videos"]) == 9
    for name in ("config.json", "status.json", "model.pt", "resume.pt", "states.npz", "selected.json",
                 "decoding.json", "metrics.json", "predictions.csv"):
        assert (ck / "two" / name).is_file(), name
    status = json.loads((ck / "two" / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == status["steps"] == 2 * 10  # 5 videos per rank and epoch
    # the stop: asked for during the second epoch, seen by both ranks; the resumed run ends
    # in the model of the uninterrupted one
    assert zero["after_stop"]["state"] == "cancelled" and zero["after_stop"]["epoch"] == 1, zero["after_stop"]
    assert json.loads((ck / "stopped" / "status.json").read_text())["state"] == "done"
    a = torch.load(ck / "two" / "model.pt", weights_only=True)
    b = torch.load(ck / "stopped" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (ck / "two" / "decoding.json").read_text() == (ck / "stopped" / "decoding.json").read_text()
    # a rank that dies: the other stops with a message, and the run says why
    assert "rank 0 of 2: training step" in zero["dies"] and "another rank stopped" in zero["dies"], zero["dies"]
    dead = json.loads((ck / "dies" / "status.json").read_text())
    assert dead["state"] == "failed" and "another rank stopped" in dead["error"]


def test_torchrun_train_writes_its_run_once_and_scores_like_one_process(tiny_synth, tmp_path, monkeypatch):
    from procl import baselines
    from procl.evaluate import evaluate
    from procl.train import TrainConfig, load_inputs, train

    spec = f"folder:{tiny_synth}"
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path / "ck"))
    cfg = TrainConfig(dataset=spec, epochs=15, **TRAIN, **LEVERS)
    train(cfg, run="one", progress=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--monitor-interval", "0.2", "-m", "procl", "train", "--dataset", spec, "--k", "3", "--M", "8",
           "--width", "16", "--epochs", "15", "--device", "cpu", "--run-name", "two", *LEVER_OPTIONS]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(tmp_path / "ck" / "two")  # printed once, by rank 0
    assert done.stderr.count("student") == 1
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["one", "two"]
    assert not [p for p in (tmp_path / "ck").rglob("*") if p.name.endswith(".tmp")]
    assert json.loads((tmp_path / "ck" / "two" / "status.json").read_text())["state"] == "done"
    configs = [json.loads((tmp_path / "ck" / run / "config.json").read_text()) for run in ("one", "two")]
    assert {k: configs[0][k] for k in LEVERS} == {k: configs[1][k] for k in LEVERS} == LEVERS  # the same training
    one, two = evaluate("one", "all"), evaluate("two", "all")
    dataset, features = load_inputs(cfg.resolved(), progress=False)
    random = baselines.run_baselines(dataset, features, k=3, M=8, split="all", fit_split="all",
                                     names=("random",))["random"]["f1"]
    assert one["f1"] > random + 0.05 and two["f1"] > random + 0.05, (one["f1"], two["f1"], random)
    assert abs(one["f1"] - two["f1"]) < 0.2 and abs(one["accuracy"] - two["accuracy"]) <= 0.5


def test_train_ranks_started_with_different_settings_get_a_clear_message(tiny_synth, tmp_path):
    port = dist.free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "procl", "train", "--dataset", f"folder:{tiny_synth}",
                               "--k", k, "--M", "8", "--epochs", "1", "--device", "cpu"],
                              env={**_env(tmp_path, r, 2, port), "PROCL_CHECKPOINTS": str(tmp_path / "ck")},
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r, k in enumerate(["3", "2"])]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 2, err
        want = "rank 1 was started with different training settings than rank 0 (k: 2 on rank 1, 3 on rank 0)"
        assert want in err, err
    assert not (tmp_path / "ck").exists() and not (tmp_path / "features").exists()  # nothing was done


def test_training_scale_measures_batch_sizes(tiny_synth, tmp_path, monkeypatch):
    """The batch part in this process (the 1 against 2 processes part runs the commands that
    test_torchrun_train_... runs; here its command line is checked)."""
    from procl.bench.scale import train_arguments, training_scale
    from procl.cli import build_parser
    from procl.train import TrainConfig

    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path / "ck"))
    settings = dict(M=8, width=16, region_center=False, attention=False, switch_cost=0.5)
    out = training_scale(f"folder:{tiny_synth}", device="cpu", batch_sizes=(1, 4), epochs=1, nproc=1, k=3,
                         **settings)
    assert out["train_videos"] == 9 and out["frames_per_epoch"] > 9 and out["device_used"] == "cpu"
    for B in (1, 4):
        fig = out["batch"][B]
        assert fig["frames_per_s"] > 0 and fig["epoch_frames_per_s"] > 0 and 0 <= fig["f1"] <= 1, fig
    assert out["batch_speedup"] > 0 and out["processes"] == {"n": 1, "skipped": "one process only"}
    assert not (tmp_path / "ck").exists()  # the runs went to a temporary folder
    cfg = TrainConfig(dataset="synthetic", k=3, epochs=2, seed=1, device="cpu", **settings)
    args = build_parser().parse_args(train_arguments(cfg, 4, settings))
    parsed = TrainConfig(**{k: v for k, v in vars(args).items()
                            if k in TrainConfig.__dataclass_fields__ and v is not None})
    assert parsed == TrainConfig(**{**cfg.__dict__, "batch_size": 4})
