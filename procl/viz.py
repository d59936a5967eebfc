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
    "#bcbd22", "#7f7f7f", "#393b79", "#e7ba52", "#843c39", "#5254a3", "#6b6ecf", "#637939",
    "#ad494a", "#3182bd", "#31a354", "#756bb1",
]


def step_color(step: int) -> str:
    return BACKGROUND_COLOR if step < 0 else PALETTE[step % len(PALETTE)]


def state_colors(mapping: dict, states: Sequence[int], n_steps: int) -> dict[int, str]:
    """Colour per predicted state: its matched step's colour, else a colour past the steps'."""
    colors, spare = {}, n_steps
    for s in sorted({int(s) for s in states if int(s) >= 0}):
        step = mapping.get(str(s), mapping.get(s))
        if step is not None:
            colors[s] = step_color(int(step))
        else:
            colors[s] = PALETTE[spare % len(PALETTE)]
            spare += 1
    return colors


def timeline_figure(
    rows: list[dict], times: np.ndarray, current: float | None = None, height_per_row: int = 34,
) -> go.Figure:
    """Stacked timelines. Each row: {"name", "labels" [T], "colors" {label: colour}, "names" {label: text}}.

    Segments are drawn as horizontal bars in seconds; each bar carries its start time
    as customdata so that a click can jump there. `current` draws a marker line.
    """
    times = np.asarray(times, dtype=float)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.5
    ends = np.append(times[1:], times[-1] + step) if len(times) else times
    fig = go.Figure()
    legend_seen: set[str] = set()
    for row in rows:
        for label, a, b in segments_of(np.asarray(row["labels"])):
            text = row.get("names", {}).get(label, "background" if label < 0 else f"state {label}")
            color = BACKGROUND_COLOR if label < 0 else row["colors"].get(label, "#444")
            fig.add_trace(go.Bar(
                y=[row["name"]], x=[ends[b - 1] - times[a]], base=[times[a]], orientation="h",
                marker_color=color, marker_line_width=0, name=text,
                legendgroup=text, showlegend=text not in legend_seen and label >= 0,
                customdata=[[float(times[a]), int(a)]],
                hovertemplate=f"{row['name']}: {text}<br>%{{base:.1f}}s to %{{x:.1f}}s long<extra></extra>",
            ))
            legend_seen.add(text)
    if current is not None:
        fig.add_vline(x=current, line_width=2, line_color="black")
    fig.update_layout(
        barmode="overlay", height=60 + height_per_row * max(len(rows), 1) + 40,
        margin=dict(l=10, r=10, t=10, b=30), xaxis_title="seconds",
        yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.35), bargap=0.25,
    )
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
    colors = ["#2ca02c" if t == true_task else "#1f77b4" for t in tasks]
    fig = go.Figure(go.Bar(x=list(probs), y=tasks, orientation="h", marker_color=colors,
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(height=40 + 26 * len(tasks), margin=dict(l=10, r=10, t=10, b=30),
                      xaxis=dict(range=[0, 1], title="probability"), yaxis=dict(autorange="reversed"))
    return fig


def pooling_weights_figure(beta: np.ndarray, selected: list[int], names: dict[int, str]) -> go.Figure:
    """Bars of beta_m over the M states; the predicted task's selected states highlighted and named."""
    sel = set(int(s) for s in selected)
    x = [f"{m}: {names[m]}" if m in names else str(m) for m in range(len(beta))]
    colors = ["#d62728" if m in sel else "#9ecae1" for m in range(len(beta))]
    fig = go.Figure(go.Bar(x=x, y=list(beta), marker_color=colors,
                           hovertemplate="state %{x}<br>beta %{y:.4f}<extra></extra>"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="pooling weight beta",
                      xaxis=dict(tickangle=-60, type="category"))
    return fig


def loss_figure(history: dict) -> go.Figure:
    fig = go.Figure()
    steps = history.get("step", [])
    for name in ("loss", "rank", "ce"):
        values = history.get(name, [])
        if values:
            fig.add_trace(go.Scatter(x=steps, y=smooth(values), mode="lines", name=name))
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


def metrics_vs_k_figure(rows: list[dict]) -> go.Figure:
    """rows: {"run", "k", "recall", "precision", "f1", "accuracy"}; one line per metric."""
    fig = go.Figure()
    rows = sorted(rows, key=lambda r: r["k"])
    for key, label in (("recall", "R"), ("precision", "P"), ("f1", "F1"), ("accuracy", "Acc")):
        pts = [(r["k"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                     name=label, text=[r["run"] for r in rows if r.get(key) is not None],
                                     hovertemplate="%{text}<br>k=%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=30), xaxis_title="k",
                      yaxis=dict(range=[0, 1], title="score"))
    return fig
