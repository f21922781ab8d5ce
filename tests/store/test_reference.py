"""The reference build: every reference table loaded, idempotent, and a re-classification when knowledge changes."""

from __future__ import annotations

from analysis.knowledge import experts, superclasses, zoo
from analysis.store import database, queries, reference
from analysis.taxonomy import labelsets


def _count(con, sql, params=None):
    return database.first(con, sql, params)[0]


def test_build_loads_every_reference_table(small_store):
    con = database.connect(small_store, read_only=True)
    try:
        assert database.schema_version(con) == database.SCHEMA_VERSION
        assert _count(con, "SELECT count(*) FROM classes") == 1000
        assert _count(con, "SELECT count(*) FROM superclasses") == len(superclasses.definitions())
        assert _count(con, "SELECT count(*) FROM class_superclasses") == int(superclasses.membership().sum())
        real = labelsets.real()
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'imagenet-val'") == 50_000
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'imagenet-val' AND evaluated") == int(
            real.evaluated.sum())
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'imagenet-val' AND non_prototypical") == int(
            real.non_prototypical.sum()) > 0
        # image 0 keeps its ReaL labels in the label set's order, target first
        assert list(_count(con, "SELECT labels FROM images WHERE dataset = 'imagenet-val' AND image_id = 0")) == list(
            real.labels(0))
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'samples'") == 1000
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'samples' AND target = image_id") == 1000
        assert _count(con, "SELECT count(*) FROM expert_labels") == len(experts.load_all())
        assert _count(con, "SELECT count(*) FROM paper_models") == len(zoo.load_models()) == 962
        assert _count(con, "SELECT count(*) FROM paper_model_stats") == len(zoo.load_all_stats())
        assert _count(con, "SELECT count(*) FROM cooccurrence WHERE a >= b") == 0
        tench = con.execute("SELECT wnid, name, grp, wordnet_path FROM classes WHERE class_id = 0").fetchall()[0]
        assert tench[:3] == ("n01440764", "tench", "organism") and tench[3][0] == "entity"
        assert database.meta(con)["oov_check"] == "off"
    finally:
        con.close()


def test_build_is_idempotent_and_reclassifies_when_knowledge_changes(store_copy):
    con = database.connect(store_copy)
    before = database.table_checksums(con, exclude=("meta",))
    # Pretend the classifier's knowledge changed and damage one category: the build must repair it.
    con.execute(queries.META_SET, ["classifier_fingerprint", "stale"])
    con.execute("UPDATE pair_categories SET category = 'model_failure', reason = 'x' WHERE category = 'correct'")
    con.execute("UPDATE model_summary SET errors = -1")  # the summaries are recomputed with the categories
    con.close()
    reference.build(store_copy, progress=False)
    con = database.connect(store_copy, read_only=True)
    try:
        assert database.table_checksums(con, exclude=("meta",)) == before
        assert database.meta(con)["classifier_fingerprint"] == reference.classifier_fingerprint()
    finally:
        con.close()


def _paper_file_joining(path, a: int, b: int):
    """A paper-format file with one superclass holding classes `a` and `b` by their own lemma names."""
    import json

    from analysis.knowledge import wordnet

    graph = wordnet.load()
    lemma = [graph.lemmas(graph.class_wnids[c])[0] for c in (a, b)]
    path.write_text(json.dumps({"joined": [[lemma[0]], [lemma[1]]]}) + "\n")
    return path


def test_build_records_the_definitions_and_reclassifies_when_they_change(store_copy, tmp_path, monkeypatch, capsys):
    import numpy as np
    import pytest

    from analysis import cli, paths
    from analysis.inference import runner
    from analysis.store import publish

    monkeypatch.delenv(paths.SUPERCLASSES_ENV, raising=False)
    monkeypatch.setenv(paths.EXTERNAL_ENV, str(tmp_path / "no-paper-file"))
    superclasses.use(None)
    con = database.connect(store_copy, read_only=True)
    meta = database.meta(con)
    assert meta["superclasses_sha256"] == superclasses.active().sha256 and meta["superclasses_format"] == "project"
    image_id, target, prediction = con.execute(
        "SELECT c.image_id, i.target, c.prediction FROM pair_categories c JOIN images i USING (dataset, image_id) "
        "WHERE c.dataset = 'samples' AND c.category = 'model_failure' ORDER BY 1 LIMIT 1").fetchall()[0]
    con.close()
    paper = _paper_file_joining(tmp_path / "superclasses.json", target, prediction)
    try:
        assert cli.main(["build", "--db", str(store_copy), "--superclasses", str(paper)]) == 0
        assert "paper format" in capsys.readouterr().out
        con = database.connect(store_copy, read_only=True)
        meta = database.meta(con)
        assert meta["superclasses_file"] == str(paper) and meta["superclasses_format"] == "paper"
        assert con.execute("SELECT category, reason FROM pair_categories WHERE dataset = 'samples' AND image_id = ? "
                           "AND prediction = ?", [image_id, prediction]).fetchall() == [
            ("fine_grained", f"superclass:joined@label:{target}")]
        assert _count(con, "SELECT count(*) FROM superclasses") == 1
        con.close()
    finally:
        superclasses.use(None)
    # Back on the committed definitions, a write would mix two classifications: it is refused before any work.
    con = database.connect(store_copy)
    try:
        before = database.table_checksums(con)
        with pytest.raises(database.StoreError, match="classified with the superclasses .*paper format.*build --superclasses"):
            publish.publish_predictions(con, publish.ModelRecord("m", "import"), "samples",
                                        publish.prediction_table(np.array([0]), np.array([1])))
        assert database.table_checksums(con) == before
    finally:
        con.close()
    with pytest.raises(database.StoreError, match="classified with the superclasses"):
        runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=2, model_id="other",
                       progress=False, workers=0)
    assert cli.main(["export", str(tmp_path / "out.csv"), "--db", str(store_copy)]) == 0
    assert f"superclasses: {paper}" in capsys.readouterr().out.splitlines()[-1]
