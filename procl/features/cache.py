"""The feature cache: region features of every video of a dataset, extracted once.

`load_or_extract(dataset, backbone, fps, weights)` returns a `FeatureSet`. For video
files it keeps a cache per (dataset, backbone, weights, fps) in

    data_dir()/features/<slug(spec)>/<backbone>-<fps>fps[-<weights tag>]/
        <video id>.npz    feats [T, R, D] float16 (float32 when a value exceeds float16's
                          range) and times [T] float64; float16 halves the disk of the
                          large CNN maps (VGG19: 100 KB per frame in float32) and its
                          3 significant digits are far below the features' noise;
                          values are converted back to float32 on load
        manifest.json     settings, R, D, grid, per-video source fingerprints (size,
                          mtime_ns, superframes), skipped videos and a dataset fingerprint

Every file is written atomically and the manifest every few seconds, so an interrupted
extraction keeps its finished videos, and a reader never sees a half-written file. A
video is reused while its source's size and mtime are unchanged and re-extracted
otherwise; a video that cannot be decoded is skipped with a warning (and not retried
until its file changes).

Decoding runs in background threads (one on a 2-core machine, up to 4 videos at once
on bigger ones), a few chunks of frames ahead of the backbone and on into the next
videos, so decoding and the forward pass overlap.

Under torchrun (procl.dist initialised, W > 1 ranks) each rank extracts its shard of
the videos (balanced by file size) into the same folder and lists what it finished in
its own `manifest.part-<rank>.json`; after a barrier rank 0 merges the parts into
manifest.json, written once, and removes them. The result is the cache one process
would write. A run that is killed leaves its parts: the next run (any number of
ranks) reuses the videos they list and redoes the others.

Precomputed features (records of kind "features") pass through unchanged: they are
read from their files on each call (no copy: CrossTask's are 18 GB) and the manifest
says backbone "precomputed".
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import queue
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from procl import ProclError, dist
from procl.data import open_dataset
from procl.data.records import Dataset, VideoRecord
from procl.data.specs import load_feature_array
from procl.features.backbones import NAMES, Backbone, available_cores, describe_weights, feature_dim, get_backbone
from procl.features.types import FeatureSet, VideoFeatures
from procl.features.video import check_fps, iter_frames, sample_frames
from procl.io import read_json, read_npz, write_json, write_npz
from procl.paths import data_dir, slug

# Bump when extraction changes what it writes: every cache is then rebuilt.
FEATURE_VERSION = 1
PRECOMPUTED = "precomputed"
_FLOAT16_MAX = 60000.0
MAX_FEATURE = 1e8  # the largest |value| of precomputed features (squared distances stay finite in float32)
_QUEUE_CHUNKS = 3  # decoded chunks waiting for the backbone, at most
_NOT_SOURCE = ("file", "T", "reason")  # manifest entry keys that do not describe the source
_MANIFEST_EVERY_S = 2.0  # rewrite the manifest at most this often during an extraction
_PARTS = "manifest.part-*.json"  # one per rank of a torchrun extraction, merged at its end

ProgressFn = Callable[[int, int, str], None]


# ---------------------------------------------------------------- fingerprints


def _source_entry(record: VideoRecord) -> dict:
    """What identifies a video's source: path, size, mtime and its superframes."""
    path = Path(record.source)
    stat = path.stat()
    entry = {"source": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if record.superframes is not None:
        sf = np.ascontiguousarray(record.superframes, dtype=np.float64)
        entry["superframes"] = hashlib.sha1(sf.tobytes()).hexdigest()[:16]
    if record.frame_labels is not None:
        entry["rows"] = len(record.frame_labels)
    return entry


def _fingerprint(settings: dict, entries: dict[str, dict]) -> str:
    """A hash over the settings and every (video id, source entry) that has features."""
    text = json.dumps({"settings": settings, "videos": entries}, sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _same_source(entry: dict | None, current: dict) -> bool:
    """Whether a manifest entry was made from the source `current` describes."""
    return entry is not None and {k: v for k, v in entry.items() if k not in _NOT_SOURCE} == current


# ---------------------------------------------------------------- superframes


def pool_superframes(
    feats: np.ndarray, times: np.ndarray, superframes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Average the frames inside each superframe: feats [T, R, D], times [T] -> [S, R, D], [S].

    A frame at time t is inside (start, end) when start <= t < end; a superframe with
    no frame inside takes the frame nearest to its centre. Times are the centres.
    """
    sf = np.asarray(superframes, dtype=np.float64).reshape(-1, 2)  # [S, 2]
    centres = sf.mean(axis=1)  # [S]
    lo = np.searchsorted(times, sf[:, 0], side="left")
    hi = np.searchsorted(times, sf[:, 1], side="left")
    nearest = np.abs(times[None, :] - centres[:, None]).argmin(axis=1)  # [S]
    out = np.empty((len(sf), *feats.shape[1:]), dtype=np.float32)
    for s in range(len(sf)):
        out[s] = feats[lo[s] : hi[s]].mean(axis=0) if hi[s] > lo[s] else feats[nearest[s]]
    return out, centres


# ---------------------------------------------------------------- precomputed features


def load_precomputed(record: VideoRecord) -> VideoFeatures:
    """The features of a record of kind "features": [T, D] -> [T, 1, D]; [T, R, D] kept.

    Raises ProclError naming the file for another rank, T == 0, NaN/inf, a value beyond
    MAX_FEATURE, or a missing `feature_fps`.
    """
    path = Path(record.source)
    arr = load_feature_array(record)  # [T, D] or [T, R, D] float32, rank and T checked
    if not np.isfinite(arr).all():
        raise ProclError(f"features {path} contain NaN or inf values: fix or remove the file")
    largest = float(np.abs(arr).max())
    if largest > MAX_FEATURE:
        raise ProclError(f"features {path} hold a value of magnitude {largest:.3g}; procl takes features up to "
                         f"{MAX_FEATURE:g} (larger ones overflow its distances): rescale or fix the file")
    if not record.feature_fps or record.feature_fps <= 0:
        raise ProclError(f"features {path}: no rows-per-second rate (feature_fps) for video {record.id}")
    feats = arr[:, None, :] if arr.ndim == 2 else arr  # [T, R, D]
    times = np.arange(len(feats), dtype=np.float64) / float(record.feature_fps)
    if record.superframes is not None:
        feats, times = pool_superframes(feats, times, record.superframes)
    return VideoFeatures(record.id, feats, times)


def _precomputed_set(dataset: Dataset, progress: bool, on_progress: ProgressFn | None) -> FeatureSet:
    videos: dict[str, VideoFeatures] = {}
    entries: dict[str, dict] = {}
    shapes: set[tuple[int, int]] = set()
    total = len(dataset.videos)
    for done, record in enumerate(tqdm(dataset.videos, desc="features", disable=not progress), 1):
        vf = load_precomputed(record)
        videos[record.id], entries[record.id] = vf, _source_entry(record)
        shapes.add(vf.feats.shape[1:])
        if on_progress is not None:
            on_progress(done, total, record.id)
    if len(shapes) > 1:
        raise ProclError(f"dataset {dataset.spec}: precomputed features of different shapes {sorted(shapes)}")
    R, D = shapes.pop()
    side = int(round(R**0.5))
    rates = sorted({float(v.feature_fps) for v in dataset.videos})
    settings = {"backbone": PRECOMPUTED, "version": FEATURE_VERSION}
    manifest = {
        "backbone": PRECOMPUTED,
        "weights": None,
        "fps": rates[0] if len(rates) == 1 else rates,
        "R": R,
        "D": D,
        "grid": [side, side] if R > 1 and side * side == R else None,
        "fingerprint": _fingerprint(settings, entries),
        "dataset": dataset.spec,
        "cache_dir": None,
        "counts": {"extracted": 0, "reused": len(videos), "skipped": 0},
    }
    return FeatureSet(videos, manifest)


# ---------------------------------------------------------------- extraction pipeline


@dataclass
class VideoResult:
    """One video through the pipeline: its features [T, R, D] float32 and times [T],
    or the error that made it unreadable."""

    index: int
    feats: np.ndarray | None = None
    times: np.ndarray | None = None
    error: str | None = None


@dataclass
class _Decoder:
    """A thread decoding its share of the videos, in order, into a bounded queue of
    (index, frames, times, error) items; frames None ends a video."""

    jobs: list[tuple[int, Path]]
    fps: float
    size: int
    chunk: int
    stop: threading.Event
    items: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=_QUEUE_CHUNKS))

    def start(self) -> "_Decoder":
        threading.Thread(target=self._run, name="procl-decoder", daemon=True).start()
        return self

    def _put(self, item: tuple) -> bool:
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        for index, path in self.jobs:
            try:
                for frames, times in iter_frames(path, fps=self.fps, size=self.size, chunk=self.chunk):
                    if not self._put((index, frames, times, None)):
                        return
                item = (index, None, None, None)
            except ProclError as err:
                item = (index, None, None, str(err))
            except Exception as err:  # noqa: BLE001 - a decoder crash is this video's failure
                item = (index, None, None, f"video {path}: {type(err).__name__}: {err}")
            if not self._put(item):
                return


def decoder_threads() -> int:
    """Videos decoded at once: one on a small machine (the backbone needs the other
    cores), up to 4 where there are cores to spare (a GPU backbone outruns one decoder)."""
    return max(1, min(4, available_cores() // 2))


def extract_stream(paths: Sequence[Path], backbone: Backbone, fps: float = 2.0) -> Iterator[VideoResult]:
    """Features of each video, in order, decoding in background threads while the
    backbone runs on the chunks already decoded.

    Yields one `VideoResult` per path: feats and times, or `error` (the file could not
    be decoded: unreadable, truncated, no frames).
    """
    paths = list(paths)
    n = min(decoder_threads(), max(1, len(paths)))
    stop = threading.Event()
    decoders = [  # decoder w takes videos w, w + n, w + 2n, ...: the order is kept
        _Decoder([(i, Path(paths[i])) for i in range(w, len(paths), n)], fps, backbone.input_size,
                 backbone.batch_size, stop).start()
        for w in range(n)
    ]
    try:
        for index in range(len(paths)):
            items, parts, prev = decoders[index % n].items, [], None
            while True:
                got, chunk, times, error = items.get()
                assert got == index, "decoders deliver their videos in order"
                if error is not None:
                    yield VideoResult(index, error=error)
                    break
                if chunk is None:
                    feats = np.concatenate([p[0] for p in parts])  # [T, R, D]
                    yield VideoResult(index, feats, np.concatenate([p[1] for p in parts]))
                    break
                parts.append((backbone(chunk, prev=prev), times))  # [n, R, D], [n]
                prev = chunk[-1]
    finally:
        stop.set()


# ---------------------------------------------------------------- the cache


def cache_dir(dataset: Dataset, backbone: str = "default", fps: float = 2.0, weights: str | None = None) -> Path:
    """The cache folder of a dataset's features for these settings (may not exist yet)."""
    desc = describe_weights(backbone, weights)
    return data_dir() / "features" / slug(dataset.spec) / _folder_name(backbone, fps, desc)


def _folder_name(backbone: str, fps: float, weights_desc: str) -> str:
    name = f"{backbone}-{fps:g}fps"
    if backbone == "default":
        return name
    if weights_desc.startswith("imagenet"):
        return f"{name}-imagenet"
    if weights_desc == "random":
        return f"{name}-random"
    stat = Path(weights_desc).stat()  # a state_dict file: its path, size and mtime
    key = f"{weights_desc}|{stat.st_size}|{stat.st_mtime_ns}"
    return f"{name}-w{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


def _read_manifest(folder: Path, settings: dict) -> dict:
    """The folder's manifest when it was written with these settings, else an empty one,
    plus what the part manifests of an interrupted torchrun extraction list (every
    entry is checked against its source and file before it is reused)."""
    path = folder / "manifest.json"
    try:
        old = read_json(path)
    except (OSError, ValueError):
        old = None
    if not (isinstance(old, dict) and old.get("settings") == settings):
        old = {"settings": settings}
    old.setdefault("videos", {})
    old.setdefault("skipped", {})
    for part_path in sorted(folder.glob(_PARTS)):
        try:
            part = read_json(part_path)
        except (OSError, ValueError):
            continue
        if isinstance(part, dict) and part.get("settings") == settings:
            old["videos"].update(part.get("videos", {}))
            old["skipped"].update(part.get("skipped", {}))
    return old


def _read_cached(folder: Path, entry: dict, R: int, D: int) -> VideoFeatures | None:
    """A cached video's features, or None when its file is missing, damaged (a warning
    names it: the caller extracts the video again) or does not match."""
    path = folder / entry["file"]
    try:
        npz = read_npz(path)
        feats = npz["feats"].astype(np.float32)  # [T, R, D]
        times = npz["times"].astype(np.float64)  # [T]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as err:
        warnings.warn(f"cached features {path} are damaged ({err}): extracting video {entry['id']} again")
        return None
    if feats.ndim != 3 or feats.shape[1:] != (R, D) or len(times) != len(feats) or len(feats) != entry.get("T"):
        return None
    return VideoFeatures(entry["id"], feats, times)


def _write_video(folder: Path, record: VideoRecord, feats: np.ndarray, times: np.ndarray) -> tuple[str, np.ndarray]:
    """Write one video's features atomically: (file name, the features as stored, in
    float32), so the first call returns exactly what later calls will read back."""
    name = f"{slug(record.id)}.npz"
    stored = feats.astype(np.float16 if np.abs(feats).max(initial=0.0) <= _FLOAT16_MAX else np.float32)
    write_npz(folder / name, feats=stored, times=times)
    return name, stored.astype(np.float32)


def load_or_extract(
    dataset: Dataset,
    backbone: str = "default",
    fps: float = 2.0,
    weights: str | None = None,
    progress: bool = True,
    on_progress: ProgressFn | None = None,
    device: str = "auto",
    local: bool = False,
) -> FeatureSet:
    """Region features of every video of `dataset`, from the cache or extracted now.

    backbone: one of backbones.NAMES; weights: None (ImageNet from the torchvision
    cache for CNNs), "none" (random CNN weights) or a state_dict path; fps: sampling
    rate; device: where the backbone runs ("auto", "cpu", "cuda"). on_progress(done,
    total, video_id) is called after each video. Videos that cannot be decoded are
    skipped with a warning and listed in `FeatureSet.skipped`; ProclError when none
    can be. The returned manifest adds "cache_dir" and "counts" (extracted, reused,
    skipped) to what manifest.json holds.

    Under torchrun every rank must call it with the same arguments (checked): each
    extracts its shard (on_progress counts the shard), and every rank returns all the
    videos, read back from the cache, or with `local` only its shard's; counts and
    skipped are over all ranks.
    """
    if not dataset.videos:
        raise ProclError(f"dataset {dataset.spec} has no videos")
    kinds = {v.kind for v in dataset.videos}
    if kinds == {"features"}:
        if backbone not in ("default", PRECOMPUTED) or weights is not None:
            warnings.warn(f"dataset {dataset.spec} has precomputed features: --backbone/--weights are ignored")
        return _precomputed_set(dataset, progress, on_progress)
    if kinds != {"video"}:
        raise ProclError(
            f"dataset {dataset.spec} mixes video files and precomputed features ({sorted(kinds)}); "
            "their features would not be comparable: use one kind per dataset"
        )
    fps = check_fps(fps)

    # ImageNet weights are only needed (and fetched) when something must be extracted.
    settings = {"backbone": backbone, "weights": describe_weights(backbone, weights), "fps": float(fps), "R": 49,
                "D": feature_dim(backbone), "grid": [7, 7], "version": FEATURE_VERSION}
    folder = cache_dir(dataset, backbone, fps, weights)
    leftover_parts = sorted(folder.glob(_PARTS))
    manifest = _read_manifest(folder, settings)
    old = {"videos": manifest["videos"], "skipped": manifest["skipped"]}
    manifest.update(settings, dataset=dataset.spec, videos={}, skipped={})

    records, manifest_path, desc = list(dataset.videos), folder / "manifest.json", f"features ({backbone})"
    if dist.is_distributed():
        records = _my_shard(dataset, settings)
        manifest["run"] = dist.all_gather_object(uuid.uuid4().hex, what="starting the extraction")[0]
        manifest_path = folder / _PARTS.replace("*", str(dist.rank()))
        desc = f"features ({backbone}, rank {dist.rank()} of {dist.world_size()})"
        progress = progress and dist.is_main()
    videos: dict[str, VideoFeatures] = {}
    skipped: dict[str, str] = {}
    with tqdm(total=len(records), desc=desc, unit="video", disable=not progress) as bar:

        done = [0]  # videos finished (a disabled bar does not count)

        def finished(record: VideoRecord) -> None:
            done[0] += 1
            bar.update(1)
            if on_progress is not None:
                on_progress(done[0], len(records), record.id)

        todo = _reuse_cached(records, folder, old, manifest, videos, skipped, finished)
        reused = len(videos)
        if todo:
            _extract(todo, get_backbone(backbone, weights, device), fps, folder, manifest_path, manifest, videos,
                     skipped, finished)
        elif manifest_path.name != "manifest.json" or leftover_parts:
            _write_manifest(manifest_path, manifest)  # a rank's part, or the parts merged in

    if dist.is_distributed():
        return _merge_ranks(dataset, folder, manifest, videos, skipped, reused, local)
    for part in leftover_parts:  # merged into manifest.json now
        part.unlink(missing_ok=True)
    if not videos:
        reasons = "; ".join(list(skipped.values())[:3])
        raise ProclError(f"no video of {dataset.spec} could be decoded ({len(skipped)} failed: {reasons})")
    manifest["fingerprint"] = _fingerprint(settings, _entries(manifest))
    counts = {"extracted": len(videos) - reused, "reused": reused, "skipped": len(skipped)}
    ordered = {r.id: videos[r.id] for r in dataset.videos if r.id in videos}
    return FeatureSet(ordered, {**manifest, "cache_dir": str(folder), "counts": counts}, skipped)


def _reuse_cached(records: list[VideoRecord], folder: Path, old: dict, manifest: dict,
                  videos: dict[str, VideoFeatures], skipped: dict[str, str],
                  finished: Callable[[VideoRecord], None]) -> list[tuple[VideoRecord, dict]]:
    """Take every record whose source is unchanged since the manifest `old` from the
    cache (into `videos`, or `skipped` when it failed before), and return the others,
    with their source entries, to extract. An unreadable source is skipped with a warning."""
    todo = []
    for record in records:
        try:
            entry = _source_entry(record)
        except OSError as err:
            skipped[record.id] = f"video {record.source}: cannot be read ({err.strerror or err})"
            warnings.warn(f"skipped: {skipped[record.id]}")
            finished(record)
            continue
        if _same_source(old["skipped"].get(record.id), entry):  # failed before, unchanged since
            skipped[record.id] = old["skipped"][record.id]["reason"]
            manifest["skipped"][record.id] = old["skipped"][record.id]
            finished(record)
            continue
        cached = old["videos"].get(record.id)
        vf = (_read_cached(folder, {**cached, "id": record.id}, manifest["R"], manifest["D"])
              if _same_source(cached, entry) else None)
        if vf is None:
            todo.append((record, entry))
            continue
        videos[record.id] = vf
        manifest["videos"][record.id] = cached
        finished(record)
    return todo


def _extract(
    todo: list[tuple[VideoRecord, dict]],
    model: Backbone,
    fps: float,
    folder: Path,
    manifest_path: Path,
    manifest: dict,
    videos: dict[str, VideoFeatures],
    skipped: dict[str, str],
    finished: Callable[[VideoRecord], None],
) -> None:
    """Extract the `todo` videos into `folder`, adding them to `videos` or `skipped` and
    to the manifest. The manifest (manifest_path: manifest.json, or a rank's part) is
    rewritten every few seconds and at the end (also on an interruption), listing only
    videos whose file is completely written."""
    last_write = time.monotonic()

    def write_manifest() -> None:
        _write_manifest(manifest_path, manifest)

    try:
        for result in extract_stream([Path(r.source) for r, _ in todo], model, fps):
            record, entry = todo[result.index]
            if result.error is not None:
                skipped[record.id] = result.error
                manifest["skipped"][record.id] = {**entry, "reason": result.error}
                warnings.warn(f"skipped: {result.error}")
            else:
                feats, times = result.feats, result.times  # [T, R, D], [T]
                if record.superframes is not None:
                    feats, times = pool_superframes(feats, times, record.superframes)
                name, feats = _write_video(folder, record, feats, times)
                manifest["videos"][record.id] = {**entry, "file": name, "T": len(feats)}
                videos[record.id] = VideoFeatures(record.id, feats, times)
            finished(record)
            if time.monotonic() - last_write > _MANIFEST_EVERY_S:
                write_manifest()
                last_write = time.monotonic()
    finally:
        write_manifest()


def _write_manifest(path: Path, manifest: dict) -> None:
    manifest["fingerprint"] = _fingerprint(manifest["settings"], _entries(manifest))
    write_json(path, manifest)


def _my_shard(dataset: Dataset, settings: dict) -> list[VideoRecord]:
    """This rank's videos, balanced by file size, after checking that every rank was
    started with the same settings on the same videos."""
    sizes = []
    for record in dataset.videos:
        try:
            sizes.append(Path(record.source).stat().st_size)
        except OSError:
            sizes.append(0)
    listing = json.dumps([[r.id, n] for r, n in zip(dataset.videos, sizes)])
    dist.check_same_settings({"dataset": dataset.spec, **settings, "videos": len(sizes),
                              "sources": hashlib.sha1(listing.encode("utf-8")).hexdigest()[:16]},
                             what="feature settings")
    return dist.shard(dataset.videos, weights=sizes, what=f"videos in {dataset.spec}")


def _merge_ranks(
    dataset: Dataset, folder: Path, manifest: dict, videos: dict[str, VideoFeatures], skipped: dict[str, str],
    reused: int, local: bool,
) -> FeatureSet:
    """After every rank's shard: rank 0 merges the parts into manifest.json (once) and
    every rank returns the FeatureSet (all videos, or its shard's with `local`; the
    counts and skipped videos of all ranks)."""
    counts = torch.tensor([len(videos) - reused, reused, len(skipped)], dtype=torch.int64)
    dist.barrier(f"feature extraction of {dataset.spec}")
    outcome: tuple[str, object] | None = None
    if dist.is_main():
        try:
            merged = _merge_parts(folder, manifest, dist.world_size())
            write_json(folder / "manifest.json", merged)
            for part in folder.glob(_PARTS):
                part.unlink(missing_ok=True)
            outcome = ("ok", merged)
        except (ProclError, OSError) as err:
            outcome = ("error", str(err))
    outcome = dist.all_gather_object(outcome, what="merging the feature manifests")[0]
    if outcome[0] == "error":
        raise ProclError(outcome[1])
    merged = outcome[1]
    totals = [int(n) for n in dist.all_reduce_sum(counts, what="counting the extracted videos")]
    all_skipped: dict[str, str] = {}
    for part in dist.all_gather_object(skipped, what="listing the skipped videos"):
        all_skipped.update(part)
    if totals[0] + totals[1] == 0:
        reasons = "; ".join(list(all_skipped.values())[:3])
        raise ProclError(f"no video of {dataset.spec} could be decoded ({len(all_skipped)} failed: {reasons})")
    if not local:
        R, D = merged["R"], merged["D"]
        for record in dataset.videos:
            entry = merged["videos"].get(record.id)
            if record.id in videos or entry is None:
                continue
            vf = _read_cached(folder, {**entry, "id": record.id}, R, D)
            if vf is None:
                raise ProclError(f"features of video {record.id} ({folder / entry['file']}) are missing or damaged: "
                                 "run the extraction again (the video is extracted anew)")
            videos[record.id] = vf
    counts_out = {"extracted": totals[0], "reused": totals[1], "skipped": totals[2]}
    ordered = {r.id: videos[r.id] for r in dataset.videos if r.id in videos}
    return FeatureSet(ordered, {**merged, "cache_dir": str(folder), "counts": counts_out}, all_skipped)


def _merge_parts(folder: Path, manifest: dict, world: int) -> dict:
    """manifest.json of a torchrun extraction: rank 0's manifest with every rank's
    videos and skipped videos (from the parts this run wrote)."""
    merged = {k: v for k, v in manifest.items() if k != "run"}
    merged["videos"], merged["skipped"] = {}, {}
    for r in range(world):
        path = folder / _PARTS.replace("*", str(r))
        try:
            part = read_json(path)
        except (OSError, ValueError):
            part = None
        if not isinstance(part, dict) or part.get("run") != manifest["run"]:
            raise ProclError(
                f"rank {r} finished but rank 0 cannot read its list {path}: on several machines the data "
                f"folder ({data_dir()}, PROCL_DATA) must be one folder shared by all of them; rerun "
                "(finished videos are kept)"
            )
        merged["videos"].update(part["videos"])
        merged["skipped"].update(part["skipped"])
    merged["fingerprint"] = _fingerprint(merged["settings"], _entries(merged))
    return merged


def _entries(manifest: dict) -> dict[str, dict]:
    """The source entries of the videos that have features (what the fingerprint covers)."""
    return {vid: {k: v for k, v in e.items() if k not in _NOT_SOURCE} for vid, e in manifest["videos"].items()}


# ---------------------------------------------------------------- throughput


def measure_throughput(paths: Sequence[str | Path], backbone: str | Backbone = "default", fps: float = 2.0,
                       reps: int = 1) -> dict:
    """Frames per second of the whole pipeline (decoding threads + forward) and of the
    bare forward pass on the same frames (decoded beforehand), and their ratio.

    backbone: a Backbone, or a name (CNNs then get random weights: the speed is the
    same). decode_fps is decoding alone, one video after the other. `reps`: the forward
    pass and the pipeline are each timed that many times, alternately, and the fastest of
    each is kept (a shared machine only ever slows a timing down). Returns
    {"backbone", "frames", "pipeline_fps", "forward_fps", "decode_fps", "ratio"}.
    """
    model = get_backbone(backbone, "none" if backbone != "default" else None) if isinstance(backbone, str) else backbone
    paths = [Path(p) for p in paths]

    start = time.perf_counter()
    decoded = [sample_frames(p, fps=fps, size=model.input_size)[0] for p in paths]  # [T, S, S, 3] each
    decode_s = time.perf_counter() - start
    frames = sum(len(d) for d in decoded)
    model(decoded[0][:2])  # warm-up

    def forward() -> None:
        for video in decoded:
            prev = None
            for i in range(0, len(video), model.batch_size):
                chunk = video[i : i + model.batch_size]
                model(chunk, prev=prev)
                prev = chunk[-1]

    def pipeline() -> None:
        for result in extract_stream(paths, model, fps):
            if result.error is not None:
                raise ProclError(result.error)

    forward_s = pipeline_s = math.inf
    for _ in range(max(1, reps)):
        start = time.perf_counter()
        forward()
        forward_s = min(forward_s, time.perf_counter() - start)
        start = time.perf_counter()
        pipeline()
        pipeline_s = min(pipeline_s, time.perf_counter() - start)
    return {
        "backbone": model.name,
        "frames": frames,
        "pipeline_fps": frames / pipeline_s,
        "forward_fps": frames / forward_s,
        "decode_fps": frames / decode_s,
        "ratio": forward_s / pipeline_s,
    }


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="synthetic", help="dataset spec (default: synthetic)")
    parser.add_argument("--backbone", default="default", choices=NAMES,
                        help="region feature extractor (default: the weight-free one)")
    parser.add_argument("--fps", type=float, default=2.0, help="sampling rate, frames per second (default 2)")
    parser.add_argument("--weights", default=None,
                        help="CNN weights: 'imagenet' (the default: torchvision's ImageNet weights, downloaded "
                             "into torch hub's cache when missing), a state_dict PATH, or 'none' for random weights")
    dist.add_device_argument(parser, "the backbone runs")


def main(args: argparse.Namespace) -> int:
    """The `features` command; under torchrun each rank extracts its shard (module docstring)."""
    dist.resolve_device(args.device)  # a clear error for --device cuda without a GPU, before any work
    with dist.exit_on_sigterm(), dist.session(args.device):
        dataset = dist.main_first(lambda: open_dataset(args.dataset, progress=dist.is_main()), "opening the dataset")
        fs = load_or_extract(dataset, backbone=args.backbone, fps=args.fps, weights=args.weights,
                             device=args.device, local=True)
        if not dist.is_main():
            return 0
        m, counts = fs.manifest, fs.manifest["counts"]
        print(f"dataset:   {dataset.spec} ({len(dataset.videos)} videos)")
        print(f"backbone:  {m['backbone']}")
        print(f"weights:   {m['weights'] or 'none (precomputed features)'}")
        print(f"R x D:     {fs.R} x {fs.D} (grid {m['grid']}) at {m['fps']} fps")
        print(f"videos:    {counts['extracted']} extracted, {counts['reused']} reused, {counts['skipped']} skipped"
              + (f" by {dist.world_size()} processes" if dist.is_distributed() else ""))
        for vid, reason in fs.skipped.items():
            print(f"  skipped {vid}: {reason}")
        print(f"cache:     {m['cache_dir'] or 'none (precomputed features are read from their files)'}")
    return 0
