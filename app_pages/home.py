"""Home: what procl does, the datasets it knows, preparing them, and a preview of one."""
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages import _shared as sh
from procl import ProclError, explore, jobs, viz, words
from procl.features.backbones import fetch_imagenet, imagenet_cache_file
from procl.train import TrainConfig
from procl.upload import UploadError, create_dataset

st.title("procl: procedure learning from instructional videos")
st.markdown(
    "procl finds the **key-steps** of a task (say *boil water → add tea bag → pour water*) from instructional "
    "videos of several tasks at once, knowing only each video's task, never its key-steps. "
    "It learns where to look in each frame, groups frames that look alike into kinds of moment, lets a "
    "clustering suggest k of them as each task's steps, and trains a network that finds those steps in a video "
    "and guesses its task (Elhamifar & Huynh, ECCV 2020; the sidebar's *Words and the paper's terms* maps "
    "these words to the paper's). "
    "This app prepares datasets, trains runs in the background, and shows what a run found, frame by frame."
)

# ---------------------------------------------------------------- first start

if not sh.builtin_ready():
    st.warning("The built-in synthetic dataset is not generated yet (about a minute on two cores).",
               icon=":material/science:")
    if st.button("Generate the built-in dataset", type="primary", key="home_generate"):
        from procl.data.synth import ensure_synthetic

        bar = st.progress(0.0, text="rendering videos…")
        with sh.guard("Generating the built-in dataset"):
            ensure_synthetic(progress=False, on_progress=lambda d, t: bar.progress(d / t, text=f"video {d} of {t}"))
            st.cache_resource.clear()
            st.rerun()
elif not any(e["name"].startswith("demo-k") for e in sh.all_runs()):
    st.info("No demo run yet. Train the demo runs (k = 7 and k = 10 on the built-in dataset) in the background, "
            "then follow them on the **Train** page.", icon=":material/rocket_launch:")
    if st.button("Train the demo runs", type="primary", key="home_demo"):
        with sh.guard("Launching the demo runs"):
            for k in (7, 10):
                jobs.launch(TrainConfig(dataset=sh.BUILTIN, k=k), run=f"demo-k{k}")
            st.switch_page("app_pages/train.py")

# ---------------------------------------------------------------- datasets

st.header("Datasets")
rows = []
for spec in sh.known_specs():
    row = {"name": sh.dataset_label(spec), "dataset": spec, "state": "", "tasks": "–", "videos": "–",
           "annotated": "", "features": ""}  # text cells: a dataset not read yet shows a dash, not None
    try:
        ds = sh.dataset(spec)
        n_annotated = sum(v.annotated for v in ds.videos)
        caches = explore.feature_caches(spec)
        row.update(state="ready", tasks=str(len(ds.tasks)), videos=str(len(ds.videos)),
                   annotated="all" if n_annotated == len(ds.videos) else (f"{n_annotated}" if n_annotated else "no"),
                   features="; ".join(f"{c['setting']}: {c['videos']}/{len(ds.videos)}" for c in caches)
                   or ("precomputed" if ds.videos and ds.videos[0].kind == "features" else "not extracted"))
    except ProclError as err:
        row["state"] = "not generated" if spec == sh.BUILTIN and not sh.builtin_ready() else str(err)
    rows.append(row)
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={"state": st.column_config.TextColumn(width="medium"),
                            "dataset": st.column_config.TextColumn(
                                "spec", help="How the command line names it (--dataset SPEC)")})
st.caption("Built-in, the real Breakfast *coffee* sample shipped with procl (precomputed features of one task: "
           "train it with *one network per task*), those used by runs, the folders under `data/` (made from "
           "uploads) and paths added below. "
           "*features*: the feature caches (backbone-fps: videos cached / videos).")


def _add_slot() -> None:
    st.session_state["up_slots"] = st.session_state.get("up_slots", 2) + 1


