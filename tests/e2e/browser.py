"""What the browser tests share: starting the app on a free port, headless Chromium, waiting, screenshots.

Skipped when Chromium or Playwright is missing, unless PROCL_REQUIRE_BROWSER=1 (CI),
which turns the skip into a failure.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "artifacts" / "screenshots"
WIDTH = 1400


def unavailable(reason: str) -> None:
    if os.environ.get("PROCL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (PROCL_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


def require_browser() -> None:
    """Skip (or fail under PROCL_REQUIRE_BROWSER=1) when Chromium or Playwright is missing."""
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(root: Path) -> Iterator[dict]:
    """`streamlit run app.py` on a free local port, with PROCL_DATA / PROCL_CHECKPOINTS under `root`."""
    env = {**os.environ, "PROCL_DATA": str(root / "data"), "PROCL_CHECKPOINTS": str(root / "checkpoints")}
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
        yield {"url": url, "checkpoints": root / "checkpoints", "data": root / "data", "root": root, "env": env}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def browser_page() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        pg.set_default_timeout(60_000)
        try:
            yield pg
        finally:
            browser.close()


def settle(pg) -> None:
    """Wait until the app runs no script (twice, so that a rerun just being requested is seen)."""
    for _ in range(2):
        pg.wait_for_timeout(400)
        pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def no_exception(pg) -> None:
    exceptions = pg.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


RENDERED = """() => {
  const all = (sel, ok) => [...document.querySelectorAll(sel)].every(ok);
  return all('[data-testid="stDataFrame"]', f => f.querySelector('canvas') && f.getBoundingClientRect().height > 30)
      && all('[data-testid="stPlotlyChart"]', p => p.querySelector('.main-svg'))
      && all('[data-testid="stImage"] img', i => i.complete && i.naturalWidth > 0)
      && !document.querySelector('[data-testid="stSkeleton"]');
}"""


def wait_rendered(pg) -> None:
    """Wait until no script runs and every table, chart and image on the page is drawn
    (tables and charts are drawn after the script ends: a screenshot taken too early
    shows empty boxes)."""
    settle(pg)
    pg.wait_for_function(RENDERED)
    pg.wait_for_timeout(800)  # the grid paints its canvas on the next frames


def shoot(pg, name: str, folder: Path = SHOTS) -> Path:
    """A screenshot of the whole page once it is drawn (the viewport is stretched to the content's height)."""
    folder.mkdir(parents=True, exist_ok=True)
    pg.mouse.move(0, 0)  # no tooltip in the picture
    wait_rendered(pg)
    height = pg.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                         " return m ? m.scrollHeight : document.body.scrollHeight; }")
    pg.set_viewport_size({"width": WIDTH, "height": int(min(max(height, 900), 4000))})
    wait_rendered(pg)
    path = folder / f"{name}.png"
    pg.screenshot(path=str(path))
    pg.set_viewport_size({"width": WIDTH, "height": 1000})
    return path


def visit(pg, url: str, title: str) -> None:
    pg.goto(url)
    pg.wait_for_selector(f"h1:has-text('{title}')")
    settle(pg)
    no_exception(pg)


def launch_training(pg, run: str, k: int, M: int, epochs: int, width: int, timeout_ms: int = 120_000) -> None:
    """On the Train page: fill the form (the dataset as it is), launch, wait for the job to end."""
    for label, value in (("Steps per task (k)", k), ("Kinds of moment (M)", M), ("Epochs (0: automatic)", epochs)):
        box = pg.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        settle(pg)
    pg.get_by_text("Features and network").click()
    for label, value in (("Network width", width), ("Run name", run)):
        box = pg.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        settle(pg)
    no_exception(pg)
    pg.get_by_role("button", name="Launch training").click()
    pg.get_by_text(re.compile(rf"{re.escape(run)}\s+(done|failed|cancelled)")).first.wait_for(timeout=timeout_ms)
    settle(pg)
    no_exception(pg)


def navigate(pg, link: str, title: str) -> None:
    """Go to a page by its link in the sidebar (the session, and what it holds, is kept)."""
    pg.locator('[data-testid="stSidebarNav"] a').filter(has_text=link).first.click()
    pg.wait_for_selector(f"h1:has-text('{title}')")
    settle(pg)
    no_exception(pg)


def publish_screenshots(names: list[str]) -> None:
    """With PROCL_UPDATE_SCREENSHOTS=1, copy these screenshots to docs/screenshots/."""
    if os.environ.get("PROCL_UPDATE_SCREENSHOTS") != "1":
        return
    docs = ROOT / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SHOTS / f"{name}.png", docs / f"{name}.png")
