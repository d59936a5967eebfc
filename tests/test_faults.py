"""Faults and bad input (issue 20): each case ends in a clear message and exit 2, or is
repaired, and never loses what was written. Tiny data: the `tiny_synth` videos where
features are extracted, small precomputed-feature folders elsewhere."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from procl import ProclError, runs
from procl.cli import main as cli

TINY_TRAIN = ["--k", "2", "--M", "4", "--width", "8"]


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROCL_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return tmp_path


def feature_folder(root: Path, tasks: int = 2, videos: int = 4, T: int = 12, D: int = 6, seed: int = 0) -> str:
    """A folder dataset of precomputed [T, D] features (no extraction: fast); its spec."""
    rng = np.random.default_rng(seed)
    for t in range(tasks):
        d = root / "videos" / f"task{t}"
        d.mkdir(parents=True)
        for i in range(videos):
            np.save(d / f"t{t}_{i}.npy", (rng.normal(size=(T, D)) + t).astype(np.float32))
    return f"folder:{root}"


# ---------------------------------------------------------------- 1. damaged cached features

def test_a_damaged_cached_feature_file_is_extracted_again(env, tiny_synth):
    from procl.data import open_dataset
    from procl.features.cache import load_or_extract

    dataset = open_dataset(f"folder:{tiny_synth}", progress=False)
    first = load_or_extract(dataset, progress=False)
    folder = Path(first.manifest["cache_dir"])
    files = sorted(folder.glob("*.npz"))
    os.truncate(files[0], 1000)  # truncated: not a zip file any more
    data = bytearray(files[1].read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: bad CRC-32
    files[1].write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged") as seen:
        again = load_or_extract(dataset, progress=False)
    named = " ".join(str(w.message) for w in seen)
    assert files[0].name in named and files[1].name in named
    assert again.manifest["counts"]["extracted"] == 2
    for vid, vf in first.videos.items():
        np.testing.assert_array_equal(vf.feats, again.videos[vid].feats)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: no warning the third time
        assert load_or_extract(dataset, progress=False).manifest["counts"]["reused"] == len(first.videos)


def test_damaged_run_arrays_are_named(env, tmp_path):
    """states.npz, task_head.npz, outputs/*.npz: a damaged archive is a ProclError naming it."""
    run = tmp_path / "run"
    runs.save_states(run, {"all": np.zeros((4, 3), np.float32)}, {"all": {"a": [0, 1]}})
    (run / "states.npz").write_bytes((run / "states.npz").read_bytes()[:200])
    with pytest.raises(ProclError, match="states"):
        runs.load_states(run)


# ---------------------------------------------------------------- 2. absurd sampling rates, 5. seeds

@pytest.mark.parametrize("fps", ["inf", "nan", "1e9", "0", "-2"])
def test_absurd_fps_is_refused_at_once(env, tiny_synth, fps, capsys):
    assert cli(["features", "--dataset", f"folder:{tiny_synth}", "--fps", fps]) == 2
    assert "--fps" in capsys.readouterr().err
    assert not (env / "data" / "features").exists()


@pytest.mark.parametrize("seed", ["-1", str(2**40)])
def test_a_bad_seed_is_refused_before_the_run_folder_is_made(env, seed, capsys):
    spec = feature_folder(env / "feats")
    assert cli(["train", "--dataset", spec, *TINY_TRAIN, "--epochs", "1", "--seed", seed, "--run", "s"]) == 2
    assert f"seed {seed}" in capsys.readouterr().err
    assert not (env / "checkpoints" / "s").exists()


# ---------------------------------------------------------------- 6. names

@pytest.mark.parametrize("name", ["trail\n", "a\nb", "../x", ".hidden", "x" * 101])
def test_run_names_are_checked_whole(env, name, capsys):
    spec = feature_folder(env / "feats")
    assert cli(["train", "--dataset", spec, *TINY_TRAIN, "--epochs", "1", "--run", name]) == 2
    assert "is not allowed" in capsys.readouterr().err
    assert not (env / "checkpoints").exists() or not any((env / "checkpoints").iterdir())


def test_dataset_names_are_checked_whole():
    from procl.upload import check_dataset_name

    assert check_dataset_name("mine") == []
    assert check_dataset_name("mi\nne") and check_dataset_name("mine\n\n.x")


# ---------------------------------------------------------------- 5. text that is not UTF-8

def annotated_folder(root: Path) -> str:
    """`feature_folder` with key-step names, annotations and a split: every text file."""
    spec = feature_folder(root)
    for t in range(2):
        (root / "steps").mkdir(exist_ok=True)
        (root / "steps" / f"task{t}.txt").write_text("crack egg\nstir\n")
        (root / "annotations" / f"task{t}").mkdir(parents=True)
        for i in range(4):
            (root / "annotations" / f"task{t}" / f"t{t}_{i}.csv").write_text("1,0,2\n2,3,5\n")
    (root / "split.csv").write_text("".join(f"t{t}_{i},{'test' if i == 3 else 'train'}\n"
                                            for t in range(2) for i in range(4)))
    return spec


@pytest.mark.parametrize("damaged", ["steps/task0.txt", "annotations/task1/t1_2.csv", "split.csv"])
def test_text_that_is_not_utf8_is_named(env, damaged, capsys):
    spec = annotated_folder(env / "own")
    assert cli(["train", "--dataset", spec, *TINY_TRAIN, "--epochs", "1", "--run", "ok"]) == 0
    line = len((env / "own" / damaged).read_text().splitlines()) + 1
    with open(env / "own" / damaged, "ab") as fh:
        fh.write(b"caf\xe9\n")
    assert cli(["train", "--dataset", spec, *TINY_TRAIN, "--epochs", "1", "--run", "bad"]) == 2
    err = capsys.readouterr().err
    assert damaged.split("/")[-1] in err and "UTF-8" in err and f"line {line}" in err
    assert not (env / "checkpoints" / "bad").exists()


# ---------------------------------------------------------------- 5. absurd feature values

@pytest.mark.parametrize("video", ["t0_0", "t1_3"])  # a training video, a test video
def test_huge_finite_features_are_named(env, video, capsys):
    spec = feature_folder(env / "own")
    path = env / "own" / "videos" / f"task{video[1]}" / f"{video}.npy"
    arr = np.load(path)
    arr[2, 1] = 1e38
    np.save(path, arr)
    assert cli(["train", "--dataset", spec, *TINY_TRAIN, "--epochs", "1", "--run", "big"]) == 2
    err = capsys.readouterr().err
    assert f"{video}.npy" in err and "1e+38" in err
    assert not (env / "checkpoints" / "big").exists()


# ---------------------------------------------------------------- 5. a full disk

def test_a_full_disk_during_features_names_the_folder(env, tiny_synth, monkeypatch, capsys):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert cli(["features", "--dataset", f"folder:{tiny_synth}"]) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and str(env / "data" / "features") in err
    assert not list((env / "data" / "features").rglob("*.tmp"))  # no half-written file left behind


FULL_AFTER = """
import errno, os, sys
from procl.cli import main
real, n = os.fsync, [0]
def fsync(fd):
    n[0] += 1
    if n[0] > int(sys.argv[1]):
        raise OSError(errno.ENOSPC, "No space left on device")
    return real(fd)
os.fsync = fsync
sys.exit(main(sys.argv[2:]))
"""


def test_a_full_disk_during_training_names_the_folder_and_keeps_the_run(env, capsys):
    spec = feature_folder(env / "own")
    args = ["train", "--dataset", spec, *TINY_TRAIN, "--epochs", "3", "--run", "full"]
    proc = subprocess.run([sys.executable, "-c", FULL_AFTER, "12", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 2, proc.stderr
    run = env / "checkpoints" / "full"
    assert "no space left" in proc.stderr and str(run) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert runs.read_status(run)["state"] == "failed"  # readable: the last complete status
    assert cli(["train", "--run", "full", "--resume"]) == 0  # space freed: what was written is usable
    assert runs.read_status(run)["state"] == "done"


# ---------------------------------------------------------------- 4. the loss history after a resume

def test_resume_after_a_mid_epoch_kill_keeps_one_history(env):
    from procl.train import TrainConfig, train

    spec = feature_folder(env / "own")
    cfg = TrainConfig(dataset=spec, k=2, M=4, width=8, epochs=3)
    whole = runs.read_status(train(cfg, run="whole", progress=False))

    def kill_mid_epoch(info):  # a kill after 3 steps of the second epoch (a stop would wait for none)
        if info.get("phase") == "train" and info["epoch"] == 1 and info["step"] > info["steps"] // 3 + 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, run="killed", progress=False, on_progress=kill_mid_epoch)
    train(TrainConfig(), run="killed", resume=True, progress=False)
    resumed = runs.read_status(env / "checkpoints" / "killed")
    assert resumed["history"]["step"] == whole["history"]["step"]
    assert resumed["history"]["loss"] == whole["history"]["loss"]
    assert len(resumed["epoch_seconds"]) == 3


# ---------------------------------------------------------------- 7. a failed resume of a finished run

@pytest.mark.parametrize("damage", ["model.pt", "dataset", "task"])
def test_a_failed_resume_leaves_a_finished_run_as_it_was(env, damage, capsys):
    spec = feature_folder(env / "own")
    assert cli(["train", "--dataset", spec, *TINY_TRAIN, "--epochs", "2", "--run", "fin"]) == 0
    run = env / "checkpoints" / "fin"
    status = json.loads((run / "status.json").read_text())
    if damage == "model.pt":
        (run / "model.pt").write_bytes(b"junk")
    elif damage == "dataset":
        (env / "own").rename(env / "moved")
    else:
        (env / "own" / "videos" / "task0").rename(env / "elsewhere")
    capsys.readouterr()
    assert cli(["train", "--run", "fin", "--resume"]) == 2
    assert {"model.pt": "model.pt", "dataset": "own", "task": "now has the tasks task1"}[damage] \
        in capsys.readouterr().err
    assert runs.read_status(run)["state"] == "done"
    assert json.loads((run / "status.json").read_text())["history"] == status["history"]
    assert cli(["procedure", "--run", "fin"]) == 0  # still a finished run


# ---------------------------------------------------------------- 3. one writer per run folder

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_run_lock(env, tmp_path):
    run = runs.create_run("locked", {})
    assert (run / runs.MARKER).is_file() and not (run / runs.LOCK).exists()
    runs.lock_run("locked")
    assert (run / runs.LOCK).read_text().strip() == str(os.getpid())
    runs.unlock_run(run)
    assert not (run / runs.LOCK).exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / runs.LOCK).write_text(f"{sleeper.pid}\n")
        with pytest.raises(ProclError, match=f"in use by process {sleeper.pid}"):
            runs.lock_run(run)
        runs.unlock_run(run)  # not ours: left alone
        assert (run / runs.LOCK).read_text().strip() == str(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    (run / runs.LOCK).write_text(f"{_dead_pid()}\n")  # a stale lock: broken
    runs.lock_run(run)
    assert (run / runs.LOCK).read_text().strip() == str(os.getpid())
    assert sorted(p.name for p in run.iterdir() if "LOCK" in p.name) == ["LOCK"]


def test_two_resumes_of_one_run_one_wins(env):
    from procl.train import TrainConfig, train

    spec = feature_folder(env / "own", T=40)
    cfg = TrainConfig(dataset=spec, k=2, M=4, width=8, epochs=40)

    def interrupt(info):
        if info.get("phase") == "train" and info["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, run="kr2", progress=False, on_progress=interrupt)
    run = env / "checkpoints" / "kr2"
    assert not (run / runs.LOCK).exists()  # released on the way out
    envs = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-m", "procl", "train", "--run", "kr2", "--resume"], env=envs,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((p.wait(), p.stderr.read()) for p in procs)
    assert [rc for rc, _ in results] == [0, 2], results
    assert "is in use by process" in results[1][1] or "still running" in results[1][1]
    assert runs.read_status(run)["state"] == "done" and not (run / runs.LOCK).exists()


# ---------------------------------------------------------------- 8. writes only in run folders procl made

def test_writes_only_in_run_folders_procl_made(env, capsys):
    import shutil

    from procl.names import set_name

    spec = feature_folder(env / "own")
    assert cli(["train", "--dataset", spec, *TINY_TRAIN, "--epochs", "1", "--run", "mine"]) == 0
    run = env / "checkpoints" / "mine"
    foreign = env / "elsewhere" / "copy"
    shutil.copytree(run, foreign)
    (foreign / runs.MARKER).unlink()
    before = {p.name: p.stat().st_mtime_ns for p in foreign.iterdir()}
    capsys.readouterr()
    assert cli(["train", "--run", str(foreign), "--resume"]) == 2
    assert "not made by procl" in capsys.readouterr().err
    config = runs.read_config(foreign)
    with pytest.raises(ProclError, match="not made by procl"):
        set_name(foreign, config, "task0", 0, "crack")
    with pytest.raises(ProclError, match="not made by procl"):
        runs.request_stop(foreign)
    assert {p.name: p.stat().st_mtime_ns for p in foreign.iterdir()} == before  # nothing written there
    assert cli(["procedure", "--run", str(foreign)]) == 0  # read as before
    assert cli(["evaluate", "--run", str(foreign)]) == 0
    # a run of an older procl (no marker) under checkpoints/ is still written; one procl made, anywhere
    (run / runs.MARKER).unlink()
    assert cli(["train", "--run", "mine", "--resume"]) == 0
    set_name(run, config, "task0", 0, "crack")
    marked = env / "elsewhere" / "marked"
    shutil.copytree(env / "checkpoints" / "mine", marked)
    (marked / runs.MARKER).write_text("{}\n")
    set_name(marked, config, "task0", 1, "stir")


# ---------------------------------------------------------------- weights-only loading

class _Payload:
    """A pickle that would create a file when loaded."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_pickled_payloads_are_refused(env, tmp_path):
    import torch

    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "pwned"
    torch.save({"x": _Payload(target)}, run / "resume.pt")
    with pytest.raises(ProclError, match="resume.pt"):
        runs.load_torch(run / "resume.pt")
    np.savez(run / "states.npz", **{"centers/all": np.array([_Payload(target)], dtype=object)})
    (run / "selected.json").write_text("{}")
    with pytest.raises(ProclError, match="states"):
        runs.load_states(run)
    assert not target.exists()
