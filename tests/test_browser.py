"""The dashboard in a real browser: ``streamlit run dashboards/app.py`` as a server, driven
by headless Chromium through Playwright, page by page, with a screenshot of each.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install chromium``); Playwright
never downloads a browser of its own here. Screenshots go to pytest's tmp dir, and also to
runs/screenshots/ when ``VENUETWIN_SCREENSHOTS`` is set (to any value)::

    VENUETWIN_SCREENSHOTS=1 .venv/bin/pytest -q tests/test_browser.py
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
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS_ENV = "VENUETWIN_SCREENSHOTS"
APP = '[data-testid="stApp"]'  # its data-test-script-state is "running" while a script runs
RUNNING = '[data-testid="stStatusWidget"]'  # the "Running..." indicator
PLOTS = ".js-plotly-plot"
WAIT_MS = 120_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served on a free local port; yields its URL."""
    work = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    log = (work / "streamlit.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboards/app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "localhost",
        ],
        cwd=ROOT,
        env={**os.environ, "VENUETWIN_DASHBOARD_DIR": str(work)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"the dashboard did not start:\n{(work / 'streamlit.log').read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def settle(page: Page, timeout_ms: int = WAIT_MS) -> None:
    """Wait until the page's script has finished running."""
    with contextlib.suppress(PlaywrightError):  # it may have started and ended already
        page.wait_for_selector(f"{APP}[data-test-script-state=running]", timeout=1000)
    page.wait_for_selector(f"{APP}[data-test-script-state=notRunning]", timeout=timeout_ms)
    page.wait_for_selector(RUNNING, state="detached", timeout=timeout_ms)


def wait_for_plots(page: Page, count: int) -> None:
    """Until at least ``count`` plotly charts have drawn their axes."""
    page.wait_for_function(
        f"document.querySelectorAll('{PLOTS} .main-svg').length >= {count}", timeout=WAIT_MS
    )


def no_exceptions(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.inner_text("body")


def explained(page: Page) -> int:
    """The avatar whose decision the Attention page shows."""
    text = page.get_by_text(re.compile(r"^Avatar \d+ at ")).first.inner_text()
    return int(text.split()[1])


def go_to(page: Page, title: str) -> None:
    """Open a page from the sidebar, as a user does (the session, and its run, stay)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()
    page.wait_for_url(f"**/{title.lower()}", timeout=WAIT_MS)
    settle(page)


def fill_number(page: Page, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Enter")
    settle(page)


def test_every_page_renders_in_a_real_browser(server: str, tmp_path: Path) -> None:
    shots: list[Path] = []

    def shoot(page: Page, name: str) -> None:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        shots.append(path)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 3200})
            try:
                page.goto(server)
                page.wait_for_selector('h1:has-text("Simulate")', timeout=WAIT_MS)
                settle(page)
                # A tool, not a Streamlit project page: no "Deploy" button.
                assert page.get_by_role("button", name="Deploy").count() == 0

                # Simulate: a small GPT run of the concert hall.
                page.locator('[data-testid="stSelectbox"]', has_text="Venue").click()
                page.get_by_role("option", name="concert_hall", exact=True).click()
                settle(page)
                fill_number(page, "Avatars", "200")
                fill_number(page, "Hours", "0.5")
                page.get_by_role("button", name="Run", exact=True).click()
                settle(page)
                wait_for_plots(page, 3)  # map, venue over time, per zone
                no_exceptions(page)
                assert page.locator('[data-testid="stMetric"]').count() == 9
                assert page.locator(f"{PLOTS} .scatterlayer .point").count() > 0
                assert page.get_by_text("Run: concert_hall, 200 gpt avatars").is_visible()
                shoot(page, "simulate")
                # The 3D view's Play steps through the moments, this view alone re-drawn.
                moment = page.locator('[data-testid="stSliderThumbValue"]').first
                before = moment.inner_text()
                page.locator("[data-testid=stCheckbox] label", has_text="Play").first.click()
                page.wait_for_function(
                    "b => document.querySelector('[data-testid=stSliderThumbValue]')"
                    ".innerText !== b",
                    arg=before,
                    timeout=20_000,
                )
                page.locator("[data-testid=stCheckbox] label", has_text="Play").first.click()
                settle(page)
                no_exceptions(page)

                # Attention: the first GPT avatar's latest decision.
                go_to(page, "Attention")
                page.wait_for_selector('h1:has-text("Attention")', timeout=WAIT_MS)
                wait_for_plots(page, 4)  # avatars, candidates, one head, all heads
                no_exceptions(page)
                assert page.locator(f"{PLOTS} .heatmaplayer").count() >= 2
                assert page.get_by_text("Next zone: chose").is_visible()
                first = explained(page)
                points = page.locator(PLOTS).first.locator(".scatterlayer .point")
                points.nth(points.count() // 2).click(force=True)  # pick an avatar on the chart
                settle(page)
                page.wait_for_function(
                    f"!document.body.innerText.includes('Avatar {first} at')", timeout=WAIT_MS
                )
                assert explained(page) != first
                wait_for_plots(page, 4)
                no_exceptions(page)
                shoot(page, "attention")

                # Optimise: a two-trial study of the concert hall, then its figures.
                go_to(page, "Optimise")
                page.wait_for_selector('h1:has-text("Optimise")', timeout=WAIT_MS)
                page.locator('[data-testid="stSelectbox"]', has_text="Venue").click()
                page.get_by_role("option", name="concert_hall", exact=True).click()
                settle(page)
                fill_number(page, "Avatars", "150")
                fill_number(page, "Hours", "0.5")
                fill_number(page, "Trials", "2")
                fill_number(page, "Seeds per trial", "1")
                page.get_by_role("button", name="Run or resume the study").click()
                settle(page)
                page.get_by_text("2 trials in the study").wait_for(timeout=WAIT_MS)
                wait_for_plots(page, 2)  # the Pareto front and the first history tab
                no_exceptions(page)
                assert page.locator(f"{PLOTS} .scatterlayer .point").count() >= 2
                assert page.get_by_text("Trials completed").is_visible()
                shoot(page, "optimise")

                # Train: five steps on the run's own visit log, with the loss curve.
                go_to(page, "Train")
                page.wait_for_selector('h1:has-text("Train")', timeout=WAIT_MS)
                page.get_by_text("The last simulation's visit log").click()
                settle(page)
                wait_for_plots(page, 1)  # visits per zone
                fill_number(page, "Steps", "5")
                fill_number(page, "Evaluate every (steps)", "2")
                page.get_by_role("button", name="Train", exact=True).click()
                settle(page)
                page.get_by_text("Last training", exact=True).wait_for(timeout=WAIT_MS)
                wait_for_plots(page, 2)  # visits per zone, loss curve
                no_exceptions(page)
                assert page.get_by_text("held-out next-visit targets").is_visible()
                shoot(page, "train")
            except Exception:
                shoot(page, "failure")  # what the page showed when it went wrong
                raise
        finally:
            browser.close()
            if os.environ.get(SCREENSHOTS_ENV):
                keep = ROOT / "runs" / "screenshots"
                keep.mkdir(parents=True, exist_ok=True)
                for path in shots:
                    shutil.copy(path, keep / path.name)
