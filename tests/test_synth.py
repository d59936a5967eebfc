"""The built-in synthetic dataset: layout, formats, determinism, boxes, background, errors."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from procl import ProclError
from procl.data import scene, synth


def _videos(root: Path) -> list[Path]:
    return sorted((root / "videos").glob("*/*.mp4"))


def _segments(root: Path, task: str, video: str) -> list[tuple[int, float, float]]:
    with open(root / "annotations" / task / f"{video}.csv", newline="") as fh:
        return [(int(s), float(a), float(b)) for s, a, b in csv.reader(fh)]


def _boxes(root: Path, task: str, video: str) -> list[dict[str, str]]:
    with open(root / "boxes" / task / f"{video}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _tree(root: Path) -> dict[str, bytes]:
    """Every text file of a dataset (not the videos), by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".mp4"}


def test_layout_and_formats(tiny_synth: Path) -> None:
    root = tiny_synth
    tasks = [task for task, _ in scene.TASKS[:3]]
    folders = [synth.task_folder(t) for t in tasks]
    assert sorted(p.name for p in (root / "videos").iterdir()) == sorted(folders)
    videos = _videos(root)
    assert len(videos) == 12
    ids = [v.stem for v in videos]
    assert len(set(ids)) == len(ids)
    assert not list(root.parent.glob(".*partial")), "temporary folder left behind"

    meta = json.loads((root / "dataset.json").read_text())
    assert meta["arguments"]["seed"] == 0 and meta["arguments"]["frame_size"] == 112
    assert [t["name"] for t in meta["tasks"]] == tasks
    assert "boxes/<task>/<video>.csv" in (root / "README.md").read_text()

    split = dict(csv.reader(open(root / "split.csv", newline="")))
    assert sorted(split) == sorted(ids) and set(split.values()) == {"train", "test"}
    for folder in folders:
        assert sorted(split[i] for i in ids if i.startswith(folder)) == ["test", "train", "train", "train"]

    fps = meta["arguments"]["fps"]
    for task, folder in zip(tasks, folders):
        steps = (root / "steps" / f"{folder}.txt").read_text().splitlines()
        assert steps == dict(scene.TASKS)[task]
        for video in (root / "videos" / folder).glob("*.mp4"):
            assert video.stem.startswith(folder + "_")
            segments = _segments(root, folder, video.stem)
            duration = (len(_boxes(root, folder, video.stem))) / fps
            assert 8.0 - 1 / fps <= duration <= 12.0 + 1 / fps
            assert segments, f"{video.stem} has no key-step"
            previous_end = 0.0
            for step, start, end in segments:
                assert 1 <= step <= len(steps)
                assert previous_end <= start < end <= duration
                assert end - start >= synth.MIN_STEP_SECONDS - 1e-9
                previous_end = end
            assert len({s for s, _, _ in segments}) == len(segments), "a step occurs twice"


def test_opencv_reads_the_videos(tiny_synth: Path) -> None:
    for video in _videos(tiny_synth)[:3]:
        cap = cv2.VideoCapture(str(video))
        assert cap.isOpened(), video
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(4.0)
        assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 112
        assert int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 112
        cap.release()
        frames = _read_frames(video)
        assert len(frames) == len(_boxes(tiny_synth, video.parent.name, video.stem))
        assert frames[0].shape == (112, 112, 3)
        assert 20 < float(np.mean(frames[0])) < 235 and float(np.std(frames[0])) > 5


def test_h264_yuv420p(tiny_synth: Path) -> None:
    import subprocess

    import imageio_ffmpeg

    video = _videos(tiny_synth)[0]
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(video)],
                           capture_output=True, text=True)
    assert "h264" in probe.stderr and "yuv420p" in probe.stderr


def test_boxes_match_annotations(tiny_synth: Path) -> None:
    area_limit = 1 / 9 + 1e-6
    centres = []
    for video in _videos(tiny_synth):
        task = video.parent.name
        segments = _segments(tiny_synth, task, video.stem)
        rows = _boxes(tiny_synth, task, video.stem)
        frame_centres = []
        for i, row in enumerate(rows):
            t = float(row["time"])
            assert t == i / 4.0
            annotated = any(start <= t < end for _, start, end in segments)
            present = row["x0"] != ""
            assert present == annotated, f"{video.stem} frame {i}"
            if present:
                x0, y0, x1, y1 = (float(row[k]) for k in ("x0", "y0", "x1", "y1"))
                assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
                assert (x1 - x0) * (y1 - y0) <= area_limit
                frame_centres.append(((x0 + x1) / 2, (y0 + y1) / 2))
            else:
                assert row["y0"] == row["x1"] == row["y1"] == ""
        centres.append(np.mean(frame_centres, axis=0))
    # the region's place varies from video to video
    assert np.std(np.array(centres), axis=0).min() > 0.05


def _arguments(root: Path) -> dict:
    return json.loads((root / "dataset.json").read_text())["arguments"]


