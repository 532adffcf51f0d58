"""An analyst's path through the dagml pages in a real browser: Debian's Chromium, driven by
Playwright, against the real api-server of conftest.py after real DAG runs.

Log in on Airflow's login page, open dagml from Airflow's navigation, go from the datasets
list to a dataset and its run, read the leaderboard and see the plots drawn; open the failed
run and the one still searching (its trials counter goes up). A screenshot of each page is
saved in the test's output folder: $DAGML_TEST_OUTPUT/browser/<test name>/ (default: the
system's temporary folder's dagml-test-output), printed with -s."""

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.browser.conftest import DONE, FAILED, PASSWORDS, SEARCHING

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium") or shutil.which(CHROMIUM), (
        "Debian's chromium is not installed: `make install` installs it (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def shots(request) -> Path:
    """The test's output folder for screenshots, emptied first; kept after the session."""
    root = Path(os.environ.get("DAGML_TEST_OUTPUT") or Path(tempfile.gettempdir()) / "dagml-test-output")
    folder = root / "browser" / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def page(browser, ui_server):
    context = browser.new_context(viewport={"width": 1500, "height": 1100}, base_url=ui_server.base)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto("/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORDS["admin"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))
    yield page
    context.close()


def _shot(page, folder, name: str, in_ui: bool = False) -> None:
    """The page as the analyst sees it; for a page inside Airflow's UI also its frame's page whole,
    opened on its own (the frame scrolls by itself, so the first shot shows only its top)."""
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    if in_ui:
        alone = page.context.new_page()
        alone.goto(page.main_frame.child_frames[0].url)
        alone.wait_for_load_state("networkidle")
        alone.screenshot(path=str(folder / f"{name}-whole.png"), full_page=True)
        alone.close()
    print(f"screenshot: {folder / name}.png")


def _cells(frame, rows: str, columns: tuple[int, ...], timeout: float = 60) -> list[tuple[str, ...]]:
    """The text of some columns of a table's rows, read at once. Airflow's UI mirrors the frame's
    address into its own and may reload the frame once after a click: wait until rows are there."""
    script = f"rows => rows.map(r => {list(columns)}.map(i => r.cells[i].innerText.trim()))"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            found = frame.locator(rows).evaluate_all(script)
        except Exception:  # the frame is being replaced right now
            found = []
        if found:
            return [tuple(r) for r in found]
        time.sleep(0.5)
    raise AssertionError(f"no rows matched {rows} in {timeout} s")


def _plots_drawn(frame, count: int) -> None:
    plots = frame.locator(".js-plotly-plot .main-svg")
    plots.first.wait_for()
    assert plots.count() >= count
    for i in range(plots.count()):
        box = plots.nth(i).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, box


def test_an_analyst_reads_a_runs_leaderboard_and_plots(page, ui_server, shots):
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="dagml").click()
    page.wait_for_url(re.compile(r"/plugin/dagml$"))
    frame = page.frame_locator("iframe")
    datasets = frame.locator("#datasets")
    datasets.wait_for()
    assert datasets.get_by_role("link", name=DONE).count() == 1
    _shot(page, shots, "1-datasets", in_ui=True)

    datasets.get_by_role("link", name=DONE).click()
    page.wait_for_url(re.compile(rf"/plugin/dagml/dagml/datasets/{DONE}$"))
    assert [ui_server.runs[DONE]] == [run for (run,) in _cells(frame, "#runs tbody tr", (1,))]
    _plots_drawn(frame, 1)
    _shot(page, shots, "2-dataset", in_ui=True)

    frame.locator("#runs").get_by_role("link", name=ui_server.runs[DONE]).click()
    page.wait_for_url(re.compile(r"/plugin/dagml/dagml/datasets/.+/runs/"))  # the UI follows the frame
    rows = dict(_cells(frame, "#leaderboard tbody tr", (1, 4)))
    assert {"sklearn:knn", "sklearn:elastic_net", "sklearn:dummy"} <= set(rows)
    assert all(0.5 <= float(score) <= 1 for score in rows.values())
    assert frame.locator("#leaderboard tr.selected").count() == 1
    assert frame.get_by_role("link", name="its HTML report").get_attribute("href").endswith("/report")
    _plots_drawn(frame, 3)  # search traces, scores by family, and the chosen model's diagnostics
    _shot(page, shots, "3-run", in_ui=True)


def test_a_failed_run_says_what_failed_and_where(page, ui_server, shots):
    page.goto(f"/dagml/datasets/{FAILED}/runs/{ui_server.runs[FAILED]}")
    failure = page.locator("#failure")
    assert failure.locator("b").inner_text().startswith("load: ")
    assert "failed in task load" in failure.inner_text()
    _shot(page, shots, "4-failed-run")


def test_a_searching_runs_trials_counter_goes_up(page, ui_server, shots):
    page.goto(f"/dagml/datasets/{SEARCHING}/runs/{ui_server.runs[SEARCHING]}")
    counter = page.locator("#trials-done")
    first = int(counter.inner_text())
    _shot(page, shots, "5-searching-run")
    page.wait_for_function(f"Number(document.getElementById('trials-done').textContent) > {first}",
                           timeout=60_000)
    assert int(counter.inner_text()) > first
    searches = dict(_cells(page.main_frame, "#progress tbody tr", (0, 1)))
    # a search still going shows done of planned (the baseline plans its space's two points); one
    # that ended says so
    shown = r"\d+ of 5000|[0-2] of 2|2 \(finished\)"
    assert all(re.fullmatch(shown, text) for text in searches.values()), searches
    assert any(re.fullmatch(r"[1-9]\d* of 5000", text) for text in searches.values()), searches
    _shot(page, shots, "6-searching-run-later")
