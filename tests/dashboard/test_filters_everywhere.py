"""One filter, every page (issue 11 items 1, 5, 8, 9, 10) through Streamlit's AppTest on the small real store."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from analysis.inference import runner
from analysis.store import export, views
from analysis.store.filters import ErrorFilter
from dashboard import scope, state, widgets
from tests.bad_inputs import BadInput, cases
from tests.dashboard.apptest import DATASET
from tests.dashboard.apptest import open_app as _app

PAGES = {"": None, "browse": "browse", "compare": "compare", "experts": "experts", "zoo": "zoo", "run": "run",
         "factors": "factors"}
# Raw names that must never be shown as a column or axis title.
RAW = {"grp", "mla_minor", "mla_explainable", "real_accuracy", "counts_as_correct", "top1", "portion", "category_a",
       "category_b", "target_superclass", "prediction_superclass", "model_id", "training_data", "x", "source",
       "images", "errors", "evaluated", "category_name", "small_run", "dataset", "family", "mla"}


def _array(value):
    """A plotly JSON array (a list, or `{"dtype", "bdata"}` base64) as a numpy array."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def _figure(at: AppTest, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert charts, f"no chart {key!r} among {[c.proto.id for c in at.get('plotly_chart')]}"
    return json.loads(charts[0].proto.spec)


def _composition_errors(fig: dict) -> int:
    """The errors of the group 'all' in the composition chart (each bar's text is its errors)."""
    return int(sum(_array(t["text"])[list(_array(t["x"])).index("all")] for t in fig["data"] if "all" in list(t["x"])))


def _first_error(con, model):
    return export.errors_frame(con, ErrorFilter(dataset=DATASET, models=(model,)), limit=1).iloc[0]


