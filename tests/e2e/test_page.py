"""The page in headless Chromium against `constellate up`: the map renders, clicking a cluster filters
the search, and a rename made on the page is still there after a recluster. Saves a screenshot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from constellate.datasets import load_banking77
from tests.e2e.helpers import http, post_texts, start_up, stop_process, stored_tickets, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("CONSTELLATE_TEST_ARTIFACTS", "test-artifacts"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _runs_succeeded(base: str) -> int:
    return sum(r["status"] == "succeeded" for r in http("GET", f"{base}/runs")[1]["runs"])


@pytest.fixture
def service(tmp_path):
    proc, base = start_up(tmp_path / "d", tmp_path / "up.log")
    try:
        texts = [t.text for t in load_banking77(["test"])[:1500]]
        post_texts(base, texts, [f"w{i}" for i in range(1500)])
        wait_for(lambda: stored_tickets(base) == 1500, 240, "ingest")
        assert http("POST", f"{base}/recluster")[0] == 202
        wait_for(lambda: _runs_succeeded(base) == 1, 300, "the first run", 1)
        yield base
    finally:
        stop_process(proc, timeout=120)


def test_page_map_filter_and_rename_survive_a_recluster(service) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CONSTELLATE_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (apt-get install chromium chromium-driver)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium chromium-driver)")
    from playwright.sync_api import expect, sync_playwright

    base = service
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1680, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/")

        page.wait_for_function("Number(document.querySelector('#map').dataset.points) > 0", timeout=30_000)
        drawn = int(page.get_attribute("#map", "data-points"))
        assert drawn == 1500  # below the 5,000-point map sample: every ticket is on the map

        page.fill("#q", "my card payment was declined")
        page.click("#search-form button[type=submit]")
        expect(page.locator("#results li").first).to_be_visible()
        unfiltered = set(page.locator("#results li").evaluate_all("els => els.map(e => e.dataset.cluster)"))

        row = page.locator("#catalogue tbody tr").nth(1)
        cluster_id = row.get_attribute("data-cluster")
        row.click()
        expect(page.locator("#results")).to_have_attribute("data-cluster", cluster_id)
        filtered = page.locator("#results li").evaluate_all("els => els.map(e => e.dataset.cluster)")
        assert filtered and set(filtered) == {cluster_id}  # every hit is in the clicked cluster
        assert len(unfiltered) > 1 or unfiltered != {cluster_id}
        expect(page.locator("#cluster-panel")).to_be_visible()

        page.once("dialog", lambda dialog: dialog.accept("Team A: card trouble"))
        page.click("#rename")
        expect(page.locator(f'#catalogue tr[data-cluster="{cluster_id}"]')).to_contain_text(
            "Team A: card trouble"
        )

        page.click("#recluster")
        wait_for(lambda: _runs_succeeded(base) == 2, 300, "the second run", 1)
        page.reload()
        row = page.locator(f'#catalogue tr[data-cluster="{cluster_id}"]')
        expect(row).to_contain_text("Team A: card trouble", timeout=30_000)
        expect(page.locator("#runs tbody tr")).to_have_count(2)
        page.wait_for_function("Number(document.querySelector('#map').dataset.points) > 0", timeout=30_000)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
    assert errors == []  # no script errors on the page
