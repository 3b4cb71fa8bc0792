"""Filters: exact results, contiguous indices, and what each one records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clarec.data.clean import CleanReport
from clarec.data.dataset import Dataset
from clarec.data.filters import apply_filters, dedupe, k_core, to_implicit, weight_behaviors
from clarec.errors import ConfigError


def _ds(rows, items=True) -> Dataset:
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "weight", "behavior"])
    table = pd.DataFrame(
        {"item_id": sorted(set(df["item_id"])), "title": [f"T{i}" for i in sorted(set(df["item_id"]))]}
    )
    return Dataset.from_frame(df, items=table if items else None, name="toy")


def _pairs(ds: Dataset) -> list[tuple]:
    i = ds.interactions
    return [
        (ds.user_ids[u], ds.item_ids[t], int(ts), float(w))
        for u, t, ts, w in zip(i["user"], i["item"], i["timestamp"], i["weight"], strict=True)
    ]


DUPS = [
    ("u1", "a", 5, 2.0, "view"),
    ("u1", "a", 1, 1.0, "view"),
    ("u1", "a", 9, 2.0, "view"),
    ("u2", "b", 3, 4.0, "view"),
]


@pytest.mark.parametrize(
    "policy,expected",
    [
        ("first", [("u1", "a", 1, 1.0), ("u2", "b", 3, 4.0)]),
        ("last", [("u1", "a", 9, 2.0), ("u2", "b", 3, 4.0)]),
        ("max_weight", [("u1", "a", 5, 2.0), ("u2", "b", 3, 4.0)]),
        ("sum", [("u1", "a", 1, 5.0), ("u2", "b", 3, 4.0)]),
    ],
)
def test_dedupe_policies(policy, expected):
    report = CleanReport()
    out = dedupe(_ds(DUPS), policy, report)
    assert sorted(_pairs(out)) == expected
    assert report.steps[0].name == "dedupe" and report.steps[0].removed_interactions == 2
    with pytest.raises(ConfigError):
        dedupe(_ds(DUPS), "random")


def test_to_implicit_reindexes_contiguously():
    rows = [
        ("u1", "a", 1, 5.0, "r"),
        ("u1", "b", 2, 2.0, "r"),
        ("u2", "b", 3, 3.0, "r"),
        ("u3", "c", 4, 4.0, "r"),
    ]
    report = CleanReport()
    out = to_implicit(_ds(rows), 4, report)
    assert list(out.user_ids) == ["u1", "u3"] and list(out.item_ids) == ["a", "c"]
    assert out.interactions["user"].tolist() == [0, 1] and out.interactions["item"].tolist() == [0, 1]
    assert out.interactions["weight"].tolist() == [1.0, 1.0]
    assert out.items["title"].tolist() == ["Ta", "Tc"] and out.items["item_id"].tolist() == ["a", "c"]
    step = report.steps[0]
    assert (step.removed_interactions, step.removed_users, step.removed_items) == (2, 1, 1)


def test_weight_behaviors_drops_unmapped():
    rows = [("u1", "a", 1, 1.0, "view"), ("u1", "b", 2, 1.0, "purchase"), ("u2", "a", 3, 1.0, "share")]
    report = CleanReport()
    out = weight_behaviors(_ds(rows), {"view": 1, "cart": 2, "purchase": 4}, report)
    assert sorted(_pairs(out)) == [("u1", "a", 1, 1.0), ("u1", "b", 2, 4.0)]
    assert report.steps[0].params["unmapped"] == ["share"] and report.steps[0].removed_users == 1


def test_k_core_iterates_until_stable():
    # Removing item c (1 interaction) leaves u3 with one interaction, which then removes item b's support.
    rows = [
        ("u1", "a", 1, 1.0, "x"), ("u1", "b", 2, 1.0, "x"), ("u2", "a", 3, 1.0, "x"), ("u2", "b", 4, 1.0, "x"),
        ("u3", "b", 5, 1.0, "x"), ("u3", "c", 6, 1.0, "x"),
    ]  # fmt: skip
    report = CleanReport()
    out = k_core(_ds(rows), 2, 2, report)
    assert sorted(_pairs(out)) == [
        ("u1", "a", 1, 1.0),
        ("u1", "b", 2, 1.0),
        ("u2", "a", 3, 1.0),
        ("u2", "b", 4, 1.0),
    ]
    assert report.steps[0].params["rounds"] == 2
    assert (
        np.bincount(out.interactions["user"]).min() >= 2 and np.bincount(out.interactions["item"]).min() >= 2
    )
    assert k_core(out, 2, 2) is out  # nothing to remove: same dataset back
    with pytest.raises(ConfigError):
        k_core(out, -1, 0)


def test_apply_filters_order():
    rows = [
        ("u1", "a", 1, 5.0, "r"),
        ("u1", "a", 2, 1.0, "r"),
        ("u1", "b", 3, 4.0, "r"),
        ("u2", "b", 4, 5.0, "r"),
    ]
    report = CleanReport()
    # dedupe(first) keeps u1/a with 5.0, so min_rating keeps it; then 2-core on users drops u2.
    out = apply_filters(
        _ds(rows), dedupe_policy="first", min_rating=4, min_user_interactions=2, report=report
    )
    assert sorted(_pairs(out)) == [("u1", "a", 1, 1.0), ("u1", "b", 3, 1.0)]
    assert [s.name for s in report.steps] == ["dedupe", "min_rating", "k_core"]


def test_behaviour_weights_come_before_dedupe():
    rows = [
        ("a", "x", 1, 1.0, "view"),
        ("a", "x", 2, 1.0, "purchase"),
        ("b", "x", 1, 1.0, "cart"),
        ("b", "x", 2, 1.0, "cart"),
        ("c", "x", 1, 1.0, "hover"),  # unmapped: dropped before dedupe, so the cart counts
        ("c", "x", 2, 1.0, "cart"),
    ]
    weights = {"view": 1, "cart": 2, "purchase": 4}
    report = CleanReport()
    out = apply_filters(_ds(rows), dedupe_policy="sum", behavior_weights=weights, report=report)
    assert sorted(_pairs(out)) == [("a", "x", 1, 5.0), ("b", "x", 1, 4.0), ("c", "x", 2, 2.0)]
    assert [s.name for s in report.steps] == ["behavior_weights", "dedupe"]
    best = apply_filters(_ds(rows), dedupe_policy="max_weight", behavior_weights=weights)
    assert sorted(_pairs(best))[0] == ("a", "x", 2, 4.0)
    # min_rating thresholds the rating column and keeps the behaviours' weights
    rated = _ds(rows[:2]).interactions.assign(rating=[5.0, 2.0])
    ds = Dataset.from_frame(
        rated.assign(user_id="a", item_id="x")[
            ["user_id", "item_id", "timestamp", "weight", "behavior", "rating"]
        ],
        name="toy",
    )
    out = apply_filters(ds, behavior_weights=weights, min_rating=4)
    assert _pairs(out) == [("a", "x", 1, 1.0)]
    out = apply_filters(ds, behavior_weights={"view": 3, "purchase": 4}, min_rating=4)
    assert _pairs(out) == [("a", "x", 1, 3.0)]


def test_filters_work_without_item_table():
    out = to_implicit(_ds(DUPS, items=False), 2)
    assert out.n_items == 2 and len(out.items) == 2


def test_catalogue_items_without_interactions_stay_through_filters_of_rows():
    # they stayed when a filter removed nothing and vanished when it removed one row
    f = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b"],
            "item_id": ["x", "x", "y", "x"],
            "timestamp": [1, 2, 3, 4],
            "rating": [5, 5, 2, 4],
        }
    )
    items = pd.DataFrame({"item_id": ["x", "y", "z"]})
    ds = Dataset.from_frame(f, items=items, keep_all_items=True)
    for filtered in (dedupe(ds), to_implicit(ds, 4), dedupe(ds.with_interactions(ds.interactions.iloc[:1]))):
        assert "z" in filtered.item_ids.tolist()
    assert "y" not in to_implicit(ds, 4).item_ids.tolist()  # it had interactions: all below 4
    # a k-core threshold drops what has no interaction, whether or not it removes a row
    assert k_core(ds, 0, 1).item_ids.tolist() == ["x", "y"]
    assert k_core(ds, 0, 0).item_ids.tolist() == ["x", "y", "z"]
