"""How `data/superclasses.json` is made: a stated procedure, fitted on part of the paper's reference rows and
measured on the rest (issue 9; docs/SUPERCLASSES.md).

The procedure, from error rows (the paper's fine-grained rows are positives; its fine-grained OOV, spurious
correlation, non-prototypical and model-failure rows are negatives, i.e. pairs the paper's map does not join):

1. Candidates, made by rules without looking at any row: every WordNet concept with 2..31 of the 1000
   classes (31 is the paper's largest superclass), and the visual clusters inside every larger concept
   (32..600 classes): average-linkage clusters of the classes by the cosine of their classifier weights in the
   three EfficientNet-Lite models (a class is near another when the models' weight vectors for them point the
   same way), cut at similarities 0.30, 0.25, 0.20, 0.15 and 0.12, clusters of 2..31 classes.
2. Selection: greedily take the candidate that joins the most not-yet-joined positive rows minus LAMBDA times
   the negative rows it newly joins, while that gain is positive.
3. Fill: a class no selected candidate holds gets its smallest WordNet concept of at most FILL_MAX classes,
   unless that concept joins a negative row.
4. Evidence: the positive rows' (label, prediction) pairs are joined transitively (union-find), never into a
   group of more than 31 classes nor across a negative pair.
5. Consolidation to the paper's 161 superclasses: merge the two sets that overlap (first) or whose differing
   classes are visually closest (mean cosine >= MERGE_SIMILARITY), never beyond 31 classes nor across a
   negative pair, until 161 remain.
6. Attach: while more classes than the paper's 74 are in no superclass, the one visually closest to a
   superclass (mean cosine, at least ATTACH_SIMILARITY) joins it, within the same limits.
7. Express: a set grows by the classes that no lemma predicate can tell apart from its members (the class
   cloak's every path lemma is also on poncho's path, so a superclass holding cloak holds poncho).

Every set becomes predicates of the project's format (lemma names on the hypernym paths) that select exactly
its classes. Needs the dev rows (../shared/reference), the committed WordNet subgraph and the three Lite
weights (torch) — a build-time tool; the runtime reads only the JSON.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from analysis import paths
from analysis.knowledge import classes, superclasses, wordnet

DEV_CSV = paths.ROOT.parent / "shared" / "reference" / "paper_common_errors_dev.csv"
KMAX = 31
TARGET = 161
BIG_CONCEPT_MAX = 600
VISUAL_CUTS = (0.30, 0.25, 0.20, 0.15, 0.12)
LAMBDA = 3.0
FILL_MAX = 8
MERGE_SIMILARITY = 0.06
ATTACH_SIMILARITY = 0.08
SINGLETONS = 74
# Similarities are compared after rounding, so that the last bits of BLAS and SIMD sums (which differ between
# machines) never change a decision: the same rows give the same file everywhere.
DECIMALS = 9
POSITIVE = "fine-grained"
NEGATIVE = ("fine-grained OOV", "spurious correlation", "non-prototypical", "model failure")


# --- rows and folds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    """Error rows: `category (N,)`, `labels` (N lists: multi-labels ∪ target − prediction), `prediction (N,)`."""

    category: np.ndarray
    labels: tuple[tuple[int, ...], ...]
    prediction: np.ndarray
    file_name: tuple[str, ...]

    @property
    def positive(self) -> np.ndarray:
        return self.category == POSITIVE

    @property
    def negative(self) -> np.ndarray:
        return np.isin(self.category, NEGATIVE)


def read_rows(path: Path = DEV_CSV) -> Rows:
    """The paper's reference rows (`paper_common_errors_dev.csv`)."""
    with open(path, newline="") as handle:
        raw = list(csv.DictReader(handle))
    labels = tuple(tuple(sorted(({int(x) for x in r["multi_labels"].split()} | {int(r["target"])})
                                - {int(r["prediction"])})) for r in raw)
    return Rows(np.array([r["category"] for r in raw]), labels, np.array([int(r["prediction"]) for r in raw]),
                tuple(r["file_name"] for r in raw))


def _hash_fold(key: str, k: int) -> int:
    # salted: the dev/held-out split itself is by the parity of the unsalted sha256 of the file name
    return int(hashlib.sha256(f"cv:{key}".encode()).hexdigest(), 16) % k


