"""Superclasses as WordNet predicates, the active definition file, its class map, and the collapsed class pairs.

A superclass holds a class when, for any one of its predicates (a list of WordNet lemma names), every
lemma of the predicate occurs on the class's hypernym paths (DESIGN §2): the predicates form a
disjunction, so a superclass may unite several named WordNet concepts, and superclasses may overlap.

Two file formats are read (detected from the content):
- `project`: the committed `data/superclasses.json`, one JSON object `{"superclasses": [{"id", "name",
  "group", "predicates"}, ...]}`; lemma names are matched case-insensitively.
- `paper`: the paper's own `superclasses.json` (its artefacts archive), JSON lines, one object per line with
  exactly one key, the superclass id, whose value is the list of predicates; lemma names are matched
  exactly as NLTK spells them (case kept, underscores) against `lemma_names()` of every synset on every
  `hypernym_paths()` of the class synset, the class synset included. A class in none is a singleton.

The active file is, first to last: `use(path)` (the CLI's `--superclasses FILE`), `$IMAGENET_ERRORS_SUPERCLASSES`,
the paper's file once `fetch --artefacts` extracted it (`data/external/paper/superclasses.json`), and the
committed `data/superclasses.json`. Collapsed (overlapping) class groups of Vasudevan et al. (2022) live in
`data/collapsed_classes.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from analysis import paths
from analysis.knowledge import wordnet
from analysis.knowledge.classes import NUM_CLASSES

GROUPS = wordnet.GROUPS
_override: Path | None = None


@dataclass(frozen=True)
class Superclass:
    """One superclass: stable id, readable name, its groups (majority first) and predicates (a disjunction)."""

    id: str
    name: str
    groups: tuple[str, ...]
    predicates: tuple[tuple[str, ...], ...]

    @property
    def group(self) -> str:
        """Group of the majority of members (a superclass may span groups, e.g. consomme and soup bowl)."""
        return self.groups[0]


@dataclass(frozen=True, eq=False)
class SuperclassSet:
    """A parsed definition file: where it is, its format and sha256, the definitions and their class map.

    `membership (1000, S)`: class i belongs to superclass j; `shares (1000, 1000)`: the classes share one.
    """

    path: Path
    format: str
    sha256: str
    definitions: tuple[Superclass, ...]
    membership: np.ndarray
    shares: np.ndarray

    def describe(self) -> str:
        """One line for `info`, the CSV sidecar and the dashboard footer: which file, which format, which bytes."""
        try:
            shown = self.path.resolve().relative_to(paths.ROOT)
        except ValueError:
            shown = self.path
        return f"{shown} ({self.format} format, sha256 {self.sha256[:12]})"


class SuperclassFileError(ValueError):
    """A superclass file that cannot be read; the message names the file, the line and what is wrong."""


def _fail(path: Path, where: str, problem: str) -> SuperclassFileError:
    return SuperclassFileError(f"superclass file {path}{where}: {problem}")


def _check_predicates(path: Path, where: str, predicates) -> tuple[tuple[str, ...], ...]:
    if not isinstance(predicates, list) or not predicates:
        raise _fail(path, where, "the predicates must be a non-empty list of lists of WordNet lemma names, "
                                 'e.g. [["dog"], ["wolf", "canine"]]')
    for predicate in predicates:
        if (not isinstance(predicate, list) or not predicate
                or not all(isinstance(lemma, str) and lemma.strip() for lemma in predicate)):
            raise _fail(path, where, f"predicate {predicate!r} must be a non-empty list of lemma names (strings)")
    return tuple(tuple(p) for p in predicates)


def _parse_project(path: Path, data: dict) -> list[tuple[str, str, tuple[str, ...] | None, tuple]]:
    entries = data.get("superclasses")
    if not isinstance(entries, list):
        raise _fail(path, "", '"superclasses" must be a list of {"id", "name", "group", "predicates"} objects')
    out, seen = [], set()
    for k, d in enumerate(entries):
        where = f" (superclass #{k + 1})"
        if not isinstance(d, dict) or not {"id", "predicates"} <= set(d):
            raise _fail(path, where, 'each superclass needs at least "id" and "predicates"')
        if d["id"] in seen:
            raise _fail(path, where, f"superclass id {d['id']!r} appears twice")
        seen.add(d["id"])
        group = d.get("group")
        groups = (group,) if isinstance(group, str) else tuple(group) if group else None
        out.append((str(d["id"]), str(d.get("name") or d["id"]), groups, _check_predicates(path, where, d["predicates"])))
    return out


def _parse_paper(path: Path, text: str) -> list[tuple[str, str, tuple[str, ...] | None, tuple]]:
    out, seen = [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f" line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _fail(path, where, f"not JSON ({exc.msg}); the paper's format is one JSON object per line") from None
        if not isinstance(obj, dict) or len(obj) != 1:
            raise _fail(path, where, "each line must be a JSON object with exactly one key, the superclass id, "
                                     'e.g. {"dog": [["dog"]]}')
        (sid, predicates), = obj.items()
        if sid in seen:
            raise _fail(path, where, f"superclass id {sid!r} already defined on line {seen[sid]}")
        seen[sid] = number
        out.append((sid, sid.replace("_", " "), None, _check_predicates(path, where, predicates)))
    if not out:
        raise _fail(path, "", "no superclass definitions (empty file)")
    return out


def _detect(path: Path, text: str) -> tuple[str, list]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and "superclasses" in data:
        return "project", _parse_project(path, data)
    return "paper", _parse_paper(path, text)


def _membership(entries: list, fmt: str) -> np.ndarray:
    if fmt == "project":  # the project's own file matches lemma names case-insensitively
        on_path, key = class_path_lemmas(), str.lower
    else:  # the paper's semantics: exact lemma names, as NLTK spells them
        on_path, key = class_path_lemma_names(), str
    needed = {key(lemma) for *_, predicates in entries for predicate in predicates for lemma in predicate}
    has = {lemma: np.zeros(NUM_CLASSES, dtype=bool) for lemma in needed}
    for i, lemmas in enumerate(on_path):
        for lemma in needed & lemmas:
            has[lemma][i] = True
    out = np.zeros((NUM_CLASSES, len(entries)), dtype=bool)
    for j, (*_, predicates) in enumerate(entries):
        for predicate in predicates:
            out[:, j] |= np.logical_and.reduce([has[key(lemma)] for lemma in predicate])
    return out


def _groups_of(members: np.ndarray) -> tuple[str, ...]:
    counts = Counter(class_groups()[members])
    return tuple(g for g, _ in sorted(counts.items(), key=lambda kv: (-kv[1], GROUPS.index(kv[0])))) or ("other",)


def read(path: Path | str) -> SuperclassSet:
    """Parse a superclass file of either format (detected) and compute its class map.

    Raises FileNotFoundError for a missing file and SuperclassFileError (a ValueError) naming the file,
    the line and the problem for one that cannot be read.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path={path!r} must be a path to a superclass file")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"superclass file {path} does not exist; pass a JSON file in the project's or the "
                                "paper's format (see docs/SUPERCLASSES.md)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "", "not UTF-8 text; expected JSON") from None
    fmt, entries = _detect(path, text)
    member = _membership(entries, fmt)
    defs = tuple(Superclass(sid, name, groups or _groups_of(member[:, j]), predicates)
                 for j, (sid, name, groups, predicates) in enumerate(entries))
    bad = [d.id for d in defs if not set(d.groups) <= set(GROUPS)]
    if bad:
        raise _fail(path, "", f"superclasses {bad} have a group outside {GROUPS}")
    m = member.astype(np.int32)
    return SuperclassSet(path, fmt, hashlib.sha256(raw).hexdigest(), defs, member, (m @ m.T) > 0)


