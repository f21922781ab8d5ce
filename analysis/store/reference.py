"""The reference build of the store: classes, superclasses, image sets with their labels, co-occurrences,
expert labels and the paper's model-zoo tables, loaded in one transaction (`python -m analysis build`).

When the knowledge that decides a pair's category changed since the last build, every stored pair is
classified again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import paths
from analysis.store import database, factors, publish, queries
from analysis.store.database import StoreError

# Files whose content decides the category of a pair (with the active superclass file): a change re-classifies
# every stored pair on build.
_CLASSIFIER_FILES = (paths.COLLAPSED_JSON, paths.WORDNET_JSON,
                     *(paths.ROOT / "analysis" / path for path in (
                         "taxonomy/classify.py", "taxonomy/labelsets.py", "knowledge/cooccurrence.py",
                         "taxonomy/categories.py")))


def _say(message: str, progress: bool) -> None:
    if progress:
        print(f"build: {message}", file=sys.stderr, flush=True)


def _classes_frame() -> pd.DataFrame:
    from analysis.knowledge import classes, superclasses, wordnet

    graph = wordnet.load()
    cls = classes.classes()
    return pd.DataFrame({
        "class_id": np.arange(len(cls), dtype=np.int16),
        "wnid": [c.wnid for c in cls],
        "name": [c.name for c in cls],
        "lemmas": [list(c.lemmas) for c in cls],
        "definition": [c.definition for c in cls],
        "grp": superclasses.class_groups().tolist(),
        "wordnet_path": [graph.display_path(c.wnid) for c in cls],
    })


def _superclass_frames(definitions) -> tuple[pd.DataFrame, pd.DataFrame]:
    defs = definitions.definitions
    member = definitions.membership
    sc = pd.DataFrame({"superclass_id": [d.id for d in defs], "name": [d.name for d in defs],
                       "grp": [d.group for d in defs], "size": member.sum(axis=0).astype(np.int32)})
    rows, cols = np.nonzero(member)
    links = pd.DataFrame({"class_id": rows.astype(np.int16), "superclass_id": np.array([d.id for d in defs])[cols]})
    return sc, links


def images_table(labelset, file_names: list[str]) -> pa.Table:
    """Rows of `images` for an image set: one per `file_names (N,)` entry, targets and labels from `labelset`."""
    n = len(labelset.targets)
    return pa.table({
        "image_id": pa.array(np.arange(n, dtype=np.int32)),
        "file_name": pa.array(file_names, pa.string()),
        "target": pa.array(np.asarray(labelset.targets, dtype=np.int16)),
        "labels": pa.array([list(l) for l in labelset.labels_list], pa.list_(pa.int16())),
        "evaluated": pa.array(np.asarray(labelset.evaluated, dtype=bool)),
        "non_prototypical": pa.array(np.asarray(labelset.non_prototypical, dtype=bool)),
    })


def _dataset_loads(missing: list[str]) -> list[tuple[tuple, pa.Table]]:
    """(datasets row, images table) for imagenet-val (ReaL) and samples (single labels), when available."""
    from analysis.knowledge import classes
    from analysis.taxonomy import labelsets

    real = labelsets.real()
    val_root = paths.imagenet_dir()
    out = [(("imagenet-val", "real", str(val_root) if val_root else None,
             "ImageNet validation set (50,000 images), ReaL multi-labels"),
            images_table(real, [classes.val_file_name(i) for i in range(classes.NUM_VAL)]))]
    samples = classes.sample_images()
    if samples:
        single = labelsets.single(np.array([c for _, c in samples], dtype=np.int16))
        out.append((("samples", "single", str(samples[0][0].parent),
                     "One sample image per class (EliSchwartz/imagenet-sample-images), single labels"),
                    images_table(single, [p.name for p, _ in samples])))
    else:
        missing.append("sample_images")
    return out


def _optional(loader, source: str, missing: list[str]):
    try:
        return loader()
    except FileNotFoundError:
        missing.append(source)
        return None


def _paper_frames(missing: list[str]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    from analysis.knowledge import zoo

    models = _optional(zoo.load_models, "zoo_models", missing)
    if models is not None:
        models = models.rename(columns={"dataset": "training_data"})
        models["extra_annotations"] = models["extra_annotations"].astype(str)
    stats = _optional(zoo.load_all_stats, "zoo_stats", missing)
    if stats is not None:
        stats = pd.DataFrame({
            "model_dir_id": stats["model_dir_id"], "dataset": stats["dataset"], "grp": stats["group"],
            "num_params": stats["num_params"], "training_data": stats["training_data"], "arch": stats["arch"],
            "arch_family": stats["arch_family"], "arch_group": stats["arch_group"],
            "top1": stats["top1_val_acc"], "mla": stats["mla_group"], "mla_minor": stats["mla_group_minor_error"],
            "mla_explainable": stats["mla_group_explainable_error"], "num_errors": stats["num_group_top1_errors"],
            **{c: stats[c] for c in stats.columns if c.startswith("count_")},
        })
    return models, stats


def _experts_frame(missing: list[str]) -> pd.DataFrame | None:
    from analysis.knowledge import experts

    frames = []
    for expert, source in experts.EXPERTS.items():
        df = _optional(lambda e=expert: experts.load_expert(e), source, missing)
        if df is not None:
            frames.append(df)
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True).rename(columns={"image_index": "image_id"})


def _imagenet_x_frame(progress: bool) -> tuple[pd.DataFrame | None, str]:
    """The ImageNet-X annotations (sha256-verified) when the optional imagenet-x package is installed, and a note."""
    from analysis.knowledge import imagenet_x

    if not imagenet_x.available():
        return None, f"not installed: {imagenet_x.INSTALL}"
    _say("loading the ImageNet-X factor annotations (CC BY-NC 4.0)", progress)
    return imagenet_x.load(), f"imagenet-x {imagenet_x.VERSION}, sha256 {imagenet_x.SHA256[imagenet_x.MULTI_FACTOR][:16]}"


def classifier_fingerprint() -> str:
    """sha256 over the active superclass definitions, the other knowledge files and the classifier's sources."""
    from analysis.knowledge import superclasses

    digest = hashlib.sha256()
    digest.update(b"superclasses:" + superclasses.active().sha256.encode())
    for path in _CLASSIFIER_FILES:
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()[:16]