def image_folds(rows: Rows, k: int) -> np.ndarray:
    """Fold of each row by a hash of its image: no image on two sides."""
    return np.array([_hash_fold(f, k) for f in rows.file_name])


def pair_folds(rows: Rows, k: int) -> np.ndarray:
    """Fold of each row such that no unordered (label, prediction) pair is on two sides."""
    parent: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys = [[tuple(sorted((l, int(p)))) for l in labels] or [("row", i)]
            for i, (labels, p) in enumerate(zip(rows.labels, rows.prediction))]
    for pairs in keys:
        for q in pairs[1:]:
            parent[find(pairs[0])] = find(q)
    return np.array([_hash_fold(str(find(pairs[0])), k) for pairs in keys])


def joined(rows: Rows, member: np.ndarray) -> np.ndarray:
    """`(N,)` bool: some label of the row shares a set of `member (1000, S)` with the prediction."""
    m = member.astype(np.int32)
    share = (m @ m.T) > 0
    return np.array([bool(labels) and bool(share[list(labels), p].any()) for labels, p in zip(rows.labels, rows.prediction)])


# --- rule-made candidates ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def class_similarity() -> np.ndarray:
    """`(1000, 1000)` mean over EfficientNet-Lite0/1/2 of the cosine of the classes' classifier weight vectors."""
    import importlib

    import torch

    from analysis.inference.models import LITE

    sims = []
    for name, (_, package, cls) in sorted(LITE.items()):
        state = torch.load(getattr(importlib.import_module(package), cls).get_model_file_path(), map_location="cpu",
                           weights_only=True)
        w = state["_fc.weight"].double().numpy()
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        sims.append(w @ w.T)
    # rounded: the last bits of a matrix product differ between BLAS kernels, the decisions must not
    return np.round(np.mean(sims, axis=0), 6)


@lru_cache(maxsize=1)
def _concept_members() -> dict[str, frozenset[int]]:
    graph = wordnet.load()
    members: dict[str, set[int]] = {}
    for i, w in enumerate(graph.class_wnids):
        for a in graph.ancestors(w):
            members.setdefault(a, set()).add(i)
    return {a: frozenset(m) for a, m in members.items()}


def _average_linkage(idx: list[int], sim: np.ndarray, cuts: tuple[float, ...]) -> list[frozenset[int]]:
    """Average-linkage clusters of `idx` (never above KMAX classes) as they stand at each similarity cut."""
    clusters = [[i] for i in idx]
    link = sim[np.ix_(idx, idx)].astype(float)
    np.fill_diagonal(link, -np.inf)
    sizes = np.ones(len(idx))
    alive = np.ones(len(idx), bool)
    out, pending = [], sorted(cuts, reverse=True)
    while pending:
        allowed = np.where((sizes[:, None] + sizes[None, :] <= KMAX) & alive[:, None] & alive[None, :], link, -np.inf)
        a, b = np.unravel_index(int(np.argmax(allowed)), allowed.shape)
        best = allowed[a, b]
        while pending and best < pending[0]:  # the clusters as they stand at this cut
            out += [frozenset(clusters[k]) for k in np.flatnonzero(alive) if len(clusters[k]) >= 2]
            pending.pop(0)
        if not pending or not np.isfinite(best):
            break
        # Lance-Williams update of average linkage: the merged cluster's similarity is the size-weighted mean
        link[a] = np.round((sizes[a] * link[a] + sizes[b] * link[b]) / (sizes[a] + sizes[b]), DECIMALS)
        link[:, a] = link[a]
        link[a, a] = -np.inf
        clusters[a] = clusters[a] + clusters[b]
        sizes[a] += sizes[b]
        alive[b] = False
        link[b, :] = link[:, b] = -np.inf
    return out


@lru_cache(maxsize=1)
def candidates() -> tuple[tuple[frozenset[int], str, str], ...]:
    """(classes, kind, WordNet concept) of every rule-made candidate: concepts, then visual clusters."""
    members = _concept_members()
    out: dict[frozenset[int], tuple[str, str]] = {}
    for wnid in sorted(members, key=lambda w: (len(members[w]), w)):
        if 2 <= len(members[wnid]) <= KMAX:
            out.setdefault(members[wnid], ("concept", wnid))
    sim = class_similarity()
    for wnid in sorted(members, key=lambda w: (len(members[w]), w)):
        if KMAX < len(members[wnid]) <= BIG_CONCEPT_MAX:
            for cluster in _average_linkage(sorted(members[wnid]), sim, VISUAL_CUTS):
                out.setdefault(cluster, ("visual", wnid))
    return tuple((k, kind, wnid) for k, (kind, wnid) in out.items())


