"""The dashboard end to end in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium).

Starts `streamlit run dashboard/app.py` on a free port against the small real store, visits every
page, sets filters, opens a detail, compares two models, downloads the errors CSV (checked equal to
`python -m analysis export` for the same filter), reopens a copied URL, and writes a screenshot of
every page to docs/screenshots/<page>.png.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pandas as pd
import pytest

from analysis.store.filters import ErrorFilter

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# `make screenshots` (IMAGENET_ERRORS_SCREENSHOTS=1) refreshes the committed docs/screenshots; a plain test
# run takes the same screenshots into a temporary folder so the work tree stays clean.
SHOTS = (ROOT / "docs" / "screenshots" if os.environ.get("IMAGENET_ERRORS_SCREENSHOTS") == "1"
         else Path(tempfile.gettempdir()) / "imagenet-errors-screenshots")
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                                      "(apt-get install chromium; never `playwright install`)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (requirements-test.txt) is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli_store(folder: Path) -> Path:
    path = folder / "small.duckdb"
    for command in [["build", "--db", str(path)]] + [
            ["predict", "--model", m, "--dataset", "samples", "--limit", "50", "--device", "cpu", "--db", str(path)]
            for m in ("efficientnet-lite0", "efficientnet-lite1")]:
        subprocess.run([sys.executable, "-m", "analysis", *command], check=True, cwd=ROOT, capture_output=True)
    return path


@pytest.fixture(scope="module")
def store_path(request, tmp_path_factory) -> Path:
    try:
        return Path(request.getfixturevalue("small_store"))
    except pytest.FixtureLookupError:
        return _cli_store(tmp_path_factory.mktemp("browser_store"))


@pytest.fixture(scope="module")
def server(store_path, tmp_path_factory):
    """`streamlit run dashboard/app.py` on a free port; yields its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "IMAGENET_ERRORS_DB": str(store_path), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start; log:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


def _settle(page, text: str | None = None) -> None:
    """Wait until the app has rendered `text` and finished running its script."""
    if text:
        page.get_by_text(text, exact=False).first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && document.querySelectorAll('[data-stale=\"true\"]').length === 0", timeout=TIMEOUT_MS)
    page.wait_for_timeout(400)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _nav(page, title: str, text: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    _settle(page, text)


def _match_text(page) -> str:
    return page.get_by_text("errors match").first.inner_text()


def _export_cli(store_path: Path, flt: ErrorFilter, out: Path) -> bytes:
    args = ["export", str(out), "--db", str(store_path)]
    for model in flt.models:
        args += ["--model", model]
    if flt.dataset:
        args += ["--dataset", flt.dataset]
    for category in flt.categories:
        args += ["--category", category]
    for superclass in flt.superclasses:
        args += ["--superclass", superclass]
    for family in flt.families:
        args += ["--family", family]
    for group in flt.groups:
        args += ["--group", group]
    if flt.class_search:
        args += ["--class-search", flt.class_search]
    args += ["--min-models", str(flt.min_models)]
    subprocess.run([sys.executable, "-m", "analysis", *args], check=True, cwd=ROOT, capture_output=True)
    return out.read_bytes()


def test_every_page_filters_detail_compare_csv_and_url(server, browser, store_path, tmp_path):
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server}/")
    _settle(page, "Most frequent confusions")
    page.get_by_text("MLA + explainable").first.wait_for()  # the metrics row is drawn (the app may still rerun once)
    _shot(page, "overview")

    # Browse: set the model filter in the sidebar, open a detail, download the CSV
    _nav(page, "Browse errors", "errors match")
    before = _match_text(page)
    models = page.locator('[data-testid="stSidebar"]').get_by_role("combobox", name="Models", exact=True)
    models.click()
    page.keyboard.type("efficientnet-lite0")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    _settle(page, "errors match")
    page.wait_for_function("() => new URLSearchParams(location.search).get('models') === 'efficientnet-lite0'")
    after = _match_text(page)
    assert after != before or "efficientnet-lite1" not in page.content()
    page.get_by_role("button", name="Details").first.click()
    _settle(page, "WordNet path of the target")
    heading = page.locator('[data-testid="stHeading"]').filter(has_text="→").first.inner_text()
    _shot(page, "browse")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="rows (CSV)").click()
    downloaded = Path(download_info.value.path()).read_bytes()
    params = dict(parse_qsl(urlparse(page.url).query))
    flt = ErrorFilter.from_query_params(params)
    assert flt.models == ("efficientnet-lite0",) and flt.dataset == "samples"
    assert downloaded == _export_cli(store_path, flt, tmp_path / "cli.csv")
    rows = len(pd.read_csv(io.BytesIO(downloaded)))
    assert rows == int(after.split()[0].replace(",", "")), (rows, after)

    # a copied URL reopens the same view in a fresh session
    copied = page.url
    fresh = context.new_page()
    fresh.goto(copied)
    _settle(fresh, "WordNet path of the target")
    assert _match_text(fresh) == after
    assert fresh.locator('[data-testid="stHeading"]').filter(has_text="→").first.inner_text() == heading
    fresh.close()

    # Compare: two models, a cell of the transition matrix, the differing images
    _nav(page, "Compare models", "Category transition matrix")
    cell = page.get_by_label("Show the images of a cell")
    cell.click()
    page.get_by_role("option").first.click()
    _settle(page, "first 500 shown")
    page.get_by_text("Only A wrong").first.wait_for()
    _shot(page, "compare")

    _nav(page, "Experts", "Cohen's kappa")
    _settle(page, "Disagreements")
    _shot(page, "experts")

    _nav(page, "Model zoo", "Hierarchy")
    _shot(page, "zoo")

    _nav(page, "Run a model", "Image set")
    _shot(page, "run")
    context.close()
