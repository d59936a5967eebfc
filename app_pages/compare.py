"""Compare: several runs side by side: a metrics table, scores against k, one video's timelines stacked."""
import pandas as pd
import streamlit as st

from app_pages import _shared as sh
from procl import choosek, explore, refine, viz, words
from procl.config import task_given

st.title("Compare runs")

entries = [e for e in sh.all_runs() if e.get("status", {}).get("state") == "done" and e.get("metrics")]
if not entries:
    st.info("No finished run yet: train some on the **Train** page (e.g. the same dataset at several k).",
            icon=":material/info:")
    st.stop()

names = [e["name"] for e in entries]
current = sh.current_run()
dataset_of = {e["name"]: e["config"].get("dataset") for e in entries}
if current is not None and current["name"] in names:
    default = [n for n in names if dataset_of[n] == dataset_of[current["name"]]][:6]
else:
    default = names[:6]
chosen = st.multiselect("Runs", names, default=default, key="cmp_runs",
                        help="Typically the same dataset at several k, or ablations (attention, pooling, setting).")
if not chosen:
    st.info("Choose at least one run.", icon=":material/info:")
    st.stop()

infos = []
for name in chosen:
    entry = next(e for e in entries if e["name"] == name)
    with sh.guard(f"Run {name}"):
        infos.append(sh.run_info(entry["path"]))

