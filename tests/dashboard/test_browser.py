"""The dashboard end to end in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium).

Starts `streamlit run dashboard/app.py` on a free port against a copy of the small real store with 2,000 imported
ImageNet validation predictions (`val-model`, for the ImageNet-X factors), and, sharing that server:
visits every page, sets filters, opens a detail, compares two models, downloads the errors CSV (checked equal to
`python -m analysis export` for the same filter) and reopens a copied URL; opens a Compare cell's gallery, its
detail dialog and the next error; clicks a treemap node and checks Browse's filter and count; saves a review in the
detail dialog and finds it on Experts (reviewer mode) and in the reviews CSV (equal to `reviews export`); checks that
a filter set on Browse changes Overview's and Compare's numbers to the library's for that filter; filters by an
ImageNet-X factor. Every page (and the dialog) is screenshot to docs/screenshots/<name>.png.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import numpy as np
import pandas as pd
import pytest

from analysis.knowledge import classes
from analysis.store import database, export, views
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


VAL_MODEL = "val-model"
VAL_IMAGES = 2000  # imported imagenet-val predictions (70% right, the rest random classes)
SAMPLES = "samples"
LITE0, LITE1 = "efficientnet-lite0", "efficientnet-lite1"


def _import_val_predictions(path: Path, folder: Path) -> None:
    """`python -m analysis import-predictions` of a CSV of validation predictions (ImageNet-X annotates them)."""
    rng = np.random.default_rng(11)
    targets = classes.val_targets()[:VAL_IMAGES]
    prediction = np.where(rng.random(VAL_IMAGES) < 0.7, targets, rng.integers(0, 1000, VAL_IMAGES))
    csv = folder / "val_predictions.csv"
    pd.DataFrame({"file_name": [classes.val_file_name(i) for i in range(VAL_IMAGES)], "prediction": prediction}
                 ).to_csv(csv, index=False)
    subprocess.run([sys.executable, "-m", "analysis", "import-predictions", str(csv), "--format", "csv", "--partial",
                    "--dataset", "imagenet-val", "--model-id", VAL_MODEL, "--db", str(path)],
                   check=True, cwd=ROOT, capture_output=True)


@pytest.fixture(scope="module")
def store_path(request, tmp_path_factory) -> Path:
    """A writable copy of the small store (reviews are saved into it) plus imported imagenet-val predictions."""
    folder = tmp_path_factory.mktemp("browser_store")
    try:
        path = folder / "browser.duckdb"
        shutil.copy(Path(request.getfixturevalue("small_store")), path)
    except pytest.FixtureLookupError:
        path = _cli_store(folder)
    _import_val_predictions(path, folder)
    return path


def _library(store_path: Path, func):
    """`func(con)` on a short read-only connection (the server's review form needs the file free to write)."""
    con = database.connect(store_path, read_only=True)
    try:
        return func(con)
    finally:
        con.close()


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
    page.wait_for_timeout(300)


def _shot(page, name: str, scroll_to=None) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    if scroll_to is not None:
        scroll_to.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _nav(page, title: str, text: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    _settle(page, text)


def _match_text(page) -> str:
    return page.get_by_text("errors match").first.inner_text()


def _matches(page) -> int:
    """Browse's "N errors match" number."""
    return int(_match_text(page).split()[0].replace(",", ""))


def _params(page) -> dict[str, str]:
    return dict(parse_qsl(urlparse(page.url).query))


def _pick(page, label: str, option: str, *, multi: bool = True, within=None) -> None:
    """Choose `option` in the sidebar multiselect (or, `multi=False`, the selectbox in `within`, default the page)
    labelled `label`."""
    where = page.locator('[data-testid="stSidebar"]') if multi else (within or page)
    where.get_by_role("combobox", name=label, exact=True).click()
    page.keyboard.type(option)  # the list is virtualised: narrow it so the option is drawn
    page.get_by_role("option", name=option, exact=True).click()
    if multi:
        page.keyboard.press("Escape")  # a multiselect hands its value over as it closes (a selectbox would reset)


def _wait_param(page, name: str, value: str) -> None:
    page.wait_for_function(f"() => new URLSearchParams(location.search).get({name!r}) === {value!r}",
                           timeout=TIMEOUT_MS)
    _settle(page)


def _wait_has_params(page, *names: str) -> None:
    """Wait until the page has written every one of `names` into the URL (it does so at the end of its run)."""
    check = " && ".join(f"params.has({n!r})" for n in names)
    page.wait_for_function(f"() => {{ const params = new URLSearchParams(location.search); return {check}; }}",
                           timeout=TIMEOUT_MS)


def _new_page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return context, page


def _dialog(page):
    return page.locator('[data-testid="stDialog"]')


def _dialog_heading(page) -> str:
    return _dialog(page).locator('[data-testid="stHeading"]').filter(has_text="→").first.inner_text()


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
    context, page = _new_page(browser)
    page.goto(f"{server}/?dataset={SAMPLES}")
    _settle(page, "Most frequent confusions")
    page.get_by_text("MLA + explainable").first.wait_for()  # the metrics row is drawn (the app may still rerun once)
    _shot(page, "overview")

    # Browse: set the model filter in the sidebar, open a detail, download the CSV
    _nav(page, "Browse errors", "errors match")
    before = _match_text(page)
    models = page.locator('[data-testid="stSidebar"]').get_by_role("combobox", name="Models", exact=True)
    models.click()
    page.keyboard.type(LITE0)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    _settle(page, "errors match")
    _wait_param(page, "models", LITE0)
    after = _match_text(page)
    assert after != before or LITE1 not in page.content()
    _shot(page, "browse")
    page.get_by_role("button", name="Details").first.click()
    _settle(page, "WordNet path of the target")
    heading = _dialog_heading(page)
    _shot(page, "detail")
    page.keyboard.press("Escape")  # close the dialog
    _dialog(page).wait_for(state="detached")
    _settle(page)

    page.get_by_role("button", name="Prepare the CSV").click()  # written by a child process on request
    _settle(page)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="rows (CSV)").click()
    downloaded = Path(download_info.value.path()).read_bytes()
    flt = ErrorFilter.from_query_params(_params(page))
    assert flt.models == (LITE0,) and flt.dataset == SAMPLES
    assert downloaded == _export_cli(store_path, flt, tmp_path / "cli.csv")
    rows = len(pd.read_csv(io.BytesIO(downloaded)))
    assert rows == int(after.split()[0].replace(",", "")), (rows, after)

    # a copied URL (with the open detail) reopens the same view in a fresh session
    page.get_by_role("button", name="Details").first.click()
    _settle(page, "WordNet path of the target")
    assert _params(page).get("detail", "").startswith(f"{LITE0}|")
    copied = page.url
    fresh = context.new_page()
    fresh.goto(copied)
    _settle(fresh, "WordNet path of the target")
    assert _match_text(fresh) == after
    assert _dialog_heading(fresh) == heading
    fresh.close()
    page.keyboard.press("Escape")
    _dialog(page).wait_for(state="detached")

    _nav(page, "Experts", "Cohen's kappa")
    _settle(page, "Disagreements")
    _shot(page, "experts")

    _nav(page, "Model zoo", "Hierarchy")
    _shot(page, "zoo")

    _nav(page, "Run a model", "Image set")
    _shot(page, "run")
    context.close()


def _cell_label(matrix: pd.DataFrame, row) -> str:
    from analysis.taxonomy import categories
    return f"{categories.NAMES[row.category_a]} → {categories.NAMES[row.category_b]} ({int(row.images)})"


def test_compare_cell_gallery_opens_the_detail_and_next_moves_within_it(server, browser, store_path):
    matrix = _library(store_path, lambda con: views.transition_matrix(con, LITE0, LITE1, dataset=SAMPLES))
    # a cell where the models disagree with at least two images (so "Next" has somewhere to go)
    cells = matrix[(matrix["category_a"] != matrix["category_b"]) & (matrix["images"] >= 2)]
    cell = (cells if len(cells) else matrix[matrix["images"] >= 2]).sort_values("images").iloc[-1]
    context, page = _new_page(browser)
    page.goto(f"{server}/compare?dataset={SAMPLES}&a={LITE0}&b={LITE1}")
    _settle(page, "Category transition matrix")
    _pick(page, "Show the images of a cell (A → B), or click a cell", _cell_label(matrix, cell), multi=False)
    _settle(page, "Images: ")
    assert _params(page)["cell"] == f"{cell.category_a}|{cell.category_b}"
    shown = min(int(cell.images), 12)
    cards = [page.locator(f".st-key-cmp_cell_list_card_{n}") for n in range(shown)]
    assert page.locator(f".st-key-cmp_cell_list_card_{shown}").count() == 0
    # every card carries A's and B's verdicts
    first_card = cards[0].inner_text()
    assert "A " in first_card and "B " in first_card and LITE0 in first_card and LITE1 in first_card
    _shot(page, "compare", scroll_to=page.get_by_text("Images: ").first)

    page.locator(".st-key-cmp_cell_list_open_0").get_by_role("button", name="Details").click()
    _settle(page, "Error 1 of ")
    of = int(re.search(r"Error 1 of (\d+) in this result", _dialog(page).inner_text()).group(1))
    assert of in {int(cell.images), shown}  # next / previous move within the cell's images (or the page's cards)
    first = _dialog_heading(page)
    assert first.split(":")[0] in cards[0].inner_text()  # the dialog shows the first card's image
    _shot(page, "compare_detail")
    _dialog(page).get_by_role("button", name="Next").click()
    _settle(page, f"Error 2 of {of} in this result")
    second = _dialog_heading(page)
    assert second != first and second.split(":")[0] in cards[1].inner_text()
    _dialog(page).get_by_role("button", name="Previous").click()
    _settle(page, f"Error 1 of {of} in this result")
    assert _dialog_heading(page) == first
    context.close()


def test_a_treemap_click_opens_browse_with_that_node(server, browser, store_path):
    everything = ErrorFilter(dataset=SAMPLES, models=(LITE0,))
    tree = _library(store_path, lambda con: views.error_tree(con, everything))
    total = int(tree["errors"].sum())
    # the WordNet concept with the most errors short of all of them (one superclass: its box and its only child's
    # box open the same filter)
    concepts = tree.groupby(["group", "concept"]).agg(errors=("errors", "sum"),
                                                      superclasses=("superclass_id", lambda s: tuple(sorted(set(s)))))
    concepts = concepts[(concepts["errors"] < total) & (concepts["superclasses"].map(len) == 1)]
    (group, concept), node = next(iter(concepts.sort_values("errors", ascending=False).iterrows()))
    context, page = _new_page(browser)
    page.goto(f"{server}/?dataset={SAMPLES}&model={LITE0}")
    _settle(page, "Errors as a tree")
    chart = page.locator(".st-key-ov_tree_chart")
    chart.locator("g.slice").first.wait_for()
    _shot(page, "treemap", scroll_to=chart)
    # click the node's label (its box's top strip, above its children's boxes)
    index = chart.locator("g.slice").evaluate_all(f"els => els.findIndex(e => e.textContent.trim() === {concept!r})")
    assert index >= 0, concept
    box = chart.locator("g.slice").nth(index).locator("text").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(re.compile(r"/browse\?"), timeout=TIMEOUT_MS)
    _settle(page, "errors match")
    flt = ErrorFilter.from_query_params(_params(page))
    assert flt == everything.with_(groups=(group,), superclasses=node["superclasses"]), flt
    expected = _library(store_path, lambda con: export.count_errors(con, flt))
    assert _matches(page) == expected == node["errors"] and 0 < expected < total
    context.close()


def test_a_review_is_saved_seen_on_experts_and_exported(server, browser, store_path, tmp_path):
    reviewer, note = "Ada Browser", "the label shows the other object; saved by the browser test"
    context, page = _new_page(browser)
    page.goto(f"{server}/browse?dataset={SAMPLES}&models={LITE0}")
    _settle(page, "errors match")
    page.get_by_role("button", name="Details").first.click()
    _settle(page, "Save review")
    dialog = _dialog(page)
    file_name = _dialog_heading(page).split(":")[0]
    model_id, _, image_id = _params(page)["detail"].rpartition("|")
    dialog.get_by_label("Your name", exact=True).fill(reviewer)
    _pick(page, "Your verdict", "Label wrong", multi=False, within=dialog)
    dialog.get_by_label("Note", exact=True).fill(note)
    dialog.get_by_role("button", name="Save review").click()
    _settle(page, f"Saved {reviewer}'s verdict: Label wrong")
    _shot(page, "review")
    context.close()

    # Browse's review filter finds it
    context, page = _new_page(browser)
    page.goto(f"{server}/browse?dataset={SAMPLES}&models={LITE0}&review=reviewed")
    _settle(page, "errors match")
    assert _matches(page) == 1 and file_name in page.locator(".st-key-br_card_0").inner_text()

    # the Experts page in reviewer mode compares it with the automatic category
    page.goto(f"{server}/experts?dataset={SAMPLES}&mode=reviewers")
    _settle(page, "Reviewed errors")
    assert _params(page)["reviewer"] == reviewer  # the Reviewer select shows (and wrote into the URL) our reviewer
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Reviewed errors").inner_text()
    assert metric.split()[-1] == "1", metric
    assert page.locator('[data-testid="stMetric"]').filter(has_text="Agreement").inner_text().split()[-1] == "0.0%"
    _shot(page, "experts_reviewers")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download all reviews (CSV)").click()
    downloaded = Path(download_info.value.path()).read_bytes()
    context.close()

    frame = pd.read_csv(io.BytesIO(downloaded))
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["reviewer"], row["model_id"], row["dataset"], int(row["image_id"]), row["file_name"], row["verdict"],
            row["note"]) == (reviewer, model_id, SAMPLES, int(image_id), file_name, "label_wrong", note)
    assert row["automatic"] != "label_wrong"
    out = tmp_path / "reviews.csv"
    subprocess.run([sys.executable, "-m", "analysis", "reviews", "export", str(out), "--db", str(store_path)],
                   check=True, cwd=ROOT, capture_output=True)
    assert out.read_bytes() == downloaded