# --- the procedure ----------------------------------------------------------------------------------------


def _matrix(sets) -> np.ndarray:
    out = np.zeros((1000, len(sets)), dtype=bool)
    for j, s in enumerate(sets):
        out[list(s), j] = True
    return out


def _join_rows(rows: Rows, member: np.ndarray) -> np.ndarray:
    """`(N, S)`: set j joins row i (holds the prediction and one of its labels)."""
    out = np.zeros((len(rows.prediction), member.shape[1]), dtype=bool)
    for i, (labels, p) in enumerate(zip(rows.labels, rows.prediction)):
        if labels:
            out[i] = member[p] & member[list(labels)].any(axis=0)
    return out


def _forbidden(rows: Rows, train: np.ndarray) -> np.ndarray:
    forbid = np.zeros((1000, 1000), dtype=bool)
    for i in np.flatnonzero(rows.negative & train):
        for l in rows.labels[i]:
            forbid[l, rows.prediction[i]] = forbid[rows.prediction[i], l] = True
    return forbid


def _select(rows: Rows, train: np.ndarray, cand: np.ndarray, joins: np.ndarray, kinds: list[str]) -> list[int]:
    positive, negative = rows.positive & train, rows.negative & train
    chosen, covered, hit = [], np.zeros(len(train), bool), np.zeros(len(train), bool)
    while True:
        gain = (joins & (positive & ~covered)[:, None]).sum(0) - LAMBDA * (joins & (negative & ~hit)[:, None]).sum(0)
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        chosen.append(j)
        covered |= joins[:, j]
        hit |= joins[:, j]
    sizes = cand.sum(0)
    held = cand[:, chosen].any(axis=1) if chosen else np.zeros(1000, bool)
    for i in np.flatnonzero(~held):
        concepts = [j for j in np.flatnonzero(cand[i]) if kinds[j] == "concept" and sizes[j] <= FILL_MAX]
        for j in sorted(concepts, key=lambda j: (sizes[j], j)):
            if not (joins[:, j] & negative).any():
                if j not in chosen:
                    chosen.append(j)
                break
    return chosen


def _evidence(rows: Rows, train: np.ndarray, forbid: np.ndarray) -> list[frozenset[int]]:
    members = _concept_members()
    graph = wordnet.load()
    wnids = graph.class_wnids

    def lca_size(a, b):
        return min(len(members[c]) for c in graph.ancestors(wnids[a]) & graph.ancestors(wnids[b]))

    parent = list(range(1000))
    group = {i: {i} for i in range(1000)}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i in np.flatnonzero(rows.positive & train):
        p = int(rows.prediction[i])
        label = min(rows.labels[i], key=lambda l: (lca_size(l, p), l))
        ra, rb = find(label), find(p)
        if ra == rb or len(group[ra]) + len(group[rb]) > KMAX:
            continue
        if forbid[np.ix_(sorted(group[ra]), sorted(group[rb]))].any():
            continue
        parent[rb] = ra
        group[ra] |= group.pop(rb)
    return [frozenset(g) for g in group.values() if len(g) >= 2]


def _dedupe(sets) -> list[frozenset[int]]:
    ordered = sorted({frozenset(s) for s in sets if len(s) >= 2}, key=lambda s: (-len(s), sorted(s)))
    out: list[frozenset[int]] = []
    for s in ordered:
        if not any(s <= t for t in out):
            out.append(s)
    return out


def _consolidate(sets: list[frozenset[int]], forbid: np.ndarray, sim: np.ndarray) -> list[frozenset[int]]:
    sets = _dedupe(sets)
    while len(sets) > TARGET:
        best = None
        for a in range(len(sets)):
            for b in range(a + 1, len(sets)):
                A, B = sets[a], sets[b]
                if len(A | B) > KMAX:
                    continue
                only_a, only_b = sorted(A - B), sorted(B - A)
                cross = round(float(sim[np.ix_(only_a, only_b)].mean()), DECIMALS)
                if cross < MERGE_SIMILARITY:
                    continue
                score = (bool(A & B), cross, -a, -b)
                if best is not None and score <= best[0]:
                    continue
                if forbid[np.ix_(only_a, only_b)].any():
                    continue
                best = (score, a, b)
        if best is None:
            break
        _, a, b = best
        sets = _dedupe([s for k, s in enumerate(sets) if k not in (a, b)] + [sets[a] | sets[b]])
    return sets


