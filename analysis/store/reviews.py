"""The user's own verdicts on errors (schema v5 `reviews`): save one, list them, compare a reviewer with the
automatic categories like the Vasudevan experts, and `python -m analysis reviews export|import FILE`.

A review is one reviewer's verdict on one model's error (model, dataset, image and the prediction it made): an error
category of `analysis.taxonomy.categories` or `label_wrong` (the image's label is wrong), with a note. Saving again
replaces that reviewer's verdict on that error. `build` never touches the table. An import is validated as a whole
file before anything is written: the first bad row is named with its field, and the store stays unchanged.
"""

from __future__ import annotations

import argparse
import io
import unicodedata
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from analysis import paths
from analysis.store import database, export
from analysis.taxonomy import agreement, categories

LABEL_WRONG = "label_wrong"
VERDICTS: tuple[str, ...] = (*categories.ERROR_IDS, LABEL_WRONG)
VERDICT_NAMES: dict[str, str] = {**{c: categories.NAMES[c] for c in categories.ERROR_IDS}, LABEL_WRONG: "Label wrong"}
MAX_REVIEWER = 64
MAX_NOTE = 2000
# The CSV of `export_reviews` (and the dashboard's download); `import` needs REQUIRED and reads the optional
# reviewed_at, file_name and note; the other columns (names, the automatic category) are for reading only.
COLUMNS = ("reviewer", "reviewed_at", "model_id", "dataset", "image_id", "file_name", "prediction",
           "prediction_name", "target", "target_name", "automatic", "verdict", "note")
REQUIRED = ("reviewer", "model_id", "dataset", "image_id", "prediction", "verdict")
_KEY = ("reviewer", "model_id", "dataset", "image_id")

_DELETE = "DELETE FROM reviews WHERE reviewer = ? AND model_id = ? AND dataset = ? AND image_id = ?"
_INSERT = """
    INSERT INTO reviews (reviewer, reviewed_at, model_id, dataset, image_id, file_name, prediction, verdict, note)
    VALUES (?, coalesce(?::TIMESTAMP, date_trunc('second', current_localtimestamp())), ?, ?, ?, ?, ?, ?, ?)
"""
_DELETE_INCOMING = """
    DELETE FROM reviews r USING _incoming n
    WHERE r.reviewer = n.reviewer AND r.model_id = n.model_id AND r.dataset = n.dataset AND r.image_id = n.image_id
"""
_INSERT_INCOMING = """
    INSERT INTO reviews (reviewer, reviewed_at, model_id, dataset, image_id, file_name, prediction, verdict, note)
    SELECT reviewer, coalesce(reviewed_at, date_trunc('second', current_localtimestamp())), model_id, dataset, image_id,
           file_name, prediction, verdict, note FROM _incoming
"""
_IMAGE = "SELECT file_name FROM images WHERE dataset = ? AND image_id = ?"
_IMAGES_OF = "SELECT dataset, image_id, file_name FROM images WHERE list_contains(?, dataset)"
_DATASETS = "SELECT dataset, count(*) FROM images GROUP BY dataset"
_LIST = """
    SELECT r.reviewer, strftime(r.reviewed_at, '%Y-%m-%d %H:%M:%S') AS reviewed_at, r.model_id, r.dataset,
           r.image_id, r.file_name, r.prediction, pc.name AS prediction_name, i.target, tc.name AS target_name,
           coalesce(c.category, CASE WHEN r.prediction = i.target THEN 'correct' ELSE 'unclassified' END) AS automatic,
           r.verdict, r.note
    FROM reviews r
    LEFT JOIN images i ON i.dataset = r.dataset AND i.image_id = r.image_id
    LEFT JOIN classes pc ON pc.class_id = r.prediction
    LEFT JOIN classes tc ON tc.class_id = i.target
    LEFT JOIN pair_categories c ON c.dataset = r.dataset AND c.image_id = r.image_id AND c.prediction = r.prediction
    WHERE ($reviewer IS NULL OR r.reviewer = $reviewer) AND ($dataset IS NULL OR r.dataset = $dataset)
      AND ($model_id IS NULL OR r.model_id = $model_id) AND ($image_id IS NULL OR r.image_id = $image_id)
    ORDER BY r.reviewer, r.dataset, r.image_id, r.model_id
"""
_REVIEWERS = "SELECT DISTINCT reviewer FROM reviews ORDER BY reviewer"


