"""Explore: one video of a run: frames with spatial attention, key-step timelines, task and pooling."""
import numpy as np
import streamlit as st

from app_pages import _corrections
from app_pages import _shared as sh
from procl import explore, viz
from procl.config import task_given

st.title("Explore a video")
info = sh.require_finished_run()
st.caption(f"Run **{info.name}** on **{sh.dataset_label(info.config.get('dataset'))}** — "
           f"{sh.describe_features(info.config)}", help=f"Dataset spec: `{info.config.get('dataset')}`")


def _pick_video() -> str | None:
    """Filters (split, task, classification) and the video selector; the chosen video id."""
    table = sh.video_table(info)
    splits = ["all"] + sorted(s for s in table["split"].unique() if s)
    default_split = info.metrics.get("split", "all")
    c1, c2, c3, c4 = st.columns([1, 1.4, 1.2, 2])
    if st.session_state.get(f"ex_split_{info.name}") not in splits:  # the run's scored split first
        st.session_state[f"ex_split_{info.name}"] = default_split if default_split in splits else "all"
    split = c1.selectbox("Split", splits, key=f"ex_split_{info.name}")
    task = c2.selectbox("Task", ["all tasks"] + info.tasks, key=f"ex_task_{info.name}")
    if task_given(info.config):
        c3.selectbox("Task prediction", ["given"], disabled=True, key=f"ex_given_{info.name}",
                     help="One network per task: each video is run through its own task's network, so there "
                          "is no task guess to filter by.")
        verdict = "any"
    else:
        verdict = c3.selectbox("Task prediction", ["any", "correct", "incorrect"], key=f"ex_correct_{info.name}",
                               help="Filter videos by whether the classifier predicted their task right.")
    rows = explore.filter_videos(table, split, None if task == "all tasks" else task,
                                 {"any": None, "correct": True, "incorrect": False}[verdict])
    if rows.empty:
        c4.selectbox("Video", ["no video matches"], disabled=True, key="ex_video_none")
        st.info("No video matches these filters.", icon=":material/info:")
        return None
    marks = {r.video: f"{r.video}  ({r.task}{'' if r.correct else ' → ' + r.pred_task}, {r.split})"
             for r in rows.itertuples()}
    key = f"ex_video_{info.name}"
    if st.session_state.get(key) not in marks:
        st.session_state[key] = explore.default_video(rows)  # a correctly classified one when there is one
    return c4.selectbox("Video", list(marks), format_func=marks.get, key=key)


def _open_video(video_id: str) -> None:
    """Show `video_id` (a suggested video to correct): the filters widened so that it is a choice."""
    st.session_state[f"ex_split_{info.name}"] = "all"
    st.session_state[f"ex_task_{info.name}"] = sh.video_table(info).set_index("video").loc[video_id, "task"]
    st.session_state[f"ex_correct_{info.name}"] = "any"
    st.session_state[f"ex_video_{info.name}"] = video_id


def _scores_row(out: dict, task: str, pred_task: str) -> None:
    """The video's task, its predicted task and its R/P/F1/IoU, Edit and F1@50 under the run's matching."""
    scores = explore.video_scores(out, info.mapping(task))
    verdict = ":green-badge[correct]" if pred_task == task else ":red-badge[wrong]"
    guess = (":gray-badge[given: one network per task]" if task_given(info.config)
             else f"predicted **{pred_task}** {verdict}")
    cols = st.columns([2.4, 1, 1, 1, 1, 1, 1])
    cols[0].markdown(f"task **{task}**  \n{guess}  \n"
                     f"{len(out['times'])} frames, {float(out['times'][-1]) if len(out['times']) else 0:.0f} s")
    labels = ("Recall", "Precision", "F1", "IoU", "Edit", "F1@50")
    if scores is None:
        why = ("This video has no ground truth (the dataset is not annotated), so key-step localization cannot be "
               "scored; the prediction and the teacher are shown below.")
        for col, label in zip(cols[1:], labels):
            col.metric(label, "–", help=why)
        cols[1].caption("not annotated")
        return
    help_ = "This video's frames scored with the run's matching of its task (pooled over the evaluation split)."
    seg_help = (f"Segments: {scores['n_segments']:.0f} predicted, {scores['n_gt_segments']:.0f} in the ground truth "
                "(background left out). Edit: 1 - the edit distance between the two sequences of steps, "
                "normalised; F1@50: a predicted segment counts when it overlaps a ground-truth segment of its "
                "step with IoU >= 0.5. Both fall when the timeline flickers.")
    values = (scores["recall"], scores["precision"], scores["f1"], scores["iou"], scores["edit"], scores["f1_at"]["50"])
    for i, (col, label, value) in enumerate(zip(cols[1:], labels, values)):
        col.metric(label, sh.pct(value), help=help_ if i < 4 else seg_help)


