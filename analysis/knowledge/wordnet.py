"""The WordNet 3.0 subgraph around the 1000 classes: exported once from NLTK, read from committed JSON.

Export (`python -m analysis wordnet-export`) needs Debian's `wordnet-base` and NLTK; reading
(`load()`) needs neither. The subgraph holds every hypernym ancestor of the 1000 classes and
every hyponym of their direct parents (siblings), with lemma names, offsets and definitions.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from analysis import paths

SYSTEM_WORDNET = Path("/usr/share/wordnet")
# Debian's wordnet-base lacks `lexnames`, which NLTK's reader needs; this is WordNet 3.0's file.
LEXNAMES = """00\tadj.all\t3
01\tadj.pert\t3
02\tadv.all\t4
03\tnoun.Tops\t1
04\tnoun.act\t1
05\tnoun.animal\t1
06\tnoun.artifact\t1
07\tnoun.attribute\t1
08\tnoun.body\t1
09\tnoun.cognition\t1
10\tnoun.communication\t1
11\tnoun.event\t1
12\tnoun.feeling\t1
13\tnoun.food\t1
14\tnoun.group\t1
15\tnoun.location\t1
16\tnoun.motive\t1
17\tnoun.object\t1
18\tnoun.person\t1
19\tnoun.phenomenon\t1
20\tnoun.plant\t1
21\tnoun.possession\t1
22\tnoun.process\t1
23\tnoun.quantity\t1
24\tnoun.relation\t1
25\tnoun.shape\t1
26\tnoun.state\t1
27\tnoun.substance\t1
28\tnoun.time\t1
29\tverb.body\t2
30\tverb.change\t2
31\tverb.cognition\t2
32\tverb.communication\t2
33\tverb.competition\t2
34\tverb.consumption\t2
35\tverb.contact\t2
36\tverb.creation\t2
37\tverb.emotion\t2
38\tverb.motion\t2
39\tverb.perception\t2
40\tverb.possession\t2
41\tverb.social\t2
42\tverb.stative\t2
43\tverb.weather\t2
44\tadj.ppl\t3
"""
GROUPS = ("organism", "artifact", "other")
_GROUP_ROOTS = {"organism": "n00004475", "artifact": "n00021939"}


def nltk_data_dir() -> Path:
    """Where the project keeps NLTK data (`NLTK_DATA` if set, else `.cache/nltk_data`)."""
    env = os.environ.get("NLTK_DATA")
    return Path(env.split(os.pathsep)[0]) if env else paths.ROOT / ".cache" / "nltk_data"


def ensure_nltk_wordnet(target: Path | None = None, *, source: Path = SYSTEM_WORDNET) -> Path:
    """Lay out Debian's WordNet 3.0 as NLTK's `corpora/wordnet` (adding `lexnames`); return the NLTK data dir."""
    target = Path(target or nltk_data_dir())
    corpus = target / "corpora" / "wordnet"
    if not (corpus / "lexnames").is_file():
        if not (source / "data.noun").is_file():
            raise FileNotFoundError(
                f"WordNet 3.0 is not installed at {source}; run `apt-get install -y wordnet-base wordnet-sense-index`"
            )
        corpus.mkdir(parents=True, exist_ok=True)
        for item in source.iterdir():
            if item.is_file():
                shutil.copy2(item, corpus / item.name)
        (corpus / "lexnames").write_text(LEXNAMES)
    return target


def _nltk_wordnet(data_dir: Path | None = None):
    data_dir = ensure_nltk_wordnet(data_dir)
    import nltk

    if str(data_dir) not in nltk.data.path:
        nltk.data.path.insert(0, str(data_dir))
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    return wordnet


def _wnid(synset) -> str:
    return f"{synset.pos()}{synset.offset():08d}"


def build_subgraph(class_wnids: list[str], *, data_dir: Path | None = None) -> dict:
    """The subgraph as a JSON-ready dict: classes, and per synset name, lemmas, definition, hypernyms."""
    wn = _nltk_wordnet(data_dir)
    nodes: dict[str, object] = {}

    def parents(s):
        return s.hypernyms() + s.instance_hypernyms()

    def visit_up(s):
        stack = [s]
        while stack:
            cur = stack.pop()
            if _wnid(cur) in nodes:
                continue
            nodes[_wnid(cur)] = cur
            stack.extend(parents(cur))

    class_synsets = [wn.synset_from_pos_and_offset(w[0], int(w[1:])) for w in class_wnids]
    for s in class_synsets:
        visit_up(s)
    for s in class_synsets:
        for parent in parents(s):
            for sibling in parent.hyponyms() + parent.instance_hyponyms():
                visit_up(sibling)
    synsets = {
        wnid: {
            "name": s.name(),
            "lemmas": [l.name() for l in s.lemmas()],
            "definition": s.definition(),
            "hypernyms": sorted(_wnid(p) for p in parents(s)),
        }
        for wnid, s in sorted(nodes.items())
    }
    return {
        "source": "Princeton WordNet 3.0 (NLTK reader over Debian wordnet-base); see `python -m analysis wordnet-export`",
        "licence": "WordNet 3.0 licence (Princeton University), free for any use with attribution",
        "classes": list(class_wnids),
        "synsets": synsets,
    }


def export(path: Path = paths.WORDNET_JSON, *, data_dir: Path | None = None) -> dict:
    """Regenerate the committed subgraph JSON from NLTK's WordNet; return summary counts."""
    from analysis.knowledge.classes import wnids

    graph = build_subgraph(list(wnids()), data_dir=data_dir)
    path.write_text(json.dumps(graph, indent=0, sort_keys=True, ensure_ascii=False) + "\n")
    return {"path": str(path), "synsets": len(graph["synsets"]), "classes": len(graph["classes"])}