with st.expander("Create a dataset from your own videos (upload)", icon=":material/upload:",
                 expanded=bool(st.session_state.get("up_open"))):
    st.caption("Videos of several tasks, labelled only by their task: procl finds the key-steps. Type a task's "
               "name and drop its videos (at least three per task, .mp4, .mkv, .avi, .webm or .mov; a video's id is "
               "its file name). The dataset is saved as a folder under `data/` (the *folder* layout, no "
               "annotations needed) and listed above. Each file is held in memory while it uploads (up to "
               f"{st.get_option('server.maxUploadSize')} MB); for long videos, put them in a folder "
               "`<folder>/videos/<task>/<video>.mp4` and add the folder by path below.")
    gen = st.session_state.setdefault("up_gen", 0)  # a new generation of widgets after each dataset made
    slots = st.session_state.setdefault("up_slots", 2)
    st.text_input("Dataset name", key=f"up_name_{gen}", placeholder="my-videos",
                  help="Letters, digits, '.', '_' and '-'; the folder data/<name> is created.")
    for i in range(slots):
        c1, c2 = st.columns([1, 2])
        c1.text_input(f"Task {i + 1}", key=f"up_task_{gen}_{i}", placeholder="e.g. change tire")
        c2.file_uploader(f"Videos of task {i + 1}", accept_multiple_files=True, key=f"up_files_{gen}_{i}",
                         label_visibility="collapsed")
    b1, b2, _ = st.columns([1, 1, 2])
    b1.button("Another task", key="up_more", on_click=_add_slot, icon=":material/add:", width="stretch")
    if b2.button("Create the dataset", key="up_create", type="primary", width="stretch"):
        st.session_state["up_open"] = True
        groups = [(st.session_state.get(f"up_task_{gen}_{i}") or "",
                   [(f.name, f.getbuffer()) for f in st.session_state.get(f"up_files_{gen}_{i}") or []])
                  for i in range(slots)]
        with st.spinner("Checking and saving the videos…"):
            try:
                folder = create_dataset(st.session_state.get(f"up_name_{gen}") or "", groups)
            except UploadError as err:
                st.error("The dataset was not created (nothing was saved; your files and names are kept here):\n"
                         + "\n".join(f"- {p}" for p in err.problems), icon=":material/warning:")
            else:
                spec = f"folder:{folder}"
                extra = st.session_state.setdefault("extra_specs", [])
                if spec not in extra:
                    extra.append(spec)
                st.session_state.update(home_spec=spec, new_dataset=spec, up_gen=gen + 1, up_slots=2, up_open=False,
                                        up_created=spec)
                st.rerun()
if "up_created" in st.session_state:
    st.success(f"Created `{st.session_state.pop('up_created')}`. Next: extract its features below (or let the "
               "training do it), then train on the **Train** page.", icon=":material/check_circle:")

with st.expander("Add a dataset by path (it is only read)"):
    c1, c2 = st.columns([1, 3])
    kind = c1.selectbox("Format", sh.FORMATS, key="home_add_kind")
    path = c2.text_input("Folder", key="home_add_path", placeholder="/path/to/dataset")
    if st.button("Add", key="home_add") and path.strip():
        spec = f"{kind}:{path.strip()}"
        with sh.guard(f"Dataset {spec}"):
            if not Path(path.strip()).expanduser().is_dir():
                raise ProclError(f"{path.strip()} is not a folder")
            ds = sh.dataset(spec)
            extra = st.session_state.setdefault("extra_specs", [])
            if ds.spec not in extra:
                extra.append(ds.spec)
            # said after the rerun that lists it (a message written before st.rerun is never seen)
            st.session_state["home_added"] = (f"Added {ds.spec}: {words.counted(len(ds.tasks), 'task')}, "
                                              f"{words.counted(len(ds.videos), 'video')}.")
            st.rerun()
    if "home_added" in st.session_state:
        st.success(st.session_state.pop("home_added"), icon=":material/check_circle:")

# ---------------------------------------------------------------- prepare and preview

st.header("Prepare and preview")
specs = sh.known_specs()
current = sh.current_run()
default = (current or {}).get("config", {}).get("dataset")
if default not in specs and not sh.builtin_ready() and len(specs) > 1:
    default = specs[1]  # a dataset that exists rather than the built-in one not generated yet
if st.session_state.get("home_spec") not in specs:  # first visit, or a dataset gone: the default
    st.session_state["home_spec"] = default if default in specs else specs[0]
# the value lives in the session state alone (no index=): a dataset just created is chosen by setting it there,
# and Streamlit warns (a traceback in the terminal) about a widget given both
spec = st.selectbox("Dataset", specs, key="home_spec", format_func=sh.dataset_label,
                    help="Datasets by their folder's name; the Datasets table above gives each one's spec.")
if spec == sh.BUILTIN and not sh.builtin_ready():
    st.info("The built-in dataset is not generated yet: generate it above, or create a dataset from your own "
            "videos.", icon=":material/info:")
    st.stop()  # the rest of the page previews a dataset
