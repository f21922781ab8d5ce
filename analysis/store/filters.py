"""One filter over stored errors, shared by the dashboard, its URL, the CSV export and the CLI."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields, replace
from typing import Mapping

_LIST_FIELDS = ("models", "categories", "superclasses", "families", "groups", "factors")
_CLASS_FIELDS = ("target", "prediction")
# review: "" (any), "reviewed" / "not_reviewed" (a user's review of the (image, prediction) mistake exists or not),
# "disagrees" (a review whose verdict differs from the automatic category).
REVIEW_STATES = ("", "reviewed", "not_reviewed", "disagrees")


@dataclass(frozen=True)
class ErrorFilter:
    """Which errors to show: every non-empty field narrows the result (empty = no restriction)."""

    models: tuple[str, ...] = ()
    dataset: str | None = None
    categories: tuple[str, ...] = ()
    superclasses: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    class_search: str = ""
    min_models: int = 1
    review: str = ""
    factors: tuple[str, ...] = ()  # ImageNet-X factor ids: the image shows any of them (imagenet-val only)
    target: int | None = None  # one confusion: the image's target class id ...
    prediction: int | None = None  # ... and / or the predicted class id

    def __post_init__(self) -> None:
        for name in _LIST_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"{name}={value!r} must be a sequence of strings, e.g. ('fine_grained',)")
            object.__setattr__(self, name, tuple(value))
        if not isinstance(self.min_models, int) or self.min_models < 1:
            raise ValueError(f"min_models={self.min_models!r} must be an integer >= 1")
        if self.review not in REVIEW_STATES:
            raise ValueError(f"review={self.review!r} must be one of {', '.join(repr(s) for s in REVIEW_STATES)}")
        for name in _CLASS_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1000):
                raise ValueError(f"{name}={value!r} must be a class id 0..999 or None")
        if self.factors:
            from analysis.knowledge import imagenet_x

            imagenet_x.check_factors(self.factors)

    def with_(self, **changes) -> "ErrorFilter":
        return replace(self, **changes)

    def to_query_params(self) -> dict[str, str]:
        """URL query parameters (lists comma-joined; defaults omitted) that `from_query_params` reads back."""
        out: dict[str, str] = {}
        default = ErrorFilter()
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            out[f.name] = ",".join(value) if f.name in _LIST_FIELDS else str(value)
        return out

    @classmethod
    def from_query_params(cls, params: Mapping[str, str]) -> "ErrorFilter":
        """Inverse of `to_query_params`; unknown keys are ignored, malformed values raise ValueError."""
        kwargs: dict = {}
        for name in _LIST_FIELDS:
            if params.get(name):
                kwargs[name] = tuple(v for v in str(params[name]).split(",") if v)
        if params.get("dataset"):
            kwargs["dataset"] = str(params["dataset"])
        if params.get("class_search"):
            kwargs["class_search"] = str(params["class_search"])
        if params.get("review"):
            kwargs["review"] = str(params["review"])
        for name in _CLASS_FIELDS:
            if params.get(name) not in (None, ""):
                raw = str(params[name])
                if not (raw.isascii() and raw.isdigit()):
                    raise ValueError(f"{name}={raw!r} must be a class id 0..999")
                kwargs[name] = int(raw)
        if params.get("min_models"):
            try:
                kwargs["min_models"] = int(params["min_models"])
            except ValueError as exc:
                raise ValueError(f"min_models={params['min_models']!r} must be an integer >= 1") from exc
        return cls(**kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ErrorFilter":
        """From the options `add_filter_arguments` defines."""
        return cls(
            models=tuple(args.model or ()), dataset=args.dataset, categories=tuple(args.category or ()),
            superclasses=tuple(args.superclass or ()), families=tuple(args.family or ()),
            groups=tuple(args.group or ()), class_search=args.class_search or "", min_models=args.min_models,
            review=getattr(args, "review", None) or "", factors=tuple(getattr(args, "factor", None) or ()),
            target=getattr(args, "target", None), prediction=getattr(args, "prediction", None),
        )

    def as_dict(self) -> dict:
        return asdict(self)


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The CLI options of an ErrorFilter (each list option may repeat)."""
    parser.add_argument("--model", action="append", help="model id (repeatable)")
    parser.add_argument("--dataset", default=None, help="dataset, e.g. imagenet-val or samples")
    parser.add_argument("--category", action="append", help="category id, e.g. fine_grained (repeatable)")
    parser.add_argument("--superclass", action="append",
                        help="superclass id, or a WordNet concept wn:<synset> such as wn:dog.n.01 (repeatable)")
    parser.add_argument("--family", action="append", help="model family (repeatable)")
    parser.add_argument("--group", action="append", choices=["organism", "artifact", "other"], help="class group")
    parser.add_argument("--class-search", default="", help="substring of the target or predicted class name")
    parser.add_argument("--min-models", type=int, default=1, help="only mistakes made by at least this many models")
    parser.add_argument("--review", choices=[s for s in REVIEW_STATES if s], default=None,
                        help="only mistakes a user reviewed, did not review, or reviewed with another verdict "
                             "than the automatic category (disagrees)")
    parser.add_argument("--target", type=int, default=None, metavar="CLASS_ID",
                        help="only images of this target class (0-999); with --prediction: one confusion")
    parser.add_argument("--prediction", type=int, default=None, metavar="CLASS_ID",
                        help="only mistakes predicting this class (0-999)")
    parser.add_argument("--factor", action="append", metavar="FACTOR",
                        help="ImageNet-X factor of the image, e.g. pose (repeatable; imagenet-val images only)")
