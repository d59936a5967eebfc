"""Shared fixtures: a tiny built-in synthetic dataset, generated once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

from procl.config import RECIPES
from procl.data.synth import generate
from procl.paths import environment


def run_folders(root: Path):
    """PROCL_DATA and PROCL_CHECKPOINTS under `root` for the duration (a context manager):
    a test module's datasets, features and runs apart from everything else."""
    return environment(PROCL_DATA=str(root / "data"), PROCL_CHECKPOINTS=str(root / "checkpoints"))


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 tasks x 4 videos of 8-12 s at 112x112 (seed 0); the folder layout of docs/design.md."""
    return generate(tmp_path_factory.mktemp("synth") / "tiny", n_tasks=3, videos_per_task=4, seed=0,
                    frame_size=112, min_duration=8.0, max_duration=12.0, progress=False, workers=1)


# procl's levers as the tiny-set trainings of the tests were written with: every lever of
# the registry (procl.config), the default recipe's value unless fixed here (the default
# recipe's values are chosen on development sets and may change)
TEST_LEVERS = {**RECIPES["default"], **dict(
    region_center=True, attention_prior=10.0, background="shared", occupancy=True, switch_cost=1.0,
    background_bias=0.0, ordered=False, task_evidence=0.0, time_weight=0.0)}


@pytest.fixture(scope="session")
def tiny_unannotated(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The videos of `tiny_synth` alone: a folder dataset with no annotations, step names or split."""
    import shutil

    root = tmp_path_factory.mktemp("unannotated") / "own"
    shutil.copytree(tiny_synth / "videos", root / "videos")
    return root
