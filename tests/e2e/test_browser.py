"""The app in a real browser: `streamlit run app.py` driven by headless Chromium (Playwright).

Visits every page on a tiny trained run, picks a video, moves the frame slider, clicks
a timeline segment, launches a tiny training from the Train page and waits for it to
finish; no page may show an exception. A screenshot of each page goes to
artifacts/screenshots/ (docs/screenshots/ holds the demo runs' pages, taken by
demo_screenshots.py, and the newcomer path's, published by test_newcomer.py).

Skipped when Chromium or Playwright is missing, unless PROCL_REQUIRE_BROWSER=1 (CI),
which turns the skip into a failure.
"""
from __future__ import annotations

import re
import time

import pytest
from browser import app_server, browser_page, launch_training, no_exception, require_browser, settle, shoot, visit

from procl import runs


@pytest.fixture(scope="module")
def server(tiny_synth, tmp_path_factory):
    """A Streamlit server on a free local port over a checkpoints folder holding run `tiny`."""
    require_browser()
    from procl.train import TrainConfig, train

    root = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROCL_DATA", str(root / "data"))
        mp.setenv("PROCL_CHECKPOINTS", str(root / "checkpoints"))
        train(TrainConfig(dataset=f"folder:{tiny_synth}", k=3, M=8, epochs=2, width=16), run="tiny", progress=False)
    with app_server(root) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with browser_page() as pg:
        yield pg


def frame_number(pg) -> int:
    text = pg.get_by_text(re.compile(r"\(frame \d+ of \d+\)")).first.inner_text()
    return int(re.search(r"frame (\d+) of", text).group(1))


def test_every_page_in_a_browser(server, page):
    pg, url = page, server["url"]
    start = time.time()

    visit(pg, url, "procl")
    assert pg.get_by_text("Ground-truth timelines").count() == 1
    pg.locator(".js-plotly-plot").first.wait_for()  # drawn after the script ends
    shoot(pg, "home")

    # Explore: pick a video, move the frame slider, click a timeline segment
    visit(pg, f"{url}/explore", "Explore a video")
    pg.locator('[data-testid="stImage"] img').first.wait_for()  # the image element comes after the script ends
    assert pg.locator("video").count() == 1
    pg.locator('[data-testid="stSelectbox"]').filter(has_text="Video").first.click()
    options = pg.get_by_role("option")
    assert options.count() >= 2
    options.nth(1).click()
    settle(pg)
    no_exception(pg)
    slider = pg.locator('[data-testid="stSlider"]').filter(has_text="Frame").get_by_role("slider")
    slider.focus()
    for _ in range(3):
        slider.press("ArrowRight")
    settle(pg)
    assert frame_number(pg) == 4
    no_exception(pg)
    chart = pg.locator(".js-plotly-plot").filter(has_text="ground truth").first
    bars = chart.locator("g.trace.bars g.point path")
    assert bars.count() >= 3
    chart.scroll_into_view_if_needed()
    boxes = [bars.nth(i).bounding_box() for i in range(bars.count())]
    late = max(boxes, key=lambda b: b["x"])  # the segment that starts last
    pg.mouse.click(late["x"] + min(3, late["width"] / 2), late["y"] + late["height"] / 2)
    settle(pg)
    assert frame_number(pg) > 4, "clicking a late timeline segment moves the frame viewer to its start"
    no_exception(pg)
    shoot(pg, "explore")

    visit(pg, f"{url}/keysteps", "Key-steps")
    pg.locator('[data-testid="stImage"] img').first.wait_for()  # the image element comes after the script ends
    shoot(pg, "keysteps")

    # Train: a tiny job from the form, followed until it is done
    visit(pg, f"{url}/train", "Train")
    launch_training(pg, "browser-job", k=2, M=6, epochs=1, width=8, timeout_ms=90_000)
    job = server["checkpoints"] / "browser-job"
    assert runs.read_status(job)["state"] == "done", (job / "train.log").read_text()[-2000:]
    pg.get_by_role("button", name="Open in Explore").wait_for()
    shoot(pg, "train")

    visit(pg, f"{url}/compare", "Compare runs")
    assert pg.locator(".js-plotly-plot").count() >= 2
    assert pg.get_by_text("browser-job (k=2)").count() >= 1, "the new run is stacked with the first"
    shoot(pg, "compare")
    print(f"browser test: {time.time() - start:.1f} s")



