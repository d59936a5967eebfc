"""Every setting of a run, in one place: the levers procl adds to the paper, and TrainConfig.

A *lever* is a choice procl makes beyond the paper (docs/method.md, "Choices procl makes"). Each
is one `Lever` entry of `LEVER_SPECS`: its type, its value in the paper's recipe (off) and
in procl's default recipe, whether training or only the decoding reads it, the value
runs made before it existed decode with, its help, and how the app's Train page shows
it. Everything else is generated from that entry: the TrainConfig field (None: the
recipe's value), the `train` command's option, the validation of its value, the Train
page's widget (`procl.forms`), the bench's ablation rows and the tests' fixtures.

Adding a lever = one entry here, plus the code that reads `cfg.<name>`.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from procl import ProclError
from procl.dist import add_device_argument, resolve_device
from procl.model import NetConfig

SETTINGS = ("multi", "single")
BACKGROUND_OPTIONS = ("none", "unselected", "shared")
DEFAULT_EPOCHS = 20


@dataclass(frozen=True)
class Lever:
    """One lever: what it is, its value per recipe, and how it is asked for."""

    name: str
    type: type  # bool, int, float or str
    paper: Any  # its value in the paper's recipe (off: the method as published)
    default: Any  # its value in procl's default recipe
    stage: str  # "train": changes the trained networks; "decode": only how outputs are decoded
    help: str  # the command line's help (precise terms)
    label: str  # the app's label (plain words)
    tip: str  # the app's tooltip
    choices: tuple = ()  # str levers: the allowed values
    step: float = 1.0  # numeric levers: the app's step
    maximum: float = 100.0  # numeric levers: the app's upper bound (the lower one is 0)
    multi_only: bool = False  # only the multi-task setting reads it (the app disables it for single)
    needs_shared_background: bool = False  # only read with background "shared"
    before: Any = None  # the value of runs saved before the lever existed (None: the recipe's)
    bench_on: Any = None  # off in both recipes: the value its bench row turns it on to
    no_grid: Any = None  # the default recipe's value on inputs without a region grid (R = 1), where it differs

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def value(self, recipe: str, grid: bool = True) -> Any:
        """Its value in `recipe`; the default recipe takes `no_grid` on features without a grid."""
        if recipe == "default" and not grid and self.no_grid is not None:
            return self.no_grid
        return RECIPES[recipe][self.name]

    def check(self, value: Any) -> None:
        """ProclError unless `value` is an allowed value of this lever."""
        if self.choices and value not in self.choices:
            raise ProclError(f"{self.name.replace('_', ' ')} {value!r} is not one of {', '.join(self.choices)}")
        if self.type in (int, float) and (value is None or value < 0 or not math.isfinite(value)):
            raise ProclError(f"{self.name.replace('_', ' ')} {value} must be a number >= 0")


LEVER_SPECS: tuple[Lever, ...] = (
    Lever("region_center", bool, False, True, "train",
          "subtract each grid cell's median over the video before attention",
          "Region centring", "Subtract each grid cell's median over the video before attention: the scene goes, "
                             "what changes stays."),
    Lever("attention_prior", float, 0.0, 10.0, "train",
          "weight of the change prior in the spatial attention (0: the paper's SAN)",
          "Attention change prior", "Weight of each cell's standardised change energy in the attention scores "
                                    "(0: the paper's spatial attention)."),
    Lever("background", str, "none", "shared", "train",
          "none: every frame gets a key-step; unselected: frames whose best state is not one of the task's; "
          "shared: states that all tasks use alike are background (with one or two tasks: states that every part "
          "of the videos shows alike)",
          "Background", "none: every frame gets a key-step (the paper). unselected: a frame whose best state is not "
                        "one of its task's k is background. shared: states that every task uses alike are background "
                        "(with one or two tasks, as one network per task has: states that every part of the videos "
                        "shows alike).",
          choices=BACKGROUND_OPTIONS),
    Lever("background_bias", float, 0.0, 1.5, "decode",
          "'shared': log-probability taken off the background label when the network's timeline is decoded "
          "(0: an even threshold)",
          "Background bias", "With shared background: log-probability taken off the background label when the "
                             "network's timeline is decoded (0: an even threshold; more: fewer frames called "
                             "background).",
          step=0.5, needs_shared_background=True, before=0.0),
    Lever("occupancy", bool, False, True, "train",
          "the task classifier also sees how much of the video each state takes",
          "Occupancy in the classifier", "The task classifier also sees how much of the video each state takes.",
          multi_only=True),
    Lever("switch_cost", float, 0.0, 0.0, "decode",
          "Viterbi decoding: cost (log-probability) of a change of key-step; 0: per-frame argmax",
          "Switch cost", "Viterbi decoding of the timelines: the cost of a change of key-step (0: each frame on its "
                         "own, as the paper).",
          step=0.5, bench_on=1.0),
    Lever("ordered", bool, False, True, "decode",
          "decode each task's key-steps in their typical order, each at most once",
          "Ordered decoding", "Decode each task's key-steps in their typical order, each at most once."),
    Lever("task_evidence", float, 0.0, 2.0, "decode",
          "weight of how well each task's key-steps fit the frames in the task decision "
          "(0: the classifier alone, as the paper)",
          "Key-step evidence for the task", "Weight of how well each task's key-steps, decoded in order, fit the "
                                            "frames when the task is decided (0: the classifier alone, as the paper).",
          maximum=1000.0, multi_only=True, before=0.0),
    Lever("state_classifier", bool, False, True, "decode",
          "decide the task with a logistic regression on how much of the video each state takes, fit on the "
          "training videos after training (else the network's classifier)",
          "State classifier", "Decide the task with a logistic regression on how much of the video each state "
                              "takes, fit on the training videos after training (off: the network's classifier, as "
                              "the paper).",
          multi_only=True, before=False),
    Lever("merge_confused", float, 0.0, 0.1, "decode",
          "label a task's states as one key-step while their mean confusion on the training videos (the network's "
          "probability of one on the frames decoded as the other, against the other's) is at least this (0: every "
          "selected state is a key-step of its own, as the paper)",
          "Merge confused states", "A task's states that the network does not tell apart on the training videos are "
                                   "labelled as one key-step: merged while their mean confusion is at least this (0: "
                                   "never; each of the k states is a key-step of its own, as the paper). Helps most "
                                   "when k is above the true number of key-steps.",
          step=0.05, maximum=1.0, before=0.0),
    Lever("time_weight", float, 0.0, 2.0, "train",
          "relative time in the teacher's space, in units of the features' spread (0: none; default recipe: "
          "2 on videos, 0 on features without a region grid)",
          "Time weight", "Relative time in the teacher's space (0: none): states then group frames that look alike "
                         "and happen at a similar point of the procedure. The default recipe uses 0 on features "
                         "without a region grid (precomputed per-frame features), where it cost F1.",
          step=0.5, no_grid=0.0),
    Lever("min_steps", int, 0, 1600, "train",
          "multi-task, without --epochs: train on at least this many videos in all (more epochs on small data, "
          "for the task classifier)",
          "Least videos trained on", "Multi-task, with automatic epochs: more epochs on a small dataset until the "
                                     "networks have trained on this many videos in all (the task classifier needs "
                                     "them; one network per task has none).",
          step=100, maximum=1e7, multi_only=True),
)
LEVERS: tuple[str, ...] = tuple(lv.name for lv in LEVER_SPECS)
LEVER: dict[str, Lever] = {lv.name: lv for lv in LEVER_SPECS}
# "paper" is the method as published (every lever off); "default" is procl's recipe, each
# lever measured against the paper's recipe in `procl bench`.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {lv.name: lv.paper for lv in LEVER_SPECS},
    "default": {lv.name: lv.default for lv in LEVER_SPECS},
}
DECODE_LEVERS: tuple[str, ...] = tuple(lv.name for lv in LEVER_SPECS if lv.stage == "decode")
# levers whose default-recipe value depends on the inputs having a region grid (`Lever.no_grid`)
GRID_LEVERS: tuple[str, ...] = tuple(lv.name for lv in LEVER_SPECS if lv.no_grid is not None)


def default_M(setting: str) -> int:
    """Latent states M: 50 multi-task, 30 single-task (Sec. 3.1)."""
    return 50 if setting == "multi" else 30


def default_lam(setting: str) -> float:
    """The weight lambda of L_ce (Eq. 6): 0.5 multi-task, 0 single-task (no classifier)."""
    return 0.5 if setting == "multi" else 0.0


def suggested_setting(n_tasks: int) -> str:
    """The setting for a dataset of `n_tasks` tasks: "single" for one task (many
    recordings of one procedure: its network trains on all its videos, with no task
    classifier, which would have nothing to tell apart, and no test split held out),
    else "multi". The app starts its form from it; `train --setting` keeps its
    documented default (multi) and says this (words.ONE_TASK_NOTE)."""
    return "single" if n_tasks == 1 else "multi"


def task_given(config: dict | None) -> bool:
    """Whether a saved run (its config.json) is told each video's task instead of guessing
    it: single-task, one network per task, each video run through its own task's network.
    Its task accuracy is 100 % by construction, so tables and pages say "given" there
    (as the bench's single-task rows do) rather than show it as a score."""
    return (config or {}).get("setting") == "single"


def _with_levers(cls):
    """TrainConfig's lever fields, one per LEVER_SPECS entry (None: the recipe's value)."""
    for lv in LEVER_SPECS:
        cls.__annotations__[lv.name] = f"{lv.type.__name__} | None"
        setattr(cls, lv.name, None)
    return dataclass(cls)


@_with_levers
class TrainConfig:
    """Every setting of a run (saved as config.json). None means "the setting's or the
    recipe's default" (`resolved`); the levers of LEVER_SPECS are fields too."""

    dataset: str = "synthetic"
    k: int = 7
    M: int | None = None  # latent states: default_M
    lam: float | None = None  # weight of L_ce: default_lam
    epochs: int | None = None  # None: DEFAULT_EPOCHS, more when min_steps asks for them
    setting: str = "multi"
    recipe: str = "default"  # "default" (procl's) or "paper" (as published); fills the levers
    attention: bool = True
    learnable_pooling: bool = True
    ranking: bool = True  # False: task labels only, no subset-selection supervision (Fig. 2)
    background_threshold: float = 0.9  # "shared": normalised task entropy above which a state is background
    seed: int = 0
    backbone: str = "default"
    weights: str | None = None
    fps: float = 2.0
    width: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    refresh_every: int = 0  # extra teacher refresh every N videos; 0 = once per epoch
    batch_size: int = 1  # videos per optimizer step (per process under torchrun), padded and masked
    center: bool = False  # runs of procl 0.1 subtracted each video's mean attention feature (read back only)
    device: str = "auto"  # "auto" (cuda when available), "cpu" or "cuda"

    def resolved(self, grid: bool | None = True) -> "TrainConfig":
        """Every None filled with its default. grid: whether the inputs have a region grid
        (R > 1), which some levers' default-recipe values depend on (`Lever.no_grid`);
        None (not known yet: a job not started) leaves those levers as given."""
        if self.recipe not in RECIPES:
            raise ProclError(f"recipe {self.recipe!r} is not one of {', '.join(RECIPES)}")
        levers = {lv.name: value if (value := getattr(self, lv.name)) is not None
                  else None if grid is None and lv.no_grid is not None else lv.value(self.recipe, bool(grid))
                  for lv in LEVER_SPECS}
        return TrainConfig(**{
            **asdict(self), **levers,
            "M": self.M if self.M is not None else default_M(self.setting),
            "lam": self.lam if self.lam is not None else default_lam(self.setting),
        })

    def validate(self) -> None:
        """Reject bad values before any long work starts (on a resolved config). Each
        error names the field it is about (`ProclError.field`) for the app's form."""
        def bad(field: str, message: str) -> ProclError:
            err = ProclError(message)
            err.field = field
            return err

        if self.setting not in SETTINGS:
            raise bad("setting", f"setting {self.setting!r} is not one of {', '.join(SETTINGS)}")
        for lv in LEVER_SPECS:
            try:
                lv.check(getattr(self, lv.name))
            except ProclError as err:
                raise bad(lv.name, str(err)) from None
        if not 0.0 < self.background_threshold < 1.0:
            raise bad("background_threshold",
                      f"background threshold {self.background_threshold} must lie between 0 and 1")
        if self.M is None or self.M < 1:
            raise bad("M", f"M={self.M}: the number of latent states must be at least 1")
        if self.k < 1:
            raise bad("k", f"k={self.k}: the number of key-steps must be at least 1")
        if self.k > self.M:
            raise bad("k", f"k = {self.k} is larger than M = {self.M}: the k key-steps are chosen among the M states")
        if self.lam is None or self.lam < 0 or not math.isfinite(self.lam):
            raise bad("lam", f"lambda={self.lam} must be a number >= 0")
        if self.epochs is not None and self.epochs < 1:
            raise bad("epochs", f"epochs={self.epochs} must be at least 1")
        if self.width < 1 or self.fps <= 0 or self.lr <= 0 or self.refresh_every < 0:
            raise bad("general", "width, fps and lr must be positive and refresh_every >= 0")
        if not 0 <= self.seed < 2**32:
            raise bad("seed", f"seed {self.seed} is not allowed: give a whole number from 0 to {2**32 - 1}")
        if self.batch_size < 1:
            raise bad("batch_size", f"batch size {self.batch_size} must be at least 1 (videos per optimizer step)")
        if not self.ranking and self.lam == 0:
            raise bad("lam", "--no-ranking with lambda=0 leaves nothing to train: give --lam > 0")
        try:
            resolve_device(self.device)  # an unknown device, or cuda on a machine without one
        except ProclError as err:
            raise bad("device", str(err)) from None

    def epochs_for(self, videos_per_epoch: int) -> int:
        """The epochs to train: as given, or DEFAULT_EPOCHS and, multi-task, more on a small
        dataset, so that at least min_steps videos are trained on (a dataset of 12 videos
        otherwise gets 240 optimizer steps: too few for the classifier to learn anything).
        Single-task has no classifier: more epochs cost tenfold and gained nothing on the
        development sets (docs/method.md, min_steps)."""
        if self.epochs is not None:
            return self.epochs
        if self.setting != "multi":
            return DEFAULT_EPOCHS
        return max(DEFAULT_EPOCHS, math.ceil((self.min_steps or 0) / max(videos_per_epoch, 1)))


def config_from_saved(saved: dict) -> TrainConfig:
    """The TrainConfig of a run's config.json. Runs made before recipes are "paper" runs
    with the per-video centring they had; a lever a run was made before decodes as the
    run did (`Lever.before`: no task evidence, no background bias, the network's classifier)."""
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in names}
    if "recipe" not in saved:
        values.update(recipe="paper", center=saved.get("center", False))
    for lv in LEVER_SPECS:
        if lv.before is not None:
            values.setdefault(lv.name, lv.before)
    return TrainConfig(**values)


