"""The markdown report of a bench run (`format_report`), from run_bench's results dict."""
from __future__ import annotations

from procl.bench.choose_k import format_choose_k
from procl.bench.claims import NOT_MEASURED, pct
from procl.bench.human import format_human
from procl.bench.plan import (
    ASOT_COFFEE_CPU_S,
    MIN_MARGIN,
    RECIPE_LABELS,
    RECIPES,
    ROBUSTNESS,
    SMALL_K,
    mean_std,
    values,
)
from procl.bench.quality import Row

COLUMNS = (("R", "recall"), ("P", "precision"), ("F1", "f1"), ("Edit", "edit"), ("F1@50", "f1_50"),
           ("Acc", "accuracy"))
DASH = "–"  # a cell where no number belongs (a baseline's task accuracy)


def num(vals: list[float], digits: int = 1) -> str:
    """Mean +- std of plain numbers; the mean alone for one value; a dash for none."""
    if not vals:
        return DASH
    m, s = mean_std(vals)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(vals) > 1 else f"{m:.{digits}f}"


def _cell(row: Row, key: str) -> str:
    vals = values(row.scores, key)
    return pct(vals) if vals else DASH


def table(rows: dict[str, Row]) -> list[str]:
    """A quality table: R, P, F1, Edit, F1@50, Acc (in %) and segments per video, its header
    naming the ground truth's; then the rows' notes."""
    gt = next((values(r.scores, "gt_segments") for r in rows.values() if values(r.scores, "gt_segments")), [])
    seg = f"Seg/video (GT {mean_std(gt)[0]:.1f})" if gt else "Seg/video"
    lines = ["| method | " + " | ".join(c for c, _ in COLUMNS) + f" | {seg} |", "|---|" + "---|" * (len(COLUMNS) + 1)]
    for row in rows.values():
        segs = values(row.scores, "segments")
        lines.append(f"| {row.label} | " + " | ".join(_cell(row, key) for _, key in COLUMNS)
                     + f" | {num(segs) if segs else DASH} |")
    notes = [f"- {row.label}: {row.note}." for row in rows.values() if row.note]
    return lines + ([""] + notes if notes else [])


def _gain(c: dict | None) -> str:
    return f"{100 * c['diff']:+.1f} ({c['verdict']})" if c else DASH


def _met(ok: bool | None) -> str:
    return NOT_MEASURED if ok is None else "met" if ok else "missed"


def format_header(r: dict) -> list[str]:
    meta, p = r["meta"], r["meta"]["plan"]
    mach = meta["machine"]
    b = r["datasets"]["builtin"]
    return [
        "# procl benchmark results", "",
        "Written by the command below; do not edit by hand (rerun it instead).", "",
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}",
        f"- Machine: {mach['cpu']}, {mach['cores']} cores, {mach['platform']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        f"- Seeds: {', '.join(map(str, p.seeds))} (mean ± std over seeds, std with ddof 1; a single value with "
        "one seed); every training on the CPU, one thread, several at once in a process pool "
        f"({meta['workers']} processes)",
        f"- Plan `{p.name}`: {meta['trainings']} trainings; epochs "
        f"{'automatic (as `procl train`)' if p.epochs is None else p.epochs}; default backbone; built-in k in "
        f"{', '.join(map(str, r['ks']))}",
        f"- Built-in set, generated afresh ({_args(b['generator'])}): {b['videos']} videos ({b['train']} train / "
        f"{b['test']} test), {b['frames']} frames at 2 fps",
        f"- True k = {r['k_true']}: the number of key-steps of the task with the most "
        f"({', '.join(f'{t} {n}' for t, n in meta['steps_per_task'].items())})",
        f"- Duration: {meta['minutes']:.1f} min (expected {meta['expected_minutes']:.1f} min on otherwise idle cores; "
        f"load average {meta['load'][0]:.1f} at the start, {meta['load'][1]:.1f} at the end)",
        "- Metrics (`procl/metrics.py`, docs/design.md): per task one Hungarian matching over the pooled frames of its "
        "videos, then the mean over tasks, in %; Edit and F1@50 are segmental (MS-TCN's); Acc = task accuracy; "
        "Seg/video = predicted segments per video (background runs left out), the ground truth's in the header",
        "",
    ]


def _args(args: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in args.items()) or "generator defaults"


