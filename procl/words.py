"""Plain words for the paper's terms: what the app says, and a glossary back to the paper.

Every page reads in words a person who never read the paper understands; the precise
term stays in a tooltip, in the glossary below (the app's "Words and the paper's
terms" expander) and in the README. `GLOSSARY` is the one list of them.
"""
from __future__ import annotations

from pathlib import Path

# (plain words on the pages, the paper's term, what it is)
GLOSSARY: list[tuple[str, str, str]] = [
    ("step (key-step)", "key-step", "One of the things done in a task (say *loosen nuts*), found by procl without "
     "labels. k steps are looked for in each task."),
    ("number of steps per task", "k", "How many steps procl looks for in each task; the Train page asks for it, and "
     "Compare helps choose it."),
    ("kinds of moment", "M, latent states", "Every frame is put in one of M groups of frames that look alike "
     "(k-means); each task's steps are chosen among these groups. Shown as *state 12*."),
    ("the clustering's suggestion", "teacher, subset-selection pseudo-labels (Eq. 2)", "The steps a greedy subset "
     "selection picks among the groups for each task, and which frames it gives them; the network learns from "
     "these and then improves on them."),
    ("picked as the n-th step", "pick order of subset selection", "The order in which the clustering's suggestion "
     "chose a group as one of the task's steps (first = the one that explained the most)."),
    ("prediction", "student, key-step localizer (FCN)", "The steps the trained network gives each frame."),
    ("where the network looks", "spatial attention alpha (SAN, Eq. 1)", "How much each part of the frame counts; "
     "shown as a red heatmap."),
    ("how much the task decision relies on this step", "pooling weight beta (learnable key-step pooling, Eq. 5)",
     "A weight per group of frames that the task classifier learned; the *key-step strength* curve is the "
     "step's probability times this weight (the paper's Fig. 4)."),
    ("typical reliance", "mean beta", "The pooling weight of a step averaged over a task's videos."),
    ("how much the task guess counts in training", "lambda (λ), loss L = L_rank + λ L_ce (Eq. 6)",
     "The weight of the task classifier's loss (cross-entropy) against the step ranking loss learned from the "
     "clustering's suggestion."),
    ("learning from the clustering's suggestion", "ranking loss L_rank", "The part of training where the network "
     "learns the steps the clustering suggested; off = task labels only (the paper's Fig. 2)."),
    ("task guess", "task classifier, cross-entropy loss L_ce", "The network's guess of a video's task, and the "
     "loss that trains it."),
    ("network size", "KLN width", "Channels of the 1D convolutional key-step localizer."),
    ("pairing found steps with true ones", "Hungarian matching", "With annotations, each found step is paired "
     "with the true step it overlaps most (one-to-one, per task) before it is scored; its colour and name follow."),
    ("found / right / overlap (R, P, F1, IoU)", "recall, precision, F1, IoU", "How much of the true steps was "
     "found, how much of what was found is right, their balance, and their overlap; only with annotations."),
    ("dataset", "dataset spec (`folder:PATH`, `synthetic`, ...)", "Pages name a dataset by its folder's name; the "
     "spec (the form and path the command line takes) is in the tooltip and the README."),
    ("equal cuts", "Uniform baseline", "Each video cut into k equal parts, in order, and told its task: the "
     "trivial reference every run is shown beside, scored the same way."),
    ("one network for all tasks / one per task", "multi-task / single-task setting", "Multi: one network for every "
     "task, trained on the train split and scored on the test split. Single: one network per task (Table 1)."),
]


EQUAL_CUTS_HELP = ("F1 of cutting each video into k equal parts (told its task), on the same videos: the trivial "
                   "reference. A run near or below it found little beyond the order of the steps.")


ONE_TASK_NOTE = ("This dataset has one task: the single-task setting trains its network on all its videos; "
                 "multi holds a test split out and trains a task classifier that has nothing to tell apart.")


TASK_GIVEN = "task given (one network per task)"


def counted(n: int, noun: str) -> str:
    """"1 task", "3 tasks": a count with its noun (a regular plural)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def dataset_name(spec: str | None) -> str:
    """A dataset as a person calls it: the folder's name ("folder:data/own5" -> "own5"),
    "built-in (synthetic)" for the built-in one; the spec itself when it is not one."""
    if not spec:
        return "–"
    text = str(spec).strip()
    if text.lower() == "synthetic":
        return "built-in (synthetic)"
    kind, sep, path = text.partition(":")
    if not sep or not path.strip():
        return text
    name = Path(path.strip().rstrip("/")).name or path.strip()
    return name if kind.lower() == "folder" else f"{name} ({kind.lower()})"


def glossary_markdown() -> str:
    """The glossary as a Markdown table (plain words | the paper's term | what it is)."""
    rows = ["| On these pages | In the paper | What it is |", "|---|---|---|"]
    rows += [f"| {plain} | {term} | {what} |" for plain, term, what in GLOSSARY]
    return "\n".join(rows)