def check_reviewer(name: object) -> str:
    """`name` stripped: 1-64 printable characters; ValueError naming the fix otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"reviewer={name!r} must be a non-empty name, e.g. 'alice'")
    name = name.strip()
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")), None)
    if bad is not None:
        raise ValueError(f"reviewer {name!r} contains the control or invisible character U+{ord(bad):04X}; "
                         "use printable characters only, e.g. 'alice'")
    if len(name) > MAX_REVIEWER:
        raise ValueError(f"reviewer {name[:20]!r}… is {len(name)} characters long; use at most {MAX_REVIEWER}")
    return name


def check_verdict(verdict: object) -> str:
    """`verdict` when it is one of VERDICTS; ValueError listing them otherwise."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} is not a verdict; use one of {', '.join(VERDICTS)}")
    return str(verdict)


def check_note(note: object) -> str:
    """`note` (a string of at most MAX_NOTE characters; line breaks and tabs allowed, other control characters not)."""
    if note is None:
        return ""
    if not isinstance(note, str):
        raise TypeError(f"note={note!r} must be a string")
    bad = next((c for c in note if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise ValueError(f"the note contains the control character U+{ord(bad):04X}; remove it")
    if len(note) > MAX_NOTE:
        raise ValueError(f"the note is {len(note)} characters long; keep it to at most {MAX_NOTE}")
    return note.strip()


def _check_model_id(model_id: object) -> str:
    from analysis.store import publish

    return publish.check_model_id(model_id)


def save_review(con: duckdb.DuckDBPyConnection, *, reviewer: str, model_id: str, dataset: str, image_id: int,
                prediction: int, verdict: str, note: str = "") -> None:
    """Store `reviewer`'s verdict on the error of `model_id` on image `image_id` of `dataset` (replacing theirs).

    `con` must be a write connection. ValueError/TypeError for a bad reviewer, verdict, note, model id, a
    prediction outside 0-999 or an image the store does not hold; nothing is written then.
    """
    reviewer, verdict, note = check_reviewer(reviewer), check_verdict(verdict), check_note(note)
    model_id = _check_model_id(model_id)
    for name, value in (("image_id", image_id), ("prediction", prediction)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}={value!r} must be an integer")
    if not 0 <= int(prediction) < 1000:
        raise ValueError(f"prediction={prediction!r} must be a class id 0-999")
    row = database.first(con, _IMAGE, [dataset, int(image_id)])
    if row is None:
        raise ValueError(f"image {image_id!r} of dataset {dataset!r} is not in the store; review a stored error")
    with database.transaction(con):
        con.execute(_DELETE, [reviewer, model_id, dataset, int(image_id)])
        con.execute(_INSERT, [reviewer, None, model_id, dataset, int(image_id), row[0], int(prediction), verdict, note])


def reviews_frame(con: duckdb.DuckDBPyConnection, *, reviewer: str | None = None, dataset: str | None = None,
                  model_id: str | None = None, image_id: int | None = None) -> pd.DataFrame:
    """The stored reviews (columns COLUMNS; `automatic` = the pair's category in this store), narrowed by the
    given arguments, ordered by reviewer, dataset, image, model."""
    params = {"reviewer": reviewer, "dataset": dataset, "model_id": model_id,
              "image_id": None if image_id is None else int(image_id)}
    return con.execute(_LIST, params).df()[list(COLUMNS)]


def reviewers(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of everyone with a stored review, sorted."""
    return [r[0] for r in con.execute(_REVIEWERS).fetchall()]


def comparison(con: duckdb.DuckDBPyConnection, reviewer: str, *, dataset: str | None = None) -> pd.DataFrame:
    """`reviewer`'s reviews as `agreement.compare` frames them: the verdict in `expert`, the pair's automatic
    category in `automatic`, and `agree`; plus the review's model, dataset, image, names and note."""
    frame = reviews_frame(con, reviewer=check_reviewer(reviewer), dataset=dataset)
    out = frame.rename(columns={"verdict": "expert"})
    out["agree"] = out["expert"] == out["automatic"]
    return out


def confusion(frame: pd.DataFrame) -> pd.DataFrame:
    """Verdict (rows) × automatic (columns) counts of a `comparison`, in taxonomy order with label_wrong last."""
    return agreement.confusion(frame, order=(*categories.IDS, "unclassified", LABEL_WRONG))


def figures(frame: pd.DataFrame) -> dict:
    """Reviewed errors, agreement (0-1) and Cohen's kappa (`agreement.cohen_kappa`) of a `comparison`."""
    if frame.empty:
        return {"reviewed": 0, "agreement": float("nan"), "kappa": float("nan")}
    return {"reviewed": len(frame), "agreement": float(frame["agree"].mean()),
            "kappa": agreement.cohen_kappa(frame["expert"], frame["automatic"])}


# --- CSV export and import -----------------------------------------------------------------------------


def export_reviews(con: duckdb.DuckDBPyConnection, output: Path | str, *, reviewer: str | None = None,
                   store: Path | str | None = None, force: bool = False) -> int:
    """Write the reviews (all, or `reviewer`'s) as CSV to `output` (checked like `export`'s); returns the rows."""
    frame = reviews_frame(con, reviewer=reviewer)
    export.write_csv(frame, output, store=store, force=force)
    return len(frame)


def csv_bytes(con: duckdb.DuckDBPyConnection, *, reviewer: str | None = None) -> bytes:
    """The reviews as the CSV `export_reviews` writes (the dashboard's download)."""
    return export.to_csv(reviews_frame(con, reviewer=reviewer)).encode()


class _Row:
    """Names the row and field of a bad value: 'reviews.csv row 3 (line 4), field verdict: ...'."""

    def __init__(self, source: str, index: int) -> None:
        self.where = f"{source} row {index + 1} (line {index + 2})"

    def error(self, field: str, message: str) -> ValueError:
        return ValueError(f"{self.where}, field {field}: {message}; nothing was imported")


def _read_csv(data: bytes | Path, source: str) -> pd.DataFrame:
    try:
        raw = data if isinstance(data, bytes) else Path(data).read_bytes()
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise FileNotFoundError(f"reviews CSV {source} does not exist") from None
        raise ValueError(f"cannot read reviews CSV {source}: {exc.strerror or exc}") from None
    try:
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = " ".join(str(exc).split())[:160] or "empty"
        raise ValueError(f"reviews CSV {source} is not a readable CSV ({reason}); export one with "
                         "`python -m analysis reviews export FILE` to see the format") from None
    repeated = sorted({c for c in frame.columns if "." in c and c.split(".")[0] in frame.columns})
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"reviews CSV {source} lacks the column(s) {missing}; it needs {', '.join(REQUIRED)} "
                         "(and may have reviewed_at, file_name, note)")
    if repeated:
        raise ValueError(f"reviews CSV {source}: column(s) {repeated} appear more than once in the header")
    if frame.empty:
        raise ValueError(f"reviews CSV {source} holds no reviews (a header only); nothing was imported")
    return frame


def _int(row: _Row, field: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise row.error(field, f"{text!r} is not an integer") from None
    if not low <= value <= high:
        raise row.error(field, f"{value} is outside {low}-{high}")
    return value


def parse_reviews(con: duckdb.DuckDBPyConnection, data: bytes | Path, *, source: str | None = None) -> pd.DataFrame:
    """Validate a reviews CSV (bytes or a file) against the store as a whole; the rows to import.

    ValueError naming the file, row and field of the first problem: missing columns, a bad reviewer, model id,
    verdict, note, time, an unknown dataset or image, a file name that is not that image's, a prediction outside
    0-999, or two rows for the same reviewer and error.
    """
    source = source or str(data if isinstance(data, Path) else "upload")
    frame = _read_csv(data, source)
    sizes = dict(con.execute(_DATASETS).fetchall())
    wanted = sorted(set(frame["dataset"]) & set(sizes))
    files = {(d, i): f for d, i, f in con.execute(_IMAGES_OF, [wanted]).fetchall()} if wanted else {}
    has = {c: c in frame.columns for c in ("reviewed_at", "file_name", "note")}
    rows, seen = [], {}
    for index, record in enumerate(frame.to_dict("records")):
        row = _Row(source, index)
        try:
            reviewer = check_reviewer(record["reviewer"])
        except ValueError as exc:
            raise row.error("reviewer", str(exc)) from None
        try:
            model_id = _check_model_id(record["model_id"])
        except ValueError as exc:
            raise row.error("model_id", str(exc)) from None
        try:
            verdict = check_verdict(record["verdict"].strip())
        except ValueError as exc:
            raise row.error("verdict", str(exc)) from None
        dataset = record["dataset"].strip()
        if dataset not in sizes:
            raise row.error("dataset", f"{dataset!r} is not a dataset of this store ({', '.join(sorted(sizes))})")
        image_id = _int(row, "image_id", record["image_id"], 0, sizes[dataset] - 1)
        if (dataset, image_id) not in files:
            raise row.error("image_id", f"image {image_id} is not in dataset {dataset!r}")
        prediction = _int(row, "prediction", record["prediction"], 0, 999)
        file_name = record["file_name"].strip() if has["file_name"] else ""
        if file_name and file_name != files[(dataset, image_id)]:
            raise row.error("file_name", f"{file_name!r} is not image {image_id} of {dataset!r} "
                                         f"(that is {files[(dataset, image_id)]!r})")
        try:
            note = check_note(record["note"]) if has["note"] else ""
        except ValueError as exc:
            raise row.error("note", str(exc)) from None
        when = record["reviewed_at"].strip() if has["reviewed_at"] else ""
        stamp = None
        if when:
            stamp = pd.to_datetime(when, errors="coerce", format="ISO8601")
            if pd.isna(stamp):
                raise row.error("reviewed_at", f"{when!r} is not a time such as 2024-05-01 14:30:00")
            stamp = stamp.tz_localize(None) if stamp.tzinfo else stamp
        key = (reviewer, model_id, dataset, image_id)
        if key in seen:
            raise row.error("reviewer", f"repeats the review of row {seen[key] + 1} (same reviewer, model, dataset "
                                        "and image); keep one")
        seen[key] = index
        rows.append({"reviewer": reviewer, "reviewed_at": stamp, "model_id": model_id, "dataset": dataset,
                     "image_id": image_id, "file_name": files[(dataset, image_id)], "prediction": prediction,
                     "verdict": verdict, "note": note})
    out = pd.DataFrame(rows)
    out["reviewed_at"] = pd.to_datetime(out["reviewed_at"]).astype("datetime64[us]")
    out["image_id"] = out["image_id"].astype(np.int32)
    out["prediction"] = out["prediction"].astype(np.int16)
    return out


def import_reviews(con: duckdb.DuckDBPyConnection, data: bytes | Path, *, source: str | None = None) -> dict:
    """Validate (`parse_reviews`) then write the reviews in one transaction, replacing each reviewer's earlier
    verdict on the same error; returns {'imported': rows, 'replaced': earlier reviews replaced}."""
    frame = parse_reviews(con, data, source=source)
    before = database.first(con, "SELECT count(*) FROM reviews")[0]
    with database.transaction(con):
        database.insert_frame(con, _DELETE_INCOMING, frame)
        database.insert_frame(con, _INSERT_INCOMING, frame)
    after = database.first(con, "SELECT count(*) FROM reviews")[0]
    return {"imported": len(frame), "replaced": int(before + len(frame) - after)}


def cli_reviews(args: argparse.Namespace) -> int:
    """`python -m analysis reviews export FILE [--reviewer NAME] [--force]` / `reviews import FILE` [--db FILE]."""
    path = paths.db_path(args.db)
    if args.action == "export":
        con = database.connect(path, read_only=True)
        try:
            rows = export_reviews(con, args.file, reviewer=args.reviewer, store=path, force=args.force)
        finally:
            con.close()
        print(f"wrote {rows} reviews to {args.file}")
        return 0
    database.check_exists(path)
    if not Path(args.file).is_file():
        raise FileNotFoundError(f"reviews CSV {args.file} does not exist")
    con = database.connect(path)
    try:
        counts = import_reviews(con, Path(args.file), source=str(args.file))
    finally:
        con.close()
    print(f"imported {counts['imported']} reviews into {path} ({counts['replaced']} replaced earlier verdicts)")
    return 0
