"""Where the project's files live: committed knowledge, downloads, the store, the mirror."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
SOURCES_TSV = DATA_DIR / "sources.tsv"
WORDNET_JSON = DATA_DIR / "wordnet_imagenet.json"
SUPERCLASSES_JSON = DATA_DIR / "superclasses.json"
COLLAPSED_JSON = DATA_DIR / "collapsed_classes.json"

MIRROR_ENV = "IMAGENET_ERRORS_MIRROR"
EXTERNAL_ENV = "IMAGENET_ERRORS_EXTERNAL"
DB_ENV = "IMAGENET_ERRORS_DB"
CLIP_ENV = "IMAGENET_ERRORS_CLIP"
SUPERCLASSES_ENV = "IMAGENET_ERRORS_SUPERCLASSES"
IMAGENET_ENV = "IMAGENET_DIR"
IMAGE_ROOTS_ENV = "IMAGENET_ERRORS_IMAGE_ROOTS"


def external_dir() -> Path:
    """Folder of fetched public files (git-ignored); `IMAGENET_ERRORS_EXTERNAL` overrides."""
    return Path(os.environ.get(EXTERNAL_ENV) or DATA_DIR / "external")


def paper_superclasses() -> Path:
    """Where `fetch --artefacts` puts the paper's own superclass definitions (the default once present)."""
    return external_dir() / "paper" / "superclasses.json"


def default_mirror() -> Path | None:
    """The local mirror: `IMAGENET_ERRORS_MIRROR`, else `../shared/mirror` when it exists."""
    env = os.environ.get(MIRROR_ENV)
    if env:
        return Path(env)
    candidate = ROOT.parent / "shared" / "mirror"
    return candidate if candidate.is_dir() else None


def db_path(given: Path | str | None = None) -> Path:
    """The DuckDB store: `given` (a --db argument) when set, else `IMAGENET_ERRORS_DB`, else `data/errors.duckdb`."""
    if given is not None:
        return Path(given)
    return Path(os.environ.get(DB_ENV) or DATA_DIR / "errors.duckdb")


def imagenet_dir() -> Path | None:
    """The user's ImageNet validation folder from `IMAGENET_DIR`, if set."""
    env = os.environ.get(IMAGENET_ENV)
    return Path(env) if env else None


def image_roots() -> list[Path]:
    """Folders the dashboard's Run page may read images under: data/, `IMAGENET_DIR`, `IMAGENET_ERRORS_IMAGE_ROOTS`."""
    extra = [Path(p) for p in os.environ.get(IMAGE_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return [DATA_DIR] + ([imagenet_dir()] if imagenet_dir() else []) + extra