def net_config(cfg: TrainConfig, D: int, n_tasks: int) -> NetConfig:
    """The network of a (resolved) run config: one place for train, infer and bench."""
    return NetConfig(
        D=D, M=cfg.M, n_tasks=n_tasks, width=cfg.width,
        attention=cfg.attention, learnable_pooling=cfg.learnable_pooling,
        classifier=cfg.setting == "multi", center=cfg.center, region_center=cfg.region_center,
        attention_prior=cfg.attention_prior, occupancy=cfg.occupancy, time_weight=cfg.time_weight,
    )


# ---------------------------------------------------------------- command line

def add_lever_arguments(p: argparse.ArgumentParser) -> None:
    """One option per lever (default None: the recipe's value)."""
    group = p.add_argument_group("levers procl adds to the paper (default: the recipe's value; docs/method.md)")
    for lv in LEVER_SPECS:
        if lv.type is bool:
            group.add_argument(lv.option, action=argparse.BooleanOptionalAction, default=None, help=lv.help)
        elif lv.choices:
            group.add_argument(lv.option, choices=lv.choices, default=None, help=lv.help)
        else:
            group.add_argument(lv.option, type=lv.type, default=None, help=lv.help)
        if lv.name == "background":  # its threshold sits beside it
            group.add_argument("--background-threshold", type=float, default=TrainConfig.background_threshold,
                               help="'shared': a state whose task distribution has normalised entropy above this "
                                    "is background")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `train` command's options: every field of TrainConfig."""
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, help="dataset spec (default: synthetic)")
    p.add_argument("--k", type=int, default=None, help="key-steps per task (required unless --resume)")
    p.add_argument("--M", type=int, default=None, help="latent states (default 50 multi, 30 single)")
    p.add_argument("--lam", type=float, default=None, help="weight of the task loss (default 0.5 multi, 0 single)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {DEFAULT_EPOCHS}, more on a small dataset: see --min-steps)")
    p.add_argument("--setting", choices=SETTINGS, default=d.setting)
    p.add_argument("--recipe", choices=tuple(RECIPES), default=d.recipe,
                   help="'default': procl's recipe; 'paper': the method as published (every lever below off)")
    p.add_argument("--no-attention", dest="attention", action="store_false", help="mean over cells instead of SAN")
    p.add_argument("--no-learnable-pooling", dest="learnable_pooling", action="store_false", help="uniform beta")
    p.add_argument("--no-ranking", dest="ranking", action="store_false",
                   help="task labels only: no subset-selection supervision (the paper's Fig. 2 ablation)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--backbone", default=d.backbone, help="feature backbone (default: the weight-free one)")
    p.add_argument("--weights", default=None,
                   help="backbone weights: imagenet, a state_dict path, or 'none' for random")
    p.add_argument("--fps", type=float, default=d.fps)
    p.add_argument("--width", type=int, default=d.width, help="KLN channels")
    p.add_argument("--refresh-every", type=int, default=d.refresh_every,
                   help="also refresh k-means and subset selection every N videos (0: once per epoch)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="videos per optimizer step, padded to the longest and masked (default 1, the paper's; "
                        "under torchrun per process)")
    add_lever_arguments(p)
    add_device_argument(p, "the networks train")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed `train` options (those left None take their defaults)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
