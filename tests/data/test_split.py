from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from factories import make_random_dataset

from clarec.data.dataset import Dataset
from clarec.data.split import (
    PARTS,
    cold_start_split,
    global_temporal_split,
    inject_noise,
    leave_one_out_split,
    load_predefined_split,
    make_split,
    random_split,
    user_temporal_split,
)
from clarec.errors import ConfigError, DataError


def pairs(ds: Dataset) -> set[tuple[int, int]]:
    return set(zip(ds.interactions["user"], ds.interactions["item"], strict=True))


def assert_partition(ds, split):
    parts = [pairs(split.train), pairs(split.valid), pairs(split.test)]
    assert sum(len(p) for p in parts) == len(pairs(ds)) == ds.n_interactions
    assert set().union(*parts) == pairs(ds)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not parts[a] & parts[b]
    for p in (split.train, split.valid, split.test):
        assert p.n_users == ds.n_users and p.n_items == ds.n_items


def test_random_split_ratios_and_determinism():
    ds = make_random_dataset(n_users=50, n_items=40, per_user=10)
    s1 = random_split(ds, seed=7)
    s2 = random_split(ds, seed=7)
    s3 = random_split(ds, seed=8)
    assert_partition(ds, s1)
    # 10 interactions per user: exactly 8 / 1 / 1 each.
    for part, n in ((s1.train, 8), (s1.valid, 1), (s1.test, 1)):
        assert (np.bincount(part.interactions["user"], minlength=50) == n).all()
    assert pairs(s1.test) == pairs(s2.test)
    assert pairs(s1.test) != pairs(s3.test)


def test_random_split_small_users_keep_training_item():
    rows = [("a", "x"), ("b", "x"), ("b", "y"), ("c", "x"), ("c", "y"), ("c", "z")]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id"]))
    s = random_split(ds, seed=0)
    train = np.bincount(s.train.interactions["user"], minlength=3)
    test = np.bincount(s.test.interactions["user"], minlength=3)
    valid = np.bincount(s.valid.interactions["user"], minlength=3)
    # 1 interaction: train only. 2: one test, one train. 3: one each.
    assert train.tolist() == [1, 1, 1]
    assert test.tolist() == [0, 1, 1]
    assert valid.tolist() == [0, 0, 1]


def test_user_temporal_takes_latest():
    ds = make_random_dataset(n_users=10, n_items=30, per_user=10)
    s = user_temporal_split(ds)
    assert_partition(ds, s)
    tr = s.train.interactions.groupby("user")["timestamp"].max()
    va = s.valid.interactions.groupby("user")["timestamp"].min()
    te = s.test.interactions.groupby("user")["timestamp"].min()
    assert (tr < va).all() and (va < te).all()


def test_global_temporal_cut():
    ds = make_random_dataset(n_users=10, n_items=30, per_user=10)
    s = global_temporal_split(ds, ratios=(0.8, 0.1, 0.1))
    assert_partition(ds, s)
    assert (s.train.n_interactions, s.valid.n_interactions, s.test.n_interactions) == (80, 10, 10)
    assert s.train.interactions["timestamp"].max() < s.valid.interactions["timestamp"].min()
    assert s.valid.interactions["timestamp"].max() < s.test.interactions["timestamp"].min()


def test_leave_one_out():
    ds = make_random_dataset(n_users=12, n_items=30, per_user=6)
    s = leave_one_out_split(ds)
    assert_partition(ds, s)
    last = ds.interactions.sort_values("timestamp").groupby("user").tail(1)
    assert set(zip(last["user"], last["item"], strict=True)) == pairs(s.test)
    assert (np.bincount(s.valid.interactions["user"], minlength=12) == 1).all()