def test_key_step_pixels_sit_in_the_box(tiny_synth: Path) -> None:
    """A frame differs from the same scene without its key-step only inside the box."""
    cfg = synth.SynthConfig(**_arguments(tiny_synth))

    def renderer(with_steps: bool) -> scene.Renderer:
        rng = synth._video_rng(cfg, 1, 0)
        plan = synth.plan_video(cfg, 1, 0, rng)
        r = scene.Renderer(cfg, plan, rng)
        r.idle_hand = scene.Patch(r.box)  # an empty patch: hide the idle hand in both
        if not with_steps:
            r.plan = scene.VideoPlan(plan.video, plan.task, plan.n_frames, [])
        return r

    checked = 0
    with_step, without = renderer(True), renderer(False)
    for (a, box), (b, none) in zip(with_step.frames(), without.frames()):
        assert none is None
        diff = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 0
        if box is None:
            assert not diff.any()
            continue
        x0, y0, x1, y1 = box
        assert diff[y0:y1, x0:x1].any()
        diff[y0:y1, x0:x1] = False
        assert not diff.any()
        checked += 1
    assert checked > 0


def test_background_share(tiny_synth: Path) -> None:
    empty = total = 0
    for video in _videos(tiny_synth):
        rows = _boxes(tiny_synth, video.parent.name, video.stem)
        empty += sum(r["x0"] == "" for r in rows)
        total += len(rows)
    assert empty / total >= 0.30


def test_vocabulary_shares_steps_across_tasks() -> None:
    counts: dict[str, int] = {}
    for _, steps in scene.TASKS:
        assert 4 <= len(steps) <= 8 and len(set(steps)) == len(steps)
        for s in steps:
            counts[s] = counts.get(s, 0) + 1
    assert sorted(counts) == sorted(scene.STEP_OBJECTS), "every step needs exactly one object"
    assert sum(c >= 2 for c in counts.values()) >= 5
    shared_default = set(scene.TASKS[0][1]) & set(scene.TASKS[1][1])
    assert "pour water" in shared_default
    looks = [spec[:4] for spec in scene.STEP_OBJECTS.values()]
    assert len(set(looks)) == len(looks), "two steps look alike"
    for spec in scene.STEP_OBJECTS.values():
        assert spec.shape in scene.SHAPES and spec.pattern in scene.PATTERNS
        assert spec.action in scene.ACTIONS
        assert spec.colour1 in scene.COLOURS and spec.colour2 in scene.COLOURS


def test_same_seed_same_dataset(tiny_synth: Path, tmp_path: Path) -> None:
    arguments = _arguments(tiny_synth)
    again = synth.generate(tmp_path / "again", **arguments, progress=False, workers=2)
    assert _tree(again) == _tree(tiny_synth)
    for video in _videos(tiny_synth)[:2]:
        a = _read_frames(video)
        b = _read_frames(again / video.relative_to(tiny_synth))
        assert len(a) == len(b)
        assert max(np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, b)) < 1.0

    other = synth.generate(tmp_path / "other", **{**arguments, "seed": 1, "n_tasks": 1},
                           progress=False, workers=1)
    first = lambda root: (root / "annotations" / "make_coffee" / "make_coffee_000.csv").read_text()
    assert first(other) != first(tiny_synth)


@pytest.mark.parametrize("bad", [
    {"n_tasks": 0}, {"n_tasks": len(scene.TASKS) + 1}, {"videos_per_task": 0},
    {"frame_size": 100}, {"frame_size": 32}, {"fps": 0.0}, {"min_duration": 20.0, "max_duration": 10.0},
    {"min_duration": 2.0, "max_duration": 3.0}, {"region_frac": 0.5}, {"clutter": -1},
    {"noise": -0.1}, {"swap_rate": 1.0}, {"skip_rate": -0.1}, {"background": 0.95}, {"seed": -1},
    {"fps": "fast"}, {"n_tasks": 2.5},
])
def test_bad_arguments(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ProclError):
        synth.generate(tmp_path / "out", **{**_small(), **bad})
    assert not (tmp_path / "out").exists()


def _small(**kw) -> dict:
    return {"n_tasks": 1, "videos_per_task": 2, "frame_size": 64, "min_duration": 5.0,
            "max_duration": 5.0, "progress": False, "workers": 1, **kw}


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ProclError, match="not empty"):
        synth.generate(out, **_small())
    assert (out / "keep.txt").read_text() == "mine"
    calls = []
    synth.generate(out, **_small(on_progress=lambda done, total: calls.append((done, total))),
                   overwrite=True)
    assert calls == [(1, 2), (2, 2)]
    assert not (out / "keep.txt").exists() and (out / "dataset.json").is_file()


def test_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(synth, "_write_video", broken)
    with pytest.raises(RuntimeError):
        synth.generate(tmp_path / "out", **_small())
    assert list(tmp_path.iterdir()) == []


def test_ensure_synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    made = []

    def fake_generate(out: Path, **kwargs) -> Path:
        made.append(out)
        out.mkdir(parents=True)
        (out / "dataset.json").write_text("{}")
        return out

    monkeypatch.setattr(synth, "generate", fake_generate)
    root = synth.ensure_synthetic(progress=False)
    assert root == tmp_path / "data" / "synthetic" and made == [root]
    assert synth.ensure_synthetic(progress=False) == root and len(made) == 1

    (root / "dataset.json").unlink()
    (root / "stray.txt").write_text("?")
    with pytest.raises(ProclError, match="dataset.json"):
        synth.ensure_synthetic(progress=False)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    out = tmp_path / "cli"
    args = parser.parse_args(["--out", str(out), "--tasks", "2", "--videos-per-task", "1",
                              "--seed", "3", "--frame-size", "64", "--min-duration", "5",
                              "--max-duration", "6", "--clutter", "1", "--workers", "1"])
    assert synth.main(args) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(out) and "s" in printed[0]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["arguments"]["seed"] == 3 and meta["arguments"]["clutter"] == 1
    assert len(_videos(out)) == 2
