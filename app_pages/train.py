"""Train: a validated form that launches a background training job, live progress, and every run."""
from pathlib import Path

import streamlit as st

from app_pages import _shared as sh
from procl import ProclError, explore, jobs, runs, viz, words
from procl.config import (
    DEFAULT_EPOCHS,
    LEVER_SPECS,
    RECIPES,
    Lever,
    TrainConfig,
    default_lam,
    default_M,
    suggested_setting,
)
from procl.data.specs import normalise_spec
from procl.dist import DEVICES
from procl.features.backbones import NAMES as BACKBONES
from procl.train import training_videos_problem

DEFAULTS = TrainConfig()
FIELD_SLOTS = ("dataset", "k", "M", "lam", "run", "weights", "device")  # fields with a message slot of their own

st.title("Train")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def field_error(slot, errors: dict, name: str) -> None:
    if name in errors:
        slot.error(errors[name], icon=":material/warning:")


# ---------------------------------------------------------------- the form

errors: dict[str, str] = {}
st.subheader("New run")
c1, c2 = st.columns([2, 3])
specs = sh.known_specs()
other = "another folder…"
current = sh.current_run()
preferred = (st.session_state.get("new_dataset") or (sh.BUILTIN if sh.builtin_ready() else None)
             or ((current or {}).get("config") or {}).get("dataset") or next(iter(explore.local_datasets()), None))
choice = c1.selectbox("Dataset", specs + [other], index=specs.index(preferred) if preferred in specs else 0,
                      key="tr_dataset", format_func=lambda s: s if s == other else sh.dataset_label(s),
                      help="The built-in synthetic dataset, one used by a run, or a folder (only read).")
if choice == other:
    f1, f2 = c2.columns([1, 3])
    kind = f1.selectbox("Format", sh.FORMATS, key="tr_kind")
    path = f2.text_input("Folder", key="tr_path", placeholder="/path/to/dataset")
    spec = f"{kind}:{path.strip()}" if path.strip() else ""
else:
    spec = choice
dataset_slot = st.empty()
ds = None
if not spec:
    errors["dataset"] = "Give the dataset's folder."
else:
    try:
        if choice == other and not Path(path.strip()).expanduser().is_dir():
            raise ProclError(f"{path.strip()} is not a folder")
        spec = normalise_spec(spec)
        ds = sh.dataset(spec)
    except ProclError as err:
        errors["dataset"] = str(err)

c1, c2, c3, c4 = st.columns(4)
one_task = ds is not None and suggested_setting(len(ds.tasks)) == "single"
# a one-task dataset starts from single (its own widget key, so the choice resets when the dataset changes kind)
setting = c1.radio("Setting", ["multi", "single"], index=int(one_task), horizontal=True,
                   key="tr_setting_one_task" if one_task else "tr_setting",
                   help="multi: one network for all tasks (train/test split, task classifier). "
                        "single: one network per task on all its videos, no classifier (the paper's Table 1).")
multi = setting == "multi"
if one_task and multi:
    st.info(words.ONE_TASK_NOTE, icon=":material/info:")
# no min/max on k, M, λ and epochs: a value out of range stays in the field, gets a message and blocks the
# launch (bounds would make the field keep its last valid value and launch that)
k = c2.number_input("Steps per task (k)", value=7, step=1, key="tr_k",
                    help="How many steps to look for in each task (the paper's k key-steps, at most M). Not sure? "
                         "Try several below and compare them on **Compare**. More than a task has: the extra steps "
                         "split true ones, and scores that pair each true step with one found step fall.")
k_slot = c2.empty()
M = c3.number_input("Kinds of moment (M)", value=default_M(setting), step=1, key=f"tr_M_{setting}",
                    help="How many kinds of moment (latent states) the frames are grouped into; each task's "
                         "k steps are chosen among them (the paper's M).")