def use(path: Path | str | None) -> SuperclassSet | None:
    """Make `path` the active definition file for this process (None: back to the default); returns it parsed.

    A file that cannot be read raises and leaves the active one as it was.
    """
    global _override
    previous, _override = _override, None if path is None else Path(path)
    if path is None:
        return None
    try:
        return active()  # parsed once, into the cache the classifier reads
    except BaseException:
        _override = previous
        raise


def source() -> Path:
    """The active definition file: `use()`, `$IMAGENET_ERRORS_SUPERCLASSES`, the paper's fetched file, or ours."""
    if _override is not None:
        return _override
    env = os.environ.get(paths.SUPERCLASSES_ENV)
    if env:
        return Path(env)
    paper = paths.paper_superclasses()
    return paper if paper.is_file() else paths.SUPERCLASSES_JSON


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int, size: int) -> SuperclassSet:
    return read(path)


def active() -> SuperclassSet:
    """The parsed active definition file (re-read when the file changes)."""
    path = source()
    if not path.is_file():
        return read(path)  # the FileNotFoundError names the file
    stat = path.stat()
    return _cached(str(path), stat.st_mtime_ns, stat.st_size)


def definitions() -> tuple[Superclass, ...]:
    """Definitions of the active file, in file order."""
    return active().definitions


@lru_cache(maxsize=1)
def class_path_lemmas() -> tuple[frozenset[str], ...]:
    """Lemma names (lowercase) on the hypernym paths of each class, `(1000,)` in id order."""
    graph = wordnet.load()
    return tuple(graph.path_lemmas(w) for w in graph.class_wnids)