def _attach(sets: list[frozenset[int]], forbid: np.ndarray, sim: np.ndarray) -> list[frozenset[int]]:
    member = _matrix(sets).T.astype(float)                                # (K, 1000)
    alone = np.flatnonzero(member.sum(0) == 0)
    closeness = np.round((member @ sim[:, alone]) / member.sum(1, keepdims=True), DECIMALS)  # (K, A) mean cosine
    blocked = (member @ forbid[:, alone]) > 0
    while len(alone) > SINGLETONS:
        full = member.sum(1) >= KMAX
        score = np.where(blocked | full[:, None], -np.inf, closeness)
        j, k = np.unravel_index(int(np.argmax(score)), score.shape)
        if not score[j, k] > ATTACH_SIMILARITY:
            break
        i = alone[k]
        member[j, i] = 1.0
        alone = np.delete(alone, k)
        closeness = np.delete(closeness, k, axis=1)
        blocked = np.delete(blocked, k, axis=1)
        closeness[j] = np.round((member[j] @ sim[:, alone]) / member[j].sum(), DECIMALS)
        blocked[j] = (member[j] @ forbid[:, alone]) > 0
    return _dedupe(frozenset(np.flatnonzero(row).tolist()) for row in member)


def fit(rows: Rows, train: np.ndarray | None = None) -> list[frozenset[int]]:
    """The superclasses (sets of class ids) the procedure makes from the rows marked `train` (default: all)."""
    train = np.ones(len(rows.prediction), dtype=bool) if train is None else np.asarray(train, dtype=bool)
    cands = candidates()
    cand = _matrix([c for c, _, _ in cands])
    kinds = [kind for _, kind, _ in cands]
    joins = _join_rows(rows, cand)
    forbid = _forbidden(rows, train)
    sim = class_similarity()
    chosen = _select(rows, train, cand, joins, kinds)
    sets = [cands[j][0] for j in chosen] + _evidence(rows, train, forbid)
    return expressible(_attach(_consolidate(sets, forbid, sim), forbid, sim))


def cross_validate(rows: Rows, folds: np.ndarray) -> dict:
    """Held-out shares: each fold's rows measured against the sets fitted on the other folds."""
    hit = np.zeros(len(folds), dtype=bool)
    for f in np.unique(folds):
        test = folds == f
        hit[test] = joined(rows, _matrix(fit(rows, ~test)))[test]
    oov = rows.category == "fine-grained OOV"
    return {"fine_grained": float(hit[rows.positive].mean()), "negative": float(hit[rows.negative].mean()),
            "fine_grained_oov": float(hit[oov].mean()),
            **{c: float(hit[rows.category == c].mean()) for c in NEGATIVE}}


# --- the definition file ----------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _matches(predicate) -> frozenset[int]:
    """The classes a project-format predicate holds (the reader's semantics: lowercase lemmas on the paths)."""
    on_path = superclasses.class_path_lemmas()
    return frozenset(i for i, lemmas in enumerate(on_path) if all(l in lemmas for l in predicate))


def expressible(sets) -> list[frozenset[int]]:
    """Each set grown by the classes lemma predicates cannot tell apart from its members (cloak: also poncho)."""
    on_path = superclasses.class_path_lemmas()
    closure = [frozenset(j for j, other in enumerate(on_path) if other >= mine) for mine in on_path]
    return _dedupe(frozenset().union(*(closure[i] for i in s)) for s in sets)