def test_a_filter_set_on_browse_applies_on_overview_and_compare(server, browser, store_path):
    context, page = _new_page(browser)
    page.goto(f"{server}/browse?dataset={SAMPLES}")
    _settle(page, "errors match")
    _pick(page, "Category", "Fine-grained")
    _wait_param(page, "categories", "fine_grained")
    flt = ErrorFilter(dataset=SAMPLES, categories=("fine_grained",))
    assert _matches(page) == _library(store_path, lambda con: export.count_errors(con, flt))

    _nav(page, "Overview", "Errors as a tree")
    _wait_has_params(page, "model")
    model = _params(page)["model"]
    assert _params(page)["categories"] == "fine_grained"
    caption = page.get_by_text("errors by the target's group").first.inner_text()
    shown = int(caption.split()[0].replace(",", ""))

    def tree_total(f):
        return lambda con: int(views.error_tree(con, f)["errors"].sum())

    assert shown == _library(store_path, tree_total(flt.with_(models=(model,))))
    assert shown < _library(store_path, tree_total(ErrorFilter(dataset=SAMPLES, models=(model,))))

    _nav(page, "Compare models", "Where they differ")
    _wait_has_params(page, "a", "b")
    a, b = _params(page)["a"], _params(page)["b"]
    tabs = [t.inner_text() for t in page.get_by_role("tab").all()]
    shown = [int(re.search(r"\((\d+)\)", t).group(1)) for t in tabs[:3]]
    counts = _library(store_path, lambda con: views.compare_counts(con, a, b, dataset=SAMPLES, flt=flt))
    unfiltered = _library(store_path, lambda con: views.compare_counts(con, a, b, dataset=SAMPLES))
    kinds = ("only_a", "only_b", "both_different")
    assert shown == [int(counts[k]) for k in kinds], (tabs, counts)
    assert shown != [int(unfiltered[k]) for k in kinds]
    context.close()


def test_an_imagenet_x_factor_filters_the_errors(server, browser, store_path):
    context, page = _new_page(browser)
    page.goto(f"{server}/browse?dataset=imagenet-val&models={VAL_MODEL}")
    _settle(page, "errors match")
    before = _matches(page)
    _pick(page, "ImageNet-X factor", "Pose")
    _wait_param(page, "factors", "pose")
    flt = ErrorFilter.from_query_params(_params(page))
    assert flt == ErrorFilter(dataset="imagenet-val", models=(VAL_MODEL,), factors=("pose",))
    expected = _library(store_path, lambda con: export.count_errors(con, flt))
    assert _matches(page) == expected and 0 < expected < before
    page.get_by_role("button", name="Details").first.click()
    _settle(page, "Annotator:")
    dialog = _dialog(page)
    assert "Pose" in dialog.inner_text() and "Annotator:" in dialog.inner_text()
    page.keyboard.press("Escape")
    _dialog(page).wait_for(state="detached")
    _nav(page, "ImageNet-X factors", "× correct")
    page.locator(".st-key-fx_chart").wait_for()
    _shot(page, "factors")
    context.close()
