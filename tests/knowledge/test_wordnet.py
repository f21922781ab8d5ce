"""The committed WordNet subgraph: its content, and that a fresh export reproduces it."""

import json

import pytest

from analysis import paths
from analysis.knowledge import wordnet
from analysis.knowledge.classes import wnids


def test_subgraph_covers_classes_ancestors_and_siblings():
    g = wordnet.load()
    assert list(g.class_wnids) == list(wnids())
    golden = "n02099601"
    assert "n02084071" in g.ancestors(golden)  # dog
    assert g.display_path(golden)[:3] == ["entity", "physical entity", "object"]
    assert "retriever" in g.display_path(golden)
    siblings = g.hyponyms("n02099029")  # hyponyms of retriever: the golden's siblings
    assert golden in siblings and len(siblings) >= 5
    assert "dog" in g.path_lemmas(golden) and "golden_retriever" in g.path_lemmas(golden)


def test_groups_match_the_paper():
    g = wordnet.load()
    counts = {grp: sum(g.group(w) == grp for w in g.class_wnids) for grp in wordnet.GROUPS}
    assert counts == {"organism": 410, "artifact": 522, "other": 68}


def test_missing_json_names_the_export_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="wordnet-export"):
        wordnet.load.__wrapped__(tmp_path / "none.json")


@pytest.mark.skipif(not (wordnet.SYSTEM_WORDNET / "data.noun").is_file(),
                    reason="WordNet 3.0 not installed (apt-get install wordnet-base wordnet-sense-index)")
def test_export_reproduces_committed_json(tmp_path):
    out = tmp_path / "wordnet.json"
    wordnet.export(out, data_dir=tmp_path / "nltk")
    assert json.loads(out.read_text()) == json.loads(paths.WORDNET_JSON.read_text())