def _predicates(target: frozenset[int]) -> list[list[str]]:
    """Predicates (lists of lemma names, project semantics) whose union of matches is exactly `target`."""
    graph = wordnet.load()
    wnids = graph.class_wnids
    members = _concept_members()
    remaining, out = set(target), []
    inside = sorted((w for w, m in members.items() if m <= target and len(m) >= 2), key=lambda w: (-len(members[w]), w))
    for wnid in inside:
        if members[wnid] & remaining:
            for predicate in _concept_predicates(graph, wnid):
                if _matches(predicate) == members[wnid]:
                    out.append(predicate)
                    remaining -= members[wnid]
                    break
    for i in sorted(remaining):
        if i not in remaining:
            continue
        predicate = next((p for p in _concept_predicates(graph, wnids[i]) if _matches(p) <= target), None)
        if predicate is None:  # the narrowest conjunction of the class's own path lemmas that stays inside
            predicate, pool = [], sorted(superclasses.class_path_lemmas()[i])
            while not _matches(predicate) <= target:
                predicate.append(min(pool, key=lambda l: (len(_matches(predicate + [l])), l)))
        out.append(predicate)
        remaining -= _matches(predicate)
    covered = frozenset().union(*(_matches(p) for p in out))
    if covered != target:
        raise ValueError(f"predicates select {sorted(covered ^ target)} outside or missing from {sorted(target)}")
    return out


def _concept_predicates(graph: wordnet.WordNetGraph, wnid: str):
    """Candidate predicates for a concept: each of its lemmas, then each paired with a lemma of an ancestor."""
    own = [l.lower() for l in graph.lemmas(wnid)]
    for lemma in own:
        yield [lemma]
    for ancestor in sorted(graph.ancestors(wnid) - {wnid}):
        for extra in graph.lemmas(ancestor):
            for lemma in own:
                yield [lemma, extra.lower()]


def _name(target: frozenset[int], *, listed: bool = False) -> str:
    """Readable name: the smallest WordNet concept holding the set, followed by its classes when it holds others too."""
    graph = wordnet.load()
    members = _concept_members()
    names = [c.name for c in classes.classes()]
    wnid = min((w for w, m in members.items() if target <= m), key=lambda w: (len(members[w]), w))
    concept = graph.lemmas(wnid)[0].replace("_", " ")
    if members[wnid] == target and not listed:
        return concept
    shown = sorted(target, key=lambda i: names[i].lower())
    return f"{concept}: " + ", ".join(names[i] for i in shown[:4]) + (f" and {len(shown) - 4} more" if len(shown) > 4 else "")


def definition_file(sets: list[frozenset[int]]) -> dict:
    """The project-format JSON of the sets: id, name (its WordNet concept), groups (majority first), predicates."""
    graph = wordnet.load()
    groups = np.array([graph.group(w) for w in graph.class_wnids])
    named = [(_name(t), t) for t in sets]
    clash = Counter(n for n, _ in named)
    named = [(_name(t, listed=True) if clash[n] > 1 else n, t) for n, t in named]
    entries, ids = [], Counter()
    for name, target in sorted(named, key=lambda nt: (nt[0].lower(), sorted(nt[1]))):
        base = _slug(name)[:40].rstrip("_") or "superclass"
        ids[base] += 1
        counts = Counter(groups[sorted(target)])
        order = [g for g, _ in sorted(counts.items(), key=lambda kv: (-kv[1], wordnet.GROUPS.index(kv[0])))]
        entries.append({"id": base if ids[base] == 1 else f"{base}_{ids[base]}", "name": name,
                        "group": order[0] if len(order) == 1 else order, "predicates": _predicates(target)})
    names = Counter(e["name"] for e in entries)
    assert max(names.values()) == 1, [n for n, c in names.items() if c > 1]
    return {
        "note": ("Made by scripts/superclass_rules.py (see its docstring and docs/SUPERCLASSES.md), not copied: "
                 "rule-made candidates (WordNet concepts of 2-31 classes, and visual clusters of the EfficientNet-Lite "
                 "classifier weights inside larger WordNet concepts) selected and grown on the paper's dev reference "
                 "rows, consolidated to 161 superclasses. A predicate is a list of WordNet lemma names that must all "
                 "occur on a class's hypernym paths (case-insensitive); a superclass's predicates form a disjunction. "
                 "Cross-validated figures: docs/SUPERCLASSES.md (scripts/superclass_report.py --cv)."),
        "superclasses": entries,
    }


def write(path: Path = paths.SUPERCLASSES_JSON, rows: Rows | None = None) -> dict:
    """Fit on every dev row and write the definition file (deterministic: the same rows give the same bytes)."""
    data = definition_file(fit(rows or read_rows()))
    text = "{\n \"note\": " + json.dumps(data["note"], ensure_ascii=False) + ",\n \"superclasses\": [\n" + ",\n".join(
        "  " + json.dumps(e, ensure_ascii=False) for e in data["superclasses"]) + "\n ]\n}\n"
    Path(path).write_text(text)
    return data