if infos:
    rows = [explore.compare_row(i) for i in infos]
    table = pd.DataFrame(rows)
    if table["dataset"].nunique() > 1 or table["backbone"].nunique() > 1:
        st.warning("These runs use different datasets or backbones: their scores are not directly comparable.",
                   icon=":material/warning:")
    if table["split"].nunique() > 1:
        st.caption("Runs are scored on different splits (multi-task: test split; single-task: all videos).")
    score_cols = ["recall", "precision", "f1", "iou", "accuracy", "teacher_f1", "uniform_f1"]
    labels = {"recall": "R", "precision": "P", "f1": "F1", "iou": "IoU", "accuracy": "Acc",
              "teacher_f1": "suggestion F1", "uniform_f1": "equal cuts F1"}
    shown = table.copy()
    unscored = [i.name for i in infos if not i.annotated]
    text_cols = {col for col in score_cols if unscored and col != "accuracy"}  # a run without ground truth says so
    if any(sh.missing(v) for v in table["uniform_f1"]):  # a run finished before procl kept equal cuts: "–"
        text_cols.add("uniform_f1")
    given = [task_given(i.config) for i in infos]  # single-task: the task is given, not guessed
    if any(given):
        text_cols.add("accuracy")
    for col in score_cols:
        if col == "accuracy" and col in text_cols:
            shown[col] = ["given" if g else sh.pct(v).rstrip("%") for g, v in zip(given, table[col])]
        elif col in text_cols:
            shown[col] = [sh.score(i, v).rstrip("%") for i, v in zip(infos, table[col])]
        else:
            shown[col] = [None if sh.missing(v) else 100 * v for v in table[col]]
    helps = {"recall": "found: share of the true steps' frames found (recall)",
             "precision": "right: share of the found frames that are right (precision)",
             "f1": "balance of found and right (F1)", "iou": "overlap of found and true steps (IoU)",
             "accuracy": "share of the videos whose task is guessed right ('given': a single-task run is told "
                         "each video's task)",
             "teacher_f1": "F1 of the clustering's suggestion the network learned from (the paper's teacher)",
             "uniform_f1": words.EQUAL_CUTS_HELP + " ('–': a run finished before procl kept it)"}
    config = {col: (st.column_config.TextColumn(label, help=helps.get(col)) if col in text_cols
                    else st.column_config.NumberColumn(label, format="%.1f", help=helps.get(col)))
              for col, label in labels.items()}
    config["dataset"] = st.column_config.TextColumn("dataset", help="The dataset's spec (--dataset SPEC).")
    st.dataframe(shown.assign(dataset=[words.dataset_name(d) for d in shown["dataset"]]), hide_index=True,
                 width="stretch", column_config=config)
    st.caption("Scores in %: how well the steps found match the true ones (R, P, F1, IoU: each found step paired "
               "one to one with a true step per task, averaged over tasks) and how often the task is guessed "
               "right (Acc; *given*: a single-task run is told each video's task)."
               + (f" *not annotated*: {', '.join(unscored)} ran on videos without ground truth, so only task "
                  "accuracy is scored." if unscored else ""))
    for child in infos:  # a refined run beside its parent: what the corrections changed elsewhere
        parent = child.config.get("parent")
        if parent and parent in chosen:
            with sh.guard(f"Refinement {child.name}"):
                c = refine.changed_frames(next(i.path for i in infos if i.name == parent), child.path)
                st.info(f"**{child.name}** refines **{parent}** with your corrections: {c['changed']} of "
                        f"{c['frames']} frames ({sh.pct(c['share'])}) of the {c['labelled_videos'] and 'other '}"
                        f"videos changed step, in {c['videos_changed']} videos.", icon=":material/difference:")

    st.subheader("Scores against k")
    st.plotly_chart(viz.metrics_vs_k_figure(rows), key="cmp_vs_k", config={"displayModeBar": False})
    st.caption("Above the number of steps a task has, the extra steps split true ones: recall stays, but each true "
               "step is paired with one found step only, so precision and F1 fall while what was found stays right. "
               "Runs of the default recipe count as one the steps their network does not tell apart (*Merge "
               "confused states*), which takes back most of that loss (measured on the built-in set: "
               "docs/method.md, C5).")

    st.subheader("Choosing k without ground truth")
    with sh.guard("Signals against k"):
        datasets = list(dict.fromkeys(i.config.get("dataset") for i in infos))
        ds_choice = datasets[0]
        if len(datasets) > 1:
            ds_choice = st.selectbox("Dataset", datasets, key="cmp_k_dataset", format_func=words.dataset_name,
                                     help="The signals and the suggestion compare runs of one dataset.")
        signals = sh.signals_table([i.path for i in infos if i.config.get("dataset") == ds_choice])
        if len(signals):
            st.plotly_chart(viz.signals_vs_k_figure(signals, choosek.shown_signals(signals)), key="cmp_signals",
                            config={"displayModeBar": False})
            best, why = choosek.suggest_k(signals)
            st.info(f"**Suggested k: {best}.** {why}", icon=":material/lightbulb:")
            st.caption("Read from the runs' own predictions, no ground truth needed: how many steps each task "
                       "really uses (the dotted line: all k), how many segments a video is cut into, how much "
                       "is called background, how sure the task guess is, and how alike runs of the same k "
                       "with different seeds cut the videos. With two seeds of each k the suggestion is the k "
                       "where they agree most (on the built-in set and two other generated sets it lands within "
                       "1 of most tasks' true number of steps); with one run per k, the smallest k beyond which "
                       "the tasks stop using more steps, a rougher guide (docs/method.md, Choosing k).")

    st.subheader("One video, every run")
    with sh.guard("Timelines"):
        tables = [sh.video_table(i) for i in infos]
        common = set(tables[0]["video"])
        for t in tables[1:]:
            common &= set(t["video"])
        if not common:
            st.info("The chosen runs share no video.", icon=":material/info:")
        else:
            task_of = dict(zip(tables[0]["video"], tables[0]["task"]))
            videos = sorted(common, key=lambda v: (task_of[v], v))
            video = st.selectbox("Video", videos, key="cmp_video", format_func=lambda v: f"{v} ({task_of[v]})")
            task = task_of[video]
            outs = [sh.outputs(i, video) for i in infos]
            rows_t = []
            if not (outs[0]["gt"] == -2).all():
                rows_t.append(explore.gt_row(outs[0]["gt"], infos[0].step_names(task)))
            same = [(i, o) for i, o in zip(infos, outs) if len(o["states"]) == len(outs[0]["states"])]
            for i, o in zip(infos, outs):
                if len(o["states"]) != len(outs[0]["states"]):
                    st.caption(f"{i.name} sampled this video differently ({len(o['states'])} frames): not stacked.")
            palettes = explore.stacked_state_colors([i for i, _ in same], [o["states"] for _, o in same], task)
            for (i, o), colors in zip(same, palettes):
                rows_t.append(explore.state_row(f"{i.name} (k={i.config.get('k')})", o["states"], colors, i, task))
            st.plotly_chart(viz.timeline_figure(rows_t, outs[0]["times"]), key="cmp_timelines",
                            config={"displayModeBar": False})
            st.caption("Each run's states take the colour of the ground-truth step they matched in that run."
                       if infos[0].annotated else
                       "Each run's steps have colours no other run's have, and the names given to them on "
                       "Key-steps (no ground truth: the steps of different runs are not matched to each other).")

    st.subheader("Downloads")
    for i in infos:
        sh.download_buttons(i, f"cmp_dl_{i.name}")
