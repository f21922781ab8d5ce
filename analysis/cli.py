"""`python -m analysis COMMAND`: fetch data, inspect knowledge, classify, store, run models, export.

Each command is a thin wrapper over a library function; user errors (bad input, missing files)
print one clear line to stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from analysis.errors import UserError

# command -> "module:function"; the function takes the parsed args and returns an exit code.
COMMANDS = {
    "fetch": "analysis.cli:cmd_fetch",
    "info": "analysis.info:cli_info",
    "wordnet-export": "analysis.cli:cmd_wordnet_export",
    "superclasses": "analysis.cli:cmd_superclasses",
    "classify-csv": "analysis.taxonomy.classify_csv:cli_classify_csv",
    "agreement": "analysis.taxonomy.agreement:cli_agreement",
    "build": "analysis.cli:cmd_build",
    "predict": "analysis.inference.runner:cli_predict",
    "import-predictions": "analysis.store.imports:cli_import",
    "import-paper-artefacts": "analysis.store.paper_artefacts:cli_import_artefacts",
    "export": "analysis.store.export:cli_export",
    "models": "analysis.store.publish:cli_models",
    "reviews": "analysis.store.reviews:cli_reviews",
    "ingest": "analysis.store.shards:cli_ingest",
}


def _add_superclasses(p: argparse.ArgumentParser) -> None:
    p.add_argument("--superclasses", type=Path, default=None, metavar="FILE",
                   help="superclass definitions, the project's JSON or the paper's JSON lines (default "
                        "$IMAGENET_ERRORS_SUPERCLASSES, else the paper's file once fetched with --artefacts, "
                        "else data/superclasses.json)")


def _add_wait(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="while another process (a dashboard, another command) holds the store, wait up to SECONDS "
                        "for it with a countdown on stderr (default: give up after 1 s)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fetch", help="fetch and verify the public data files into data/external/")
    p.add_argument("--mirror", type=Path, default=None,
                   help="local mirror folder (<owner>/<repo>/<path>); default: $IMAGENET_ERRORS_MIRROR or ../shared/mirror")
    p.add_argument("--only", default=None, help="fetch one source only (see data/sources.tsv)")
    p.add_argument("--online", action="store_true", help="download by URL even when a mirror exists")
    p.add_argument("--artefacts", type=Path, default=None, metavar="ARCHIVE",
                   help="the paper's artefacts.tar.gz: verify its sha256 and extract its superclasses.json into "
                        "data/external/paper/, which then becomes the default superclass definitions")

    p = sub.add_parser("info", help="what data is available and how to get what is missing")
    p.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("wordnet-export", help="regenerate data/wordnet_imagenet.json from NLTK's WordNet 3.0")

    p = sub.add_parser("superclasses", help="superclass statistics and the class -> superclass map")
    p.add_argument("--json", action="store_true", help="print JSON (statistics and, under 'map', the full map)")
    _add_superclasses(p)

    p = sub.add_parser("classify-csv", help="classify the errors of a CSV of predictions")
    p.add_argument("input", type=Path, help="CSV with file_name, target, prediction (and labels with --labels given)")
    p.add_argument("output", type=Path, help="output CSV: the input plus category and reason")
    p.add_argument("--labels", choices=["given", "real", "single"], default="real",
                   help="label set: the CSV's labels column, ReaL (default), or the target alone")
    p.add_argument("--clip", default=None, metavar="CHECKPOINT|TAG",
                   help="CLIP weights for the fine-grained OOV check: an open_clip checkpoint file, or an open_clip "
                        "pretrained tag of --clip-model (e.g. openai; downloaded into open_clip's cache when online)")
    p.add_argument("--clip-model", default=None,
                   help="open_clip model name of that checkpoint (default $IMAGENET_ERRORS_CLIP_MODEL or ViT-L-14-336-quickgelu)")
    _add_superclasses(p)

    p = sub.add_parser("agreement", help="automatic vs expert categories on the experts' reviewed mistakes")
    p.add_argument("--expert", choices=["vit3b", "greedysoups"], required=True)
    p.add_argument("--csv", type=Path, default=None, help="write the per-image comparison here")
    p.add_argument("--labels", choices=["expert_verdict", "real", "real_with_target"], default="expert_verdict",
                   help="label set of the --csv comparison (the printed figures cover all three): expert_verdict "
                        "(default: ReaL + target - the reviewed prediction), real, real_with_target")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_superclasses(p)

    p = sub.add_parser("build", help="create or update the DuckDB store with the reference tables")
    p.add_argument("--db", type=Path, default=None, help="store file (default $IMAGENET_ERRORS_DB or data/errors.duckdb)")
    p.add_argument("--rebuild", action="store_true",
                   help="replace a damaged store with a freshly built one, keeping the damaged file as FILE.corrupt")
    _add_wait(p)
    _add_superclasses(p)

    p = sub.add_parser("predict", help="run a registered model on an image set and store its predictions")
    p.add_argument("--model", required=True, help="efficientnet-lite0|1|2, timm:<name> or torchvision:<name>")
    p.add_argument("--dataset", required=True, help="samples | imagenet-val | folder")
    p.add_argument("--images", type=Path, default=None, help="image folder (imagenet-val, folder)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="the engine's parallelism: local, DataLoader processes reading images (0: in this process; "
                        "default by CPU count); ray, actors each holding one model copy (>= 1; default one per GPU "
                        "of the cluster, else one per CPU)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local (default): this process; ray: Ray Data actors on a Ray cluster (docs/SCALE.md)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="--engine ray: the cluster's HOST:PORT, ray://HOST:PORT or auto (default: start a local "
                        "Ray on this machine)")
    p.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                   help="--engine ray: GPUs per actor (0: CPU; 0.5: two actors share a GPU; default 1 when the "
                        "cluster has GPUs, else 0)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--shard", default=None, help="i/n: process the i-th of n interleaved shards (0-based)")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights file for timm:/torchvision: models")
    p.add_argument("--model-id", default=None, help="store under this id (default: the model name)")
    p.add_argument("--db", type=Path, default=None)
    _add_wait(p)

    p = sub.add_parser("import-predictions", help="import a prediction file into the store")
    p.add_argument("file", type=Path)
    p.add_argument("--model-id", required=True)
    p.add_argument("--format", choices=["paper-npz", "logits", "csv"], default=None,
                   help="default: by file extension (.npz -> paper-npz, .npy -> logits, .csv -> csv)")
    p.add_argument("--metadata", type=Path, default=None, help="metadata.json (arch, family, training data, params)")
    p.add_argument("--dataset", default="imagenet-val")
    p.add_argument("--replace", action="store_true",
                   help="replace the predictions of an existing model with this id (its stored arch, family, "
                        "training data and parameters stay where the import gives none)")
    p.add_argument("--partial", action="store_true",
                   help="allow a CSV that covers only some images of the dataset (by default every image needs a "
                        "row; .npz and .npy files always hold one row per image)")
    p.add_argument("--db", type=Path, default=None)
    _add_wait(p)

    p = sub.add_parser(
        "import-paper-artefacts", help="import the paper's whole model zoo (predictions and metadata)",
        description="Import every model of the paper's artefacts (imagenet/<model>/preds.npz: top1 and top5 only, "
                    "never probs or a pickle; metadata.json: arch, family, training data, params) into imagenet-val. "
                    "Models are written 32 per transaction. A bad model (or a damaged archive) stops the import with "
                    "a message naming its folder and member: the models read before it are written and stay, and a "
                    "rerun skips every model already stored with all its predictions, so it resumes where it "
                    "stopped.")
    p.add_argument("path", type=Path, metavar="PATH",
                   help="the extracted artefacts/ folder, models-imagenet.tar.gz, or artefacts.tar.gz (its sha256 is "
                        "checked first; the other archive has no pinned checksum); archives are streamed, not "
                        "extracted")
    p.add_argument("--db", type=Path, default=None)
    _add_wait(p)

    p = sub.add_parser("export", help="export the filtered errors as CSV (same filters as the dashboard)")
    p.add_argument("output", type=Path)
    p.add_argument("--force", action="store_true", help="overwrite an existing output file (never the store or a "
                   "DuckDB file)")
    p.add_argument("--db", type=Path, default=None)
    from analysis.store.filters import add_filter_arguments  # one filter definition for CLI, export and dashboard

    add_filter_arguments(p)

    p = sub.add_parser("reviews", help="export the users' reviews of errors as CSV, or import such a CSV",
                       description="Export every stored review (reviewer, time, model, dataset, image, prediction, "
                                   "verdict, note, and the automatic category) as CSV, or import one: the whole file "
                                   "is checked first, and a bad row leaves the store unchanged.")
    p.add_argument("action", choices=["export", "import"])
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--reviewer", default=None, help="export: only this reviewer's reviews")
    p.add_argument("--force", action="store_true", help="export: overwrite an existing FILE")
    p.add_argument("--db", type=Path, default=None)
    _add_wait(p)

    p = sub.add_parser("ingest", help="publish the pending Parquet shards of predict and import-predictions",
                       description="Publish every complete pending shard in <store>.shards/ (each in one "
                                   "transaction); a shard that fails its checks moves to <store>.shards/failed/ "
                                   "with a .error.txt giving the reason.")
    p.add_argument("--db", type=Path, default=None)
    _add_wait(p)
    _add_superclasses(p)

    p = sub.add_parser("models", help="list the models in the store")
    p.add_argument("--db", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    return parser


def cmd_fetch(args: argparse.Namespace) -> int:
    from analysis import paths
    from analysis.knowledge import artefacts, fetch

    if args.artefacts is not None:
        target = artefacts.extract_superclasses(args.artefacts)
        print(f"extracted the paper's superclass definitions to {target}; they are now the default")
        return 0
    mirror = None if args.online else (args.mirror or paths.default_mirror())
    where = f"mirror {mirror}" if mirror else "the network (pinned GitHub URLs)"
    print(f"fetching into {paths.external_dir()} from {where}", file=sys.stderr)
    counts = fetch.fetch(only=args.only, mirror=mirror)
    print(f"{counts['fetched']} fetched, {counts['already_verified']} already verified")
    return 0


def cmd_wordnet_export(args: argparse.Namespace) -> int:
    from analysis.knowledge import wordnet

    summary = wordnet.export()
    print(f"wrote {summary['path']}: {summary['synsets']} synsets around {summary['classes']} classes")
    return 0


def cmd_superclasses(args: argparse.Namespace) -> int:
    from analysis.knowledge import superclasses

    stats = superclasses.statistics()
    print(f"superclasses: {superclasses.active().describe()}", file=sys.stderr)
    if args.json:
        stats["map"] = {str(k): v for k, v in superclasses.superclass_map().items()}
        print(json.dumps(stats, indent=1))
    else:
        for key, value in stats.items():
            print(f"{key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the command, and turn user errors into a message and exit code 2."""
    from analysis.knowledge.fetch import FetchError

    args = _parser().parse_args(argv)
    module_name, func_name = COMMANDS[args.command].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        if getattr(args, "superclasses", None) is not None:
            from analysis.knowledge import superclasses

            superclasses.use(args.superclasses)
        if getattr(args, "wait", None) is not None:
            from analysis.store import database

            with database.waiting(args.wait):
                return int(func(args) or 0)
        return int(func(args) or 0)
    except (UserError, FetchError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_build(args: argparse.Namespace) -> int:
    """`build`, then the pending Parquet shards ingested (a writer ingests them while it can take the store)."""
    from analysis import paths
    from analysis.store import reference, shards

    code = reference.cli_build(args)
    store = paths.db_path(args.db)
    if code == 0 and shards.pending(store):
        with shards.warning_lines():
            done = shards.ingest_pending(store)
        failed = f", {len(done.failed)} moved to {shards.shard_dir(store) / 'failed'}" if done.failed else ""
        print(f"ingested {len(done.published)} pending shards{failed}")
    return code