M_slot = c3.empty()
lam = c4.number_input("Weight of the task guess (λ)", value=default_lam(setting), step=0.1,
                      key=f"tr_lam_{setting}",
                      help="How much guessing the task counts in training against learning the clustering's "
                           "suggestion (the paper's L = L_rank + λ L_ce, Eq. 6); 0 with one network per task.")
lam_slot = c4.empty()

c1, c2, c3, c4 = st.columns(4)
recipe = c1.radio("Recipe", sorted(RECIPES, key=lambda r: r != "default"), horizontal=True, key="tr_recipe",
                  help="default: procl's recipe; paper: the method as published (every lever of procl off). "
                       "Each lever can be changed below.")
epochs = c2.number_input("Epochs (0: automatic)", value=0, step=1, key="tr_epochs",
                         help=f"0: {DEFAULT_EPOCHS}, or more on a small dataset so that the networks see at least "
                              "the recipe's minimum number of videos.")
seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="tr_seed")
c1, c2, c3, c4 = st.columns(4)
run_name = c1.text_input("Run name", key="tr_run", placeholder="automatic",
                         help="Letters, digits, '.', '_' and '-'; empty: derived from dataset, k and time.")
run_slot = c1.empty()
grid = sh.region_grid(spec) if ds is not None else True  # some levers' defaults differ without a region grid
attention = c2.toggle("Spatial attention", True, key="tr_attention", disabled=not grid,
                      help="Off: the mean over grid cells." if grid else
                      "These features have no region grid (one vector per frame): attention has a single cell "
                      "to weigh, so on or off it is the same.")
pooling = c3.toggle("Learnable pooling", True, key="tr_pooling", disabled=not multi,
                    help="Off: uniform pooling weights beta. Only the multi-task classifier pools.")

if not grid and multi and ds is not None and len(ds.tasks) > 1:
    st.info("These features have no region grid (one vector per frame), so the network cannot look at where "
            "the hands are. There, telling the tasks apart is weak: on procl's benchmark sets given this way the "
            "task is guessed about as often as by chance (docs/RESULTS.md, \"No grid\"), and a wrong task "
            "brings the wrong task's steps. With **single** (one network per task), each video's task is given.",
            icon=":material/info:")


def lever_widget(col, lv: Lever, chosen: dict):
    """One lever's widget, from its registry entry (procl.config.LEVER_SPECS)."""
    value, key = lv.value(recipe, grid), f"tr_{lv.name}_{recipe}" + ("" if grid else "_nogrid")
    disabled = (lv.multi_only and not multi) or (lv.needs_shared_background and chosen.get("background") != "shared")
    if lv.type is bool:
        return col.toggle(lv.label, value, key=key, help=lv.tip, disabled=disabled)
    if lv.choices:
        return col.selectbox(lv.label, lv.choices, index=lv.choices.index(value), key=key, help=lv.tip,
                             disabled=disabled)
    return lv.type(col.number_input(lv.label, lv.type(0), lv.type(lv.maximum), lv.type(value), lv.type(lv.step),
                                    key=key, help=lv.tip, disabled=disabled))


levers: dict = {}
with st.expander(f"procl's levers (recipe: {recipe})"):
    cols = st.columns(4)
    for i, lv in enumerate(LEVER_SPECS):
        levers[lv.name] = lever_widget(cols[i % 4], lv, levers)

