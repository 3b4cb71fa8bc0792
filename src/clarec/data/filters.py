"""Filters: pure functions ``Dataset -> Dataset`` that record what they removed.

Each returns a new :class:`~clarec.data.dataset.Dataset` with contiguous indices again (users and
items left without interactions disappear, the others keep their relative order) and, when given a
:class:`~clarec.data.clean.CleanReport`, appends a :class:`~clarec.data.clean.FilterStep` to it.
:func:`apply_filters` runs them in the fixed order used by configs:
behavior weights → dedupe → min_rating → k-core.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from clarec.data.clean import CleanReport, FilterStep
from clarec.data.dataset import Dataset
from clarec.errors import ConfigError

DEDUPE_POLICIES = ("first", "last", "max_weight", "sum")


def _subset(ds: Dataset, inter: pd.DataFrame, idle_users: bool = True, idle_items: bool = True) -> Dataset:
    """A dataset over the given interaction rows (index columns), re-indexed contiguously.

    Ids are kept in their existing (sorted) order, so the result is what ``Dataset.from_frame`` would
    build from the same rows, without going back through strings. The users and items ``ds`` holds
    without any interaction (``keep_all_users`` / ``keep_all_items``) stay unless ``idle_users`` /
    ``idle_items`` is off: a filter of rows has nothing to say about them (a k-core threshold does).
    """
    users = np.unique(inter["user"].to_numpy())
    items = np.unique(inter["item"].to_numpy())
    if idle_users:
        users = np.union1d(users, np.setdiff1d(np.arange(ds.n_users), ds.interactions["user"].to_numpy()))
    if idle_items:
        items = np.union1d(items, np.setdiff1d(np.arange(ds.n_items), ds.interactions["item"].to_numpy()))
    out = inter.copy()
    out["user"] = np.searchsorted(users, out["user"].to_numpy())
    out["item"] = np.searchsorted(items, out["item"].to_numpy())
    return Dataset(
        out.reset_index(drop=True),
        ds.user_ids[users],
        ds.item_ids[items],
        items=ds.items.iloc[items].reset_index(drop=True),
        users=ds.users.iloc[users].reset_index(drop=True),
        name=ds.name,
    )


def _record(report: CleanReport | None, name: str, params: dict, before: Dataset, after: Dataset) -> None:
    if report is not None:
        report.add_step(
            FilterStep(
                name,
                params,
                before.n_interactions - after.n_interactions,
                before.n_users - after.n_users,
                before.n_items - after.n_items,
            )
        )


def dedupe(ds: Dataset, policy: str = "first", report: CleanReport | None = None) -> Dataset:
    """One interaction per (user, item).

    ``first`` keeps the earliest (ties: file order), ``last`` the latest, ``max_weight`` the one
    with the highest weight (ties: earliest), ``sum`` the earliest with the weights summed.
    """
    if policy not in DEDUPE_POLICIES:
        raise ConfigError(f"dedupe must be one of {DEDUPE_POLICIES}, got {policy!r}")
    inter = ds.interactions
    if policy == "max_weight":
        order = inter.assign(_neg=-inter["weight"]).sort_values(
            ["user", "item", "_neg", "timestamp"], kind="stable"
        )
    else:
        order = inter.sort_values(["user", "item", "timestamp"], kind="stable")
    keep = "last" if policy == "last" else "first"
    kept = order.drop_duplicates(["user", "item"], keep=keep)
    if policy == "sum":
        sums = inter.groupby(["user", "item"], sort=False)["weight"].sum()
        idx = pd.MultiIndex.from_arrays([kept["user"], kept["item"]])
        kept = kept.assign(weight=sums.reindex(idx).to_numpy())
    kept = kept.sort_index()  # back to file order
    out = ds if len(kept) == len(inter) and policy != "sum" else _subset(ds, kept)
    _record(report, "dedupe", {"policy": policy}, ds, out)
    return out


def to_implicit(ds: Dataset, min_rating: float, report: CleanReport | None = None) -> Dataset:
    """Keep interactions rated at least ``min_rating``.

    The threshold applies to the ``rating`` column, and the weights (from behaviours, say) are kept;
    a dataset without ratings holds them in ``weight``, which is thresholded and then set to 1.
    """
    if isinstance(min_rating, bool) or not isinstance(min_rating, int | float):
        raise ConfigError(f"min_rating must be a number, got {min_rating!r}")
    inter = ds.interactions
    if "rating" in inter.columns:
        kept = inter.loc[(inter["rating"] >= min_rating).to_numpy()]
    else:
        kept = inter.loc[(inter["weight"] >= min_rating).to_numpy()].assign(weight=np.float32(1.0))
    out = _subset(ds, kept)
    _record(report, "min_rating", {"min_rating": min_rating}, ds, out)
    return out


def weight_behaviors(ds: Dataset, weights: Mapping[str, float], report: CleanReport | None = None) -> Dataset:
    """Set each interaction's weight from its behavior (e.g. ``{"view": 1, "cart": 2, "purchase": 4}``).

    Interactions whose behavior is not in ``weights`` are dropped (the step records how many).
    """
    if not weights:
        raise ConfigError("behavior_weights must map at least one behavior to a weight")
    try:
        table = {str(k): float(v) for k, v in weights.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"behavior_weights values must be numbers, got {dict(weights)}") from None
    inter = ds.interactions
    w = inter["behavior"].astype(str).map(table)
    known = w.notna().to_numpy()
    kept = inter.loc[known].assign(weight=w[known].astype("float32").to_numpy())
    out = _subset(ds, kept)
    unmapped = sorted(set(inter["behavior"].astype(str)[~known]))
    params = {"weights": table} | ({"unmapped": unmapped} if unmapped else {})
    _record(report, "behavior_weights", params, ds, out)
    return out


def k_core(
    ds: Dataset,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    report: CleanReport | None = None,
) -> Dataset:
    """Iteratively drop users with fewer than ``min_user_interactions`` interactions and items with
    fewer than ``min_item_interactions``, until both hold for everyone (counts are interaction rows)."""
    for v in (min_user_interactions, min_item_interactions):
        if not isinstance(v, int | np.integer) or v < 0:
            raise ConfigError(f"k-core thresholds must be non-negative integers, got {v!r}")
    users = ds.interactions["user"].to_numpy()
    items = ds.interactions["item"].to_numpy()
    keep = np.ones(len(users), dtype=bool)
    rounds = 0
    while True:
        ucount = np.bincount(users[keep], minlength=ds.n_users)
        icount = np.bincount(items[keep], minlength=ds.n_items)
        bad = keep & ((ucount[users] < min_user_interactions) | (icount[items] < min_item_interactions))
        if not bad.any():
            break
        keep &= ~bad
        rounds += 1
    # users and items without any interaction fall below any threshold above 0 too
    idle = (np.bincount(users, minlength=ds.n_users) == 0).any() or (
        np.bincount(items, minlength=ds.n_items) == 0
    ).any()
    out = (
        ds
        if keep.all() and not (idle and (min_user_interactions or min_item_interactions))
        else _subset(
            ds,
            ds.interactions.loc[keep],
            idle_users=min_user_interactions == 0,
            idle_items=min_item_interactions == 0,
        )
    )
    params = {"min_user_interactions": min_user_interactions, "min_item_interactions": min_item_interactions}
    _record(report, "k_core", params | {"rounds": rounds}, ds, out)
    return out


def apply_filters(
    ds: Dataset,
    *,
    dedupe_policy: str | None = None,
    min_rating: float | None = None,
    behavior_weights: Mapping[str, float] | None = None,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    report: CleanReport | None = None,
) -> Dataset:
    """Apply filters in the fixed order behavior weights → dedupe → min_rating → k-core.

    Behaviour weights come first so that dedupe sees them (``sum`` adds a view's and a purchase's
    weights, ``max_weight`` keeps the purchase) and an unmapped behaviour never stands for its pair;
    dedupe comes before min_rating so that a repeated rating counts once everywhere after; k-core comes
    last so the thresholds hold on the data that is actually used.
    """
    if behavior_weights is not None:
        ds = weight_behaviors(ds, behavior_weights, report)
    if dedupe_policy is not None:
        ds = dedupe(ds, dedupe_policy, report)
    if min_rating is not None:
        ds = to_implicit(ds, min_rating, report)
    if min_user_interactions or min_item_interactions:
        ds = k_core(ds, min_user_interactions, min_item_interactions, report)
    return ds
