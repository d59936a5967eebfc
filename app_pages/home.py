"""Home: what procl does, the datasets it knows, preparing them, and a preview of one."""
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages import _shared as sh
from procl import ProclError, explore, jobs, viz
from procl.train import TrainConfig

st.title("procl: procedure learning from instructional videos")
st.markdown(
    "procl finds the **key-steps** of a task (say *boil water → add tea bag → pour water*) from instructional "
    "videos of several tasks at once, knowing only each video's task, never its key-steps. "
    "It scores image regions with spatial attention, groups frames into latent states, lets subset selection "
    "pick k states per task as pseudo-labels, and trains a network to localize them and recognise the task "
    "(Elhamifar & Huynh, ECCV 2020). "
    "This app prepares datasets, trains runs in the background, and shows what a run found, frame by frame."
)

# ---------------------------------------------------------------- first start

if not sh.builtin_ready():
    st.warning("The built-in synthetic dataset is not generated yet (about a minute on two cores).", icon=":material/science:")
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
    row = {"dataset": spec, "state": "", "tasks": None, "videos": None, "annotated": "", "features": ""}
    try:
        ds = sh.dataset(spec)
        n_annotated = sum(v.annotated for v in ds.videos)
        caches = explore.feature_caches(spec)
        row.update(state="ready", tasks=len(ds.tasks), videos=len(ds.videos),
                   annotated="all" if n_annotated == len(ds.videos) else (f"{n_annotated}" if n_annotated else "no"),
                   features="; ".join(f"{c['setting']}: {c['videos']}/{len(ds.videos)}" for c in caches)
                   or ("precomputed" if ds.videos and ds.videos[0].kind == "features" else "not extracted"))
    except ProclError as err:
        row["state"] = "not generated" if spec == sh.BUILTIN and not sh.builtin_ready() else str(err)
    rows.append(row)
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={"state": st.column_config.TextColumn(width="medium")})
st.caption("Built-in, those used by runs, and paths added below. *features*: the feature caches "
           "(backbone-fps: videos cached / videos).")

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
            st.success(f"Added {ds.spec}: {len(ds.tasks)} tasks, {len(ds.videos)} videos.")
            st.rerun()

# ---------------------------------------------------------------- prepare and preview

st.header("Prepare and preview")
specs = sh.known_specs()
current = sh.current_run()
default = (current or {}).get("config", {}).get("dataset")
spec = st.selectbox("Dataset", specs, index=specs.index(default) if default in specs else 0, key="home_spec")
with sh.guard(f"Dataset {spec}"):
    ds = sh.dataset(spec)
    c1, c2, c3 = st.columns([1, 1, 2])
    backbone = c1.selectbox("Backbone", ["default", "vgg19", "resnet50", "resnet18"], key="home_backbone",
                            help="default: weight-free filters, fast on a CPU. CNNs use ImageNet weights from "
                                 "torchvision's cache only (nothing is downloaded).")
    fps = c2.number_input("Frames per second", 0.5, 10.0, 2.0, 0.5, key="home_fps")
    c3.write("")
    if c3.button("Extract features", key="home_extract", help="Runs here; stay on this page until it ends."):
        from procl.features.cache import load_or_extract

        bar = st.progress(0.0, text="features…")
        fs = load_or_extract(ds, backbone=backbone, fps=fps, progress=False,
                             on_progress=lambda d, t, vid: bar.progress(d / t, text=f"{d}/{t}: {vid}"))
        counts = fs.manifest.get("counts", {})
        st.success(f"Features ready: {counts.get('extracted', 0)} extracted, {counts.get('reused', 0)} reused, "
                   f"{counts.get('skipped', 0)} skipped (R = {fs.R}, D = {fs.D}).")

    st.subheader("Videos per task")
    st.dataframe(explore.dataset_summary(ds), hide_index=True, width="stretch")

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
        st.caption("These videos have no ground truth.")
