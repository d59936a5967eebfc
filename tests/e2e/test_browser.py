"""The app in a real browser: `streamlit run app.py` driven by headless Chromium (Playwright).

Visits every page on a tiny trained run, picks a video, moves the frame slider, clicks
a timeline segment, launches a tiny training from the Train page and waits for it to
finish; no page may show an exception. A screenshot of each page goes to
artifacts/screenshots/ (and to docs/screenshots/ with PROCL_UPDATE_SCREENSHOTS=1).

Skipped when Chromium or Playwright is missing, unless PROCL_REQUIRE_BROWSER=1 (CI),
which turns the skip into a failure.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from procl import runs

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "artifacts" / "screenshots"
WIDTH = 1400


def _unavailable(reason: str) -> None:
    if os.environ.get("PROCL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (PROCL_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_synth, tmp_path_factory):
    """A Streamlit server on a free local port over a checkpoints folder holding run `tiny`."""
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed")
    from procl.train import TrainConfig, train

    root = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "PROCL_DATA": str(root / "data"), "PROCL_CHECKPOINTS": str(root / "checkpoints")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROCL_DATA", env["PROCL_DATA"])
        mp.setenv("PROCL_CHECKPOINTS", env["PROCL_CHECKPOINTS"])
        train(TrainConfig(dataset=f"folder:{tiny_synth}", k=3, M=8, epochs=2, width=16), run="tiny", progress=False)
    port = _free_port()
    log = open(root / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "localhost", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://localhost:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{(root / 'streamlit.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield {"url": url, "checkpoints": root / "checkpoints", "root": root}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def settle(pg) -> None:
    """Wait until the app runs no script (twice, so that a rerun just being requested is seen)."""
    for _ in range(2):
        pg.wait_for_timeout(400)
        pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def no_exception(pg) -> None:
    assert pg.locator('[data-testid="stException"]').count() == 0, pg.locator('[data-testid="stException"]').first.inner_text()


def shoot(pg, name: str) -> None:
    """A screenshot of the whole page (the viewport is stretched to the content's height)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.mouse.move(0, 0)  # no tooltip in the picture
    height = pg.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                         " return m ? m.scrollHeight : document.body.scrollHeight; }")
    pg.set_viewport_size({"width": WIDTH, "height": int(min(max(height, 900), 4000))})
    settle(pg)
    pg.screenshot(path=str(SHOTS / f"{name}.png"))
    pg.set_viewport_size({"width": WIDTH, "height": 1000})


def visit(pg, url: str, title: str) -> None:
    pg.goto(url)
    pg.wait_for_selector(f"h1:has-text('{title}')")
    settle(pg)
    no_exception(pg)


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
    for label, value in (("k (key-steps per task)", "2"), ("M (latent states)", "6"), ("Epochs", "1")):
        box = pg.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        settle(pg)
    pg.get_by_text("Features and network").click()
    width = pg.get_by_label("KLN width", exact=True)
    width.fill("8")
    width.press("Enter")
    settle(pg)
    name = pg.get_by_label("Run name", exact=True)
    name.fill("browser-job")
    name.press("Enter")
    settle(pg)
    no_exception(pg)
    pg.get_by_role("button", name="Launch training").click()
    pg.get_by_text(re.compile(r"browser-job\s+(done|failed|cancelled)")).first.wait_for(timeout=90_000)
    settle(pg)
    no_exception(pg)
    job = server["checkpoints"] / "browser-job"
    assert runs.read_status(job)["state"] == "done", (job / "train.log").read_text()[-2000:]
    pg.get_by_role("button", name="Open in Explore").wait_for()
    shoot(pg, "train")

    visit(pg, f"{url}/compare", "Compare runs")
    assert pg.locator(".js-plotly-plot").count() >= 2
    assert pg.get_by_text("browser-job (k=2)").count() >= 1, "the new run is stacked with the first"
    shoot(pg, "compare")
    print(f"browser test: {time.time() - start:.1f} s")

    if os.environ.get("PROCL_UPDATE_SCREENSHOTS") == "1":
        docs = ROOT / "docs" / "screenshots"
        docs.mkdir(parents=True, exist_ok=True)
        for shot in SHOTS.glob("*.png"):
            shutil.copy(shot, docs / shot.name)
