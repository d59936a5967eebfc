"""Corrections (issue 21), layout only: mark a span (Explore), merge states, mark one
background or split one in two (Key-steps), the list with undo, and "Refine with my corrections" (a
background job, procl.jobs.launch_refine). The logic is procl.corrections."""
from __future__ import annotations

from functools import partial
from typing import Callable

import streamlit as st

from app_pages import _shared as sh
from procl import ProclError, corrections, explore, jobs, runs
from procl.paths import checkpoints_dir


def _do(action, *args) -> None:
    try:
        action(*args)
        st.session_state["corr_msg"] = ("ok", "Saved.")
    except ProclError as err:
        st.session_state["corr_msg"] = ("error", str(err))


def _message() -> None:
    kind, text = st.session_state.pop("corr_msg", (None, None))
    if kind == "error":
        st.error(text, icon=":material/warning:")
    elif kind == "ok":
        st.toast(text)


def _add_span(info, video_id: str) -> None:
    """The span typed on Explore (read when the button is clicked)."""
    get = st.session_state.get
    span = {"video": video_id, "start": get(f"corr_start_{video_id}"), "end": get(f"corr_end_{video_id}"),
            "step": get(f"corr_step_{video_id}", "")}
    corrections.add(info.path, "segments", span, info.config)


def _add_state(info, kind: str, key: str, task: str) -> None:
    """A merge (the states picked), a background or a split state, read when the button is
    clicked; a merge or a background takes the states labelled as the ones picked."""
    value = st.session_state.get(key)
    if kind in ("merge", "background") and value is not None:
        value = info.labelled_as_one(task, value)
    corrections.add(info.path, kind, value, info.config)


def _at_frame(key: str, frame_key: str, times, after: bool) -> None:
    """A span's start (or end: after the frame) set to the frame shown above."""
    i = int(st.session_state.get(frame_key, 0))
    if len(times):
        i = min(max(i, 0), len(times) - 1)
        step = float(times[1] - times[0]) if len(times) > 1 else 0.5
        st.session_state[key] = round(float(times[i]) + (step if after else 0.0), 2)


def span_form(info, video_id: str, times, frame_key: str | None = None) -> None:
    """Explore: mark a span of this video as a named step (new or existing) or as background:
    start and end typed in seconds, or taken from the frame shown (`frame_key`: the frame
    slider's; a click on the timeline moves it to a segment's start)."""
    st.subheader("Correct this video")
    _message()
    end_max = float(times[-1]) if len(times) else 0.0
    start_key, end_key = f"corr_start_{video_id}", f"corr_end_{video_id}"
    if frame_key is not None:
        b1, b2, _ = st.columns([1, 1, 3])
        b1.button("Start at this frame", key=f"corr_start_here_{video_id}", on_click=_at_frame,
                  args=(start_key, frame_key, times, False), icon=":material/first_page:")
        b2.button("End after this frame", key=f"corr_end_here_{video_id}", on_click=_at_frame,
                  args=(end_key, frame_key, times, True), icon=":material/last_page:")
    c1, c2, c3, c4 = st.columns([1, 1, 2, 1])
    c1.number_input("Start (s)", 0.0, end_max, 0.0, step=0.5, key=start_key)
    c2.number_input("End (s)", 0.0, end_max + 1.0, min(end_max, 2.0), step=0.5, key=end_key)
    known = sorted({n for states in info.names.values() for n in states.values()})
    c3.text_input("Step (a name, or background)", key=f"corr_step_{video_id}",
                         placeholder="e.g. loosen nuts" + (f" (named: {', '.join(known[:5])})" if known else ""))
    c4.button("Mark span", key=f"corr_mark_{video_id}", on_click=_do, icon=":material/bookmark_add:",
              args=(_add_span, info, video_id))
    corrections_list(info, key=f"ex_{video_id}")


def first_to_correct(info, video_id: str, task: str, open_video: Callable[[str], None]) -> None:
    """Explore: the videos of this task whose corrections carry furthest (the most typical of
    what the run found: explore.videos_to_correct), those corrected ticked, and a button
    that opens the next one not corrected yet."""
    suggested = sh.videos_to_correct(info).get(task, [])
    if not suggested:
        return
    done = explore.corrected_videos(info)
    marks = [(f"**{v}**" if v == video_id else v) + (" ✓" if v in done else "") for v in suggested]
    upcoming = next((v for v in suggested if v not in done and v != video_id), None)
    c1, c2 = st.columns([4, 1])
    c1.caption(f"Correct these first for **{task}**: " + ", ".join(marks),
               help="The videos most like the others of the task in what procl found where (the first is the "
                    "most typical): the names a person gives in one of them reach the other videos best. On "
                    "generated sets, one corrected video per task chosen this way gave the refined run 3 to 11 "
                    "points more named F1 than one drawn at random (docs/method.md, \"Which videos to correct "
                    "first\"). ✓: has a marked span.")
    c2.button("Open the next one", key=f"corr_next_{video_id}", disabled=upcoming is None, on_click=open_video,
              args=(upcoming,), icon=":material/skip_next:", help=f"Show {upcoming}" if upcoming else
              "Every suggested video of this task has a marked span.")


