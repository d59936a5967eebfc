"""Screenshots of every page on the demo runs, for the README (not a test).

Start the app on the built-in dataset first (`make app`), then run
`.venv/bin/python tests/e2e/demo_screenshots.py [URL]`; PNGs go to docs/screenshots/. Each is
taken once the page's script has ended and its tables, charts and images are drawn.
"""
from __future__ import annotations

import sys

from browser import ROOT, browser_page, shoot, visit

PAGES = {"home": ("", "procl"), "train": ("train", "Train"), "explore": ("explore", "Explore a video"),
         "keysteps": ("keysteps", "Key-steps"), "compare": ("compare", "Compare runs")}


def main(url: str = "http://localhost:8501") -> None:
    with browser_page() as page:
        for name, (path, title) in PAGES.items():
            visit(page, f"{url}/{path}", title)  # fails on a page that shows an exception
            print(shoot(page, name, ROOT / "docs" / "screenshots"))


if __name__ == "__main__":
    main(*sys.argv[1:])
