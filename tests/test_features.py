"""Feature pipeline: decoding and sampling, backbones, the cache, precomputed features."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from procl import ProclError
from procl.data.records import Dataset, VideoRecord
from procl.features import backbones, cache
from procl.features.backbones import get_backbone
from procl.features.cache import load_or_extract, measure_throughput, pool_superframes
from procl.features.video import iter_frames, probe, sample_frames
from procl.paths import SAMPLES

PANCAKE = SAMPLES / "flipping_a_pancake.mkv"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """An H.264 yuv420p mp4 of RGB uint8 frames [n, H, W, 3]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=16)
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def solid_frames(n: int, colour: tuple[int, int, int], size: int = 64) -> np.ndarray:
    """n frames of one colour with a white square moving one pixel per frame."""
    frames = np.empty((n, size, size, 3), np.uint8)
    frames[:] = colour
    for i in range(n):
        frames[i, 10:20, 10 + i : 20 + i] = 255
    return frames


def record(path: Path, vid: str | None = None, task: str = "t", **kw) -> VideoRecord:
    return VideoRecord(id=vid or path.stem, task=task, source=path, **kw)


def dataset(videos: list[VideoRecord], spec: str = "test:videos") -> Dataset:
    return Dataset(spec=spec, root=Path("."), videos=videos, tasks=sorted({v.task for v in videos}))


