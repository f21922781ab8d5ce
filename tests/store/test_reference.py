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
