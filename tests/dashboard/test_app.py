"""Every dashboard page through Streamlit's AppTest on a small real store (EfficientNet-Lite0/1 on sample images)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import streamlit
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import build_mock_config_get_option

from analysis import paths
from analysis.store import database, export, publish, views
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import agreement, metrics
from dashboard import access
from tests.bad_inputs import BadInput, cases
from tests.dashboard.apptest import APP, DATASET
from tests.dashboard.apptest import open_app as _app

ROOT = Path(__file__).resolve().parents[2]


def _metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r} among {[m.label for m in at.metric]}"
    return values[0]


def _pct(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.2f}%"


def _expected_metrics(con, model_id: str):
    """The model's metrics computed by analysis.taxonomy.metrics from the store's rows (not through views)."""
    rows = con.execute("""
        SELECT p.image_id, p.prediction, c.category FROM predictions p
        JOIN pair_categories c ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
        WHERE p.model_id = ? AND p.dataset = ? ORDER BY p.image_id
    """, [model_id, DATASET]).df()
    table = metrics.model_metrics(rows["image_id"].to_numpy(), rows["prediction"].to_numpy(),
                                  rows["category"].tolist(), publish.labelset_for(con, DATASET))
    return table.set_index("grp")


def test_overview_metrics_equal_the_metrics_module(db, con, model_ids):
    at = _app()
    assert at.selectbox(key="ov_model").value == model_ids[0]
    expected = _expected_metrics(con, model_ids[0]).loc["all"]
    assert _metric(at, "Top-1") == _pct(expected["top1"])
    assert _metric(at, "ReaL accuracy") == _pct(expected["real_accuracy"])  # n/a: samples have no ReaL labels
    assert _metric(at, "MLA") == _pct(expected["mla"])
    assert _metric(at, "MLA + minor") == _pct(expected["mla_minor"])
    assert _metric(at, "MLA + explainable") == _pct(expected["mla_explainable"])
    # the per-group table: one row per group present plus 'all'; errors match the metrics module
    table = at.dataframe[0].value.set_index("grp")
    assert table.loc["all", "errors"] == expected["errors"]
    # most frequent confusions: every distinct (target, prediction, category) error, at most 25 rows
    confusions = at.dataframe[1].value
    errors = con.execute("""
        SELECT count(*) FROM (SELECT DISTINCT i.target, p.prediction, c.category FROM predictions p
        JOIN images i USING (dataset, image_id)
        JOIN pair_categories c ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
        WHERE p.model_id = ? AND p.dataset = ? AND c.category NOT IN ('correct', 'not_evaluated'))
    """, [model_ids[0], DATASET]).fetchone()[0]
    assert len(confusions) == min(25, errors)
    assert at.get("plotly_chart"), "the composition chart is drawn"
    footer = [c.value for c in at.caption if c.value.startswith("Categories classified with the superclasses")]
    assert footer and "data/superclasses.json (project format, sha256 " in footer[0] and "OOV check: off" in footer[0]


def test_overview_follows_the_model_selector(db, con, model_ids):
    at = _app()
    at.selectbox(key="ov_model").select(model_ids[1]).run()
    assert _metric(at, "Top-1") == _pct(_expected_metrics(con, model_ids[1]).loc["all", "top1"])
    assert at.query_params["model"] == model_ids[1]


def test_browse_grid_detail_and_filters(db, con, model_ids):
    at = _app("browse")
    flt = ErrorFilter(dataset=DATASET)
    total = export.count_errors(con, flt)
    assert total > 0
    assert any(f"**{total:,}** errors match" in m.value for m in at.markdown)
    details = [b for b in at.button if b.key and b.key.startswith("br_open_")]
    assert len(details) == min(12, total)
    first = export.errors_frame(con, flt, limit=1).iloc[0]
    details[0].click().run()
    assert not at.exception
    heading = [s.value for s in at.subheader]
    assert f"{first['file_name']}: {first['target_name']} → {first['prediction_name']}" in heading
    shown = " ".join(m.value for m in at.markdown)
    assert "WordNet path of the target" in shown and "Same mistake" in shown
    assert at.query_params["detail"] == f"{first['model_id']}|{first['image_id']}"

    # narrow by model and category: the count is the export's count for the same filter
    at.multiselect(key="flt_models").set_value([model_ids[0]]).run()
    at.multiselect(key="flt_categories").set_value(["model_failure"]).run()
    narrowed = export.count_errors(con, ErrorFilter(dataset=DATASET, models=(model_ids[0],),
                                                    categories=("model_failure",)))
    if narrowed:
        assert any(f"**{narrowed:,}** errors match" in m.value for m in at.markdown)
    else:
        assert any("No errors match" in i.value for i in at.info)
    assert at.query_params["models"] == model_ids[0]
    assert at.query_params["categories"] == "model_failure"


@pytest.mark.parametrize("page, empty", [("browse", "No errors match"), ("experts", "No reviewed mistake matches")])
def test_a_page_that_stops_early_still_writes_the_filter_into_the_url(db, page, empty):
    """A filter typed in the sidebar that matches nothing ends the page with st.stop(); the link still carries it."""
    at = _app(page)
    at.text_input(key="flt_class_search").input("no such class zzz").run()
    assert any(empty in i.value for i in at.info)
    assert at.query_params["class_search"] == "no such class zzz"


def test_browse_empty_result_says_so(db):
    at = _app("browse", query={"class_search": "no such class zzz"})
    assert at.text_input(key="flt_class_search").value == "no such class zzz"
    assert any("No errors match" in i.value for i in at.info)


def test_url_reopens_the_same_view(db, model_ids):
    at = _app("browse")
    at.multiselect(key="flt_models").set_value([model_ids[1]]).run()
    at.number_input(key="flt_min_models").set_value(2).run()
    params = dict(at.query_params)
    again = _app("browse", query=params)
    assert again.multiselect(key="flt_models").value == [model_ids[1]]
    assert again.number_input(key="flt_min_models").value == 2
    assert [m.value for m in again.markdown if "errors match" in m.value] == \
        [m.value for m in at.markdown if "errors match" in m.value]


def test_compare_matrix_and_listings(db, con, model_ids):
    at = _app("compare")
    a, b = at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value
    assert {a, b} == set(model_ids[:2])
    matrix = views.transition_matrix(con, a, b, dataset=DATASET)
    both = con.execute("""SELECT count(*) FROM predictions p JOIN predictions q USING (dataset, image_id)
                          JOIN images i USING (dataset, image_id)
                          WHERE p.model_id = ? AND q.model_id = ? AND p.dataset = ? AND i.evaluated""",
                       [a, b, DATASET]).fetchone()[0]
    assert matrix["images"].sum() == both
    counts = views.compare_counts(con, a, b, dataset=DATASET)
    assert [t.label for t in at.tabs] == [f"Only A wrong ({counts['only_a']})", f"Only B wrong ({counts['only_b']})",
                                          f"Both wrong, differently ({counts['both_different']})"]
    # choose the largest off-diagonal cell: its listing has exactly that many images
    off = matrix[matrix["category_a"] != matrix["category_b"]].sort_values("images", ascending=False)
    cell = off.iloc[0] if len(off) else matrix.iloc[0]
    at.selectbox(key="cmp_cell").select(f"{cell['category_a']}|{cell['category_b']}").run()
    assert not at.exception
    assert not [d for d in at.dataframe if "category_a" in d.value.columns]  # tables are built only when asked for
    at.toggle(key="cmp_cell_list_as_table").set_value(True).run()
    listed = [d.value for d in at.dataframe if "category_a" in d.value.columns]
    assert len(listed[0]) == min(500, cell["images"])
    assert at.query_params["cell"] == f"{cell['category_a']}|{cell['category_b']}"


def test_experts_page_matches_agreement_module(db):
    at = _app("experts")
    comparison = agreement.compare("vit3b")
    assert at.selectbox(key="ex_expert").value == "vit3b"
    assert at.selectbox(key="ex_labels").value == "expert_verdict"  # opens on the experts' own terms
    assert any("every entry of the expert files is a mistake" in c.value for c in at.caption)
    assert (comparison["automatic"] != "not_evaluated").all()  # expert_verdict evaluates every reviewed mistake
    assert _metric(at, "Reviewed mistakes") == str(len(comparison))
    assert _metric(at, "Agreement") == f"{100 * comparison['agree'].mean():.1f}%"
    assert _metric(at, "Cohen's kappa") == f"{agreement.cohen_kappa(comparison['expert'], comparison['automatic']):.3f}"
    disagreements = [d.value for d in at.dataframe if "automatic" in d.value.columns]
    assert len(disagreements[0]) == int((~comparison["agree"]).sum())
    at.selectbox(key="ex_labels").select("real").run()  # the store's label set: some mistakes are not evaluated
    real = agreement.compare("vit3b", labels="real")
    assert _metric(at, "Agreement") == f"{100 * real['agree'].mean():.1f}%"
    assert any("not evaluated" in c.value for c in at.caption) and (real["automatic"] == "not_evaluated").any()


def test_zoo_page_lists_what_it_draws(db, con, model_ids):
    at = _app("zoo")
    table = [d.value for d in at.dataframe if "portion" in d.value.columns][0]
    paper = con.execute("SELECT count(*) FROM paper_model_stats WHERE dataset = 'imagenet' AND grp = 'all'").fetchone()[0]
    assert paper == 962
    # like with like: on the sample images the paper's points (measured on imagenet-val) are neither drawn nor listed
    assert (table["source"] == "paper").sum() == 0
    assert sorted(table.loc[table["source"] == "stored", "model_id"]) == sorted(model_ids)
    for model_id in model_ids:  # a stored model's point is its MLA and fine-grained portion from analysis.taxonomy.metrics
        point = table[(table["source"] == "stored") & (table["model_id"] == model_id)].iloc[0]
        expected_metrics = _expected_metrics(con, model_id).loc["all"]
        assert point["x"] == pytest.approx(expected_metrics["mla"])
        assert point["portion"] == pytest.approx(expected_metrics["portion_fine_grained"], nan_ok=True)
    rolled = [d.value for d in at.dataframe if "target_superclass" in d.value.columns]
    expected = views.superclass_confusions(con, at.selectbox(key="zoo_model").value, dataset=DATASET, limit=20)
    if len(expected):
        assert len(rolled[0]) == len(expected)


NOT_ALLOWED = "not under an allowed folder"
# case id -> (image set chosen on the Run page, the Image folder typed, formatted with image_tree's paths)
RUN_FOLDERS = {
    "app-run-folder-outside": ("folder", "{outside}"),
    "app-run-folder-val-outside": ("imagenet-val", "{outside}"),
    "app-run-folder-missing": ("folder", "{tmp}/missing"),
    "app-run-folder-missing-in-root": ("folder", "{root}/missing"),
    "app-run-folder-file": ("folder", "{root}/file.txt"),
    "app-run-folder-etc": ("folder", "/etc"),
    "app-run-folder-dotdot": ("folder", "{root}/../outside"),
    "app-run-folder-relative-dotdot": ("folder", "data/../analysis"),
    "app-run-folder-symlink-out": ("folder", "{root}/out"),
    "app-run-folder-symlink-loop": ("folder", "{root}/loop"),
    "app-run-folder-nul": ("folder", "{root}/a\x00b"),
    "app-run-folder-too-long": ("folder", "{root}/" + "a" * 5000),
    "app-run-folder-home": ("folder", "~"),
    "app-run-folder-empty": ("folder", ""),
    "app-run-folder-val-empty": ("imagenet-val", ""),
}


@pytest.mark.parametrize("case", cases(
    BadInput("app-run-folder-outside", "Run page image folder", "a valid image folder outside every allowed folder",
             NOT_ALLOWED),
    BadInput("app-run-folder-val-outside", "Run page image folder",
             "ImageNet validation chosen, a folder outside every allowed folder", NOT_ALLOWED),
    BadInput("app-run-folder-missing", "Run page image folder", "does not exist (outside the allowed folders)",
             NOT_ALLOWED),
    BadInput("app-run-folder-missing-in-root", "Run page image folder", "does not exist (inside an allowed folder)",
             NOT_ALLOWED),
    BadInput("app-run-folder-file", "Run page image folder", "a file inside an allowed folder", NOT_ALLOWED),
    BadInput("app-run-folder-etc", "Run page image folder", "/etc", NOT_ALLOWED),
    BadInput("app-run-folder-dotdot", "Run page image folder", "escapes an allowed folder with `..`", NOT_ALLOWED),
    BadInput("app-run-folder-relative-dotdot", "Run page image folder",
             "relative `data/../analysis`, leaving data/ by `..`", NOT_ALLOWED),
    BadInput("app-run-folder-symlink-out", "Run page image folder",
             "a symlink in an allowed folder to an image folder outside it", NOT_ALLOWED),
    BadInput("app-run-folder-symlink-loop", "Run page image folder", "a symlink loop in an allowed folder",
             NOT_ALLOWED),
    BadInput("app-run-folder-nul", "Run page image folder", "a NUL byte in the path", NOT_ALLOWED),
    BadInput("app-run-folder-too-long", "Run page image folder", "a 5,000-character name in an allowed folder",
             NOT_ALLOWED),
    BadInput("app-run-folder-home", "Run page image folder", "`~` (the server's home folder)", NOT_ALLOWED),
    BadInput("app-run-folder-empty", "Run page image folder", "empty, with the folder image set chosen",
             "Give the “Image folder”"),
    BadInput("app-run-folder-val-empty", "Run page image folder",
             "empty, with ImageNet validation chosen and IMAGENET_DIR unset", "or give an “Image folder”"),
))
def test_run_page_reads_only_folders_under_allowed_roots(db, image_tree, case):
    """The Run page refuses the folder with one error line, runs nothing, and the store keeps its checksums."""
    dataset, text = RUN_FOLDERS[case.id]
    with database.connect(image_tree["store"], read_only=True) as connection:
        before = database.table_checksums(connection)
    at = _app("run")
    at.radio(key="run_dataset").set_value(dataset).run()
    at.text_input(key=f"run_folder_{dataset}").input(text.format(**image_tree)).run()
    at.button(key="run_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and case.message in errors[0], errors
    assert "\n" not in errors[0] and "Traceback" not in errors[0]
    assert image_tree["outside"] not in errors[0].replace(text.format(**image_tree), "")  # no symlink target shown
    assert not at.success and not at.get("progress")
    with database.connect(image_tree["store"], read_only=True) as connection:
        assert database.table_checksums(connection) == before


def test_missing_store_gives_a_message(monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(tmp_path / "none.duckdb"))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert any("No store at" in e.value for e in at.error)


def _assert_nothing_runs(at: AppTest) -> None:
    """No Run page on screen: no run or build button, no progress; the sidebar says the dashboard is read-only."""
    assert not at.exception, [e.value for e in at.exception]
    assert "Run a model" not in [t.value for t in at.title]
    assert not {"run_go", "run_build"} & {b.key for b in at.button}
    assert not at.get("progress")
    assert any("Read-only dashboard" in i.value for i in at.sidebar.info)


@pytest.mark.parametrize("switch", ["env", "flag"])
def test_read_only_hides_the_run_page_and_a_direct_link_runs_nothing(db, monkeypatch, switch):
    """IMAGENET_ERRORS_READONLY=1 or `-- --read-only`: no Run page in the navigation; its link opens the Overview."""
    with database.connect(db, read_only=True) as connection:
        before = database.table_checksums(connection)
    monkeypatch.delenv(access.READONLY_ENV, raising=False)
    at = _app("run")  # a session that knew the Run page (its link) while the dashboard was writable
    assert at.button(key="run_go")
    if switch == "env":
        monkeypatch.setenv(access.READONLY_ENV, "1")
    else:
        monkeypatch.setattr(sys, "argv", [str(APP), "--read-only"])
    at.run()  # the same link again, now that the dashboard is read-only: Streamlit opens the default page
    _assert_nothing_runs(at)
    assert at.selectbox(key="ov_model")  # the Overview, with the store's data
    assert any(c.value.endswith("Read-only dashboard.") for c in at.caption)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/run.py")
    fresh = _app()
    _assert_nothing_runs(fresh)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        fresh.switch_page("app_pages/run.py")
    with database.connect(db, read_only=True) as connection:
        assert database.table_checksums(connection) == before


def test_read_only_without_a_store_builds_none(monkeypatch, tmp_path):
    """The Run page's "Build the store now" is the other write: a read-only dashboard offers it nowhere."""
    missing = tmp_path / "none.duckdb"
    monkeypatch.setenv(paths.DB_ENV, str(missing))
    monkeypatch.delenv(access.READONLY_ENV, raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page("app_pages/run.py").run()
    assert at.button(key="run_build")
    monkeypatch.setenv(access.READONLY_ENV, "1")
    at.run()
    _assert_nothing_runs(at)
    assert any("No store at" in e.value and "Run page" not in e.value for e in at.error)
    assert not missing.exists()


def test_run_page_itself_refuses_in_read_only_mode(db, monkeypatch):
    """Should the page script run at all (it is not in the navigation), it stops before any input or button."""
    monkeypatch.setenv(access.READONLY_ENV, "1")
    at = AppTest.from_file(str(ROOT / "dashboard" / "app_pages" / "run.py"), default_timeout=60).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This dashboard is read-only: it runs no model and builds no store."]
    assert not at.button and not at.text_input


@pytest.mark.parametrize("read_only", [False, True])
def test_a_writable_dashboard_beyond_localhost_warns(db, monkeypatch, read_only):
    """Listening on every interface with the Run page on: the sidebar says so and names the read-only switch."""
    monkeypatch.setenv(access.READONLY_ENV, "1" if read_only else "0")
    for address, warned in (("127.0.0.1", False), ("0.0.0.0", not read_only)):
        monkeypatch.setattr(streamlit, "get_option", build_mock_config_get_option({"server.address": address}))
        at = _app()
        warnings = [w.value for w in at.sidebar.warning if access.READONLY_ENV in w.value]
        assert bool(warnings) is warned, (address, warnings)