def test_newcomer_faults_in_a_browser(server, page, tiny_synth):
    """Issue 18 in a browser: an invalid k is said and never launched; a cancel while the job
    is queued is honoured; every upload problem in one round; creating a dataset while the
    sidebar's run uses another one leaves no traceback in the terminal; Compare names its scores."""
    pg, url = page, server["url"]
    visit(pg, f"{url}/train", "Train")
    box = pg.get_by_label("Steps per task (k)", exact=True)
    for bad, message in (("0", "must be at least 1"), ("150", "k = 150 is larger than M = 50")):
        box.fill(bad)
        box.press("Enter")
        settle(pg)
        assert pg.get_by_text(message).count() >= 1 and box.input_value() == bad
        assert pg.get_by_role("button", name="Launch training").is_disabled()
    shoot(pg, "train-invalid-k")

    # cancel while queued: the job ends cancelled, never done
    for label, value in (("Steps per task (k)", 2), ("Kinds of moment (M)", 6), ("Epochs (0: automatic)", 30)):
        field = pg.get_by_label(label, exact=True)
        field.fill(str(value))
        field.press("Enter")
        settle(pg)
    name = pg.get_by_label("Run name", exact=True)
    name.fill("queued-cancel")
    name.press("Enter")
    settle(pg)
    pg.get_by_role("button", name="Launch training").click()
    pg.get_by_role("button", name="Cancel").first.click()
    job = server["checkpoints"] / "queued-cancel"
    deadline = time.time() + 90
    while runs.read_status(job).get("state") not in runs.TERMINAL and time.time() < deadline:
        time.sleep(0.5)
    assert runs.read_status(job)["state"] == "cancelled", (job / "train.log").read_text()[-2000:]
    assert not (job / "model.pt").exists()

    # uploads: every problem in one round, then a dataset made while the sidebar's run uses another
    visit(pg, url, "procl")
    videos = {}
    for video in sorted((tiny_synth / "videos").rglob("*.mp4")):
        videos.setdefault(video.parent.name, []).append(video)
    (first, v1), (second, v2) = list(videos.items())[:2]
    bad = server["root"] / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "renamed.mp4").write_text("a text file\n")
    (bad / "zero.mp4").write_bytes(b"")
    pg.get_by_text("Create a dataset from your own videos (upload)").click()
    pg.get_by_label("Dataset name", exact=True).fill("uploaded")
    pg.get_by_label("Task 1", exact=True).fill(first)
    pg.get_by_label("Task 2", exact=True).fill(second)
    pg.get_by_label("Task 2", exact=True).press("Tab")
    settle(pg)
    inputs = pg.locator('[data-testid="stFileUploaderDropzoneInput"]')
    inputs.nth(0).set_input_files([str(p) for p in v1[:3]] + [str(bad / "renamed.mp4"), str(bad / "zero.mp4")])
    settle(pg)
    inputs.nth(1).set_input_files([str(v2[0])])
    settle(pg)
    pg.get_by_role("button", name="Create the dataset").click()
    pg.get_by_text("The dataset was not created").first.wait_for()
    settle(pg)
    for message in ("renamed.mp4 (task", "zero.mp4 (task", f"'{second}' has one video"):
        assert pg.get_by_text(message, exact=False).count() >= 1, message
    shoot(pg, "home-upload-problems")
    for f in ("renamed.mp4", "zero.mp4"):
        pg.get_by_role("button", name=f"Remove {f}").click()
        settle(pg)
    inputs.nth(1).set_input_files([str(p) for p in v2[1:3]])  # added to the one already there
    settle(pg)
    pg.get_by_role("button", name="Create the dataset").click()
    pg.get_by_text(re.compile(r"Created folder:.*uploaded")).first.wait_for()
    settle(pg)
    no_exception(pg)
    log = (server["root"] / "streamlit.log").read_text()
    assert "Session State API" not in log and "Traceback" not in log, log[-3000:]

    visit(pg, f"{url}/compare", "Compare runs")
    chart = pg.locator(".js-plotly-plot").filter(has_text="score (%)").first
    assert "found (recall, R)" in chart.inner_text() and "F1" in chart.inner_text()
    shoot(pg, "compare-k")


def test_k_sweep_in_a_browser(server, page):
    """Issue 18, choosing k: a bad list is named and blocks the button; "Try these k" launches
    one run per k and seed (two by default), trained one after another; Compare plots the
    label-free signals against k, the agreement between seeds among them, and suggests the k
    where the seeds agree most in one sentence."""
    pg, url = page, server["url"]
    visit(pg, f"{url}/train", "Train")
    for label, value in (("Steps per task (k)", 2), ("Kinds of moment (M)", 6), ("Epochs (0: automatic)", 1)):
        box = pg.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        settle(pg)
    pg.get_by_text("Features and network").click()
    for label, value in (("Network width", 8), ("Run name", "sweep")):
        box = pg.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        settle(pg)
    pg.get_by_text("Not sure of k? Try several").click()
    ks = pg.get_by_label("Values of k", exact=True)
    ks.fill("2, two")
    ks.press("Enter")
    settle(pg)
    assert pg.get_by_text("'two' is not a whole number").count() >= 1
    assert pg.get_by_role("button", name="Try these k").is_disabled()
    ks.fill("3, 2")
    ks.press("Enter")
    settle(pg)
    no_exception(pg)
    assert pg.get_by_text("4 runs: k = 2, 3, 2 seeds each").count() == 1
    pg.get_by_role("button", name="Try these k").click()
    for k in (2, 3):
        for seed in (0, 1):
            pg.get_by_text(re.compile(rf"sweep-k{k}-s{seed}\s+(done|failed|cancelled)")).first.wait_for(timeout=180_000)
            job = server["checkpoints"] / f"sweep-k{k}-s{seed}"
            assert runs.read_status(job)["state"] == "done", (job / "train.log").read_text()[-2000:]
    settle(pg)
    no_exception(pg)
    shoot(pg, "train-sweep")

    visit(pg, f"{url}/compare", "Compare runs")
    pg.get_by_text("Suggested k:").first.wait_for()
    chart = pg.locator(".js-plotly-plot").filter(has_text="steps used per task")
    assert chart.count() == 1 and "agreement between seeds" in chart.first.inner_text()
    assert pg.get_by_text(re.compile("runs of it with different seeds agree (most|at least as much)")).count() >= 1
    no_exception(pg)
    shoot(pg, "compare-choose-k")
