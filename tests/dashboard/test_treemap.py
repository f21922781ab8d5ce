"""The error tree's nodes, computed per level, against a per-node recount of a small hand-made tree."""

from __future__ import annotations

import pandas as pd

from analysis.knowledge import concepts
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories
from dashboard import treemap

ROWS = [  # group, concept, superclass, superclass_id, class_id, class_name, category, errors
    ("organism", "dog", "dog: hound", "hound", 160, "Afghan hound", "fine_grained", 5),
    ("organism", "dog", "dog: hound", "hound", 160, "Afghan hound", "model_failure", 5),  # a tie at the class
    ("organism", "dog", "dog: hound", "hound", 161, "basset", "multi_label", 2),
    ("organism", "dog", "dog: terrier", "terrier", 180, "American Staffordshire terrier", "model_failure", 7),
    ("artifact", "(none)", "(none)", None, 409, "analog clock", "overlapping_classes", 3),
]


def test_nodes_sum_their_leaves_and_take_the_most_frequent_category():
    tree = pd.DataFrame(ROWS, columns=["group", "concept", "superclass", "superclass_id", "class_id", "class_name",
                                       "category", "errors"])
    flt = ErrorFilter(dataset="samples")
    frame = treemap.nodes(tree, flt).set_index("id")
    for node_id, node in frame.iterrows():
        depth = node_id.count("/") + 1
        keys = list(treemap.LEVELS[:depth])
        under = tree[(tree[keys].astype(str) == node_id.split("/")).all(axis=1)]
        assert node["errors"] == under["errors"].sum(), node_id
        per_category = under.groupby("category")["errors"].sum()
        top = sorted(per_category[per_category == per_category.max()].index)[0]
        assert node["colour"] == categories.COLOURS[top], node_id
    assert frame.loc["organism", "errors"] == 19 and frame.loc["artifact", "errors"] == 3
    # the tie at the Afghan hound goes to the alphabetically first category: fine_grained before model_failure
    assert frame.loc["organism/dog/dog: hound/Afghan hound", "colour"] == categories.COLOURS["fine_grained"]
    assert frame.loc["organism/dog", "drill"] == flt.with_(groups=("organism",), superclasses=("hound", "terrier"))
    leaf = frame.loc["organism/dog/dog: terrier/American Staffordshire terrier/model_failure", "drill"]
    assert leaf == flt.with_(groups=("organism",), superclasses=(concepts.of_class(180).id,),
                             categories=("model_failure",))
    assert frame.loc["artifact/(none)", "drill"] == flt.with_(groups=("artifact",))