def test_leave_one_out_with_new_items():
    ds = make_random_dataset(n_users=40, n_items=30, per_user=6)
    plain = leave_one_out_split(ds)
    s = leave_one_out_split(ds, cold_share=0.2, seed=5)
    assert len(s.cold_items) == 6 and s.params == {"cold_share": 0.2, "seed": 5}
    # validation and test are the plain leave-one-out's; only the new items' training rows are gone
    assert pairs(s.test) == pairs(plain.test) and pairs(s.valid) == pairs(plain.valid)
    train_items = s.train.interactions["item"].to_numpy()
    assert not np.isin(train_items, s.cold_items).any()
    kept = plain.train.interactions[~np.isin(plain.train.interactions["item"], s.cold_items)]
    assert pairs(s.train) == set(zip(kept["user"], kept["item"], strict=True))
    assert np.isin(s.test.interactions["item"], s.cold_items).any()  # the test reaches new items
    assert leave_one_out_split(ds, cold_share=0.2, seed=5).cold_items.tolist() == s.cold_items.tolist()
    with pytest.raises(ConfigError, match="cold_share"):
        leave_one_out_split(ds, cold_share=1.0)


def test_cold_start_items_absent_from_train():
    ds = make_random_dataset(n_users=60, n_items=50, per_user=10)
    s = cold_start_split(ds, cold_share=0.2, seed=3)
    assert_partition(ds, s)
    assert len(s.cold_items) == 10
    assert not np.isin(s.train.interactions["item"], s.cold_items).any()
    cold_valid = np.unique(s.valid.interactions["item"][np.isin(s.valid.interactions["item"], s.cold_items)])
    cold_test = np.unique(s.test.interactions["item"][np.isin(s.test.interactions["item"], s.cold_items)])
    assert not set(cold_valid) & set(cold_test)
    assert set(cold_valid) | set(cold_test) == set(s.cold_items)
    with pytest.raises(ConfigError, match="stratify must be true or false, got 'maybe'"):
        cold_start_split(ds, stratify="maybe")
    with pytest.raises(ConfigError, match="split method 'random' with"):
        make_split(ds, "random", seed="abc")


