"""Figures and overlays for the app, as pure functions (plotly figures, numpy images).

Colours of key-step timelines agree through the metric's matching: a predicted state
matched to ground-truth step j is drawn in step j's colour; unmatched states get
colours of their own (from the end of the palette); background is grey.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import plotly.graph_objects as go

from procl.metrics import segments_of

BACKGROUND_COLOR = "#d9d9d9"
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#b15928", "#393b79", "#e7ba52", "#843c39", "#5254a3", "#6b6ecf", "#637939",
    "#ad494a", "#3182bd", "#31a354", "#756bb1",
]


def step_color(step: int) -> str:
    return BACKGROUND_COLOR if step < 0 else PALETTE[step % len(PALETTE)]


def spare_color(i: int) -> str:
    """The i-th colour of the palette, then colours of their own past it (golden-angle hues),
    so that many unmatched states of several runs never share one."""
    if i < len(PALETTE):
        return PALETTE[i]
    import colorsys

    hue = ((i - len(PALETTE)) * 0.618034 + 0.11) % 1.0
    lightness = (0.38, 0.52, 0.64)[(i // 7) % 3]
    r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.65)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def state_colors(mapping: dict, states: Sequence[int], n_steps: int, spare: int | None = None) -> dict[int, str]:
    """Colour per predicted state: its matched step's colour, else a colour past the steps'
    (given out in the order the states first appear in `states`, from the `spare`-th on:
    n_steps by default)."""
    colors, spare = {}, n_steps if spare is None else spare
    for s in dict.fromkeys(int(s) for s in np.asarray(states).reshape(-1) if int(s) >= 0):
        step = mapping.get(str(s), mapping.get(s))
        if step is not None:
            colors[s] = step_color(int(step))
        else:
            colors[s] = spare_color(spare) if spare < 200 else PALETTE[spare % len(PALETTE)]
            spare += 1
    return colors


def _ends(times: np.ndarray) -> np.ndarray:
    """Each sample's end: the next sample's time (the last one lasts a median step)."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.5
    return np.append(times[1:], times[-1] + step) if len(times) else times


