"""Human in the loop in a real browser (issue 21): open the video procl suggests correcting
first, correct a span of it on Explore, merge two
states on Key-steps, refine with the corrections, and find the person's step name on
another video's timeline of the refined run; Compare shows what changed. Screenshots go
to artifacts/screenshots/corrections-*.png (and docs/screenshots/ with
PROCL_UPDATE_SCREENSHOTS=1)."""
from __future__ import annotations

import re

import pytest
from browser import (
    app_server,
    browser_page,
    navigate,
    no_exception,
    publish_screenshots,
    require_browser,
    settle,
    shoot,
    visit,
)

from procl import corrections, explore, runs
from procl.train import TrainConfig, train

NAME = "first step"


@pytest.fixture(scope="module")
def served(tiny_synth, tmp_path_factory):
    require_browser()
    root = tmp_path_factory.mktemp("corrections")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROCL_DATA", str(root / "data"))
        mp.setenv("PROCL_CHECKPOINTS", str(root / "checkpoints"))
        train(TrainConfig(dataset=f"folder:{tiny_synth}", k=3, M=16, epochs=12, width=32), run="tiny",
              progress=False)
        with app_server(root) as srv, browser_page() as pg:
            yield srv, pg, root


def fill(pg, label: str, value) -> None:
    box = pg.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(pg)


def test_correct_refine_and_see_the_names(served):
    srv, pg, root = served
    parent = root / "checkpoints" / "tiny"
    visit(pg, srv["url"] + "/explore?run=tiny", "Explore a video")
    suggested = explore.videos_to_correct(explore.load_run_info(parent))
    pg.get_by_text(re.compile("Correct these first for")).first.wait_for()
    pg.get_by_role("button", name="Open the next one").click()  # the page opened on a test video
    settle(pg)
    no_exception(pg)
    fill(pg, "Start (s)", 0.5)
    fill(pg, "End (s)", 3.0)
    fill(pg, "Step (a name, or background)", NAME)
    pg.get_by_role("button", name="Mark span").click()
    settle(pg)
    no_exception(pg)
    segs = corrections.read_corrections(parent)["segments"]
    assert len(segs) == 1 and segs[0]["step"] == NAME and segs[0]["start"] == 0.5
    video = segs[0]["video"]
    assert video == suggested[video.rsplit("_", 1)[0]][0], "the button opened the video to correct first"
    pg.get_by_text(f"{video} 0.5-3.0 s is '{NAME}'").first.wait_for()
    pg.get_by_text(re.compile(rf"Correct these first for .*{video} ✓")).first.wait_for()
    shoot(pg, "corrections-explore")

    navigate(pg, "Key-steps", "Key-steps")
    merge = pg.get_by_label("States that are one step")
    for _ in range(2):  # the first state offered, twice
        merge.click()
        pg.keyboard.press("Enter")
        settle(pg)
    pg.keyboard.press("Escape")
    pg.get_by_role("button", name="Merge").click()
    settle(pg)
    no_exception(pg)
    assert len(corrections.read_corrections(parent)["merge"]) == 1
    fill(pg, "Name of the refined run", "tiny-fixed")
    pg.get_by_role("button", name="Refine with my corrections").click()
    pg.get_by_text(re.compile("Refined run tiny-fixed is ready")).first.wait_for(timeout=180_000)
    settle(pg)
    no_exception(pg)
    shoot(pg, "corrections-keysteps")
    assert runs.read_config(root / "checkpoints" / "tiny-fixed")["parent"] == "tiny"

    # the refined run names the step on another video of the same task
    task = video.rsplit("_", 1)[0]
    visit(pg, srv["url"] + "/explore?run=tiny-fixed", "Explore a video")
    pg.locator('[data-testid="stSelectbox"]').filter(has_text="Split").first.click()
    pg.get_by_role("option").filter(has_text="all").first.click()
    settle(pg)
    pg.locator('[data-testid="stSelectbox"]').filter(has_text="Video").first.click()
    options = pg.get_by_role("option")
    options.first.wait_for()
    texts = options.all_inner_texts()
    pick = next(i for i, t in enumerate(texts) if t.startswith(task) and not t.startswith(video))
    options.nth(pick).click()
    settle(pg)
    no_exception(pg)
    assert pg.get_by_text(NAME).count() > 0
    shoot(pg, "corrections-refined-explore")

    navigate(pg, "Compare", "Compare runs")
    pg.get_by_text(re.compile("changed step")).first.wait_for()
    shoot(pg, "corrections-compare")
    publish_screenshots(["corrections-explore", "corrections-keysteps", "corrections-refined-explore",
                         "corrections-compare"])