@pytest.fixture()
def data_env(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Three 64x64 10 fps clips of 3 s (6 samples at 2 fps), one per colour."""
    root = tmp_path_factory.mktemp("clips")
    return {name: write_video(root / f"{name}.mp4", solid_frames(30, c)) for name, c in COLOURS.items()}


# ---------------------------------------------------------------- decoding


def test_real_clip_is_sampled_at_2fps_by_timestamps():
    frames, times = sample_frames(PANCAKE)
    assert frames.shape == (21, 240, 426, 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(times, np.arange(21) * 0.5)
    frames224, times224 = sample_frames(PANCAKE, size=224)
    assert frames224.shape == (21, 224, 224, 3)
    np.testing.assert_array_equal(times, times224)
    # 30 fps: every frame of the 310 is one sample, the last at 309 / 30 s.
    all_frames, all_times = sample_frames(PANCAKE, fps=30)
    assert len(all_frames) == 310
    np.testing.assert_allclose(all_times[-1], 309 / 30)
    # the 2 fps sample at t is frame round(30 t) of the file
    np.testing.assert_array_equal(frames[3], all_frames[45])
    np.testing.assert_array_equal(frames[20], all_frames[300])


def test_probe_reads_the_header():
    info = probe(PANCAKE)
    assert (info["fps"], info["width"], info["height"]) == (30.0, 426, 240)
    assert info["duration"] == pytest.approx(10.33, abs=0.05)


def test_frames_are_rgb(tmp_path):
    path = write_video(tmp_path / "red.mp4", np.full((10, 64, 64, 3), COLOURS["red"], np.uint8))
    frames, times = sample_frames(path)
    assert frames.shape == (2, 64, 64, 3)  # 1 s at 2 fps
    r, g, b = frames[0, 32, 32].astype(int)
    assert r > 180 and g < 70 and b < 70


def test_streaming_chunks_cover_the_same_samples():
    frames, times = sample_frames(PANCAKE, size=64)
    chunks = list(iter_frames(PANCAKE, size=64, chunk=8))
    assert [len(c[0]) for c in chunks] == [8, 8, 5]
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), frames)
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), times)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_unreadable_file_is_an_error_naming_it(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(ProclError, match="broken.mp4"):
        sample_frames(path)
    with pytest.raises(ProclError, match="missing.mp4"):
        sample_frames(tmp_path / "missing.mp4")


def test_truncated_file_is_an_error(tmp_path, clips):
    data = clips["red"].read_bytes()  # index at the end: a cut file cannot be opened
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ProclError, match="cut.mp4"):
        sample_frames(path)
    # index first (faststart): it opens, then the stream ends well before its frame count
    noise = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    whole = tmp_path / "whole.mp4"
    writer = imageio_ffmpeg.write_frames(str(whole), (64, 64), fps=10, codec="libx264", pix_fmt_out="yuv420p",
                                         output_params=["-movflags", "+faststart"])
    writer.send(None)
    for frame in noise:
        writer.send(frame)
    writer.close()
    assert len(sample_frames(whole)[1]) == 8
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(ProclError, match=r"cut.mp4: truncated"):
        sample_frames(path)


# ---------------------------------------------------------------- backbones


@pytest.mark.parametrize("name,D", [("default", 36), ("vgg19", 512), ("resnet50", 2048), ("resnet18", 512)])
def test_backbone_shapes(name, D):
    model = get_backbone(name, "none")
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    out = model(frames)
    assert out.shape == (2, 49, D) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert model.D == D and model.grid == (7, 7)
    assert not model.net.training
    expected = backbones.WEIGHT_FREE if name == "default" else backbones.RANDOM
    assert model.weights == expected
    np.testing.assert_array_equal(get_backbone(name, "none")(frames), out)  # "random" is reproducible


def _offline(monkeypatch, tmp_path):
    """An empty torch hub cache and no network: torchvision's download raises URLError."""
    import urllib.error

    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []

    def no_network(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return calls


def test_offline_imagenet_weights_error_names_the_cache_and_the_alternatives(monkeypatch, tmp_path, capsys):
    calls = _offline(monkeypatch, tmp_path)
    with pytest.raises(ProclError) as err:
        get_backbone("vgg19")
    message = str(err.value)
    cache_dir = tmp_path / "torch" / "hub" / "checkpoints"
    for needed in (str(cache_dir), "vgg19-dcbb9e9d.pth", "Temporary failure in name resolution", "--weights PATH",
                   "--weights none", "--backbone default"):
        assert needed in message, needed
    url, dst, hash_prefix = calls[0]
    assert url == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "torchvision's own URL"
    assert dst == str(cache_dir / "vgg19-dcbb9e9d.pth") and hash_prefix == "dcbb9e9d", "into the cache, hash checked"
    with pytest.raises(ProclError, match="resnet50-0676ba61.pth"):
        get_backbone("resnet50", "imagenet")
    # the features command says the same and exits 2
    from procl.cli import main as cli

    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    write_video(tmp_path / "ds" / "videos" / "t" / "red.mp4", solid_frames(10, COLOURS["red"]))
    assert cli(["features", "--dataset", f"folder:{tmp_path / 'ds'}", "--backbone", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "resnet18-f37072fd.pth" in err and str(cache_dir) in err and "--weights PATH" in err
    with pytest.raises(ProclError, match="nope.pth"):
        get_backbone("resnet18", str(tmp_path / "nope.pth"))
    with pytest.raises(ProclError, match="default, vgg19, resnet50, resnet18"):
        get_backbone("alexnet")


def test_imagenet_weights_are_fetched_once_into_the_cache_with_progress(monkeypatch, tmp_path):
    import torch
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    net = torchvision.models.resnet18(weights=None)
    downloads = []

    def fake_download(url, dst, hash_prefix=None, progress=True):  # what torch.hub does, minus the network
        downloads.append(url)
        with torch.hub.tqdm(total=100, disable=not progress) as bar:
            bar.update(40)
            bar.update(60)
        torch.save(net.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    original = torch.hub.tqdm
    seen = []
    path = backbones.fetch_imagenet("resnet18", progress=False, on_progress=lambda d, t: seen.append((d, t)))
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth" and path.is_file()
    assert seen == [(40, 100), (100, 100)]
    model = get_backbone("resnet18")  # cached now: no second download
    assert downloads == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url]
    assert model.weights == backbones.IMAGENET
    torch.testing.assert_close(model.net.conv1.weight, net.conv1.weight)
    assert torch.hub.tqdm is original, "the progress hook is removed after the download"


def test_state_dict_file_is_loaded(tmp_path):
    import torch
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    model = get_backbone("resnet18", str(tmp_path / "r18.pth"))
    assert model.weights == str((tmp_path / "r18.pth").resolve())
    torch.testing.assert_close(model.net.conv1.weight, net.conv1.weight)
    with pytest.raises(ProclError, match="r18.pth"):
        get_backbone("vgg19", str(tmp_path / "r18.pth"))


def _changed_cells(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of the grid cells whose feature vectors differ."""
    return np.flatnonzero(np.abs(a - b).max(axis=-1) > 0.05)


def test_default_backbone_sees_one_cell_change_colour():
    model = get_backbone("default")
    frame = np.full((112, 112, 3), 128, np.uint8)
    other = frame.copy()
    other[52:60, 68:76] = (200, 40, 40)  # a red square inside cell (row 3, col 4)
    feats = model(np.stack([frame, other]))  # [2, 49, D]
    assert list(_changed_cells(feats[0], feats[1])) == [3 * 7 + 4]


def test_default_backbone_sees_small_object_and_motion_in_its_cell():
    model = get_backbone("default")
    still = np.full((3, 112, 112, 3), 128, np.uint8)
    still[:, 20:24, 84:88] = (40, 200, 40)  # a 4x4 px green object in cell (1, 5)
    moving = still.copy()
    moving[2, 20:24, 84:88] = 128
    moving[2, 21:25, 85:89] = (40, 200, 40)  # it moves by one pixel in the last frame
    a, b = model(still), model(moving)
    assert list(_changed_cells(a[2], b[2])) == [1 * 7 + 5]
    assert list(_changed_cells(a[1], b[1])) == []
    empty = model(np.full((1, 112, 112, 3), 128, np.uint8))[0]
    assert 1 * 7 + 5 in _changed_cells(empty, a[0])  # the small object itself shows
    # motion comes from the previous frame passed across calls
    np.testing.assert_allclose(model(moving[2:], prev=moving[1]), b[2:], atol=1e-5)


# ---------------------------------------------------------------- the cache


def test_cache_is_reused_and_rebuilt_when_a_source_changes(data_env, clips, monkeypatch):
    ds = dataset([record(p) for p in clips.values()])
    calls = []
    original = cache.get_backbone
    monkeypatch.setattr(cache, "get_backbone", lambda *a, **k: calls.append(a) or original(*a, **k))
    progress = []
    first = load_or_extract(ds, progress=False, on_progress=lambda d, t, v: progress.append((d, t, v)))
    assert first.manifest["counts"] == {"extracted": 3, "reused": 0, "skipped": 0}
    assert [p[:2] for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert first.R == 49 and first.D == 36 and first.grid == (7, 7)
    assert first.manifest["backbone"] == "default" and first.manifest["weights"] == "none (weight-free)"
    red = first.videos["red"]
    assert red.feats.shape == (6, 49, 36) and red.feats.dtype == np.float32
    np.testing.assert_allclose(red.times, np.arange(6) * 0.5)
    folder = Path(first.manifest["cache_dir"])
    assert folder.parent.parent == data_env / "data" / "features" and folder.name == "default-2fps"
    assert (folder / "manifest.json").is_file()
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]

    second = load_or_extract(ds, progress=False)
    assert len(calls) == 1  # no backbone built: nothing recomputed
    assert second.manifest["counts"] == {"extracted": 0, "reused": 3, "skipped": 0}
    assert second.manifest["fingerprint"] == first.manifest["fingerprint"]
    for vid in first.videos:  # what the first call returned is exactly what is read back
        np.testing.assert_array_equal(second.videos[vid].feats, first.videos[vid].feats)

    st = clips["green"].stat()
    os.utime(clips["green"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load_or_extract(ds, progress=False)
    assert third.manifest["counts"] == {"extracted": 1, "reused": 2, "skipped": 0}
    assert third.manifest["fingerprint"] != first.manifest["fingerprint"]
    np.testing.assert_array_equal(third.videos["green"].feats, first.videos["green"].feats)

    other_fps = load_or_extract(ds, fps=1.0, progress=False)
    assert other_fps.manifest["counts"]["extracted"] == 3 and other_fps.videos["red"].feats.shape[0] == 3
    assert Path(other_fps.manifest["cache_dir"]).name == "default-1fps"


def test_bad_video_is_skipped_and_the_others_kept(data_env, clips):
    bad = data_env / "bad.mp4"
    bad.write_bytes(clips["red"].read_bytes()[:300])
    ds = dataset([record(clips["red"]), record(bad), record(clips["blue"])])
    with pytest.warns(UserWarning, match="bad.mp4"):
        fs = load_or_extract(ds, progress=False)
    assert set(fs.videos) == {"red", "blue"}
    assert list(fs.skipped) == ["bad"] and "bad.mp4" in fs.skipped["bad"]
    assert fs.manifest["counts"] == {"extracted": 2, "reused": 0, "skipped": 1}
    again = load_or_extract(ds, progress=False)  # the failure is remembered until the file changes
    assert again.manifest["counts"] == {"extracted": 0, "reused": 2, "skipped": 1}

    with pytest.warns(UserWarning), pytest.raises(ProclError, match="no video"):
        load_or_extract(dataset([record(bad)], spec="test:bad-only"), progress=False)


def test_parallel_decoders_keep_the_order(tmp_path, clips, monkeypatch):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 50)
    paths = [clips["red"], bad, clips["blue"], clips["green"]]
    model = get_backbone("default")
    one = list(cache.extract_stream(paths, model))
    monkeypatch.setattr(cache, "decoder_threads", lambda: 3)
    three = list(cache.extract_stream(paths, model))
    assert [r.index for r in three] == [0, 1, 2, 3]
    assert [r.error is not None for r in three] == [False, True, False, False]
    for a, b in zip(one, three):
        if a.error is None:
            np.testing.assert_array_equal(a.feats, b.feats)
            np.testing.assert_array_equal(a.times, b.times)


def test_interrupted_extraction_keeps_finished_videos(data_env, clips, monkeypatch):
    ds = dataset([record(p) for p in clips.values()])
    real_write = cache._write_video
    written = []

    def write_once_then_interrupt(folder, rec, feats, times):
        if written:
            raise KeyboardInterrupt
        written.append(rec.id)
        return real_write(folder, rec, feats, times)

    monkeypatch.setattr(cache, "_write_video", write_once_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        load_or_extract(ds, progress=False)
    monkeypatch.setattr(cache, "_write_video", real_write)
    fs = load_or_extract(ds, progress=False)
    assert fs.manifest["counts"] == {"extracted": 2, "reused": 1, "skipped": 0}
    assert fs.manifest["videos"][written[0]]["T"] == 6


def test_superframes_average_the_frames_inside(data_env, clips):
    sf = np.array([[0.0, 1.2], [1.2, 1.3], [1.5, 3.0]])  # the middle one holds no sample
    ds = dataset([record(clips["red"], superframes=sf)])
    fs = load_or_extract(ds, progress=False)
    plain = load_or_extract(dataset([record(clips["red"])], spec="test:plain"), progress=False)
    f, v = fs.videos["red"], plain.videos["red"].feats  # samples at 0, 0.5, ..., 2.5
    np.testing.assert_allclose(f.times, [0.6, 1.25, 2.25])
    close = dict(rtol=2e-3, atol=2e-3)  # both went through float16 on disk
    np.testing.assert_allclose(f.feats[0], v[0:3].mean(0), **close)
    np.testing.assert_allclose(f.feats[1], v[2], **close)  # nearest sample to 1.25 is 1.0
    np.testing.assert_allclose(f.feats[2], v[3:6].mean(0), **close)
    assert not np.allclose(f.feats[0], f.feats[2], **close)


def test_pool_superframes_nearest_frame():
    feats = np.arange(4, dtype=np.float32).reshape(4, 1, 1)
    out, times = pool_superframes(feats, np.array([0.0, 1.0, 2.0, 3.0]), np.array([[1.6, 1.9], [0, 4]]))
    np.testing.assert_allclose(out.ravel(), [2.0, 1.5])
    np.testing.assert_allclose(times, [1.75, 2.0])


# ---------------------------------------------------------------- precomputed features


def test_precomputed_features_pass_through(data_env):
    rng = np.random.default_rng(0)
    flat, grid = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(4, 9, 5)).astype(np.float32)
    np.save(data_env / "a.npy", flat)
    np.savetxt(data_env / "b.txt", flat[:3])
    np.save(data_env / "c.npy", flat.T)  # [D, T]: oriented by the ground truth's rows
    np.save(data_env / "g.npy", grid)
    rec = lambda name, **kw: record(data_env / name, kind="features", feature_fps=2.0, **kw)  # noqa: E731
    fs = load_or_extract(dataset([rec("a.npy"), rec("b.txt"), rec("c.npy", frame_labels=np.zeros(7))]),
                         progress=False)
    assert fs.manifest["backbone"] == "precomputed" and fs.R == 1 and fs.D == 5
    np.testing.assert_array_equal(fs.videos["a"].feats[:, 0], flat)
    np.testing.assert_allclose(fs.videos["b"].feats[:, 0], flat[:3], rtol=1e-6)
    np.testing.assert_array_equal(fs.videos["c"].feats[:, 0], flat)
    np.testing.assert_allclose(fs.videos["a"].times, np.arange(7) / 2.0)
    assert not (data_env / "data").exists()  # read from the sources, never copied

    fs = load_or_extract(dataset([rec("g.npy")], spec="test:grid"), progress=False)
    np.testing.assert_array_equal(fs.videos["g"].feats, grid)
    assert fs.R == 9 and fs.grid == (3, 3)


@pytest.mark.parametrize("array", [np.full((3, 4), np.nan), np.zeros((3,)), np.zeros((2, 2, 2, 2)), np.zeros((0, 4))])
def test_bad_precomputed_features_are_an_error_naming_the_file(data_env, array):
    path = data_env / "broken_feats.npy"
    np.save(path, array.astype(np.float32))
    ds = dataset([record(path, kind="features", feature_fps=1.0)])
    with pytest.raises(ProclError, match="broken_feats.npy"):
        load_or_extract(ds, progress=False)


def test_breakfast_sample_passes_through():
    from procl.data import open_dataset

    ds = open_dataset(f"actseg:{SAMPLES / 'breakfast_coffee'}")
    fs = load_or_extract(ds, progress=False)
    assert fs.D == 64 and fs.R == 1 and len(fs.videos) == 5
    assert fs.videos["P08_webcam01_P08_coffee"].T == 271


# ---------------------------------------------------------------- throughput


def test_measure_throughput_reports_the_ratio(clips):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = measure_throughput(list(clips.values()), "default")
    assert out["frames"] == 18
    assert out["pipeline_fps"] > 0 and out["forward_fps"] > 0
    assert out["ratio"] == pytest.approx(out["pipeline_fps"] / out["forward_fps"])


def test_measure_throughput_times_each_pass_reps_times(clips, monkeypatch):
    from procl.features.backbones import get_backbone
    model = get_backbone("default", None)
    calls = []
    real = type(model).__call__
    monkeypatch.setattr(type(model), "__call__", lambda self, *a, **k: (calls.append(1), real(self, *a, **k))[1])
    measure_throughput(list(clips.values()), model)
    once = len(calls)
    calls.clear()
    out = measure_throughput(list(clips.values()), model, reps=3)
    assert len(calls) == 1 + 3 * (once - 1)  # one warm-up, then forward and pipeline 3 times each
    assert out["ratio"] == pytest.approx(out["pipeline_fps"] / out["forward_fps"])
