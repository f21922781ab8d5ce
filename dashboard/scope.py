"""Which sidebar filters each page ignores, and why (the sidebar greys them out with that reason)."""

from __future__ import annotations

from analysis.store.filters import ErrorFilter

_CONFUSION = "the confusion filter narrows lists of errors; this page shows per-class or per-model figures"
_REVIEW = "reviews are per error; this page counts images or models, so it shows every review state"
# page url_path ("" = Overview) -> {ErrorFilter field: why the page ignores it}
IGNORED: dict[str, dict[str, str]] = {
    "": {"models": "the page's own Model choice picks one model (the first sidebar model is its default)",
         "families": "one model is shown; its family is fixed",
         "review": _REVIEW},
    "browse": {},
    "compare": {"models": "the page's Model A and Model B are compared (the sidebar's models are their defaults)",
                "families": "the two models are chosen on the page",
                "review": _REVIEW},
    "experts": {"dataset": "the experts reviewed ImageNet validation mistakes of ViT-3B and Greedy Soups only",
                "models": "the reviewed models are fixed (ViT-3B, Greedy Soups)",
                "families": "the reviewed models are fixed (ViT-3B, Greedy Soups)",
                "min_models": "the reviewed mistakes come from the expert files, not from the stored models",
                "review": "this page compares the Vasudevan experts' verdicts",
                "factors": "the expert files are compared as a whole",
                "target": _CONFUSION, "prediction": _CONFUSION},
    "zoo": {"categories": "the page's own Error category picks the category plotted",
            "groups": "the page's own Group picks the class group plotted",
            "review": _REVIEW,
            "factors": "the zoo's figures are per-model summaries over all images",
            "target": _CONFUSION, "prediction": _CONFUSION},
    "factors": {"dataset": "ImageNet-X annotates validation images only: the page always reads imagenet-val",
                **{name: "each row is one error category over all its errors; models, families and groups apply"
                   for name in ("categories", "superclasses", "class_search", "min_models", "review", "factors",
                                "target", "prediction")}},
    "run": {name: "a run predicts every selected image; filters apply to what it stored, on the other pages"
            for name in ("dataset", "models", "categories", "superclasses", "families", "groups", "class_search",
                         "min_models", "review", "factors", "target", "prediction")},
}
# Filters a page applies only to part of it: said under the sidebar.
PARTLY: dict[str, str] = {
    "": "The accuracy figures are over all images; the filters narrow the composition, the tree and the confusions.",
    "compare": "Compare keeps the images where A's or B's prediction matches the filters.",
    "zoo": "Superclass, class name and 'made by k models' narrow the hierarchy chart; families and models the "
           "stored points.",
}


def ignored(page: str) -> dict[str, str]:
    """{field: reason} of the filters `page` (a url_path) ignores."""
    return IGNORED.get(page, {})


def applied(flt: ErrorFilter, page: str) -> ErrorFilter:
    """`flt` with the fields `page` ignores set back to their defaults (dataset is kept: every page reads one)."""
    default = ErrorFilter()
    changes = {f: getattr(default, f) for f in ignored(page) if f != "dataset" and hasattr(default, f)}
    return flt.with_(**changes)


def filter_pairs(frame, sets: dict, flt: ErrorFilter, *, category_columns=("expert", "automatic")):
    """Rows of a (target, prediction) frame read outside the store (the experts') that `flt` selects: `sets` is
    `views.class_sets(con, flt)`; a row is kept when its target's group, its target or prediction superclass and
    name, and one of its `category_columns` match."""
    keep = frame["target"].notna()
    if sets.get("group") is not None:
        keep &= frame["target"].isin(sets["group"])
    for name in ("superclass", "search"):
        if sets.get(name) is not None:
            keep &= frame["target"].isin(sets[name]) | frame["prediction"].isin(sets[name])
    if flt.categories:
        keep &= frame[list(category_columns)].isin(flt.categories).any(axis=1)
    return frame[keep]