def format_quality(r: dict) -> list[str]:
    k_true = r["k_true"]
    L = ["## Built-in dataset, multi-task, test split (Tables 2-3)", "",
         "Baselines are told each video's task (they localize, they do not classify). A teacher row is subset "
         "selection on the final attention features of its recipe's training, decoded as the recipe decodes.", ""]
    for k, rows in r["builtin"].items():
        L += [f"### k = {k}" + (" (true k)" if k == k_true else ""), "", *table(rows), ""]

    L += ["## Levers: each one's measured gain (true k)", "",
          "Each row changes one lever of a recipe (`procl/config.py` LEVER_SPECS): in the default recipe to the "
          "paper's "
          "value (or, for a lever off in both recipes, on); in the paper recipe to the default's value. Its gain is "
          "the scores with the lever as procl's default has it (or on) minus those with it as the paper has it (or "
          "off), with the claim rule's verdict (holds: a gain beyond the seeds' spread).", ""]
    for recipe, rows in r["ablations"].items():
        L += [f"### {RECIPE_LABELS[recipe]}", "", *table(rows), "",
              "| lever | row | F1 gain | Edit gain | Acc gain |", "|---|---|---|---|---|"]
        for g in r["gains"][recipe]:
            L.append(f"| {g['lever']} | {g['label']} | {_gain(g.get('f1'))} | {_gain(g.get('edit'))} | "
                     f"{_gain(g.get('accuracy'))} |")
        L.append("")
    missing = [rc for rc in RECIPES if rc not in r["ablations"]]
    if missing:
        L += [f"Not in this plan: the {', '.join(RECIPE_LABELS[m] for m in missing)} with each lever changed.", ""]

    L += ["## The paper's claims, both recipes", "",
          f"Rule: \"A beats B\" holds when mean(A) - mean(B) > margin, does not hold when it is < -margin, and is "
          f"inconclusive otherwise; margin = max(sqrt(std_A^2 + std_B^2), {100 * MIN_MARGIN:.0f} point), stds over "
          f"seeds. A claim of several comparisons holds when all hold and does not hold when any does not. "
          f"Verdicts at the true k = {k_true}.", "",
          "| claim | " + " | ".join(RECIPE_LABELS[rc] for rc in RECIPES) + " |", "|---|" + "---|" * len(RECIPES)]
    by_id = {rc: {c["id"]: c for c in r["claims"][rc]} for rc in RECIPES}
    for c in r["claims"][RECIPES[0]]:
        L.append(f"| {c['id']} {c['claim']} | " + " | ".join(by_id[rc][c["id"]]["verdict"] for rc in RECIPES) + " |")
    L.append("")
    for c in r["claims"][RECIPES[0]]:
        for rc in RECIPES:
            cc = by_id[rc][c["id"]]
            L.append(f"- **{cc['id']}** ({RECIPE_LABELS[rc]}) {cc['claim']}: **{cc['verdict']}**. {cc['evidence']}.")
    L += ["", f"### The variants behind C2, C3 and C6 (true k = {k_true})", "",
          *table({f"{rc}-{key}": row for rc in RECIPES for key, row in r["variants"][rc].items()}), ""]
    return L