def build(path: Path | str | None = None, *, progress: bool = True) -> dict[str, int]:
    """Create or refresh the store's reference tables in one transaction; safe to re-run.

    First the downloaded files are checked against their pinned sha256 (FetchError names a changed one) and an
    existing store is read through (CorruptStoreError for a damaged one): neither is written on failure.

    Loads classes, superclasses (of the active definition file, recorded in meta `superclasses_file`,
    `superclasses_sha256`, `superclasses_format`), datasets + images (imagenet-val with ReaL labels, samples),
    ReaL co-occurrences, expert labels and the paper's 962-model tables. Sources not fetched yet are skipped
    and listed in meta `missing_sources`. When the classifier's knowledge (the superclass file included)
    changed since the last build, every stored (image, prediction) pair is classified again. Returns row
    counts per table.
    """
    from analysis.knowledge import cooccurrence, fetch, superclasses
    from analysis.taxonomy import labelsets

    path = paths.db_path(path)
    if path.is_file() and path.stat().st_size > 0:
        database.verify(path)  # every block read: a damaged store is refused before anything is written to it
    verified = fetch.verify_local()
    con = database.connect(path)  # before the slow loading: a locked or unusable store fails first
    try:
        _say(f"{verified} downloaded files match their pinned sha256", progress)
        missing: list[str] = []
        definitions = superclasses.active()
        _say(f"loading classes, WordNet paths and superclasses ({definitions.describe()})", progress)
        classes_df = _classes_frame()
        superclasses_df, links_df = _superclass_frames(definitions)
        _say("loading the image sets (imagenet-val with ReaL labels, samples)", progress)
        dataset_loads = _dataset_loads(missing)
        cooc = cooccurrence.pairs_table(labelsets.real_cooccurrence())
        _say("loading expert labels and the paper's model zoo", progress)
        experts_df = _experts_frame(missing)
        paper_models, paper_stats = _paper_frames(missing)
        imagenet_x_df, imagenet_x_note = _imagenet_x_frame(progress)
        fingerprint = classifier_fingerprint()
        with database.transaction(con):
            con.execute(queries.ERROR_INDEX_DROP)  # its class names and image targets are rewritten below
            for table, frame in (("classes", classes_df), ("superclasses", superclasses_df),
                                 ("class_superclasses", links_df), ("expert_labels", experts_df),
                                 ("paper_models", paper_models), ("paper_model_stats", paper_stats)):
                con.execute(queries.REFERENCE_DELETES[table])
                if frame is not None:
                    database.insert_frame(con, queries.REFERENCE_INSERTS[table], frame)
                _say(f"{table}: {0 if frame is None else len(frame)} rows", progress)
            for row, images in dataset_loads:
                con.execute(queries.DATASET_UPSERT, list(row))
                con.execute(queries.IMAGES_DELETE, [row[0]])
                database.insert_frame(con, queries.IMAGES_INSERT, images, [row[0]])
                _say(f"images of {row[0]}: {images.num_rows} rows", progress)
            factors.replace_annotations(con, imagenet_x_df)
            _say(f"imagenet_x: {0 if imagenet_x_df is None else len(imagenet_x_df)} rows ({imagenet_x_note})", progress)
            con.execute(queries.COOCCURRENCE_DELETE, ["real"])
            database.insert_frame(con, queries.COOCCURRENCE_INSERT, cooc, ["real"])
            _say(f"cooccurrence: {len(cooc)} class pairs", progress)
            previous = database.first(con, queries.META_GET, ["classifier_fingerprint"])
            if previous and previous[0] != fingerprint:
                _say("the classifier's knowledge changed: classifying every stored pair again", progress)
                publish.reclassify(con)
            for key, value in (("classifier_fingerprint", fingerprint), ("oov_check", "off"),
                               ("built_at", time.strftime("%Y-%m-%dT%H:%M:%S")),
                               ("missing_sources", " ".join(sorted(set(missing)))),
                               ("superclasses_file", str(definitions.path)),
                               ("superclasses_sha256", definitions.sha256),
                               ("superclasses_format", definitions.format),
                               ("superclasses", definitions.describe()), ("imagenet_x", imagenet_x_note)):
                con.execute(queries.META_SET, [key, value])
        counts = database.table_counts(con)
    finally:
        con.close()
    if missing:
        _say(f"skipped missing sources {sorted(set(missing))}; run `python -m analysis fetch`", progress)
    return counts