@lru_cache(maxsize=1)
def class_path_lemma_names() -> tuple[frozenset[str], ...]:
    """Lemma names as NLTK spells them (case kept) on the hypernym paths of each class, `(1000,)` in id order."""
    graph = wordnet.load()
    return tuple(graph.path_lemma_names(w) for w in graph.class_wnids)


@lru_cache(maxsize=1)
def class_groups() -> np.ndarray:
    """Group name of each class, `(1000,)` object array (organism / artifact / other)."""
    graph = wordnet.load()
    return np.array([graph.group(w) for w in graph.class_wnids], dtype=object)


def membership() -> np.ndarray:
    """Boolean matrix `(1000, S)` of the active file: class i belongs to superclass j."""
    return active().membership


def shares_superclass() -> np.ndarray:
    """Boolean matrix `(1000, 1000)`: the two classes share at least one superclass (diagonal for members)."""
    return active().shares


def superclasses_of(class_id: int) -> list[str]:
    """Ids of the superclasses that hold `class_id`."""
    if not isinstance(class_id, (int, np.integer)) or not 0 <= class_id < NUM_CLASSES:
        raise ValueError(f"class_id={class_id!r} must be an integer in 0..999")
    defs = definitions()
    return [defs[j].id for j in np.flatnonzero(membership()[class_id])]


def superclass_map() -> dict[int, list[str]]:
    """`{class_id: [superclass ids]}` for all 1000 classes (empty list: no superclass)."""
    defs = definitions()
    m = membership()
    return {i: [defs[j].id for j in np.flatnonzero(m[i])] for i in range(NUM_CLASSES)}


def shared_superclasses(a: int, b: int) -> list[str]:
    """Ids of superclasses holding both classes `a` and `b`."""
    for arg, value in (("a", a), ("b", b)):
        if not isinstance(value, (int, np.integer)) or not 0 <= value < NUM_CLASSES:
            raise ValueError(f"{arg}={value!r} must be an integer class id in 0..999")
    defs = definitions()
    m = membership()
    return [defs[j].id for j in np.flatnonzero(m[a] & m[b])]


@lru_cache(maxsize=1)
def collapsed_pairs(path: Path = paths.COLLAPSED_JSON) -> tuple[tuple[int, int], ...]:
    """Directed (target, prediction) pairs of Vasudevan et al. (2022)'s collapsed mapping."""
    data = json.loads(Path(path).read_text())
    pairs = [(a, b) for g in data["symmetric_groups"] for a in g["classes"] for b in g["classes"] if a != b]
    pairs += [(d["target"], d["prediction"]) for d in data["directed"]]
    return tuple(sorted(set(pairs)))


@lru_cache(maxsize=1)
def overlapping() -> np.ndarray:
    """Boolean matrix `(1000, 1000)` indexed [target, prediction]: a collapsed pair (never the diagonal)."""
    out = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=bool)
    idx = np.array(collapsed_pairs())
    out[idx[:, 0], idx[:, 1]] = True
    return out


def statistics(definitions_set: SuperclassSet | None = None) -> dict:
    """Figures to compare with the paper (161 superclasses, 74 classes without, 5,476 pairs); default: the active set."""
    chosen = active() if definitions_set is None else definitions_set
    defs = chosen.definitions
    m = chosen.membership
    sizes = m.sum(axis=0)
    non_singleton = sizes >= 2
    groups = class_groups()
    share = chosen.shares
    pairs = int((np.triu(share, k=1)).sum())
    return {
        "file": str(chosen.path),
        "format": chosen.format,
        "sha256": chosen.sha256,
        "superclasses": len(defs),
        "empty_superclasses": [d.id for d, n in zip(defs, sizes) if n == 0],
        "non_singleton_superclasses": int(non_singleton.sum()),
        "classes_without_superclass": int((m[:, non_singleton].sum(axis=1) == 0).sum()),
        "same_superclass_pairs": pairs,
        "superclass_size_min": int(sizes[non_singleton].min()) if non_singleton.any() else 0,
        "superclass_size_median": float(np.median(sizes[non_singleton])) if non_singleton.any() else 0.0,
        "superclass_size_max": int(sizes[non_singleton].max()) if non_singleton.any() else 0,
        # A superclass counts in every group where it has members (the paper's 50 + 101 + 16 = 167 > 161).
        "superclasses_per_group": {g: int((m[groups == g][:, non_singleton].any(axis=0)).sum()) for g in GROUPS},
        "classes_per_group": {g: int((groups == g).sum()) for g in GROUPS},
        "collapsed_pairs": len(collapsed_pairs()),
    }