def format_single_and_data(r: dict) -> list[str]:
    k_true = r["k_true"]
    L = []
    if r["single"]:
        L += [f"## Single-task setting (Table 1 style), true k = {k_true}", "",
              "One network per task trained on all its videos (lambda 0, M 30), all videos scored; baselines fit "
              "per task. Each recipe's multi-task model is scored on the same videos (its training videos "
              "included); C4 compares the two.", "", *table(r["single"]), ""]

    att = r["attention"]
    L += ["## Attention quality", "",
          f"Share of the attention mass inside the ground-truth key-step box (each 7x7 cell's attention times the "
          f"fraction of the cell the box covers), averaged over the key-step frames of the test videos, full model "
          f"at the true k = {k_true}:", ""]
    for rc in RECIPES:
        share, uniform = mean_std(att[rc]["share"])[0], mean_std(att[rc]["uniform"])[0]
        L.append(f"- {RECIPE_LABELS[rc]}: **{pct(att[rc]['share'])} %** against **{100 * uniform:.1f} %** for a "
                 f"uniform map (the box's area), {share / uniform:.2f}x ({att[rc]['frames']} frames)")
    c = r["precision_ceiling"]
    L += [f"- Bound: with --background none (the paper recipe) every frame gets a state, so precision <= the share "
          f"of key-step frames ({100 * c:.1f} % of test frames) and F1 <= {100 * 2 * c / (1 + c):.1f}.", ""]

    L += ["## Robustness: other built-in sets (multi-task, test split, each at its true k)", ""]
    for name, rows in r["robustness"].items():
        d = r["datasets"][name]
        L += [f"### {ROBUSTNESS[name][0]} (k = {d['k_true']})", "",
              f"Generated with {_args(d['generator'])}: {d['videos']} videos ({d['train']} train / {d['test']} test).",
              "", *table(rows), ""]
    if not r["robustness"]:
        L += ["No variant in this plan.", ""]

    L += ["## Real data: Breakfast \"coffee\" (single-task)", ""]
    if not r["breakfast"]:
        L += [f"Skipped: {r['real_skipped']}.", ""]
    else:
        d = r["datasets"]["breakfast"]
        L += [f"`{d['spec']}`: {d['videos']} videos, {d['frames']} frames of {d['D']}-dim precomputed features "
              f"({'no grid: attention is the identity' if d['R'] == 1 else str(d['R']) + ' regions'}), "
              f"{d['k_true']} key-steps; all videos scored.", ""]
        for k, rows in r["breakfast"].items():
            L += [f"### k = {k}", "", *table(rows), "",
                  "Training seconds per run (one thread, wall, another training beside it): "
                  + ", ".join(f"{RECIPE_LABELS[rc]} {num(values(rows[rc].scores, 'train_s'))}" for rc in RECIPES)
                  + f"; ASOT on the same frames: {ASOT_COFFEE_CPU_S:g} CPU-seconds (Xu & Gould, CVPR 2024, run "
                  "on the development machine).", ""]

    L += ["## No grid: generated sets as precomputed per-frame features", "",
          "Each set's region features averaged over the cells into one vector per frame [T, D] and read through "
          "`actseg:` (`procl.bench.nogrid`), as CrossTask, Breakfast or COIN come: attention has no grid to look "
          "at. At the set's true k; multi-task scored on the test split, single-task (one network per task) on "
          "all videos.", ""]
    for name, tables in r.get("nogrid", {}).items():
        d, k = r["datasets"][f"{name}-nogrid"], r["datasets"][name]["k_true"]
        L += [f"### {name} without its grid (k = {k}, {d['videos']} videos, {d['D']}-dim)", "",
              "Multi-task:", "", *table(tables["multi"]), "", "Single-task:", "", *table(tables["single"]), ""]
    if not r.get("nogrid"):
        L += ["No set in this plan.", ""]

    d = r["datasets"]["small"]
    L += [f"## Small data (k = {SMALL_K}, test split)", "",
          f"Generated with {_args(d['generator'])}: {d['videos']} videos ({d['train']} train / {d['test']} test). "
          "Distinct states: the key-step states a test video's prediction uses (background left out); training "
          "seconds are wall time with other trainings running. Background: the share of the test frames called "
          "background, and the ground truth's.", "",
          "| method | epochs | training s | Acc | distinct states per video, fewest | mean | F1 | Edit | background % "
          "| truth % |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["small"].values():
        L.append(f"| {row.label} | {num(values(row.scores, 'epochs'), 0)} | {num(values(row.scores, 'train_s'), 0)} | "
                 f"{_cell(row, 'accuracy')} | {num(values(row.scores, 'states_min'))} | "
                 f"{num(values(row.scores, 'states_mean'))} | {_cell(row, 'f1')} | {_cell(row, 'edit')} | "
                 f"{_cell(row, 'background')} | {_cell(row, 'gt_background')} |")
    notes = [f"- {row.label}: {row.note}." for row in r["small"].values() if row.note]
    return L + ([""] + notes if notes else []) + [""]


def format_targets(r: dict) -> list[str]:
    L = ["## Targets (issues 8 and 19)", "", "| target | measured | |", "|---|---|---|"]
    for t in r["targets"]:
        L.append(f"| {t['target']} | {t['value']} | **{_met(t['met'])}** |")
    return L + [""]


def format_speed(r: dict) -> list[str]:
    sp, meta = r["speed"], r["meta"]
    L = ["## Speed", "", "Ratios are measured in the same run; absolute times are context only "
         f"(the machine may be shared). Device for the backbones and inference: {meta['device']}.", "",
         "| backbone | frames | pipeline frames/s | forward-only frames/s | ratio (target >= 0.9) "
         "| decode-only frames/s |",
         "|---|---|---|---|---|---|"]
    for f in sp["features"]:
        L.append(f"| {f['backbone']}{'' if f['backbone'] == 'default' else ' (random weights)'} | {f['frames']} | "
                 f"{f['pipeline_fps']:.1f} | {f['forward_fps']:.1f} | {f['ratio']:.2f} ({_met(f['ratio'] >= 0.9)}) | "
                 f"{f['decode_fps']:.1f} |")
    t, sel, inf, e2e = sp["training"], sp["selection"], sp["inference"], sp["end_to_end"]
    L += ["",
          f"- Training: {t['epoch_s']:.2f} s per epoch (median of {t['epochs_measured']} epochs of the default "
          f"recipe's built-in runs, {t['train_videos']} training videos, other trainings running alongside)",
          f"- Training step (one {t['clip_frames']}-frame video, forward + backward + RMSprop, default recipe): "
          f"{t['step_flops'] / 1e6:.1f} MFLOP counted from the layer shapes in {1000 * t['step_s']:.1f} ms = "
          f"{t['step_flops_per_s'] / 1e9:.2f} GFLOP/s, against {t['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s for a "
          f"{t['matmul_n']}x{t['matmul_n']} float32 matmul on as many threads ({t['threads']}, the training "
          f"loop's): {100 * t['step_flops_per_s'] / t['matmul_flops_per_s']:.1f} % (the matmul on "
          f"{t['cores']} threads: {t['matmul_all_flops_per_s'] / 1e9:.1f} GFLOP/s)",
          f"- Teacher (attention features of every training video, k-means refresh, background states, subset "
          f"selection) share of an epoch: {100 * t['teacher_share']:.1f} % (median over the default recipe's runs; "
          f"target <= 10 % (issue 17): {_met(t['teacher_share'] <= 0.10)}; the first target, <= 5 %: "
          f"{_met(t['teacher_share'] <= 0.05)})" + _teacher_parts(sp["scaling"][0]),
          f"- Subset selection at N = {sel['N']:,}, M = {sel['M']}, k = {sel['k']}, D = {sel['D']}: "
          f"{sel['seconds']:.3f} s on {sel['threads']} thread(s) (target <= 2 s: {_met(sel['seconds'] <= 2)}; "
          + ", ".join(f"{v:.3f} s on {n}" for n, v in sel["seconds_by_threads"].items()) + ")",
          f"- Inference: {inf['ms']:.2f} ms per {inf['frames']}-frame video on {inf['device']}, {inf['threads']} "
          f"thread(s) (target <= 5 ms (issue 17): {_met(inf['ms'] <= 5)}; "
          + ", ".join(f"{v:.2f} ms on {n}" for n, v in inf["ms_by_threads"].items()) + "); of which the "
          f"network's forward pass {inf['network_ms']:.2f} ms, decoding and the task decision the rest",
          f"- End to end from an empty data folder to a trained default run (k = {r['k_true']}): "
          f"{e2e['total_s'] / 60:.2f} min = generation {e2e['generate_s']:.0f} s + features {e2e['features_s']:.0f} s "
          f"+ training {e2e['train_s']:.0f} s",
          "", "How cost grows with the number of training videos (the videos repeated; best of two; "
          f"{t['threads']} thread(s) as in training; linear growth gives ratio = factor):", "",
          "| factor | videos | epoch s | epoch ratio | teacher share | selection ms | selection ratio |",
          "|---|---|---|---|---|---|---|"]
    base = sp["scaling"][0]
    for s in sp["scaling"]:
        L.append(f"| {s['factor']}x | {s['videos']} | {s['epoch_s']:.2f} | {s['epoch_s'] / base['epoch_s']:.2f} | "
                 f"{100 * s['teacher_s'] / s['epoch_s']:.1f} % | {1000 * s['selection_s']:.1f} | "
                 f"{s['selection_s'] / base['selection_s']:.2f} |")
    return L + [""] + format_scale(sp["scale"]) + format_explore(sp["explore"])


def _teacher_parts(s: dict) -> str:
    """What the teacher's time is made of (the scaling table's 1x row), when measured."""
    if "features_s" not in s:
        return ""
    return (f"; of a refresh (1x below, {1000 * s['teacher_s']:.0f} ms), the attention features of every training "
            f"video take {1000 * s['features_s']:.0f} ms ({100 * s['features_s'] / s['teacher_s']:.0f} %: one forward "
            f"pass of the spatial attention per video, which every training step also makes), k-means, the "
            f"background states and subset selection the rest; the features alone are "
            f"{100 * s['features_s'] / s['epoch_s']:.1f} % of the epoch")


def format_scale(s: dict) -> list[str]:
    sel, feat = s["selection"], s["features"]
    L = ["### Scale", "",
         "`procl/bench/scale.py`, every process on one thread: the ratios say what splitting the work gains.", "",
         f"- Distributed subset selection, one task of N = {sel['N']:,} frames ({sel['videos']} videos), M = "
         f"{sel['M']}, k = {sel['k']}, D = {sel['D']}: {sel['one_process_s']:.3f} s in one process, "
         f"{sel['two_ranks_s']:.3f} s on 2 ranks ({sel['selection_speedup']:.2f}x), "
         f"{'the same picks' if sel['equal'] else 'OTHER PICKS'}, {sel['bytes_per_pick']} bytes sent per rank and pick",
         f"- k-means refresh (warm-started Lloyd): {sel['kmeans_one_process_s']:.3f} s in one process, "
         f"{sel['kmeans_two_ranks_s']:.3f} s on 2 ranks ({sel['kmeans_speedup']:.2f}x), centers within "
         f"{sel['kmeans_max_diff']:.1e}",
         f"- Features of the built-in set ({feat['videos']} videos, default backbone, wall time of the command): "
         f"{feat['one_process_s']:.1f} s in one process, "
         + (f"{feat['processes']} processes skipped ({feat['skipped']})" if "skipped" in feat else
            f"{feat['n_processes_s']:.1f} s with torchrun --nproc_per_node {feat['processes']} ({feat['ratio']:.2f}x), "
            + ("the same cache" if feat["same_cache"] else f"caches differ: {'; '.join(feat['differences'][:3])}"))]
    L += format_training_scale(s["training"])
    return L + [""]


def format_training_scale(t: dict) -> list[str]:
    """The lines of bench_scale.training_scale's dict: batch sizes, then processes."""
    first, last = min(t["batch"]), max(t["batch"])  # batch sizes (int keys)
    b1, bn = t["batch"][first], t["batch"][last]
    L = [f"- Training, default recipe, built-in set, {t['epochs']} epochs of {t['train_videos']} videos "
         f"({t['frames_per_epoch']} frames each) on {t['device_used']}: "
         f"B = {first} video{'s' if first > 1 else ''} per step "
         f"{b1['frames_per_s']:.0f} frames/s in the student steps ({b1['epoch_frames_per_s']:.0f} with the teacher's "
         f"refreshes), F1 {100 * b1['f1']:.1f}, accuracy {100 * b1['accuracy']:.1f}; B = {last}: "
         f"{bn['frames_per_s']:.0f} frames/s ({bn['epoch_frames_per_s']:.0f}), F1 {100 * bn['f1']:.1f}, accuracy "
         f"{100 * bn['accuracy']:.1f}; speed-up {t['batch_speedup']:.2f}x (the same epochs: B = {last} takes "
         f"{last // first}x fewer, larger steps)"]
    pr = t["processes"]
    if "skipped" in pr:
        L.append(f"- Training in 1 against {pr['n']} processes: skipped ({pr['skipped']})")
    else:
        one, n = pr["one_process"], pr["n_processes"]
        L.append(f"- Training in 1 against {pr['n']} processes (torchrun, gloo, B = {pr['batch_size']} per process, "
                 f"one thread each): wall time {one['wall_s']:.1f} s against {n['wall_s']:.1f} s "
                 f"({pr['ratio']:.2f}x), epochs {one['epoch_s']:.1f} s against {n['epoch_s']:.1f} s "
                 f"({pr['epoch_ratio']:.2f}x); F1 {100 * one['f1']:.1f} against {100 * n['f1']:.1f}, accuracy "
                 f"{100 * one['accuracy']:.1f} against {100 * n['accuracy']:.1f}")
    return L


def format_explore(e: dict | None) -> list[str]:
    if e is None:
        return ["### Explore on a long video", "", "Not in this plan.", ""]
    length = "1-hour" if e["video_seconds"] == 3600 else f"{e['video_seconds'] / 60:g}-minute"
    return [f"### Explore on a {length} video", "",
            f"`procl/bench/explore_page.py`: a generated {length} video ({e['samples']} samples "
            f"at 2 fps, {e['file_mb']:.1f} MB, written in {e['generate_s']:.1f} s) and a run folder over it, opened "
            "through Streamlit's AppTest:", "",
            f"- First render of Explore (caches cold): {e['first_render_s']:.2f} s",
            f"- Moving the frame slider: {e['slider_move_s']:.2f} s (median), {e['slider_move_max_s']:.2f} s at most",
            f"- Frames decoded: {e['frames_decoded']} for {e['frames_shown']} frames shown", ""]


def format_report(r: dict) -> str:
    """The markdown report of a results dict (run_bench)."""
    return "\n".join(format_header(r) + format_targets(r) + format_quality(r) + format_single_and_data(r)
                     + format_human(r.get("human")) + format_choose_k(r.get("choose_k"))
                     + format_speed(r)).rstrip("\n") + "\n"
