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

from browser import (app_server, browser_page, launch_training, no_exception, require_browser,
                     settle, shoot, visit)
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
    assert pg.locator(".js-plotly-plot").count() >= 1
    shoot(pg, "home")

    # Explore: pick a video, move the frame slider, click a timeline segment
    visit(pg, f"{url}/explore", "Explore a video")
    assert pg.locator('[data-testid="stImage"] img').count() >= 1
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
    assert pg.locator('[data-testid="stImage"] img').count() >= 1
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