def test_stratified_cold_items_span_the_popularity_range():
    # item i has i + 1 interactions (distinct popularity): 40 items, 10 cold → one from each block of 4
    rows = [(f"u{u}", f"i{i:02d}") for i in range(40) for u in range(i + 1)]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id"]))
    counts = np.bincount(ds.interactions["item"].to_numpy(), minlength=ds.n_items)
    shares = []
    for seed in range(6):
        s = cold_start_split(ds, cold_share=0.25, seed=seed, stratify=True)
        assert_partition(ds, s)
        assert s.params["stratify"] is True
        rank = np.argsort(np.argsort(-counts, kind="stable"), kind="stable")  # 0 = most popular
        assert sorted(rank[s.cold_items] // 4) == list(range(10))  # one item per stratum
        in_valid = np.unique(
            s.valid.interactions["item"][np.isin(s.valid.interactions["item"], s.cold_items)]
        )
        in_test = np.unique(s.test.interactions["item"][np.isin(s.test.interactions["item"], s.cold_items)])
        assert len(in_valid) == len(in_test) == 5 and not set(in_valid) & set(in_test)
        shares.append(counts[s.cold_items].sum() / counts.sum())
    uniform = [
        counts[cold_start_split(ds, cold_share=0.25, seed=k).cold_items].sum() / counts.sum()
        for k in range(6)
    ]
    assert np.std(shares) < np.std(uniform) / 2  # the held-out share of interactions barely moves
    same = cold_start_split(ds, cold_share=0.25, seed=3, stratify=True).cold_items
    assert same.tolist() == cold_start_split(ds, cold_share=0.25, seed=3, stratify=True).cold_items.tolist()
    assert "stratify" not in cold_start_split(ds, cold_share=0.25, seed=3).params


def test_save_and_load_predefined_roundtrip(tmp_path):
    ds = make_random_dataset(n_users=20, n_items=25, per_user=6)
    s = cold_start_split(ds, cold_share=0.2, seed=1)
    s.save(tmp_path / "split")
    back = load_predefined_split(tmp_path / "split")
    for name in ("train", "valid", "test"):
        a, b = s.part(name), back.part(name)
        ids_a = {(a.user_ids[u], a.item_ids[i]) for u, i in pairs(a)}
        ids_b = {(b.user_ids[u], b.item_ids[i]) for u, i in pairs(b)}
        assert ids_a == ids_b
    assert sorted(back.train.item_ids[back.cold_items]) == sorted(s.train.item_ids[s.cold_items])
    assert back.train.items["title"].notna().all()


def test_weights_other_than_one_travel_with_a_saved_split(tmp_path):
    ds = make_random_dataset(n_users=20, n_items=25, per_user=6)
    plain = random_split(ds, seed=1)
    plain.save(tmp_path / "plain")
    assert (tmp_path / "plain" / "train.tsv").read_text().splitlines()[0] == "user_id\titem_id\ttimestamp"
    inter = ds.interactions
    weighted = random_split(
        ds.with_interactions(inter.assign(weight=(inter.index % 3 + 1).astype("float32"))), seed=1
    )
    weighted.save(tmp_path / "weighted")
    back = load_predefined_split(tmp_path / "weighted")
    for part in ("train", "valid", "test"):
        np.testing.assert_array_equal(
            back.part(part).to_csr(weighted=True).toarray(),
            weighted.part(part).to_csr(weighted=True).toarray(),
        )
    (tmp_path / "weighted" / "test.tsv").write_text("user_id\titem_id\tweight\nu1\ti1\tmuch\n")
    with pytest.raises(DataError, match="invalid weight 'much'"):
        load_predefined_split(tmp_path / "weighted")


def test_behaviours_travel_with_a_saved_split(tmp_path):
    ds = make_random_dataset(n_users=20, n_items=25, per_user=6)
    inter = ds.interactions
    kinds = np.array(["view", "cart", "purchase"])[inter.index % 3]
    typed = random_split(ds.with_interactions(inter.assign(behavior=kinds)), seed=1)
    typed.save(tmp_path / "typed")
    back = load_predefined_split(tmp_path / "typed")
    for part in ("train", "valid", "test"):
        a, b = typed.part(part), back.part(part)
        events = lambda d: sorted(  # noqa: E731
            zip(
                d.user_ids[d.interactions["user"]],
                d.item_ids[d.interactions["item"]],
                d.interactions["behavior"],
                strict=True,
            )
        )
        assert events(a) == events(b)  # every event came back as "interaction"
    (tmp_path / "typed" / "test.tsv").write_text("user_id\titem_id\ttimestamp\nu1\ti1\t5\n")
    with pytest.raises(DataError, match="give a behavior column and test.tsv do"):
        load_predefined_split(tmp_path / "typed")


def test_list_columns_come_back_as_lists(tmp_path):
    ds = make_random_dataset(n_users=20, n_items=25, per_user=6)
    ds.items["genres"] = [["Drama", "War"] if i % 2 else [] for i in range(25)]
    random_split(ds, seed=1).save(tmp_path / "split")
    items = load_predefined_split(tmp_path / "split").train.items.set_index("item_id")
    # read back as text they gave no item features, so a predefined run lost its diversity column
    assert items.loc["i1", "genres"] == ["Drama", "War"] and items.loc["i2", "genres"] == []


def test_predefined_without_timestamps_or_meta(tmp_path):
    d = tmp_path / "peer"
    d.mkdir()
    (d / "train.tsv").write_text("user_id\titem_id\nu1\ta\nu1\tb\nu2\ta\n")
    (d / "valid.tsv").write_text("user_id\titem_id\nu1\tc\n")
    (d / "test.tsv").write_text("user_id\titem_id\nu2\tnew\n")
    s = load_predefined_split(d)
    assert s.train.n_items == 4 and s.train.n_users == 2
    assert s.train.item_ids[s.cold_items].tolist() == ["c", "new"]


@pytest.mark.parametrize(
    "content,reason",
    [
        ("", "empty file"),
        ("user_id,item_id\nu1,a\n", "header lacks"),
        ("user_id\titem_id\ttimestamp\nu1\ta\tnoon\n", "invalid timestamp"),
        ("user_id\titem_id\n\ta\n", "empty user_id"),
        ("user_id\titem_id\n", "training part holds no interactions"),
    ],
)
def test_predefined_bad_files(tmp_path, content, reason):
    d = tmp_path / "bad"
    d.mkdir()
    for name in ("valid", "test"):
        (d / f"{name}.tsv").write_text("user_id\titem_id\nu1\ta\n")
    (d / "train.tsv").write_text(content)
    with pytest.raises(DataError, match=reason) as e:
        load_predefined_split(d)
    assert "train.tsv" in str(e.value)


@pytest.mark.parametrize("col, value", [("timestamp", "100"), ("weight", "2")])
def test_predefined_column_in_some_parts_only_is_refused(tmp_path, col, value):
    # timestamps in one part were all replaced by file order; weights were NaN in the other parts
    d = tmp_path / "p"
    d.mkdir()
    (d / "train.tsv").write_text(f"user_id\titem_id\t{col}\nu1\ta\t{value}\nu1\tb\t{value}\n")
    for name in ("valid", "test"):
        (d / f"{name}.tsv").write_text("user_id\titem_id\nu1\tc\n")
    with pytest.raises(DataError, match=f"train.tsv give a {col} column and valid.tsv, test.tsv do not"):
        load_predefined_split(d)


def test_predefined_not_utf8(tmp_path):
    d = tmp_path / "enc"
    d.mkdir()
    for name in ("valid", "test"):
        (d / f"{name}.tsv").write_text("user_id\titem_id\nu1\ta\n")
    (d / "train.tsv").write_bytes("user_id\titem_id\nu1\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_predefined_split(d)


def test_make_split_errors(small_dataset):
    with pytest.raises(ConfigError, match="unknown split method"):
        make_split(small_dataset, "bogus")
    with pytest.raises(ConfigError, match="unknown parameter"):
        make_split(small_dataset, "random", ratio=0.5)
    with pytest.raises(ConfigError, match=r"'predefined': unknown parameter\(s\) \['bogus_key'\]"):
        make_split(small_dataset, "predefined", path="somewhere", bogus_key=3)  # was ignored
    with pytest.raises(ConfigError, match="ratios"):
        make_split(small_dataset, "random", ratios=[0.5, 0.5])
    for bad in ([float("nan"), 0.1, 0.1], [0.8, float("inf"), 0.1], [0.8, -0.1, 0.1], [0.0, 0.5, 0.5]):
        with pytest.raises(ConfigError, match="split ratios must be three finite"):
            make_split(small_dataset, "random", ratios=bad)
    assert make_split(small_dataset, "ro", seed=1).method == "random"
    # proportions are scaled: 8:1:1 is the same split as 0.8/0.1/0.1
    a = make_split(small_dataset, "random", ratios=[8, 1, 1], seed=3)
    b = make_split(small_dataset, "random", ratios=[0.8, 0.1, 0.1], seed=3)
    assert a.params["ratios"] == pytest.approx([0.8, 0.1, 0.1])
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(a, part).interactions, getattr(b, part).interactions)


def test_noise_goes_to_train_only_and_never_repeats_a_pair():
    from clarec.data.split import make_split

    ds = make_random_dataset(n_users=60, n_items=80, per_user=20, seed=3)
    clean = make_split(ds, "random", ratios=[0.8, 0.1, 0.1], seed=5)
    noisy = make_split(ds, "random", ratios=[0.8, 0.1, 0.1], seed=5, noise=0.2)
    n_train = clean.train.n_interactions
    added = noisy.train.n_interactions - n_train
    assert added == round(0.2 * n_train) == noisy.params["noise_interactions"]
    assert noisy.params["noise"] == 0.2 and noisy.params["noise_seed"] == 5
    for part in ("valid", "test"):
        pd.testing.assert_frame_equal(noisy.part(part).interactions, clean.part(part).interactions)

    def pairs(df):
        return set(zip(df["user"], df["item"], strict=True))

    train_pairs = pairs(clean.train.interactions)
    new = noisy.train.interactions.iloc[n_train:]
    new_pairs = pairs(new)
    assert len(new_pairs) == added  # no pair twice
    every = train_pairs | pairs(clean.valid.interactions) | pairs(clean.test.interactions)
    assert not new_pairs & every
    assert set(new["user"]) <= set(clean.train.interactions["user"])
    assert set(new["item"]) <= set(clean.train.interactions["item"])
    # each false interaction lies within its user's training period
    span = clean.train.interactions.groupby("user")["timestamp"].agg(["min", "max"])
    lo, hi = span.loc[new["user"], "min"].to_numpy(), span.loc[new["user"], "max"].to_numpy()
    assert ((new["timestamp"].to_numpy() >= lo) & (new["timestamp"].to_numpy() <= hi)).all()
    # deterministic, and another noise seed draws other pairs
    again = make_split(ds, "random", ratios=[0.8, 0.1, 0.1], seed=5, noise=0.2)
    pd.testing.assert_frame_equal(again.train.interactions, noisy.train.interactions)
    other = make_split(ds, "random", ratios=[0.8, 0.1, 0.1], seed=5, noise=0.2, noise_seed=9)
    assert pairs(other.train.interactions.iloc[n_train:]) != new_pairs
    assert make_split(ds, "random", seed=5, noise=0.0).train.n_interactions == n_train
    with pytest.raises(ConfigError, match="noise"):
        make_split(ds, "random", seed=5, noise=1.0)


# ---------------------------------------------------------------------- a source's own split
def _lightgcn_folder(tmp_path, train: str, test: str):
    from clarec.data.sources import load_source

    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text(test)
    return load_source("lightgcn", tmp_path)


def test_official_split_uses_the_source_parts_verbatim(tmp_path):
    res = _lightgcn_folder(tmp_path, "0 1 2 4 5 6\n1 2 4\n2 5\n", "0 3\n1 1\n2 2\n")
    split = make_split(res.dataset, "official", res.extras)
    ds = res.dataset

    def ids(part):
        return {(ds.user_ids[u], ds.item_ids[i]) for u, i in pairs(part)}

    assert ids(split.test) == {("0", "3"), ("1", "1"), ("2", "2")}
    assert ids(split.train) == {
        ("0", "1"),
        ("0", "2"),
        ("0", "4"),
        ("0", "5"),
        ("0", "6"),
        ("1", "2"),
        ("1", "4"),
        ("2", "5"),
    }
    assert split.valid.n_interactions == 0 and split.method == "official"
    assert_partition(ds, split)
    # a validation share comes out of each user's training part only, the test part is untouched
    v = make_split(res.dataset, "official", res.extras, valid_share=0.4, seed=3)
    assert pairs(v.test) == pairs(split.test) and pairs(v.valid) <= pairs(split.train)
    assert v.valid.n_interactions == 3  # round(0.4 x 5) of user 0, round(0.4 x 2) of user 1, none of user 2
    assert_partition(ds, v)
    assert pairs(make_split(res.dataset, "official", res.extras, valid_share=0.4, seed=3).valid) == pairs(
        v.valid
    )


def test_official_split_errors(tmp_path):
    res = _lightgcn_folder(tmp_path, "0 1 2\n1 2\n", "0 1\n1 1\n")  # (0, 1) in train and test
    with pytest.raises(DataError, match="1 \\(user, item\\) pair\\(s\\) are in more than one part"):
        make_split(res.dataset, "official", res.extras)
    with pytest.raises(ConfigError, match="needs a data source that ships its split"):
        make_split(make_random_dataset(), "official")
    with pytest.raises(ConfigError, match="valid_share must be in"):
        make_split(res.dataset, "official", res.extras, valid_share=1.0)


@pytest.mark.parametrize("meta", ["{not json", "[1, 2]", '{"cold_items": "i1"}'])
def test_predefined_bad_meta(tmp_path, meta):
    d = tmp_path / "meta"
    d.mkdir()
    for name in PARTS:
        (d / f"{name}.tsv").write_text("user_id\titem_id\nu1\ta\n")
    (d / "split.json").write_text(meta)
    with pytest.raises(DataError, match="split.json") as e:
        load_predefined_split(d)
    assert "JSON" in str(e.value)


@pytest.mark.parametrize(
    "cold, message", [('["nope"]', "unknown item id 'nope'"), ('["a"]', "'a' has training interactions")]
)
def test_predefined_cold_items_must_be_items_without_training(tmp_path, cold, message):
    # an unknown id gave a bare UnknownIdError; a trained item was taken as cold
    d = tmp_path / "cold"
    d.mkdir()
    (d / "train.tsv").write_text("user_id\titem_id\nu1\ta\n")
    for name in ("valid", "test"):
        (d / f"{name}.tsv").write_text("user_id\titem_id\nu1\tb\n")
    (d / "split.json").write_text(f'{{"cold_items": {cold}}}')
    with pytest.raises(DataError, match=message) as e:
        load_predefined_split(d)
    assert "split.json" in str(e.value)


def test_noise_counts_as_taken_only_pairs_it_could_draw():
    # a test pair on an item without training interactions was counted against the free pairs:
    # (a, y) and (b, x) were free, yet one noise pair was refused
    f = pd.DataFrame(
        {"user_id": ["a", "b", "a", "b"], "item_id": ["x", "y", "z", "z"], "timestamp": [1, 1, 2, 2]}
    )
    split = leave_one_out_split(Dataset.from_frame(f))
    noisy = inject_noise(split, 0.5, seed=0)
    added = set(map(tuple, noisy.train.interactions[["user", "item"]].to_numpy().tolist())) - set(
        map(tuple, split.train.interactions[["user", "item"]].to_numpy().tolist())
    )
    assert len(added) == 1 and added <= {(0, 1), (1, 0)}


def test_global_temporal_keeps_interactions_of_one_time_in_one_part():
    # the cuts were row counts: time-2 events went to train, valid and test, by file order
    f = pd.DataFrame({"user_id": list("abacb"), "item_id": list("xxyzz"), "timestamp": [1, 2, 2, 2, 3]})
    for rows in (f, f.iloc[::-1]):
        split = global_temporal_split(Dataset.from_frame(rows), (0.4, 0.2, 0.4))
        parts = [set(p.interactions["timestamp"]) for p in (split.train, split.valid, split.test)]
        assert parts == [{1}, set(), {2, 3}]


def test_a_user_left_in_no_part_is_still_in_the_saved_split(tmp_path):
    # leave-one-out with new items drops a one-item user's only interaction when its item is drawn
    # new: the split read back had one user fewer than the models fitted on it (serve and recommend
    # refused the run)
    frame = pd.DataFrame(
        {
            "user_id": ["solo"] + [f"u{k}" for k in range(6) for _ in range(4)],
            "item_id": ["i0"] + [f"i{(k + t) % 8}" for k in range(6) for t in range(4)],
            "timestamp": [0] + [t for _ in range(6) for t in range(4)],
        }
    )
    ds = Dataset.from_frame(frame)
    for seed in range(50):  # a draw that makes i0 new
        s = leave_one_out_split(ds, cold_share=0.2, seed=seed)
        if ds.item_index(["i0"])[0] in s.cold_items:
            break
    solo = ds.user_index(["solo"])[0]
    assert all(solo not in s.part(p).interactions["user"].to_numpy() for p in ("train", "valid", "test"))
    s.save(tmp_path / "split")
    back = load_predefined_split(tmp_path / "split")
    assert back.train.n_users == s.train.n_users
    assert list(back.train.user_ids) == list(s.train.user_ids)
    assert sorted(back.train.item_ids[back.cold_items]) == sorted(s.train.item_ids[s.cold_items])