def timeline_figure(
    rows: list[dict], times: np.ndarray, current: float | None = None, height_per_row: int = 34,
) -> go.Figure:
    """Stacked key-step timelines, the first row on top.

    Each row: {"name", "labels" [T], "colors" {label: colour}, "names" {label: hover
    text}, "legend" {label: legend entry} (optional, default: names), "times" [T]
    (optional, default: `times`), "rank_offset" (optional: legend entries are ordered
    by rank_offset + label)}. Segments are horizontal bars in seconds, one trace
    per (row, label); each bar carries [start time, start index] as customdata so that
    a click can jump there. Labels < 0 are background (grey, no legend entry).
    `current` draws a marker line at that time.
    """
    fig = go.Figure()
    legend_seen: dict[str, str] = {}  # legend entry -> its colour
    end = 0.0
    for row in rows:
        row_times = np.asarray(row.get("times", times), dtype=float)
        ends = _ends(row_times)
        if len(ends):
            end = max(end, float(ends[-1]))
        runs_by_label: dict[int, list[tuple[int, int]]] = {}
        for label, a, b in segments_of(np.asarray(row["labels"])):
            runs_by_label.setdefault(int(label), []).append((a, b))
        for label in sorted(runs_by_label, key=lambda lab: (lab >= 0, lab)):
            segs = runs_by_label[label]
            text = row.get("names", {}).get(label, "background" if label < 0 else f"state {label}")
            legend = row.get("legend", row.get("names", {})).get(label, text)
            color = BACKGROUND_COLOR if label < 0 else row["colors"].get(label, "#444444")
            if legend_seen.get(legend, color) != color:  # the same words for another colour (another run's state)
                legend = f"{legend} · {row['name']}"
            fig.add_trace(go.Bar(
                y=[row["name"]] * len(segs), x=[ends[b - 1] - row_times[a] for a, b in segs],
                base=[row_times[a] for a, _ in segs], orientation="h", marker_color=color, marker_line_width=0,
                name=legend, legendgroup=legend, showlegend=label >= 0 and legend not in legend_seen,
                legendrank=row.get("rank_offset", 0) + max(label, 0),
                customdata=[[float(row_times[a]), int(a)] for a, _ in segs],
                unselected=dict(marker=dict(opacity=1.0)),
                hovertemplate=f"{row['name']}: {text}<br>%{{base:.1f}} s, %{{x:.1f}} s long<extra></extra>",
            ))
            if label >= 0:
                legend_seen.setdefault(legend, color)
    if current is not None:
        fig.add_vline(x=current, line_width=2, line_color="black")
    fig.update_layout(
        barmode="overlay", height=80 + height_per_row * max(len(rows), 1) + 22 * ((len(legend_seen) + 3) // 4),
        margin=dict(l=10, r=10, t=10, b=40), xaxis=dict(title="seconds", range=[0, end or 1.0]),
        yaxis=dict(autorange="reversed", type="category"), bargap=0.2, clickmode="event+select",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return fig


def strength_figure(
    times: np.ndarray, strength: np.ndarray, states: np.ndarray, colors: dict[int, str], labels: dict[int, str],
    current: float | None = None, end: float | None = None,
) -> go.Figure:
    """The key-step strength over time (the paper's Fig. 4): p[t, s*] * beta[s*] of the most
    probable selected state s* at each frame: a grey line, and each sample's dot in s*'s
    colour (one trace per state, so that an hour of samples stays a few arrays).

    colors / labels: state -> colour / hover name; `end` aligns the x axis with a timeline's.
    """
    times = np.asarray(times, dtype=float)
    strength = np.asarray(strength, dtype=float)
    states = np.asarray(states, dtype=int)
    fig = go.Figure(go.Scatter(
        x=times, y=strength, mode="lines", name="strength", showlegend=False, hoverinfo="skip",
        line=dict(color="#555555", width=1.2), fill="tozeroy", fillcolor="rgba(120,120,120,0.12)",
    ))
    for s in sorted({int(v) for v in np.unique(states)}):
        hit = states == s
        label = labels.get(s, f"state {s}")
        fig.add_trace(go.Scatter(
            x=times[hit], y=strength[hit], mode="markers", name=label, showlegend=False,
            marker=dict(size=5, color=colors.get(s, "#444444")),
            hovertemplate=f"%{{x:.1f}} s: {label}<br>p × beta = %{{y:.4f}}<extra></extra>",
        ))
    if current is not None:
        fig.add_vline(x=current, line_width=2, line_color="black")
    right = end if end is not None else (float(_ends(times)[-1]) if len(times) else 1.0)
    fig.update_layout(height=200, margin=dict(l=10, r=10, t=10, b=40), showlegend=False,
                      xaxis=dict(title="seconds", range=[0, right or 1.0]),
                      yaxis=dict(title="p × beta", rangemode="tozero"))
    return fig


def attention_overlay(frame: np.ndarray, alpha: np.ndarray, grid: tuple[int, int], opacity: float = 0.5) -> np.ndarray:
    """The frame [H, W, 3] RGB with the spatial attention alpha [R] (R = gh * gw) as a heatmap."""
    h, w = frame.shape[:2]
    a = np.asarray(alpha, dtype=np.float32).reshape(grid)
    a = (a - a.min()) / (a.max() - a.min() + 1e-8)
    heat = cv2.resize(a, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (frame.astype(np.float32) * (1 - opacity) + colored.astype(np.float32) * opacity).astype(np.uint8)


def task_probs_figure(probs: np.ndarray, tasks: list[str], true_task: str | None = None) -> go.Figure:
    """Horizontal bars of the task probabilities; the true task's bar is green."""
    colors = ["#2ca02c" if t == true_task else "#1f77b4" for t in tasks]
    fig = go.Figure(go.Bar(x=[float(p) for p in probs], y=tasks, orientation="h", marker_color=colors,
                           text=[f"{float(p):.2f}" for p in probs], textposition="auto",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(height=70 + 28 * len(tasks), margin=dict(l=10, r=10, t=10, b=40),
                      xaxis=dict(range=[0, 1], title="probability"), yaxis=dict(autorange="reversed"))
    return fig


def pooling_weights_figure(
    beta: np.ndarray, selected: list[int], names: dict[int, str], colors: dict[int, str] | None = None,
) -> go.Figure:
    """Bars of beta_m over the M states (Eq. 5); the predicted task's selected states
    highlighted (in their timeline colour when `colors` is given) and named."""
    sel = set(int(s) for s in selected)
    colors = colors or {}
    x = [f"{m}: {short(names[m])}" if m in names else str(m) for m in range(len(beta))]
    bar_colors = [colors.get(m, "#d62728") if m in sel else "#c6dbef" for m in range(len(beta))]
    fig = go.Figure(go.Bar(x=x, y=[float(b) for b in beta], marker_color=bar_colors,
                           marker_line_color=["#000000" if m in sel else "rgba(0,0,0,0)" for m in range(len(beta))],
                           marker_line_width=1,
                           hovertemplate="state %{x}<br>beta %{y:.4f}<extra></extra>"))
    fig.add_hline(y=1.0 / max(len(beta), 1), line_dash="dot", line_color="#888888",
                  annotation_text="uniform 1/M", annotation_position="top right")
    # room for the slanted labels (automargin), which are kept short: the full name is in Key-steps
    fig.update_layout(height=360, margin=dict(l=60, r=10, t=10, b=10), yaxis_title="pooling weight beta",
                      xaxis=dict(tickangle=-60, type="category", automargin=True), yaxis=dict(automargin=True))
    return fig


def short(text: str, most: int = 22) -> str:
    """`text` cut to `most` characters (an ellipsis marks the cut): an axis label that fits."""
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


def loss_figure(history: dict) -> go.Figure:
    fig = go.Figure()
    steps = history.get("step", [])
    labels = {"loss": "loss (all)", "rank": "learning the suggestion (rank)", "ce": "task guess (ce)"}
    for name in ("loss", "rank", "ce"):
        values = history.get(name, [])
        if values:
            fig.add_trace(go.Scatter(x=steps, y=smooth(values), mode="lines", name=labels[name]))
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=30), xaxis_title="step (videos)",
                      yaxis_title="loss (smoothed)")
    return fig


def smooth(values: Sequence[float], window: int = 10) -> list[float]:
    v = np.asarray(values, dtype=float)
    if len(v) < window:
        return v.tolist()
    kernel = np.ones(window) / window
    head = np.cumsum(v[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(v, kernel, mode="valid")]).tolist()


K_SCORES = (("recall", "found (recall, R)", "#1f77b4"), ("precision", "right (precision, P)", "#ff7f0e"),
            ("f1", "F1", "#2ca02c"), ("accuracy", "task guessed right (accuracy)", "#9467bd"),
            ("uniform_f1", "F1 of equal cuts", "#7f7f7f"))  # the trivial reference, dashed


def metrics_vs_k_figure(rows: list[dict]) -> go.Figure:
    """rows: {"run", "k", "recall", "precision", "f1", "accuracy", "uniform_f1"} (fractions); one
    line per score, in %, named in the legend (equal cuts' F1 dashed, where the runs have it);
    the x axis ticks the k values of the runs only.

    When several runs share a k (ablations), points are not joined by lines.
    """
    fig = go.Figure()
    rows = sorted(rows, key=lambda r: r["k"])
    ks = [r["k"] for r in rows]
    mode = "lines+markers" if len(set(ks)) == len(ks) else "markers"
    for key, label, color in K_SCORES:
        pts = [r for r in rows if r.get(key) is not None and r.get(key) == r.get(key)]
        if pts:
            fig.add_trace(go.Scatter(x=[r["k"] for r in pts], y=[100 * r[key] for r in pts], mode=mode,
                                     name=label, text=[r["run"] for r in pts], marker_size=9, line_color=color,
                                     line_dash="dash" if key == "uniform_f1" else "solid",
                                     hovertemplate=f"%{{text}}<br>k=%{{x}}: {label} %{{y:.1f}}%<extra></extra>"))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=10, b=40), showlegend=True,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                      xaxis=dict(title="k (steps per task)", tickmode="array", tickvals=sorted(set(ks))),
                      yaxis=dict(range=[0, 100], title="score (%)"))
    return fig


PERCENT_SIGNALS = ("background_share", "task_confidence", "seed_agreement")  # fractions, drawn in %


def signals_vs_k_figure(table, labels: tuple) -> go.Figure:
    """Label-free signals against k (procl.choosek.signals_table), one small panel each so that
    every signal keeps its own scale; `labels`: (column, label, tooltip) of each signal.
    Shares and probabilities are shown in %."""
    from plotly.subplots import make_subplots

    table = table.sort_values("k")
    ks = sorted(set(int(k) for k in table["k"]))
    mode = "lines+markers" if len(ks) == len(table) else "markers"
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=[label for _, label, _ in labels],
                        horizontal_spacing=0.06)
    for i, (col, label, tip) in enumerate(labels, start=1):
        pts = table[table[col].notna()]
        scale = 100 if col in PERCENT_SIGNALS else 1
        fig.add_trace(go.Scatter(x=[int(k) for k in pts["k"]], y=[float(v) * scale for v in pts[col]],
                                 mode=mode, name=label, text=list(pts["run"]), marker_size=8, showlegend=False,
                                 hovertemplate=f"%{{text}}<br>k=%{{x}}: {label} %{{y:.2f}}<br>{tip}<extra></extra>"),
                      row=1, col=i)
        fig.update_xaxes(title_text="k", tickmode="array", tickvals=ks, row=1, col=i)
        if col == "states_used":  # the line where every one of the k steps is used
            fig.add_trace(go.Scatter(x=ks, y=ks, mode="lines", line=dict(dash="dot", color="#bbb"),
                                     name="k", hoverinfo="skip", showlegend=False), row=1, col=i)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=30, b=40))
    return fig
