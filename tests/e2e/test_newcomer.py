"""A newcomer's path in a real browser, on videos with no annotations at all.

From an empty data folder: upload two tasks' videos on Home (a first try with a file
that is not a video is refused, keeping the rest), extract their features, train a
tiny run from the Train page, name a key-step on Key-steps, and find that name on
Explore (legend and frame text), in the procedure on Key-steps and in the
`procedure` command's output. No page may show an exception, and nothing may say
"ground truth". Screenshots go to artifacts/screenshots/newcomer-*.png (and to
docs/screenshots/ with PROCL_UPDATE_SCREENSHOTS=1).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pandas as pd
import pytest
from browser import (
    ROOT,
    app_server,
    browser_page,
    launch_training,
    navigate,
    no_exception,
    publish_screenshots,
    require_browser,
    settle,
    shoot,
    visit,
)

from procl import runs

NAME = "loosen nuts"


@pytest.fixture(scope="module")
def newcomer(tiny_synth, tmp_path_factory):
    require_browser()
    root = tmp_path_factory.mktemp("newcomer")
    uploads = {}
    for video in sorted((tiny_synth / "videos").rglob("*.mp4")):
        uploads.setdefault(video.parent.name, []).append(video)
    tasks = dict(list(uploads.items())[:2])  # two tasks, three videos each
    (root / "notes.txt").write_text("not a video")
    with app_server(root) as srv, browser_page() as pg:
        yield srv, pg, {task: videos[:3] for task, videos in tasks.items()}, root / "notes.txt"


def wait_text(pg, text: str | re.Pattern, timeout: float = 90_000) -> None:
    pg.get_by_text(text).first.wait_for(timeout=timeout)
    settle(pg)
    no_exception(pg)


def test_newcomer_from_uploads_to_a_named_procedure(newcomer):
    srv, pg, tasks, notes = newcomer
    url = srv["url"]
    start = time.time()
    (first, first_videos), (second, second_videos) = tasks.items()

    # ---------------------------------------------------------------- Home: upload
    visit(pg, url, "procl")
    pg.get_by_text("Create a dataset from your own videos (upload)").click()
    pg.get_by_label("Dataset name", exact=True).fill("my-videos")
    pg.get_by_label("Task 1", exact=True).fill(first.replace("_", " "))
    pg.get_by_label("Task 2", exact=True).fill(second.replace("_", " "))
    pg.get_by_label("Task 2", exact=True).press("Tab")
    settle(pg)
    inputs = pg.locator('[data-testid="stFileUploaderDropzoneInput"]')
    inputs.nth(0).set_input_files([str(p) for p in first_videos] + [str(notes)])
    settle(pg)
    inputs.nth(1).set_input_files([str(p) for p in second_videos])
    settle(pg)
    pg.get_by_role("button", name="Create the dataset").click()
    wait_text(pg, "The dataset was not created")
    assert pg.get_by_text(re.compile(r"notes\.txt \(task '.+'\) is not a video")).count() == 1
    assert not (srv["data"] / "my-videos").exists()
    shoot(pg, "newcomer-upload")
    # the rest is kept: remove the bad file and create
    pg.get_by_role("button", name="Remove notes.txt").click()
    settle(pg)
    assert pg.get_by_label("Task 1", exact=True).input_value() == first.replace("_", " ")
    pg.get_by_role("button", name="Create the dataset").click()
    wait_text(pg, re.compile(r"Created folder:.*my-videos"))
    dataset = srv["data"] / "my-videos"
    assert len(list(dataset.rglob("*.mp4"))) == 6
    assert pg.locator('[data-testid="stDataFrame"]').first.is_visible()

    # ---------------------------------------------------------------- Home: extract
    pg.get_by_role("button", name="Extract features").click()
    wait_text(pg, re.compile(r"Features of folder:.*my-videos ready: 6 extracted"))
    assert pg.get_by_text("Ground-truth timelines").count() == 0, "no ground truth to preview"
    assert pg.get_by_text("These videos are not annotated").count() == 1
    shoot(pg, "newcomer-home")

    # ---------------------------------------------------------------- Train: a tiny run
    navigate(pg, "Train", "Train")
    assert pg.get_by_text("not annotated (no localization scores)").count() == 1, "the new dataset is chosen"
    launch_training(pg, "newcomer", k=2, M=6, epochs=2, width=8)
    run = srv["checkpoints"] / "newcomer"
    assert runs.read_status(run)["state"] == "done", (run / "train.log").read_text()[-2000:]
    pg.get_by_role("button", name="Open in Explore").click()
    pg.wait_for_selector("h1:has-text('Explore a video')")
    settle(pg)
    no_exception(pg)

    # the video Explore opens on, and the state it shows most: the one to name
    pred = pd.read_csv(run / "predictions.csv")
    test = pred[pred["split"] == "test"]
    right = sorted(test.loc[test["task"] == test["pred_task"], "video"].unique())
    shown = (right or sorted(test["video"].unique()))[0]  # Explore opens on a correctly classified video
    state = int(pred.loc[pred["video"] == shown, "state"].mode()[0])
    task = pred.loc[pred["video"] == shown, "pred_task"].iloc[0]  # states come from the predicted task's k

    # ---------------------------------------------------------------- Key-steps: name it
    navigate(pg, "Key-steps", "Key-steps")
    pg.locator('[data-testid="stSelectbox"]').filter(has_text="Task").first.click()
    pg.get_by_role("option", name=task, exact=True).click()
    settle(pg)
    box = pg.get_by_label(f"Name of state {state}", exact=True)
    box.fill(NAME)
    box.press("Enter")
    settle(pg)
    no_exception(pg)
    assert json.loads((run / "names.json").read_text()) == {"all": {str(state): NAME}}
    # the procedure's line of steps and the key-step's title (the table is drawn on a canvas)
    assert pg.locator('[data-testid="stMarkdownContainer"]').filter(has_text=NAME).count() >= 2
    assert pg.locator('[data-testid="stDataFrame"]').first.is_visible()
    assert pg.get_by_text(re.compile("ground.truth", re.I)).count() == 0
    shoot(pg, "newcomer-keysteps")

    # ---------------------------------------------------------------- Explore: the name is there
    navigate(pg, "Explore", "Explore a video")
    legend = pg.locator(".js-plotly-plot").filter(has_text="prediction").first
    assert NAME in legend.inner_text(), "the timeline's legend names the state"
    assert pg.get_by_text("not annotated").count() >= 1
    assert pg.get_by_text(re.compile("ground truth", re.I)).count() == 0
    assert pg.locator(".js-plotly-plot").filter(has_text="p × beta").count() == 1, "the key-step strength"
    shoot(pg, "newcomer-explore")

    # ---------------------------------------------------------------- the procedure command
    out = subprocess.run([sys.executable, "-m", "procl", "procedure", "--run", "newcomer", "--json"], cwd=ROOT,
                         env=srv["env"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    steps = json.loads(out.stdout)["tasks"][task]
    assert [s["name"] for s in steps if s["state"] == state] == [NAME]
    print(f"newcomer browser test: {time.time() - start:.1f} s")

    publish_screenshots(["newcomer-upload", "newcomer-home", "newcomer-keysteps", "newcomer-explore"])