def _free_name(path: Path, suffix: str) -> Path:
    """`path` + `suffix`, or + `suffix-2`, `-3`, ... when taken (with its .wal)."""
    for n in range(1, 1000):
        candidate = path.with_name(path.name + suffix + (f"-{n}" if n > 1 else ""))
        if not candidate.exists() and not candidate.with_name(candidate.name + ".wal").exists():
            return candidate
    raise StoreError(f"too many {path.name}{suffix}* files next to {path}; remove old ones")


def rebuild(path: Path | str | None = None, *, progress: bool = True) -> tuple[dict[str, int], Path | None]:
    """Build a fresh store at `path` in place of a damaged one, kept as `<path>.corrupt`; returns (counts, kept).

    A readable store is refused (StoreError): nothing of it is replaced. The fresh store is built next to it and
    renamed over it only once complete, so a failed rebuild leaves the damaged file where it was.
    """
    path = paths.db_path(path)
    if path.exists():
        try:
            database.verify(path)
        except database.CorruptStoreError:
            pass
        else:
            raise StoreError(f"store {path} is readable, --rebuild only replaces a damaged store; run build without "
                             "--rebuild to update it, or pass another --db for a fresh one")
    fresh = _free_name(path, ".rebuild")
    try:
        counts = build(fresh, progress=progress)
        kept = None
        if path.exists():
            kept = _free_name(path, ".corrupt")
            os.replace(path, kept)
            wal = path.with_name(path.name + ".wal")
            if wal.exists():
                os.replace(wal, kept.with_name(kept.name + ".wal"))
        os.replace(fresh, path)
    finally:
        fresh.unlink(missing_ok=True)
        fresh.with_name(fresh.name + ".wal").unlink(missing_ok=True)
    return counts, kept


def cli_build(args: argparse.Namespace) -> int:
    """`python -m analysis build [--db FILE] [--superclasses FILE] [--rebuild] [--wait SECONDS]`."""
    from analysis.knowledge import superclasses

    path = paths.db_path(args.db)
    if args.rebuild:
        counts, kept = rebuild(path)
        if kept is not None:
            print(f"kept the damaged store as {kept}")
    else:
        counts = build(path)
    print(f"built {path}: " + ", ".join(f"{t} {n}" for t, n in counts.items() if n))
    print(f"superclasses: {superclasses.active().describe()}")
    return 0
