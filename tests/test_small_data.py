"""Small data (issue 8): a few videos per task, the default recipe and its automatic epochs.

A newcomer's own folder often holds a handful of videos per task. With the paper's 20
epochs such a set gets a few hundred optimizer steps and the network learns nothing: every
frame the same state, task probabilities flat. The default recipe trains on at least
`min_steps` videos; this test checks that what comes out is not collapsed (on a smaller
network and step budget than the default's, to stay fast; `procl bench` measures the
defaults on a 3 x 6 set).
"""
from __future__ import annotations

import numpy as np
import pytest

from procl import runs
from procl.data.synth import generate
from procl.train import TrainConfig, train


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    data = generate(root / "own", n_tasks=3, videos_per_task=6, seed=3, frame_size=112, min_duration=16.0,
                    max_duration=24.0, progress=False, workers=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROCL_DATA", str(root / "data"))
        mp.setenv("PROCL_CHECKPOINTS", str(root / "checkpoints"))
        path = train(TrainConfig(dataset=f"folder:{data}", k=5, width=32, min_steps=600), run="small", progress=False)
        yield path


def test_small_data_trains_enough_epochs(small_run):
    config = runs.read_config(small_run)
    videos = len(config["train_videos"])
    assert videos == 12  # 4 of 6 per task in the seeded 70/30 split
    assert config["epochs"] * videos >= config["min_steps"] > 20 * videos  # more than the paper's 20 epochs


def test_small_data_does_not_collapse(small_run):
    config = runs.read_config(small_run)
    outs = {v: runs.load_outputs(small_run, v) for v in config["train_videos"]}
    for vid, out in outs.items():
        key_states = set(out["states"][out["states"] >= 0].tolist())
        assert len(key_states) >= 2, f"{vid}: key-step states {key_states}"
        assert (out["states"] >= 0).mean() >= 0.15, f"{vid}: almost everything is background"
    probs = np.stack([o["task_probs"] for o in outs.values()])
    truth = [config["tasks"].index(v.rsplit("_", 1)[0]) for v in outs]  # ids are <task folder>_<nnn>
    assert (probs.argmax(1) == truth).mean() >= 0.8  # it classifies the videos it learned from
    assert probs.max(1).mean() >= 0.6  # and the probabilities are not flat