def _frame_key(video_id: str) -> str:
    """The session key of the frame slider of a video of the run shown."""
    return f"ex_frame_{info.name}_{video_id}"


def _on_timeline_click(chart_key: str, frame_key: str) -> None:
    """A click on a timeline segment moves the frame slider to the segment's start."""
    event = st.session_state.get(chart_key)
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    for point in points:
        data = point.get("customdata")
        if data is not None and len(data) > 1:
            st.session_state[frame_key] = int(data[1])
            return


def _step(frame_key: str, delta: int, last: int) -> None:
    st.session_state[frame_key] = int(np.clip(st.session_state.get(frame_key, 0) + delta, 0, last))


@st.fragment
def frame_viewer(video_id: str, out: dict, task: str, pred_task: str, reader, frames_note: str | None) -> None:
    """Frame slider, prev/next, the frame with its attention, the clickable timeline and
    the key-step strength.

    A fragment: moving the slider reruns only this part of the page, and only the frame
    shown is decoded (`reader` seeks to it).
    """
    times = out["times"]
    last = len(times) - 1
    frame_key = _frame_key(video_id)
    if st.session_state.get(frame_key, 0) > last:
        st.session_state[frame_key] = 0
    left, right = st.columns([3, 2], gap="large")
    with right:
        st.slider("Frame", 0, max(last, 1), key=frame_key, disabled=last < 1,
                  help="Sampled frames of the video; click a timeline segment to jump to it.")
        b1, b2 = st.columns(2)
        b1.button("◀ Previous", key=f"{frame_key}_prev", on_click=_step, args=(frame_key, -1, last),
                  width="stretch", disabled=last < 1)
        b2.button("Next ▶", key=f"{frame_key}_next", on_click=_step, args=(frame_key, 1, last),
                  width="stretch", disabled=last < 1)
        i = int(min(st.session_state.get(frame_key, 0), last))
        grid = info.grid
        opacity = 0.0
        if grid is not None:
            opacity = st.slider("Attention opacity", 0.0, 1.0, 0.45, 0.05, key="ex_opacity",
                                help="Where the network looks in the frame, red = most (the paper's spatial "
                                     "attention alpha, Eq. 1).")
        steps = info.step_names(task)
        gt = int(out["gt"][i])
        state, teacher = int(out["states"][i]), int(out["teacher"][i])
        lines = [f"**t = {times[i]:.1f} s** (frame {i + 1} of {last + 1})"]
        if gt != -2:
            lines.append("ground truth: **" + ("background" if gt < 0 else (steps[gt] if gt < len(steps)
                                                                            else f"step {gt + 1}")) + "**")
        lines += [f"prediction: **{info.state_text(task, state)}**",
                  f"clustering's suggestion: {info.state_text(task, teacher)}"]
        st.markdown("  \n".join(lines))
    with left:
        image = None
        if reader is None:
            st.info(frames_note or "No frames to show.", icon=":material/info:")
        else:
            with sh.guard("Frame"):
                image = reader.frame_at(float(times[i]))
        if image is not None:
            if grid is None:
                st.image(image, width=480)
            else:
                st.image(viz.attention_overlay(image, out["alpha"][i], grid, opacity), width=480,
                         caption="frame with its spatial attention")
        if grid is None:
            st.caption("No attention heatmap: these features have no spatial grid (R = 1, one vector per "
                       "frame), so the attention network has a single cell and weighs the whole frame.")
    colors = explore.video_colors(info, out, task, pred_task)  # one state, one colour, on every chart
    rows = explore.timeline_rows(info, out, task, teacher=True, colors=colors)
    fig = viz.timeline_figure(rows, times, current=float(times[i]))
    chart_key = f"ex_timeline_{info.name}_{video_id}"
    st.plotly_chart(fig, key=chart_key, on_select=lambda: _on_timeline_click(chart_key, frame_key),
                    selection_mode="points", config={"displayModeBar": False})
    if rows and rows[0]["name"] == "ground truth":
        st.caption("Ground truth above the prediction (the network's steps) and the suggestion (the steps the "
                   "clustering suggested, which the network learned from: the paper's teacher). A step takes the "
                   "colour of the true step it was paired with (one to one, per task); unpaired ones have colours "
                   "of their own; background is grey. Click a segment to jump to it.",
                   help="Pairing: the paper's Hungarian matching of states to ground-truth steps, per task.")
    else:
        st.caption("The prediction (the network's steps) above the suggestion (the steps the clustering "
                   "suggested, which the network learned from: the paper's teacher); each step has its own colour "
                   "and the name you gave it on **Key-steps**; background is grey. Click a segment to jump to it.")
    strength = explore.keystep_strength(out, info.selected(pred_task))
    if strength is not None:
        values, best = strength
        labels = {s: info.state_text(pred_task, s) for s in info.selected(pred_task)}
        st.plotly_chart(viz.strength_figure(times, values, best, colors, labels, current=float(times[i])),
                        key=f"ex_strength_{info.name}_{video_id}", config={"displayModeBar": False})
        st.caption(f"Step strength for the guessed task **{pred_task}**: at each frame, how sure the network is "
                   "of its most likely step times how much the task guess relies on that step; dots take the "
                   "step's colour. Peaks are where the network sees a step it relies on (the paper's Fig. 4: "
                   "p × pooling weight beta).")
    else:
        st.caption("No key-step strength: this run has no pooling weights (single-task setting).")


