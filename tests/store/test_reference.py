"""The reference build: every reference table loaded, idempotent, and a re-classification when knowledge changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from analysis import cli, paths
from analysis.knowledge import experts, fetch, superclasses, zoo
from analysis.store import database, queries, reference
from analysis.taxonomy import labelsets
from tests.bad_inputs import BadInput, cases
from tests.store.test_database import assert_untouched, damage_store


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


# --- build verifies the downloads' sha256, and --rebuild replaces a damaged store ------------------------------


@pytest.fixture()
def external_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the downloaded expert and zoo files (not the 1000 sample images) that the build reads instead."""
    real, root = paths.external_dir(), tmp_path / "external"
    if fetch.missing("expert_vit3b", real) or fetch.missing("zoo_models", real):
        pytest.skip("needs `python -m analysis fetch`")
    for part in ("google-research", "eth-sri"):
        shutil.copytree(real / part, root / part)
    monkeypatch.setenv(paths.EXTERNAL_ENV, str(root))
    return root


def _file(source: str, root: Path, suffix: str = "") -> Path:
    return next(f for f in fetch.files_of(source) if f.path.endswith(suffix)).local_path(root)


def _flip_one_byte(path: Path, *, keep_times: bool = False) -> None:
    """Change one byte of `path`, same size; `keep_times` puts the old mtime back (a cache keyed on it alone misses)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    if keep_times:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def _one_line_error(capsys, code: int, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.mark.parametrize("case", cases(
    BadInput("store-download-one-byte-changed", "downloaded file (build)",
             "expert labels JSON with one byte changed, same size", "does not match its pinned sha256",
             store="no store created"),
    BadInput("store-download-grown", "downloaded file (build)", "zoo models_summary.csv with one byte appended",
             "its pinned size is", store="no store created"),
))
def test_build_refuses_a_changed_download(case, external_copy, tmp_path, capsys):
    if "one-byte" in case.id:
        bad = _file("expert_vit3b", external_copy)
        _flip_one_byte(bad)
    else:
        bad = _file("zoo_models", external_copy, "models_summary.csv")
        bad.write_bytes(bad.read_bytes() + b"\n")
    db = tmp_path / "new.duckdb"
    _one_line_error(capsys, cli.main(["build", "--db", str(db)]), str(bad), case.message, "python -m analysis fetch")
    assert not db.exists()


@pytest.mark.parametrize("case", cases(
    BadInput("store-download-changed-after-a-build", "downloaded file (build)",
             "greedy-soups JSON changed after a build, size and mtime kept", "does not match its pinned sha256"),
))
def test_a_download_changed_after_a_verified_build_is_refused(case, external_copy, tmp_path, capsys):
    db = tmp_path / "store.duckdb"
    assert cli.main(["build", "--db", str(db)]) == 0
    assert (external_copy / fetch.VERIFIED_CACHE).is_file()
    capsys.readouterr()
    con = database.connect(db, read_only=True)
    before = database.table_checksums(con)
    con.close()
    bad = _file("expert_greedysoups", external_copy)
    _flip_one_byte(bad, keep_times=True)  # only its ctime tells the cache it changed
    _one_line_error(capsys, cli.main(["build", "--db", str(db)]), str(bad), case.message, "python -m analysis fetch")
    con = database.connect(db, read_only=True)
    try:
        assert database.table_checksums(con) == before
    finally:
        con.close()


def test_unchanged_downloads_are_not_hashed_again_changed_ones_are(external_copy):
    files = [f for f in fetch.registry() if f.local_path(external_copy).is_file()]
    assert fetch.verify_local(root=external_copy) == len(files) > 10
    cache_path = external_copy / fetch.VERIFIED_CACHE
    cache = json.loads(cache_path.read_text())
    target = fetch.files_of("class_confusions")[0]
    key = f"{target.repo}/{target.path}"
    assert cache[key][3] == target.sha256
    cache[key][3] = "0" * 64  # a wrong digest under the file's current size and times: used as is, not recomputed
    cache_path.write_text(json.dumps(cache))
    with pytest.raises(fetch.FetchError, match="class_confusion_wnids.json .*does not match its pinned sha256"):
        fetch.verify_local(root=external_copy)
    local = target.local_path(external_copy)
    st = local.stat()
    os.utime(local, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a new mtime: hashed again, and it is fine
    assert fetch.verify_local(root=external_copy) == len(files)
    assert json.loads(cache_path.read_text())[key][3] == target.sha256


def test_fetch_repairs_what_build_refused(external_copy, tmp_path, capsys):
    if paths.default_mirror() is None:
        pytest.skip("no local mirror to fetch from")
    bad = _file("expert_vit3b", external_copy)
    _flip_one_byte(bad)
    db = tmp_path / "store.duckdb"
    assert cli.main(["build", "--db", str(db)]) == 2
    assert "python -m analysis fetch --only expert_vit3b" in capsys.readouterr().err
    assert cli.main(["fetch", "--only", "expert_vit3b"]) == 0
    assert cli.main(["build", "--db", str(db)]) == 0


@pytest.mark.parametrize("how", ["truncated", "damaged-block", "text-file"])
def test_rebuild_replaces_a_damaged_store_and_keeps_it(how, store_copy, capsys):
    data = damage_store(store_copy, how)
    assert cli.main(["build", "--db", str(store_copy)]) == 2  # without --rebuild: refused, untouched
    assert_untouched(store_copy, data)
    assert cli.main(["build", "--rebuild", "--db", str(store_copy)]) == 0
    kept = store_copy.with_name(store_copy.name + ".corrupt")
    assert f"kept the damaged store as {kept}" in capsys.readouterr().out
    assert kept.read_bytes() == data
    assert database.verify(store_copy) == database.SCHEMA_VERSION
    con = database.connect(store_copy, read_only=True)
    try:
        assert _count(con, "SELECT count(*) FROM classes") == 1000 and _count(con, "SELECT count(*) FROM models") == 0
    finally:
        con.close()
    # damaged again: the first kept file stays, the second is kept next to it
    second = damage_store(store_copy, "zero-filled")
    assert cli.main(["build", "--rebuild", "--db", str(store_copy)]) == 0
    assert kept.read_bytes() == data and store_copy.with_name(store_copy.name + ".corrupt-2").read_bytes() == second
    assert sorted(p.name for p in store_copy.parent.iterdir() if p.name.startswith(store_copy.name)) == [
        store_copy.name, kept.name, kept.name + "-2"]


@pytest.mark.parametrize("case", cases(
    BadInput("store-rebuild-readable", "build --rebuild", "the store is readable (nothing to replace)",
             "--rebuild only replaces a damaged store"),
))
def test_rebuild_refuses_a_readable_store(case, store_copy, capsys):
    con = database.connect(store_copy, read_only=True)
    before = database.table_checksums(con)
    con.close()
    _one_line_error(capsys, cli.main(["build", "--rebuild", "--db", str(store_copy)]), str(store_copy), case.message)
    con = database.connect(store_copy, read_only=True)
    try:
        assert database.table_checksums(con) == before
    finally:
        con.close()
    assert [p.name for p in store_copy.parent.iterdir() if p.name.startswith(store_copy.name)] == [store_copy.name]


def test_a_failed_rebuild_leaves_the_damaged_store_where_it_was(store_copy, external_copy, capsys):
    data = damage_store(store_copy, "truncated")
    _flip_one_byte(_file("expert_vit3b", external_copy))
    assert cli.main(["build", "--rebuild", "--db", str(store_copy)]) == 2
    assert "does not match its pinned sha256" in capsys.readouterr().err
    assert_untouched(store_copy, data)
    assert [p.name for p in store_copy.parent.iterdir() if p.name.startswith(store_copy.name)] == [store_copy.name]
