"""Key-steps: a task's procedure (its key-steps in typical order), naming them, and their frames."""
import streamlit as st

from app_pages import _corrections, _framemap
from app_pages import _shared as sh
from procl import ProclError, explore, names, procedure, viz

st.title("Key-steps")
info = sh.require_finished_run()
st.caption(f"Run **{info.name}** on **{sh.dataset_label(info.config.get('dataset'))}** — "
           f"{sh.describe_features(info.config)}", help=f"Dataset spec: `{info.config.get('dataset')}`")


def save_name(key: str, task: str, state: int) -> None:
    """Write the name typed for a state into the run folder (names.json)."""
    try:
        names.set_name(info.path, info.config, task, state, st.session_state.get(key, ""))
    except ProclError as err:
        st.session_state["ks_name_error"] = f"State {state}: {err}"


def run_procedure_table():
    """The procedure of every task of the run (for the downloads)."""
    return procedure.procedure_table(info, lambda t: sh.task_outputs(info, t))


with sh.guard(f"Run {info.name}"):
    c1, c2 = st.columns([2, 1])
    task = c1.selectbox("Task", info.tasks, key=f"ks_task_{info.name}")
    n = c2.slider("Frames per key-step", 2, 8, 5, key="ks_frames")
    outs = sh.task_outputs(info, task)
    table = procedure.task_procedure(info, outs, task)
    colors = info.state_colors(task)
    if "ks_name_error" in st.session_state:
        st.error(st.session_state.pop("ks_name_error"), icon=":material/warning:")

    # ---------------------------------------------------------------- the procedure
    st.subheader(f"The procedure of {task}")
    seen = table[table["videos"] > 0]
    if len(seen):
        st.markdown(" → ".join(f"**{r.order}.** {info.state_label(task, r.state)}" for r in seen.itertuples()))
    st.markdown(f"The **{len(table)} steps** the clustering suggested for **{task}**, in their typical "
                f"order in the task's {len(outs)} videos: *at* is the median, over the videos where the network "
                "predicts the key-step, of where it happens (0% = the start, 100% = the end); *occurs in* is the "
                "share of the videos where it is predicted and *typical duration* its median length in them; "
                "*shared with* lists other tasks that selected the same state"
                + (" (none in a single-task run: each task has its own network and states)."
                   if info.config.get("setting") == "single" else ".")
                + " *reliance* is how much the task guess relies on the step; *suggested as* is the order in "
                  "which the clustering picked it."
                + (" *step* is the true step it was paired with and *IoU* their overlap." if info.annotated
                   else " Name the key-steps below: the names show on every page and in the downloads."))
    shown = table.assign(
        name=[info.given_name(task, s) or "" for s in table["state"]],
        at=[sh.pct(v) for v in table["at"]],
        occurs_in=[sh.pct(v) for v in table["occurs_in"]],
        duration=["–" if sh.missing(v) else f"{v:.1f} s" for v in table["duration"]],
        iou=[sh.pct(v) for v in table["iou"]],
        beta=["–" if sh.missing(b) else f"{b:.4f}" for b in table["beta"]],
    ).rename(columns={"occurs_in": "occurs in", "duration": "typical duration", "shared_with": "shared with",
                      "beta": "reliance", "pick": "suggested as"})
    columns = ["order", "state", "name", "step", "iou", "at", "occurs in", "typical duration", "shared with",
               "reliance", "suggested as"]
    into = {int(s): info.merged_into(task, int(s)) for s in table["state"]}
    if any(r is not None for r in into.values()):  # the decoding labels some states as others (merge_confused)
        shown["labelled as"] = ["" if into[int(s)] is None else f"state {into[int(s)]}" for s in table["state"]]
        columns.insert(2, "labelled as")
    if not info.annotated:
        columns = [c for c in columns if c not in ("step", "iou")]
    st.dataframe(shown[columns], hide_index=True, width="stretch", column_config={
        "state": st.column_config.NumberColumn("state", help="The kind of moment (the paper's latent state)."),
        "reliance": st.column_config.TextColumn("reliance", help="The paper's mean pooling weight beta (Eq. 5) "
                                                "over the task's videos."),
        "suggested as": st.column_config.NumberColumn("suggested as", help="Pick order of the paper's subset "
                                                      "selection (Eq. 2), the teacher of the pseudo-labels."),
        "labelled as": st.column_config.TextColumn("labelled as", help="The network does not tell this state apart "
                                                   "from that one on the training videos, and the two make one run "
                                                   "in the videos: the decoding counts them as one key-step (the "
                                                   "setting Merge confused states)."),
    })
    d1, d2, d3, d4 = st.columns(4)
    d1.download_button("procedure.csv (every task)", data=lambda: procedure.procedure_csv(run_procedure_table()),
                       file_name=f"{info.name}-procedure.csv", mime="text/csv", key="ks_dl_csv",
                       icon=":material/download:", on_click="ignore")
    d2.download_button("procedure.json (every task)",
                       data=lambda: procedure.procedure_json_text(info, run_procedure_table()),
                       file_name=f"{info.name}-procedure.json", mime="application/json", key="ks_dl_json",
                       icon=":material/download:", on_click="ignore")
    d3.download_button(f"predictions.csv of {info.name}", data=lambda: explore.predictions_csv(info),
                       file_name=f"{info.name}-predictions.csv", mime="text/csv", key="ks_dl_pred",
                       icon=":material/download:", on_click="ignore")
    d4.download_button(f"segments.csv of {info.name}", data=lambda: explore.segments_csv(info),
                       file_name=f"{info.name}-segments.csv", mime="text/csv", key="ks_dl_seg",
                       icon=":material/download:", on_click="ignore",
                       help="Every video as segments (start and end in seconds, state, name): "
                            "an annotation to read, edit or train on.")
    st.caption(f"The same from the command line: `python -m procl procedure --run {info.name} [--json]`; "
               f"`python -m procl predict --run {info.name} --dataset {info.config.get('dataset', 'SPEC')} --segments "
               f"--out segments.csv`.")

    # ---------------------------------------------------------------- each key-step
    st.subheader("Name the key-steps")
    unit = names.unit_of(info.config, task)
    st.caption("Type a name for what a key-step shows (say *loosen nuts*) and press Enter; an empty name removes it. "
               + ("A state is shared by the tasks of one network, so its name holds in each task that selected it."
                  if info.config.get("setting") != "single" else ""))
    videos = {}
    try:
        ds = sh.dataset(info.config["dataset"])
        videos = {v.id: v for v in ds.videos_of(task=task)}
    except Exception as err:  # noqa: BLE001 - frames are optional; the table above stands alone
        st.warning(f"Frames unavailable: {err}", icon=":material/warning:")
    grid = info.grid
    for r in table.itertuples():
        state = int(r.state)
        with st.container(border=True):
            color = colors.get(state, "#444444")
            head, field = st.columns([3, 2])
            head.markdown(f"<span style='display:inline-block;width:0.9em;height:0.9em;background:{color};"
                          f"border-radius:2px;margin-right:0.4em'></span>**{r.order}. "
                          f"{info.state_text(task, state)}**", unsafe_allow_html=True)
            key = f"ks_name_{info.name}_{unit}_{state}"
            if key not in st.session_state:
                st.session_state[key] = info.given_name(task, state) or ""
            field.text_input(f"Name of state {state}", key=key, on_change=save_name, args=(key, task, state),
                             placeholder="what it shows, e.g. loosen nuts", max_chars=names.MAX_LENGTH,
                             label_visibility="collapsed")
            into = info.merged_into(task, state)
            facts = [f"IoU {sh.pct(r.iou)}" if r.step else None,
                     f"at {sh.pct(r.at)} of the video, in {sh.pct(r.occurs_in)} of the videos, typically "
                     f"{r.duration:.1f} s" if r.videos else
                     (f"counted as state {into}" if into is not None else "never predicted for this task"),
                     f"the clustering's suggestion #{r.pick}",
                     None if sh.missing(r.beta) else f"reliance {r.beta:.4f}",
                     f"also selected by: {r.shared_with}" if r.shared_with else "selected by this task only"]
            head.caption(" · ".join(f for f in facts if f))
            if into is not None:
                st.caption(f"Labelled as {info.state_text(task, into)}: on the training videos the network does not "
                           "tell the two apart, so the decoding counts them as one key-step (the setting *Merge "
                           "confused states*; 0 keeps every state apart). Its frames are shown there.")
                continue
            best = explore.representative_frames(outs, state, n)
            if not best:
                best = explore.representative_frames(outs, state, n, field="teacher")
                st.caption("The network never predicts this step; frames the clustering suggested for it:" if best
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
        st.caption("Frames show where the network looks (red = most; the paper's spatial attention).")

    order = [int(s) for s in table["state"]]  # the procedure's order
    _framemap.frame_map(info, task, order)
    _corrections.state_form(info, task, order)