with st.expander("Features and network"):
    a1, a2, a3, a4 = st.columns(4)
    backbone = a1.selectbox("Backbone", BACKBONES, key="tr_backbone")
    fps = a2.number_input("Frames per second", 0.5, 10.0, DEFAULTS.fps, 0.5, key="tr_fps")
    width = a3.number_input("Network width", 4, 1024, DEFAULTS.width, key="tr_width",
                            help="Channels of the network that finds the steps (the paper's KLN width).")
    refresh = a4.number_input("Renew the suggestion every N videos", 0, 100000, 0, key="tr_refresh",
                              help="How often the clustering's suggestion (the paper's teacher) is worked out "
                                   "again; 0: once per epoch.")
    weights = st.text_input("CNN weights", key="tr_weights", disabled=backbone == "default",
                            placeholder="ImageNet weights (torchvision's, downloaded once into its cache)",
                            help="Empty or 'imagenet': torchvision's ImageNet weights, downloaded into torch hub's "
                                 "cache when missing (the job's log shows the progress); 'none' for random "
                                 "weights, or the path of a state_dict file (only read). The default backbone has "
                                 "no weights.").strip()
    weights_slot = st.empty()
    b1, b2, b3, _ = st.columns([1, 1, 1, 1])
    batch_size = b1.number_input("Batch size (videos per step)", 1, 1024, DEFAULTS.batch_size, key="tr_batch",
                                 help="Videos per optimizer step, padded to the longest and masked. 1 is the "
                                      "paper's one video per step; more is faster on a GPU.")
    ranking = b2.toggle("Learn the suggestion", DEFAULTS.ranking, key="tr_ranking",
                        help="Off: task labels only (no ranking loss on the subset-selection teacher: the paper's "
                             "Fig. 2 ablation; needs λ > 0).")
    device = b3.selectbox("Device", DEVICES, key="tr_device",
                          help="Where features are extracted and the networks train: auto takes a GPU when "
                               "this machine has one (CUDA), else the CPU.")
    device_slot = b3.empty()

if ds is not None and multi and (problem := training_videos_problem(ds)):
    errors["dataset"] = problem
weights = weights if backbone != "default" and weights else None
if weights not in (None, "none", "imagenet") and not Path(weights).expanduser().is_file():
    errors["weights"] = f"{weights} is not a file: give a state_dict file, 'none', 'imagenet', or leave it empty."
name = run_name.strip()
if name:
    try:
        runs.check_name(name)
        if (runs.checkpoints_dir() / name).exists():
            errors["run"] = f"A run named {name!r} exists already: choose another name."
    except ProclError as err:
        errors["run"] = str(err)

cfg = TrainConfig(dataset=spec or "synthetic", k=int(k), M=int(M), lam=float(lam), epochs=int(epochs) or None,
                  setting=setting, recipe=recipe, attention=attention, learnable_pooling=pooling or not multi,
                  seed=int(seed), backbone=backbone, weights=weights, fps=float(fps), width=int(width),
                  refresh_every=int(refresh), batch_size=int(batch_size), ranking=ranking, device=device,
                  **levers).resolved()
try:
    cfg.validate()
except ProclError as err:
    field = getattr(err, "field", "general")
    errors.setdefault(field if field in FIELD_SLOTS else "general", str(err))

for key, slot in dict(dataset=dataset_slot, k=k_slot, M=M_slot, lam=lam_slot, run=run_slot, weights=weights_slot,
                      device=device_slot).items():
    field_error(slot, errors, key)
if ds is not None and "dataset" not in errors:
    dataset_slot.caption(f"{words.counted(len(ds.tasks), 'task')}, {words.counted(len(ds.videos), 'video')}"
                         f"{'' if ds.annotated else ', not annotated (no localization scores)'}; "
                         "features are extracted by the job when missing.")
if "general" in errors:
    st.error(errors["general"], icon=":material/warning:")



def launch(cfg: TrainConfig, name: str) -> None:
    """Start the job (a button callback, so that the run-name field can be cleared)."""
    try:
        path = jobs.launch(cfg, run=name or None)
    except ProclError as err:
        st.session_state["tr_message"] = str(err)
        return
    st.session_state.setdefault("tr_launched", []).append(path.name)
    st.session_state["tr_run"] = ""
    st.toast(f"Launched {path.name}", icon=":material/rocket_launch:")


st.button("Launch training", type="primary", disabled=bool(errors), key="tr_launch", on_click=launch,
          args=(cfg, name), help="Starts a background process; it keeps running if you close this page.")