def state_form(info, task: str, states: list[int]) -> None:
    """Key-steps: merge states into one step, mark a state background, split a state in two
    (where a state number is unambiguous: corrections.states_ambiguous), the list, refine."""
    st.subheader("Correct the key-steps")
    _message()
    why = corrections.states_ambiguous(info.config)
    if why:
        st.caption(f"Merging, splitting or marking states is not offered here: {why}. Spans marked on **Explore** "
                   "refine every task's network.")
    else:
        _state_buttons(info, task, states)
    corrections_list(info, key=f"ks_{task}")
    refine_panel(info)


def _state_buttons(info, task: str, states: list[int]) -> None:
    """One row per correction: what it takes, then its button (wide enough for its label)."""
    label = partial(info.state_label, task)  # a state as the timelines name it
    c1, c2, _ = st.columns([3, 1.5, 1.5], vertical_alignment="bottom")
    group = c1.multiselect("States that are one step", states, key=f"corr_merge_{task}", format_func=label)
    c2.button("Merge", key=f"corr_merge_btn_{task}", disabled=len(group) < 2, on_click=_do,
              args=(_add_state, info, "merge", f"corr_merge_{task}", task), icon=":material/merge:")
    c1, c2, _ = st.columns([3, 1.5, 1.5], vertical_alignment="bottom")
    c1.selectbox("State that is background (idle hands, the scene)", states, key=f"corr_bg_{task}", format_func=label,
                 help="With the states labelled as it (the table's \"labelled as\"): the frames shown as it.")
    c2.button("Mark background", key=f"corr_bg_btn_{task}", on_click=_do,
              args=(_add_state, info, "background", f"corr_bg_{task}", task), icon=":material/block:")
    c1, c2, _ = st.columns([3, 1.5, 1.5], vertical_alignment="bottom")
    c1.selectbox("State that is two steps", states, key=f"corr_split_{task}", format_func=label,
                 help="Refining re-clusters its frames into two; both halves become steps of this task. A step "
                 "the run shows for several states (the table's \"labelled as\") is split into those states, "
                 "each a step of its own.")
    c2.button("Split", key=f"corr_split_btn_{task}", on_click=_do,
              args=(_add_state, info, "split", f"corr_split_{task}", task), icon=":material/call_split:")


def corrections_list(info, key: str) -> None:
    corr = corrections.read_corrections(info.path)
    lines = corrections.describe(corr)
    with st.expander(f"My corrections ({len(lines)})", expanded=bool(lines)):
        for line in lines:
            st.markdown(f"- {line}")
        if not lines:
            st.caption("None yet: mark a span on Explore, or merge, split or mark states background on Key-steps.")
        st.button("Undo the last change", key=f"corr_undo_{key}", disabled=not corrections.can_undo(info.path),
                  on_click=_do, args=(corrections.undo, info.path), icon=":material/undo:")


def _launch(info, name_key: str) -> None:
    name = st.session_state.get(name_key, "").strip()
    try:
        jobs.launch_refine(info.path, name)
        st.session_state[f"refine_job_{info.name}"] = name
    except ProclError as err:
        st.session_state["corr_msg"] = ("error", str(err))


def refine_panel(info) -> None:
    st.subheader("Refine with my corrections")
    corr = corrections.read_corrections(info.path)
    name_key = f"refine_name_{info.name}"
    if name_key not in st.session_state:
        st.session_state[name_key] = runs.unique_name(f"{info.name}-refined")
    c1, c2 = st.columns([2, 1])
    c1.text_input("Name of the refined run", key=name_key)
    c2.button("Refine with my corrections", key=f"refine_btn_{info.name}", type="primary",
              disabled=corrections.is_empty(corr), on_click=_launch, args=(info, name_key),
              icon=":material/model_training:")
    st.caption("A new run, warm-started from this one, learns from your corrections: labelled spans are fixed, merged "
               "states share one label, split states become two, background states are never key-steps, and your "
               f"names carry over to every video. CLI: `python -m procl refine --run {info.name} --run-name NEW`.")
    job = st.session_state.get(f"refine_job_{info.name}")
    if job:
        st.fragment(lambda: _progress(info, job), run_every=1.0)()


def _progress(info, job: str) -> None:
    path = checkpoints_dir() / job
    status = runs.read_status(path) if (path / "config.json").exists() else {}
    state = status.get("state")
    if state == "done":
        st.success(f"Refined run **{job}** is ready: pick it in the sidebar, or compare it on Compare.",
                   icon=":material/check_circle:")
    elif state in ("failed", "cancelled"):
        st.error(f"Refinement {job} {state}: {status.get('error', '')}", icon=":material/error:")
    elif state == "running" and status.get("steps"):
        st.progress(min(1.0, status.get("step", 0) / status["steps"]),
                    text=f"refining {job}: epoch {min(status.get('epoch', 0) + 1, status.get('epochs', 1))}/"
                         f"{status.get('epochs', '?')}")
    else:
        log = jobs.refine_log(info.path, job, 3)
        if "error" in log:
            st.error(log, icon=":material/error:")
        else:
            st.progress(0.0, text=f"refining {job}: preparing")