def _reader_for(record):
    """A frame reader of the video for the viewer, or None and why."""
    if record is None:
        return None, "The dataset's video file cannot be found, so there are no frames to show."
    if record.kind != "video":
        return None, "This dataset has precomputed features and no video files: there are no frames to show."
    return sh.video_reader(record), None


with sh.guard(f"Run {info.name}"):
    video_id = _pick_video()
    if video_id is not None:
        table = sh.video_table(info).set_index("video")
        row = table.loc[video_id]
        out = sh.outputs(info, video_id)
        _scores_row(out, row["task"], row["pred_task"])
        record = sh.video_record(info, video_id)
        reader, note = None, "The video could not be opened."
        with sh.guard("Frames"):
            reader, note = _reader_for(record)
        frame_viewer(video_id, out, row["task"], row["pred_task"], reader, note)
        _corrections.span_form(info, video_id, out["times"], _frame_key(video_id))
        with sh.guard("Videos to correct first"):
            _corrections.first_to_correct(info, video_id, row["task"], _open_video)

        left, right = st.columns([1, 1], gap="large")
        with left:
            st.subheader("Video")
            if record is not None and explore.playable(record):
                with sh.guard("Video"):
                    st.video(str(record.source))
            elif record is not None and record.kind == "video":
                st.caption(f"The file is over {explore.PLAYER_MAX_BYTES // 2**20} MB, too large to embed in the "
                           f"page (it would be read whole): play it from {record.source}. The frame viewer above "
                           "reads only the frames it shows.")
            else:
                st.caption("No playable video for this item.")
        with right:
            st.subheader("Task probabilities")
            st.plotly_chart(viz.task_probs_figure(out["task_probs"], info.tasks, row["task"]),
                            key="ex_task_probs", config={"displayModeBar": False})
            st.caption(explore.task_probs_caption(info.config))

        st.subheader("How much the task guess relies on each kind of moment")
        if out["beta"].size == 0:
            st.caption("This run has no pooling weights (single-task setting: no task classifier).")
        else:
            pred = row["pred_task"]
            selected = info.selected(pred)
            colors = explore.video_colors(info, out, row["task"], pred)  # as on the timeline
            st.plotly_chart(viz.pooling_weights_figure(out["beta"], selected, info.state_names(pred), colors),
                            key="ex_beta", config={"displayModeBar": False})
            learn = "learned" if info.config.get("learnable_pooling") else "uniform (learnable pooling off)"
            named = ("named by the name you gave them, else the true step they were paired with" if info.annotated
                     else "named by the name you gave them on **Key-steps**")
            st.caption(f"How much the task guess relies on each of the {len(out['beta'])} kinds of moment in this "
                       f"video ({learn}); the steps of the guessed task **{pred}** are outlined, coloured as on the "
                       f"timeline and {named}." + explore.pooling_role(info.config),
                       help="The paper's learnable key-step pooling weights beta over the M latent states (Eq. 5).")

    st.subheader("Downloads")
    sh.download_buttons(info, "ex_dl")