if "tr_message" in st.session_state:
    st.error(st.session_state.pop("tr_message"), icon=":material/warning:")


def launch_sweep(cfg: TrainConfig, ks: list[int], name: str, seeds: int) -> None:
    """Start one run per k and seed, trained one after another (a button callback)."""
    try:
        paths = jobs.launch_sweep(cfg, ks, run=name or None, seeds=seeds)
    except ProclError as err:
        st.session_state["tr_sweep_message"] = str(err)
        return
    st.session_state.setdefault("tr_launched", []).extend(p.name for p in paths)
    st.session_state["tr_run"] = ""
    st.toast(f"Launched {len(paths)} runs: {', '.join(p.name for p in paths)}", icon=":material/rocket_launch:")


with st.expander("Not sure of k? Try several"):
    s1, s3, s2 = st.columns([3, 1, 1])
    k_text = s1.text_input("Values of k", key="tr_sweep_ks", placeholder="e.g. 3, 5, 7",
                           help=f"Up to {jobs.MAX_SWEEP} values, separated by commas. Each is trained with the "
                                "settings above, one run after another. Then compare them on **Compare**, which "
                                "suggests a k.")
    seeds = int(s3.number_input("Seeds per k", min_value=1, max_value=jobs.MAX_SEEDS, value=jobs.SWEEP_SEEDS,
                                key="tr_sweep_seeds",
                                help="Runs of each k with different seeds (the seed above, then the next ones). "
                                     "With two or more, Compare suggests the k whose runs agree most on where "
                                     "the steps are, a firmer guide than one run per k; each is a training."))
    ks, sweep_error = [], None
    try:
        ks = jobs.parse_k_list(k_text, cfg.M) if k_text.strip() else []
    except ProclError as err:
        sweep_error = str(err)
    blocking = {f: e for f, e in errors.items() if f != "k"}  # the form's own k is not used here
    s2.button("Try these k", key="tr_sweep", disabled=bool(blocking) or bool(sweep_error) or not ks,
              on_click=launch_sweep, args=(cfg, ks, name, seeds), width="stretch",
              help="Starts one background job that trains the runs one after another (named RUN-kK, or "
                   "RUN-kK-sS with several seeds, when a run name is given).")
    if sweep_error:
        st.error(sweep_error, icon=":material/warning:")
    elif not ks:
        st.caption("Give two or more values of k; each is trained with the settings above.")
    elif not blocking:
        each = f"{seeds} seeds each" if seeds > 1 else "one seed each"
        st.caption(f"{len(ks) * seeds} runs: k = {', '.join(map(str, ks))}, {each}, with the settings above.")
    if "tr_sweep_message" in st.session_state:
        st.error(st.session_state.pop("tr_sweep_message"), icon=":material/warning:")


# ---------------------------------------------------------------- live progress

def open_in_explore(run: str) -> None:
    st.session_state["run"] = run


def job_card(entry: dict) -> None:
    """Progress of one queued or running job: bar, epoch/step, ETA, loss curves, cancel."""
    name = entry["name"]
    status = runs.read_status(entry["path"])
    state = status.get("state", "?")
    with st.container(border=True):
        head, button = st.columns([4, 1])
        head.markdown(f"**{name}** · {state}" + (f" ({status['phase']})" if status.get("phase") else ""))
        if state in ("running", "queued"):
            stopping = (Path(entry["path"]) / "STOP").exists()
            button.button("Stopping…" if stopping else "Cancel", key=f"tr_cancel_{name}", disabled=stopping,
                          on_click=jobs.cancel, args=(name,), width="stretch")
        steps = status.get("steps") or 0
        if jobs.waiting_in_sweep(entry["path"]):
            st.progress(0.0, text="waiting: the runs of k before it train first")
            return
        if state == "queued" or not steps:
            st.progress(0.0, text="preparing: dataset and features")
            tail = jobs.log_tail(name, 2)
            if tail:
                st.code(tail, language=None)
            return
        done = min(status.get("step", 0) / steps, 1.0)
        st.progress(done, text=f"epoch {min(status.get('epoch', 0) + 1, status.get('epochs', 1))}/"
                               f"{status.get('epochs')} · step {status.get('step')}/{steps} · "
                               f"elapsed {duration(status.get('elapsed'))} · ETA {duration(status.get('eta'))}")
        history = status.get("history") or {}
        if history.get("step"):
            st.plotly_chart(viz.loss_figure(history), key=f"tr_loss_{name}", config={"displayModeBar": False})


