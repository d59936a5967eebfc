"""Key-steps: a task's k selected states in order, with representative frames and what they matched."""
import streamlit as st

from app_pages import _shared as sh
from procl import explore, viz

st.title("Key-steps")
info = sh.require_finished_run()
st.caption(f"Run **{info.name}** on `{info.config.get('dataset')}` — {sh.describe_features(info.config)}")

with sh.guard(f"Run {info.name}"):
    c1, c2 = st.columns([2, 1])
    task = c1.selectbox("Task", info.tasks, key=f"ks_task_{info.name}")
    n = c2.slider("Frames per key-step", 2, 8, 5, key="ks_frames")
    outs = sh.task_outputs(info, task)
    table = explore.state_table(info, outs, task)
    st.markdown(f"The **{len(table)} states** that subset selection (Eq. 2) chose for **{task}**, in the order it "
                f"picked them, over the task's {len(outs)} scored videos. *step* is the ground-truth key-step each "
                "state matched (Hungarian matching of the run's evaluation split) and *IoU* the overlap of their "
                "frames; *frames* and *teacher frames* count the frames the network and the teacher (subset "
                "selection) give it; *occurs in* is the share of videos where the network predicts it; *shared "
                "with* lists other tasks that selected the same state"
                + (" (none in a single-task run: each task has its own network and states)."
                   if info.config.get("setting") == "single" else "."))
    shown = table.assign(
        iou=[sh.pct(v) for v in table["iou"]],
        videos=[sh.pct(v) for v in table["videos"]],
        beta=["–" if sh.missing(b) else f"{b:.4f}" for b in table["beta"]],
    ).rename(columns={"videos": "occurs in", "beta": "mean beta", "shared_with": "shared with",
                      "teacher_frames": "teacher frames"})
    st.dataframe(shown, hide_index=True, width="stretch")

    colors = viz.state_colors(info.mapping(task), table["state"].tolist(), len(info.step_names(task)))
    videos = {}
    try:
        ds = sh.dataset(info.config["dataset"])
        videos = {v.id: v for v in ds.videos_of(task=task)}
    except Exception as err:  # noqa: BLE001 - frames are optional; the table above stands alone
        st.warning(f"Frames unavailable: {err}", icon=":material/warning:")
    grid = info.grid
    for r in table.itertuples():
        with st.container(border=True):
            color = colors.get(int(r.state), "#444444")
            title = f"{r.order}. state {r.state}"
            title += f" → {r.step}" if r.step else " (matched no ground-truth step)"
            st.markdown(f"<span style='display:inline-block;width:0.9em;height:0.9em;background:{color};"
                        f"border-radius:2px;margin-right:0.4em'></span>**{title}**", unsafe_allow_html=True)
            facts = [f"IoU {sh.pct(r.iou)}" if r.step else None,
                     f"predicted in {sh.pct(r.videos)} of the videos ({r.frames} frames; teacher: "
                     f"{r.teacher_frames})",
                     None if sh.missing(r.beta) else f"mean pooling weight {r.beta:.4f}",
                     f"also selected by: {r.shared_with}" if r.shared_with else "selected by this task only"]
            st.caption(" · ".join(f for f in facts if f))
            best = explore.representative_frames(outs, int(r.state), n)
            if not best:
                best = explore.representative_frames(outs, int(r.state), n, field="teacher")
                st.caption("The network never predicts this state; frames the teacher gave it:" if best
                           else "Neither the network nor the teacher gives this state to any frame.")
                if not best:
                    continue
            with sh.guard("Frames"):
                images, captions = [], []
                for b in best:
                    video = videos.get(b["video"])
                    frames = sh.frames_at(video, [b["time"]]) if video is not None else None
                    if frames is None:
                        continue
                    alpha = outs[b["video"]]["alpha"][b["index"]]
                    image = frames[0] if grid is None else viz.attention_overlay(frames[0], alpha, grid, 0.4)
                    images.append(image)
                    captions.append(f"{b['video']} · {b['time']:.1f} s")
                if images:
                    st.image(images, caption=captions, width=170)
                elif videos:
                    st.caption("No frames: the videos are precomputed features.")
    if grid is None:
        st.caption("These features have no spatial grid (R = 1), so frames are shown without attention.")
    else:
        st.caption("Frames show the spatial attention overlaid (red = high).")