@dataclass(frozen=True)
class WordNetGraph:
    """Read-only view of the subgraph: synsets by wnid, hypernym edges and the class list."""

    synsets: dict
    class_wnids: tuple[str, ...]

    def name(self, wnid: str) -> str:
        return self.synsets[wnid]["name"]

    def lemmas(self, wnid: str) -> list[str]:
        return self.synsets[wnid]["lemmas"]

    def hypernyms(self, wnid: str) -> list[str]:
        return self.synsets[wnid]["hypernyms"]

    def hyponyms(self, wnid: str) -> list[str]:
        return _children(self)[wnid]

    def hypernym_paths(self, wnid: str) -> list[list[str]]:
        """All root-to-synset paths (each a list of wnids ending at `wnid`), as NLTK gives them."""
        return [list(p) for p in _paths(self, wnid)]

    def ancestors(self, wnid: str) -> set[str]:
        """Every synset on any hypernym path of `wnid`, itself included."""
        return {w for path in _paths(self, wnid) for w in path}

    def path_lemmas(self, wnid: str) -> frozenset[str]:
        """Every lemma name (lowercase, underscores) on the hypernym paths of `wnid`, its own included."""
        return frozenset(l.lower() for l in self.path_lemma_names(wnid))

    def path_lemma_names(self, wnid: str) -> frozenset[str]:
        """Every lemma name as NLTK spells it (case kept, underscores) on the hypernym paths of `wnid`, its own included."""
        return frozenset(l for w in self.ancestors(wnid) for l in self.lemmas(w))

    def group(self, wnid: str) -> str:
        """`organism`, `artifact` or `other` by the hypernyms of `wnid`."""
        anc = self.ancestors(wnid)
        for group, root in _GROUP_ROOTS.items():
            if root in anc:
                return group
        return "other"

    def display_path(self, wnid: str) -> list[str]:
        """The longest hypernym path as readable names (`entity > ... > dog > ...`)."""
        path = max(_paths(self, wnid), key=len)
        return [self.lemmas(w)[0].replace("_", " ") for w in path]


@lru_cache(maxsize=None)
def _paths_cached(graph_id: int, wnid: str) -> tuple[tuple[str, ...], ...]:
    graph = _GRAPHS[graph_id]
    parents = graph.synsets[wnid]["hypernyms"]
    if not parents:
        return ((wnid,),)
    return tuple(p + (wnid,) for parent in parents for p in _paths_cached(graph_id, parent))


_GRAPHS: dict[int, WordNetGraph] = {}
_CHILDREN: dict[int, dict[str, list[str]]] = {}


def _paths(graph: WordNetGraph, wnid: str):
    _GRAPHS.setdefault(id(graph), graph)
    return _paths_cached(id(graph), wnid)


def _children(graph: WordNetGraph) -> dict[str, list[str]]:
    if id(graph) not in _CHILDREN:
        children: dict[str, list[str]] = {w: [] for w in graph.synsets}
        for wnid, s in graph.synsets.items():
            for parent in s["hypernyms"]:
                children.setdefault(parent, []).append(wnid)
        _CHILDREN[id(graph)] = children
    return _CHILDREN[id(graph)]


@lru_cache(maxsize=1)
def load(path: Path = paths.WORDNET_JSON) -> WordNetGraph:
    """The committed subgraph; FileNotFoundError names the export command when it is missing."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} is missing; run `python -m analysis wordnet-export`")
    data = json.loads(Path(path).read_text())
    graph = WordNetGraph(data["synsets"], tuple(data["classes"]))
    _GRAPHS[id(graph)] = graph
    return graph