def test_a_filter_set_on_browse_applies_on_overview_and_compare(db, con, model_ids):
    model = model_ids[0]
    category = _first_error(con, model)["category"]
    at = _app("browse")
    at.multiselect(key="flt_categories").set_value([category]).run()
    flt = ErrorFilter(dataset=DATASET, categories=(category,))

    at.switch_page("app_pages/overview.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="flt_categories").value == [category]  # the sidebar kept it
    shown = at.selectbox(key="ov_model").value
    want = export.count_errors(con, flt.with_(models=(shown,)))
    assert want < export.count_errors(con, ErrorFilter(dataset=DATASET, models=(shown,))), "the filter must narrow"
    composition = views.composition(con, shown, dataset=DATASET, flt=flt)
    assert _composition_errors(_figure(at, "ov_composition_chart")) == want == \
        int(composition.loc[composition["grp"] == "all", "errors"].sum())
    tree = _figure(at, "ov_tree_chart")["data"][0]
    roots = [v for v, p in zip(_array(tree["values"]), tree["parents"]) if p == ""]
    assert int(sum(roots)) == want
    assert any(c.value.startswith(f"{want:,} errors by the target's group") for c in at.caption)

    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    a, b = at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value
    matrix = _figure(at, "cmp_matrix_chart")["data"][0]
    filtered = views.transition_matrix(con, a, b, dataset=DATASET, flt=flt)
    unfiltered = views.transition_matrix(con, a, b, dataset=DATASET)
    assert int(_array(matrix["text"]).sum()) == int(filtered["images"].sum()) < int(unfiltered["images"].sum())
    counts = views.compare_counts(con, a, b, dataset=DATASET, flt=flt)
    assert [t.label for t in at.tabs][:3] == [f"Only A wrong ({counts['only_a']})",
                                              f"Only B wrong ({counts['only_b']})",
                                              f"Both wrong, differently ({counts['both_different']})"]


@pytest.mark.parametrize("page", list(PAGES))
def test_the_sidebar_marks_the_filters_a_page_ignores(db, page):
    at = _app(PAGES[page])
    ignored = scope.ignored(page)
    for field, key in state.FILTER_KEYS.items():
        if field in ("target", "prediction"):  # set by a drill-down (a confusion), shown with its clear button
            continue
        widget = at.sidebar.get("multiselect") + at.sidebar.get("selectbox") + at.sidebar.get("text_input") + \
            at.sidebar.get("number_input")
        found = [w for w in widget if w.key == key]
        assert found, key
        if field == "factors":  # also greyed wherever the dataset is not imagenet-val (the small store's is not)
            assert found[0].disabled, (page, field)
        else:
            assert found[0].disabled is (field in ignored), (page, field)
        if field in ignored:
            assert ignored[field] in (found[0].help or "")
    note = [c.value for c in at.sidebar.caption if c.value.startswith("Ignored on this page")]
    if ignored:
        assert note and all(f"**{state.FILTER_LABELS[f]}** ({why})" in note[0] for f, why in ignored.items())
    else:
        assert not note


def test_picking_the_concept_dog_and_a_bird_concept_in_the_sidebar(db, con):
    at = _app("browse")
    options = at.multiselect(key="flt_superclasses").options
    assert "dog (WordNet, 118 classes)" in options
    at.multiselect(key="flt_superclasses").set_value(["wn:bird.n.01"]).run()
    total = export.count_errors(con, ErrorFilter(dataset=DATASET, superclasses=("wn:bird.n.01",)))
    assert 0 < total < export.count_errors(con, ErrorFilter(dataset=DATASET))
    assert any(f"**{total:,}**" in m.value for m in at.markdown), [m.value for m in at.markdown][:5]
    assert at.query_params["superclasses"] == "wn:bird.n.01"
    again = _app("browse", query={"superclasses": "wn:dog.n.01"})
    assert again.multiselect(key="flt_superclasses").value == ["wn:dog.n.01"]
    assert any("No errors match" in i.value for i in again.info)  # the 50 sample images are classes 0-49: no dog


def test_treemap_nodes_sum_and_drill_down_to_browse(db, con, model_ids):
    from dashboard import treemap

    flt = ErrorFilter(dataset=DATASET, models=(model_ids[0],))
    nodes = treemap.nodes(views.error_tree(con, flt), flt)
    total = export.count_errors(con, flt)
    assert int(nodes.loc[nodes["parent"] == "", "errors"].sum()) == total
    for node_id, errors in zip(nodes["id"], nodes["errors"]):
        children = nodes[nodes["parent"] == node_id]
        if len(children):
            assert int(children["errors"].sum()) == errors, node_id
    leaves = nodes[nodes["level"] == "category"]
    assert int(leaves["errors"].sum()) == total
    for drill, errors in zip(leaves["drill"], leaves["errors"]):  # a leaf's filter finds at least its errors
        assert export.count_errors(con, drill) >= errors and len(drill.categories) == 1

    at = _app()
    assert at.selectbox(key="ov_model").value == model_ids[0]
    leaf = leaves.iloc[0]
    at.selectbox(key="ov_tree_node").select(leaf["id"]).run()
    at.button(key="ov_tree_open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="flt_categories").value == list(leaf["drill"].categories)
    assert at.multiselect(key="flt_superclasses").value == list(leaf["drill"].superclasses)
    assert any("errors match" in m.value for m in at.markdown)  # now on Browse


def test_zoo_points_say_their_dataset_and_image_count(db, con):
    at = _app("zoo")
    fig = _figure(at, "zoo_chart")
    names = [t.get("name", "") for t in fig["data"]]
    assert not any("trend" in n for n in names)  # the sample images are no ImageNet validation: no paper points
    assert any("The paper's 50,000-image statistics" in i.value for i in at.info)
    stored = [t for t in fig["data"] if "your" in t.get("name", "")]
    assert stored and all("under 1,000 images" in t["name"] for t in stored)  # 50-image runs: drawn apart
    for trace in stored:
        custom = trace["customdata"]
        assert [row[0] for row in custom] == [DATASET] * len(custom) and {int(row[1]) for row in custom} == {50}
        assert "dataset %{customdata[0]}, %{customdata[1]:,} images" in trace["hovertemplate"]
    assert any("fewer than 1,000 images are drawn apart" in c.value for c in at.caption)


@pytest.mark.parametrize("case", cases(
    BadInput("filters-url-toggle-not-a-flag", "URL parameter of a page toggle (Zoo same, none; Experts nonproto)",
             "yes / 2 / a script instead of 0 or 1", "the toggle keeps its default", store="not involved"),
    BadInput("filters-url-unknown-concept", "URL superclasses", "wn:unicorn.n.01, a concept WordNet lacks",
             "dropped from the filter", store="not involved"),
))
def test_hostile_page_parameters_fall_back(db, case):
    if case.id == "filters-url-toggle-not-a-flag":
        at = _app("zoo", query={"same": "yes", "none": "<script>"})
        assert at.toggle(key="zoo_same").value is False and at.toggle(key="zoo_none").value is False
    else:
        at = _app("browse", query={"superclasses": "wn:unicorn.n.01,wn:bird.n.01"})
        assert at.multiselect(key="flt_superclasses").value == ["wn:bird.n.01"]
    assert not at.exception and not at.error


def _raw_titles(fig: dict) -> list[str]:
    layout = fig.get("layout", {})
    titles = [((layout.get(axis) or {}).get("title") or {}).get("text") for axis in ("xaxis", "yaxis")]
    titles.append(((layout.get("legend") or {}).get("title") or {}).get("text"))
    return [t for t in titles if t in RAW]


@pytest.mark.parametrize("page", ["", "zoo"])
def test_no_raw_column_names_in_tables_and_charts(db, page):
    at = _app(PAGES[page])
    assert at.dataframe
    for frame in at.dataframe:
        config = json.loads(frame.proto.columns or "{}")
        for column in frame.value.columns:
            label = (config.get(str(column)) or {}).get("label")
            assert label and label not in RAW, (frame.proto.id, column, label)
    for chart in at.get("plotly_chart"):
        assert not _raw_titles(json.loads(chart.proto.spec)), chart.proto.id
    for metric in at.metric:
        assert metric.proto.help, f"metric {metric.label!r} has no help tooltip"
    assert widgets.label("mla_minor") == "MLA + minor (%)" and widgets.label("grp") == "Group"


def test_run_page_gives_a_fresh_model_id_and_its_own_words(db):
    at = _app("run")
    at.text_input(key="run_model_id").input("leftover").run()
    assert at.button(key="run_go").label.endswith("as leftover")
    other = [m for m in at.selectbox(key="run_model").options if m != at.selectbox(key="run_model").value][0]
    at.selectbox(key="run_model").select(other).run()
    assert at.text_input(key="run_model_id").value == "" and at.button(key="run_go").label == f"Run {other}"
    at.text_input(key="run_checkpoint").input("ckpt/finetuned.pth").run()
    assert at.button(key="run_go").label == f"Run {other} as {other}+finetuned"
    # a runner error names the page's inputs, never a CLI flag
    with pytest.raises(runner.ArgumentError) as info:
        runner.image_set("imagenet-val", None, images=None) if not runner.paths.imagenet_dir() else \
            runner.image_set("folder", None, images=None)
    assert info.value.argument == "images" and "--images" not in info.value.problem and "--images" in str(info.value)


def test_run_page_says_already_predicted_only_for_an_id_given_again(db, image_tree):
    """A run stored as app-lite0; another model starts from its own id; typing app-lite0 again: nothing to run."""
    images = Path(image_tree["root"]) / "set"
    shutil.copytree(Path(image_tree["outside"]), images)
    at = _app("run")
    at.radio(key="run_dataset").set_value("folder").run()
    at.text_input(key="run_folder_folder").input(str(images)).run()
    at.radio(key="run_device").set_value("cpu").run()
    at.text_input(key="run_model_id").input("app-lite0").run()
    at.button(key="run_go").click().run()
    assert any("`app-lite0`: 1 images of" in s.value for s in at.success), [e.value for e in at.error]
    at.selectbox(key="run_model").select("efficientnet-lite1").run()
    assert at.button(key="run_go").label == "Run efficientnet-lite1"  # not the leftover app-lite0
    at.text_input(key="run_model_id").input("app-lite0").run()
    at.button(key="run_go").click().run()
    assert not at.exception and not at.error and not at.success
    assert any("`app-lite0` already predicted: nothing to run" in w.value for w in at.warning)