with sh.guard(f"Dataset {spec}"):
    ds = sh.dataset(spec)
    c1, c2, c3 = st.columns([1, 1, 2])
    backbone = c1.selectbox("Backbone", ["default", "vgg19", "resnet50", "resnet18"], key="home_backbone",
                            help="default: weight-free filters, fast on a CPU. CNNs use torchvision's ImageNet "
                                 "weights, downloaded into torch hub's cache the first time.")
    fps = c2.number_input("Frames per second", 0.5, 10.0, 2.0, 0.5, key="home_fps")
    c3.write("")
    if c3.button("Extract features", key="home_extract", help="Runs here; stay on this page until it ends."):
        from procl.features.cache import load_or_extract

        with sh.guard("Features"):
            if backbone != "default" and not imagenet_cache_file(backbone).is_file():
                wbar = st.progress(0.0, text=f"downloading the ImageNet weights of {backbone}…")
                fetch_imagenet(backbone, progress=False, on_progress=lambda d, t: wbar.progress(
                    min(d / t, 1.0) if t else 0.0, text=f"ImageNet weights of {backbone}: {d / 2**20:.0f}"
                    + (f" of {t / 2**20:.0f} MB" if t else " MB")))
            bar = st.progress(0.0, text="features…")
            fs = load_or_extract(ds, backbone=backbone, fps=fps, progress=False,
                                 on_progress=lambda d, t, vid: bar.progress(d / t, text=f"{d}/{t}: {vid}"))
            counts = fs.manifest.get("counts", {})
            st.session_state["home_extracted"] = (
                f"Features of `{spec}` ready: {counts.get('extracted', 0)} extracted, {counts.get('reused', 0)} "
                f"reused, {counts.get('skipped', 0)} skipped (R = {fs.R}, D = {fs.D}). Next: train on the "
                "**Train** page.")
            st.rerun()  # the Datasets table above then shows the new cache
    if "home_extracted" in st.session_state:
        st.success(st.session_state.pop("home_extracted"), icon=":material/check_circle:")

    st.subheader("Videos per task")
    summary = explore.dataset_summary(ds)
    st.dataframe(summary if ds.annotated else summary.drop(columns=["annotated", "key-steps"]), hide_index=True,
                 width="stretch")

    if not ds.annotated:
        st.subheader("Videos")
        task = st.selectbox("Task", ds.tasks, key="home_preview_task")
        videos = ds.videos_of(task=task)
        rows_v = [{"video": v.id, "split": ds.split.get(v.id, ""), "seconds": sh.video_duration(v),
                   "file": str(v.source)} for v in videos]
        st.dataframe(pd.DataFrame(rows_v), hide_index=True, width="stretch",
                     column_config={"seconds": st.column_config.NumberColumn(format="%.1f")})
        st.caption("These videos are not annotated: procl needs only their tasks. After training, the **Key-steps** "
                   "page shows the steps it found, in order, and lets you name them.")
    else:
        st.subheader("Key-step names")
        longest = max((len(s) for s in ds.steps.values()), default=0)
        if longest:
            steps = pd.DataFrame({t: ds.steps.get(t, []) + [""] * (longest - len(ds.steps.get(t, [])))
                                  for t in ds.tasks}, index=range(1, longest + 1))
            st.dataframe(steps, width="stretch")
        else:
            st.caption("This dataset names no key-steps.")

        st.subheader("Ground-truth timelines")
        task = st.selectbox("Task", ds.tasks, key="home_preview_task")
        videos = ds.videos_of(task=task)
        steps_of_task = ds.steps.get(task, [])
        rows_t = []
        for v in videos[:12]:
            labels = explore.preview_labels(v, sh.video_duration(v))
            if labels is not None:
                times, gt = labels
                row = explore.gt_row(gt, steps_of_task, name=v.id)
                rows_t.append({**row, "times": times})
        if rows_t:
            st.plotly_chart(viz.timeline_figure(rows_t, rows_t[0]["times"], height_per_row=26),
                            key="home_gt", config={"displayModeBar": False})
            more = f" (the first 12 of {len(videos)})" if len(videos) > 12 else ""
            st.caption(f"Annotated key-steps of {task}'s videos{more}; background is grey.")
        else:
            st.caption(f"The videos of {task} have no ground truth (other tasks' have).")
