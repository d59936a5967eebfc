"""What every page shares: the sidebar (current dataset and run), cached reads, messages.

Caches are keyed by what they read: a run's data by its folder and the mtimes of its
files (`explore.run_stamp`), so a re-trained run refreshes; a dataset by its spec and
folder mtime; decoded frames by the video file and its mtime. A run folder that is
half-written, damaged or deleted gives a message (`guard`), never a traceback.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import streamlit as st

from procl import ProclError, choosek, explore, runs, words
from procl.config import task_given
from procl.data import Dataset, VideoRecord
from procl.data.specs import has_region_grid, parse_spec
from procl.features.video import FrameReader
from procl.paths import checkpoints_dir, data_dir

log = logging.getLogger("procl.app")

BUILTIN = "synthetic"
FORMATS = ("folder", "crosstask", "procel", "actseg")
STATE_ICONS = {"done": ":material/check_circle:", "running": ":material/progress_activity:",
               "queued": ":material/schedule:", "failed": ":material/error:", "cancelled": ":material/cancel:"}


# ---------------------------------------------------------------- messages

@contextmanager
def guard(what: str) -> Iterator[None]:
    """Show an error from the block as a message on the page (the rest of the block is skipped).

    ProclError messages are shown as they are (they say what to do); other errors
    (a file changing under us) with their type; the traceback goes to the server log.
    Streamlit's own control flow (st.stop, st.rerun) passes through.
    """
    try:
        yield
    except ProclError as err:
        st.error(f"{what}: {err}", icon=":material/warning:")
    except Exception as err:  # noqa: BLE001 - a page must never show a traceback
        log.exception("%s failed", what)
        st.error(f"{what}: {type(err).__name__}: {err}", icon=":material/warning:")


def missing(value) -> bool:
    """None or NaN (pandas turns None into NaN in number columns)."""
    return value is None or value != value


def pct(value: float | None) -> str:
    """A fraction in % with one decimal; a whole 100 % without (it fits a metric's narrow column)."""
    if missing(value):
        return "–"
    return "100%" if round(100 * value, 1) == 100 else f"{100 * value:.1f}%"


# ---------------------------------------------------------------- runs

def _snapshot() -> tuple:
    """Names and status/metrics mtimes of every run folder (cheap: stat only)."""
    root = checkpoints_dir()
    out = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return (str(root),)
    for e in entries:
        if e.name.startswith(".") or not e.is_dir():
            continue
        stamp = []
        for name in ("config.json", "status.json", "metrics.json"):
            try:
                stamp.append(os.stat(os.path.join(e.path, name)).st_mtime_ns)
            except OSError:
                stamp.append(None)
        out.append((e.name, *stamp))
    return (str(root.resolve()), *out)


@st.cache_data(ttl=5, show_spinner=False, max_entries=16)
def _list_runs(snapshot: tuple) -> list[dict]:
    return runs.list_runs()


def all_runs() -> list[dict]:
    """`runs.list_runs()`, newest first, re-read when a run folder changes (and every 5 s)."""
    return _list_runs(_snapshot())


def run_label(entry: dict) -> str:
    state = entry.get("status", {}).get("state", "?")
    return f"{entry['name']} · {state}"


def current_run() -> dict | None:
    """The sidebar's run (an entry of `all_runs`), or None when there is none."""
    name = st.session_state.get("run")
    return next((r for r in all_runs() if r["name"] == name), None)


@st.cache_data(show_spinner=False, max_entries=64)
def _run_info(path: str, stamp: tuple) -> explore.RunInfo:
    return explore.load_run_info(path)


def run_info(path: str | Path) -> explore.RunInfo:
    """The run's RunInfo, cached until one of its files changes; ProclError when it is gone."""
    return _run_info(str(path), explore.run_stamp(path))


@st.cache_data(show_spinner=False, max_entries=64)
def _video_table(path: str, stamp: tuple) -> pd.DataFrame:
    return explore.video_table(explore.load_run_info(path))


def video_table(info: explore.RunInfo) -> pd.DataFrame:
    return _video_table(str(info.path), explore.run_stamp(info.path))


@st.cache_data(show_spinner=False, max_entries=64)
def _videos_to_correct(path: str, stamp: tuple) -> dict[str, list[str]]:
    return explore.videos_to_correct(explore.load_run_info(path))


def videos_to_correct(info: explore.RunInfo) -> dict[str, list[str]]:
    """explore.videos_to_correct of the run, cached until one of its files changes."""
    return _videos_to_correct(str(info.path), explore.run_stamp(info.path))


@st.cache_data(show_spinner=False, max_entries=16)
def _signals_table(paths: tuple[str, ...], stamps: tuple) -> pd.DataFrame:
    return choosek.signals_table(list(paths))


def signals_table(paths: list[str | Path]) -> pd.DataFrame:
    """choosek.signals_table of these runs, cached until one of their files changes (it reads
    every run's predictions and compares the seeds of each k: not on every rerun)."""
    return _signals_table(tuple(str(p) for p in paths), tuple(explore.run_stamp(p) for p in paths))


@st.cache_data(show_spinner=False, max_entries=512)
def _outputs(path: str, video_id: str, stamp: tuple, mtime: int) -> dict[str, np.ndarray]:
    return runs.load_outputs(path, video_id)


def outputs(info: explore.RunInfo, video_id: str) -> dict[str, np.ndarray]:
    """A video's arrays from the run (times, alpha, p, states, teacher, gt, task_probs, beta)."""
    path = runs.outputs_path(info.path, video_id)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as err:
        raise ProclError(f"{path} is missing ({err.strerror}): the run's outputs were removed or never "
                         "written") from err
    return _outputs(str(info.path), video_id, explore.run_stamp(info.path), mtime)


def task_outputs(info: explore.RunInfo, task: str) -> dict[str, dict[str, np.ndarray]]:
    """video id -> arrays, for every scored video of `task`."""
    table = video_table(info)
    return {vid: outputs(info, vid) for vid in table.loc[table["task"] == task, "video"]}


def require_finished_run() -> explore.RunInfo:
    """The sidebar's run when it has results; otherwise a message and st.stop()."""
    entry = current_run()
    if entry is None:
        st.info("No run yet. Train one on the **Train** page (or run `make demo`).", icon=":material/info:")
        st.stop()
    if "error" in entry and "config" not in entry:
        st.error(f"Run {entry['name']} is damaged: {entry['error']}", icon=":material/warning:")
        st.stop()
    try:
        info = run_info(entry["path"])
    except ProclError as err:
        st.error(f"Run {entry['name']}: {err}", icon=":material/warning:")
        st.stop()
    if not info.finished:
        status = info.status
        if info.state in ("running", "queued"):
            done = status.get("step", 0) / max(status.get("steps") or 1, 1)
            st.info(f"Run **{info.name}** is still {info.state} ({100 * done:.0f}%, epoch "
                    f"{status.get('epoch', 0)}/{status.get('epochs', '?')}); its results appear here when it "
                    "finishes. Follow it on the **Train** page.", icon=":material/hourglass_top:")
        elif info.state == "done":
            st.warning(f"Run **{info.name}** is marked done but has no metrics.json: re-run "
                       f"`python -m procl evaluate --run {info.name}` or retrain it.", icon=":material/warning:")
        else:
            st.error(f"Run **{info.name}** is {info.state}: {status.get('error', 'no error recorded')}",
                     icon=":material/warning:")
        st.stop()
    return info


def describe_features(config: dict) -> str:
    f = config.get("features") or {}
    grid = f.get("grid")
    cells = f"{grid[0]}x{grid[1]} grid" if grid and (f.get("R") or 1) > 1 else "no grid (R = 1)"
    return (f"backbone **{f.get('backbone', '?')}** (weights: {f.get('weights') or 'n/a'}), D = {f.get('D', '?')}, "
            f"{cells}, {f.get('fps', '?')} fps")


def dataset_label(spec: str | None) -> str:
    """A dataset as pages name it (its folder's name; `words.dataset_name`)."""
    return words.dataset_name(spec)


def glossary() -> None:
    """The expander mapping the pages' plain words to the paper's terms (in the sidebar of every page)."""
    with st.expander("Words and the paper's terms", icon=":material/menu_book:"):
        st.markdown(words.glossary_markdown())
        st.caption("Elhamifar & Huynh, *Self-Supervised Multi-Task Procedure Learning from Instructional Videos*, "
                   "ECCV 2020. The README says how procl differs.")


def download_buttons(info: explore.RunInfo, key: str) -> None:
    """Buttons for the run's predictions.csv (with the names given to states) and
    metrics.json (read when clicked)."""
    cols = st.columns(2)
    readers = {"predictions.csv": lambda: explore.predictions_csv(info),
               "metrics.json": lambda: (info.path / "metrics.json").read_bytes()}
    for col, name, mime in ((cols[0], "predictions.csv", "text/csv"), (cols[1], "metrics.json", "application/json")):
        col.download_button(
            f"{name} of {info.name}", data=readers[name], file_name=f"{info.name}-{name}",
            mime=mime, key=f"{key}-{name}", icon=":material/download:", disabled=not (info.path / name).exists(),
            on_click="ignore",
        )


def score(info: explore.RunInfo, value) -> str:
    """A localization score for display: a percentage, "not annotated" when the run has
    no ground truth, "–" when it is undefined."""
    if not info.annotated:
        return "not annotated"
    return pct(value)


# ---------------------------------------------------------------- datasets

def builtin_ready() -> bool:
    return (data_dir() / "synthetic" / "dataset.json").is_file()


def spec_root(spec: str) -> Path:
    kind, path = parse_spec(spec)
    return data_dir() / "synthetic" if path is None else path


@st.cache_resource(show_spinner=False, max_entries=8)
def _dataset(spec: str, root: str, mtime: int) -> Dataset:
    from procl.data import open_dataset

    return open_dataset(spec, progress=False)


def dataset(spec: str) -> Dataset:
    """The dataset a spec names (read only; the built-in one is never generated here)."""
    if spec == BUILTIN and not builtin_ready():
        raise ProclError("the built-in dataset is not generated yet: prepare it on the Home page "
                         "(or run `python -m procl data synth --out data/synthetic`)")
    root = spec_root(spec)
    try:
        mtime = root.stat().st_mtime_ns
    except OSError as err:
        raise ProclError(f"dataset folder {root} cannot be read ({err.strerror}): was it moved?") from err
    return _dataset(spec, str(root.resolve()), mtime)


def region_grid(spec: str) -> bool:
    """Whether the dataset's frames come with a region grid (`procl.data.specs.has_region_grid`)."""
    root = spec_root(spec)
    return _region_grid(spec, str(root.resolve()), root.stat().st_mtime_ns)


@st.cache_data(show_spinner=False, max_entries=16)
def _region_grid(spec: str, root: str, mtime: int) -> bool:
    return has_region_grid(dataset(spec))


def video_record(info: explore.RunInfo, video_id: str) -> VideoRecord | None:
    """The run's dataset record of a video, or None (with a caption) when it cannot be found."""
    try:
        return dataset(info.config["dataset"]).video(video_id)
    except (ProclError, KeyError) as err:
        st.caption(f"Frames unavailable: {err}")
        return None


def known_specs() -> list[str]:
    """The built-in dataset, the real samples shipped with procl, those of existing runs,
    the folder datasets under data/ (made from uploads) and paths added in this session."""
    specs = [BUILTIN, *explore.sample_datasets()]
    for entry in all_runs():
        spec = (entry.get("config") or {}).get("dataset")
        if spec and spec not in specs:
            specs.append(spec)
    for spec in [*explore.local_datasets(), *st.session_state.get("extra_specs", [])]:
        if spec not in specs:
            specs.append(spec)
    return specs


@st.cache_resource(show_spinner=False, max_entries=4)
def _reader(source: str, mtime: int) -> FrameReader:
    return FrameReader(source, max_side=480)


def video_reader(video: VideoRecord) -> FrameReader | None:
    """A reader of the video's frames (at most 480 px), kept open across reruns and
    sessions: it decodes only the frames shown, by seeking, and keeps the last few.
    None for precomputed features."""
    if video.kind != "video":
        return None
    path = Path(video.source)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as err:
        raise ProclError(f"video {path} cannot be read ({err.strerror}): was it moved?") from err
    return _reader(str(path), mtime)


@st.cache_data(show_spinner=False, max_entries=256)
def _frames_at(source: str, mtime: int, kind: str, times: tuple[float, ...]) -> np.ndarray | None:
    return explore.frames_at(VideoRecord(id="", task="", source=Path(source), kind=kind), np.array(times))


def frames_at(video: VideoRecord, times: list[float]) -> np.ndarray | None:
    """A few frames of a video by seeking (cached); None for precomputed features."""
    if video.kind != "video":
        return None
    try:
        mtime = Path(video.source).stat().st_mtime_ns
    except OSError as err:
        raise ProclError(f"video {video.source} cannot be read ({err.strerror}): was it moved?") from err
    return _frames_at(str(video.source), mtime, video.kind, tuple(float(t) for t in times))


# ---------------------------------------------------------------- sidebar

def sidebar() -> None:
    """The run selector (kept across pages) and what the current run is."""
    entries = all_runs()
    names = [e["name"] for e in entries]
    wanted = st.query_params.get("run")
    if wanted in names and "run_from_url" not in st.session_state:
        st.session_state["run"] = wanted
        st.session_state["run_from_url"] = True
    previous = st.session_state.get("run")
    if previous not in names:
        done = [e["name"] for e in entries if e.get("status", {}).get("state") == "done" and e.get("metrics")]
        st.session_state["run"] = (done or names or [None])[0]
        if previous is not None:
            st.warning(f"Run **{previous}** is gone (deleted or renamed while viewed)"
                       + (f"; showing **{st.session_state['run']}**." if st.session_state["run"] else "."),
                       icon=":material/warning:")
    with st.sidebar:
        glossary()
        if not names:
            st.caption("No runs yet.")
            return
        labels = {e["name"]: run_label(e) for e in entries}
        st.selectbox("Run", names, key="run", format_func=lambda n: labels.get(n, n),
                     help="The run shown on Explore and Key-steps (newest first).")
        entry = current_run()
        if entry is None or "config" not in entry:
            st.caption(f"damaged: {entry.get('error') if entry else 'gone'}")
            return
        config = entry["config"]
        st.caption(f"**Dataset** {words.dataset_name(config.get('dataset'))}",
                   help=f"Its spec (as the command line takes it): `{config.get('dataset')}`")
        st.caption(describe_features(config))
        st.caption(explore.describe_run(config))
        m = entry.get("metrics")
        if m:
            f1 = pct(m.get("f1")) if explore.scored(m) else "not annotated"
            uniform = explore.equal_cuts_f1(m)
            cuts = "" if uniform is None else f" (equal cuts {pct(uniform)})"
            task = words.TASK_GIVEN if task_given(config) else f"task guessed right {pct(m.get('accuracy'))}"
            st.caption(f"{m.get('split')} videos: steps F1 {f1}{cuts}, {task}",
                       help=words.EQUAL_CUTS_HELP if cuts else None)


@st.cache_data(show_spinner=False, max_entries=1024)
def _duration(source: str, mtime: int) -> float | None:
    from procl.features.video import probe

    try:
        return probe(source)["duration"]
    except ProclError:
        return None


def video_duration(video: VideoRecord) -> float | None:
    """Seconds of a video file (None for precomputed features or an unreadable file)."""
    if video.kind != "video":
        return None
    try:
        return _duration(str(video.source), Path(video.source).stat().st_mtime_ns)
    except OSError:
        return None
