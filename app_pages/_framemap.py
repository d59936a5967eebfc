"""Key-steps' 2-D map of the frames (issue 21), layout only; the map is procl.framemap."""
from __future__ import annotations

import plotly.express as px
import streamlit as st

from app_pages import _shared as sh
from procl import framemap


@st.cache_data(show_spinner="Mapping the frames…", max_entries=8)
def _map(path: str, stamp: float):
    return framemap.frame_map(path)


def frame_map(info, task: str, order: list[int]) -> None:
    """The map of the run's frames; `order`: the task's states in the procedure's order (the legend's)."""
    st.subheader("Map of the frames")
    with sh.guard("Map"):
        data = _map(str(info.path), (info.path / "model.pt").stat().st_mtime)
        if data.empty:
            st.caption("No frames to map.")
            return
        only = st.toggle(f"Only {task}", value=True, key=f"map_only_{info.name}")
        shown = data[data["task"] == task] if only else data
        label = [info.state_label(t, int(s)) for t, s in zip(shown["task"], shown["state"])]  # as on the timelines
        fig = px.scatter(shown.assign(step=label), x="x", y="y", color="step", hover_data=["video", "time"],
                         custom_data=["video", "time"], height=480,
                         color_discrete_map=info.label_colors(task, shown["state"].unique()),
                         category_orders={"step": info.label_order(task, order, label)})
        fig.update_traces(marker={"size": 5})
        fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, xaxis_title="PC 1", yaxis_title="PC 2")
        event = st.plotly_chart(fig, key=f"map_{info.name}", on_select="rerun", selection_mode="points")
        st.caption(f"Each point is a frame in the space the teacher clusters (attention features), on its first two "
                   f"principal components (PCA), coloured by the step the run gives it; at most "
                   f"{framemap.MAP_CAP} frames, taken evenly from every video ({len(data)} here). Click a point to "
                   "see its frame.")
        points = (event or {}).get("selection", {}).get("points", []) if event else []
        if points:
            video_id, time = points[0]["customdata"][0], float(points[0]["customdata"][1])
            record = sh.video_record(info, video_id)
            frames = sh.frames_at(record, [time]) if record is not None else None
            if frames is not None:
                st.image(frames[0], caption=f"{video_id} · {time:.1f} s", width=260)
            else:
                st.caption(f"{video_id} at {time:.1f} s (no frames: precomputed features)")
