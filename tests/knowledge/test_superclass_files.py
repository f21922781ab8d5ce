"""Superclass definition files: the paper's JSON-lines format with its exact semantics, format detection, clear
errors, and which file is active (`use`, the environment, the paper's fetched file, the committed default)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import paths
from analysis.cli import main
from analysis.knowledge import superclasses, wordnet

GREAT_DANE, TENCH = 246, 0
RETRIEVERS = [205, 206, 207, 208, 209]
POINTERS = [210, 211]  # German short-haired pointer, vizsla

PAPER_LINES = [
    {"retriever": [["retriever"]]},                      # a dog-breed group: every class under retriever
    {"pointing_dog": [["pointer", "dog"]]},              # a two-lemma conjunction
    {"tench_only": [["Tinca_tinca"]]},                   # a lemma only the class synset itself carries
    {"great_dane_exact": [["Great_Dane"]]},              # case kept: matches
    {"great_dane_lower": [["great_dane"]]},              # case kept: matches nothing
    {"retriever_or_pointer": [["retriever"], ["pointer", "dog"]]},  # a disjunction of predicates
]


@pytest.fixture(autouse=True)
def _default_definitions(monkeypatch, tmp_path):
    """Every test starts (and ends) on the committed file, whatever the machine has fetched or set."""
    monkeypatch.delenv(paths.SUPERCLASSES_ENV, raising=False)
    monkeypatch.setenv(paths.EXTERNAL_ENV, str(tmp_path / "external"))
    superclasses.use(None)
    yield
    superclasses.use(None)


def _write_paper(path: Path, lines=PAPER_LINES) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _members(parsed: superclasses.SuperclassSet, sid: str) -> list[int]:
    j = [d.id for d in parsed.definitions].index(sid)
    return np.flatnonzero(parsed.membership[:, j]).tolist()


def test_paper_format_gives_exactly_the_class_sets_of_its_semantics(tmp_path):
    parsed = superclasses.read(_write_paper(tmp_path / "superclasses.json"))
    assert parsed.format == "paper" and len(parsed.definitions) == len(PAPER_LINES)
    assert _members(parsed, "retriever") == RETRIEVERS
    assert _members(parsed, "pointing_dog") == POINTERS
    assert _members(parsed, "tench_only") == [TENCH]
    assert _members(parsed, "great_dane_exact") == [GREAT_DANE]
    assert _members(parsed, "great_dane_lower") == []
    assert _members(parsed, "retriever_or_pointer") == RETRIEVERS + POINTERS
    # the conjunction is the intersection of its lemmas' sets
    graph = wordnet.load()
    pointer = {i for i, w in enumerate(graph.class_wnids) if "pointer" in graph.path_lemma_names(w)}
    dog = {i for i, w in enumerate(graph.class_wnids) if "dog" in graph.path_lemma_names(w)}
    assert set(POINTERS) == pointer & dog and len(dog) > 100
    # names, groups and the statistics follow from the members
    defs = {d.id: d for d in parsed.definitions}
    assert defs["retriever_or_pointer"].name == "retriever or pointer" and defs["retriever"].group == "organism"
    stats = superclasses.statistics(parsed)
    assert stats["non_singleton_superclasses"] == 3 and stats["empty_superclasses"] == ["great_dane_lower"]
    assert stats["same_superclass_pairs"] == 21  # C(7, 2): the disjunction holds the other two sets


@pytest.mark.skipif(not (wordnet.SYSTEM_WORDNET / "data.noun").is_file(),
                    reason="WordNet 3.0 not installed (apt-get install wordnet-base wordnet-sense-index)")
def test_paper_semantics_agree_with_nltk_hypernym_paths(tmp_path):
    """An independent reading with NLTK itself: lemma_names() of every synset on every hypernym_paths()."""
    wn = wordnet._nltk_wordnet(wordnet.ensure_nltk_wordnet(tmp_path / "nltk"))
    lines = PAPER_LINES + [{"canine_wild": [["wild_dog"], ["wolf", "canine"]]}, {"toy": [["toy_dog"]]},
                           {"mustelid": [["musteline_mammal"]]}, {"box_sense": [["box"]]}]
    parsed = superclasses.read(_write_paper(tmp_path / "superclasses.json", lines))
    on_path = []
    for w in wordnet.load().class_wnids:
        synset = wn.synset_from_pos_and_offset(w[0], int(w[1:]))
        on_path.append({name for path in synset.hypernym_paths() for s in path for name in s.lemma_names()})
    for j, line in enumerate(lines):
        (sid, predicates), = line.items()
        expected = [i for i, names in enumerate(on_path) if any(all(l in names for l in p) for p in predicates)]
        assert _members(parsed, sid) == expected, sid


def test_project_format_is_detected_and_case_insensitive(tmp_path):
    path = tmp_path / "ours.json"
    path.write_text(json.dumps({"superclasses": [
        {"id": "dane", "name": "Great Dane", "group": "organism", "predicates": [["great_dane"]]},
        {"id": "retrievers", "name": "retrievers", "group": "organism", "predicates": [["retriever"]]}]}))
    parsed = superclasses.read(path)
    assert parsed.format == "project"
    assert _members(parsed, "dane") == [GREAT_DANE] and _members(parsed, "retrievers") == RETRIEVERS
    assert superclasses.read(paths.SUPERCLASSES_JSON).format == "project"
    one_line = tmp_path / "one.json"
    one_line.write_text(json.dumps({"retriever": [["retriever"]]}))  # a single JSON object: one paper line
    assert superclasses.read(one_line).format == "paper"


@pytest.mark.parametrize("content, message", [
    ('{"dog": [["dog"]]}\n{"cat": [["cat"]]\n', r"line 2: not JSON"),
    ('{"dog": [["dog"]], "cat": [["cat"]]}\n', r"line 1: each line must be a JSON object with exactly one key"),
    ('["dog"]\n', r"line 1: each line must be a JSON object"),
    ('{"dog": []}\n', r"line 1: the predicates must be a non-empty list"),
    ('{"dog": ["dog"]}\n', r"line 1: predicate 'dog' must be a non-empty list of lemma names"),
    ('{"dog": [[""]]}\n', r"line 1: predicate \[''\] must be"),
    ('{"dog": [["dog"]]}\n\n{"dog": [["canine"]]}\n', r"line 3: superclass id 'dog' already defined on line 1"),
    ("\n\n", r"no superclass definitions"),
    ('{"superclasses": [{"id": "a"}]}', r"superclass #1\): each superclass needs"),
])
def test_a_bad_file_names_the_file_and_the_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(superclasses.SuperclassFileError, match=message) as info:
        superclasses.read(path)
    assert str(path) in str(info.value)


def test_a_missing_or_binary_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        superclasses.read(tmp_path / "absent.json")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        superclasses.read(binary)
    with pytest.raises(TypeError, match="path="):
        superclasses.read(3)


def test_the_active_file_follows_use_then_environment_then_the_fetched_paper_file(tmp_path, monkeypatch):
    assert superclasses.source() == paths.SUPERCLASSES_JSON
    committed = superclasses.active()
    paths.paper_superclasses().parent.mkdir(parents=True)
    fetched = _write_paper(paths.paper_superclasses(), [{"retriever": [["retriever"]]}])
    assert superclasses.source() == fetched and superclasses.active().format == "paper"
    env_file = _write_paper(tmp_path / "env.json", [{"tench_only": [["Tinca_tinca"]]}])
    monkeypatch.setenv(paths.SUPERCLASSES_ENV, str(env_file))
    assert superclasses.source() == env_file and [d.id for d in superclasses.definitions()] == ["tench_only"]
    chosen = _write_paper(tmp_path / "chosen.json", [{"pointing_dog": [["pointer", "dog"]]}])
    superclasses.use(chosen)
    assert superclasses.source() == chosen and superclasses.shares_superclass()[210, 211]
    assert not superclasses.shares_superclass()[207, 208]
    superclasses.use(None)
    monkeypatch.delenv(paths.SUPERCLASSES_ENV)
    fetched.unlink()
    assert superclasses.active().sha256 == committed.sha256


def test_an_edited_file_is_read_again(tmp_path):
    path = _write_paper(tmp_path / "live.json", [{"retriever": [["retriever"]]}])
    superclasses.use(path)
    assert superclasses.membership().shape == (1000, 1)
    _write_paper(path, [{"retriever": [["retriever"]]}, {"pointing_dog": [["pointer", "dog"]]}])
    assert superclasses.membership().shape == (1000, 2) and superclasses.shares_superclass()[210, 211]


def test_use_refuses_a_bad_file_and_keeps_the_active_one(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json\n")
    before = superclasses.active().sha256
    with pytest.raises(ValueError, match="line 1"):
        superclasses.use(bad)
    assert superclasses.active().sha256 == before


def test_cli_superclasses_json_reads_the_given_file(tmp_path):
    path = _write_paper(tmp_path / "superclasses.json")
    out = subprocess.run([sys.executable, "-m", "analysis", "superclasses", "--json", "--superclasses", str(path)],
                         cwd=paths.ROOT, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["format"] == "paper" and data["superclasses"] == len(PAPER_LINES)
    assert data["non_singleton_superclasses"] == 3 and data["same_superclass_pairs"] == 21
    assert data["map"]["207"] == ["retriever", "retriever_or_pointer"] and data["map"]["0"] == ["tench_only"]
    assert "paper format" in out.stderr


def test_cli_names_a_bad_superclass_file_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"dog": [["dog"]]}\n{"cat": 3}\n')
    assert main(["superclasses", "--superclasses", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: superclass file ") and str(bad) in err and "line 2" in err
    assert len(err.splitlines()) == 1
    assert main(["superclasses", "--superclasses", str(tmp_path / "absent.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