def jobs_panel() -> None:
    active = [e for e in runs.list_runs() if e.get("status", {}).get("state") in ("running", "queued")]
    launched = st.session_state.get("tr_launched", [])
    if not active:
        if st.session_state.pop("tr_polling", False):
            st.rerun(scope="app")  # a job ended: refresh the runs table and stop polling
        st.caption("No job running.")
    for entry in active:
        job_card(entry)
    st.session_state["tr_polling"] = bool(active)
    finished = [e for e in runs.list_runs() if e["name"] in launched and e not in active
                and e.get("status", {}).get("state") in runs.TERMINAL]
    for entry in finished:
        state = entry["status"]["state"]
        c1, c2 = st.columns([4, 1])
        c1.markdown(f"{sh.STATE_ICONS.get(state, '')} **{entry['name']}** {state}"
                    + (f": {entry['status'].get('error', '')}" if state != "done" else ""))
        if state == "done":
            # in a fragment, a click reruns only the fragment: the page is switched from here
            if c2.button("Open in Explore", key=f"tr_open_{entry['name']}", on_click=open_in_explore,
                         args=(entry["name"],), width="stretch"):
                st.switch_page("app_pages/explore.py")


st.subheader("Jobs")
any_active = any(e.get("status", {}).get("state") in ("running", "queued") for e in runs.list_runs())
st.fragment(jobs_panel, run_every=1.0 if any_active else None)()

# ---------------------------------------------------------------- all runs

st.subheader("All runs")
entries = sh.all_runs()
if not entries:
    st.caption("No run yet.")
else:
    table = explore.runs_table(entries)
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "run": st.column_config.TextColumn("run", width="medium"),
        "state": st.column_config.TextColumn("state", width="small"),
        "dataset": st.column_config.TextColumn("dataset", width="medium",
                                               help="The dataset's name (its folder); the spec is in the sidebar."),
        "F1 %": st.column_config.TextColumn("F1 %", help="How well the steps found match the annotated ones "
                                            "(needs annotations: *not annotated* otherwise)."),
        "equal cuts F1 %": st.column_config.TextColumn("equal cuts F1 %", help=words.EQUAL_CUTS_HELP),
        "Acc %": st.column_config.TextColumn("Acc %", help="Share of test videos whose task is guessed right."),
    })
    broken = [e for e in entries if (e.get("status") or {}).get("state") in ("failed", "cancelled")][:10]
    for e in broken:
        s = e.get("status") or {}
        with st.expander(f"{e['name']}: {s.get('state')}", icon=sh.STATE_ICONS.get(s.get("state"))):
            st.markdown(f"**Error:** {s.get('error') or e.get('error') or 'none recorded'}")
            with sh.guard("Log"):
                tail = jobs.log_tail(e["path"], 15)
                if tail:
                    st.caption("Last lines of train.log")
                    st.code(tail, language=None)
            if s.get("traceback"):
                st.caption("Traceback (last lines)")
                st.code("\n".join(s["traceback"].strip().splitlines()[-8:]), language=None)
            if s.get("state") == "cancelled" or "resume" in str(s.get("error", "")):
                st.caption("Continue it from its last completed epoch: "
                           f"`python -m procl train --run {e['name']} --resume`")
