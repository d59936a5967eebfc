"""Screenshots of every page on the demo runs, for the README (not a test).

Start the app on the built-in dataset first (`make app`), then run
`.venv/bin/python tests/e2e/demo_screenshots.py [URL]`; PNGs go to docs/demo/.
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

PAGES = {"home": "", "train": "train", "explore": "explore", "keysteps": "keysteps", "compare": "compare"}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def main(url: str = "http://localhost:8501") -> None:
    out = Path(__file__).resolve().parents[2] / "docs" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1700})
        for name, path in PAGES.items():
            page.goto(f"{url}/{path}")
            page.wait_for_timeout(1500)
            for _ in range(240):  # until the app is not running a script
                if page.locator('[data-testid="stStatusWidget"]').count() == 0:
                    break
                page.wait_for_timeout(250)
            page.wait_for_timeout(1500)
            if page.locator('[data-testid="stException"]').count():
                raise SystemExit(f"page {name} shows an exception")
            page.screenshot(path=str(out / f"{name}.png"))
            print(out / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
