import math

import numpy as np
import pytest
import torch

from clarec.contrastive import (
    Compose,
    FieldDropout,
    FieldShuffle,
    IdentityAugment,
    RandomSequenceAugment,
    SequenceCrop,
    SequenceInsert,
    SequenceMask,
    SequenceReorder,
    SequenceSubstitute,
    SpanCrop,
    WordDropout,
)
from clarec.errors import ConfigError

RECORD = {"title": "Toy Story", "genres": "Animation Comedy", "year": 1995, "description": "toys come alive"}
LONG = " ".join(f"w{i}" for i in range(1000))


def rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------------------------ text


def test_identity_leaves_text_unchanged():
    assert IdentityAugment()("a b  c", rng()) == "a b  c"
    out = IdentityAugment()(RECORD, rng())
    assert out == RECORD and out is not RECORD


def test_word_dropout_rate_and_determinism():
    aug = WordDropout(0.3)
    r = rng(1)
    outs = [aug(LONG, r) for _ in range(20)]
    kept = np.mean([len(o.split()) for o in outs]) / 1000
    assert kept == pytest.approx(0.7, abs=0.01)
    assert aug(LONG, rng(5)) == aug(LONG, rng(5))
    assert aug(LONG, rng(5)) != aug(LONG, rng(6))
    words = aug(LONG, rng(2)).split()
    assert words == sorted(words, key=lambda w: int(w[1:]))  # order kept


def test_word_dropout_keeps_a_word():
    aug = WordDropout(1.0)
    for seed in range(20):
        out = aug("one two three", rng(seed))
        assert out in {"one", "two", "three"}
    assert {aug("one two three", rng(s)) for s in range(40)} == {"one", "two", "three"}
    assert aug("", rng()) == "" and WordDropout(0.0)("a  b", rng()) == "a b"


def test_word_dropout_on_fields_touches_strings_only():
    out = WordDropout(1.0)(RECORD, rng())
    assert out["year"] == 1995 and list(out) == list(RECORD)
    assert all(len(out[k].split()) == 1 for k in ("title", "genres", "description"))


def test_span_crop_lengths_and_contiguity():
    aug = SpanCrop(min_ratio=0.25)
    words = [f"w{i}" for i in range(10)]
    assert aug.span_bounds(10) == (3, 10)  # ⌈2.5⌉ .. 10
    assert SpanCrop(0.5, 0.8).span_bounds(7) == (4, 5)  # ⌈3.5⌉ .. ⌊5.6⌋
    assert SpanCrop(0.1).span_bounds(1) == (1, 1)
    lengths = set()
    r = rng(3)
    for _ in range(300):
        out = aug(" ".join(words), r).split()
        start = words.index(out[0])
        assert out == words[start : start + len(out)]
        lengths.add(len(out))
    assert lengths == set(range(3, 11))
    assert aug("single", rng()) == "single"


def test_field_dropout():
    aug = FieldDropout(1.0)
    for seed in range(10):
        out = aug(RECORD, rng(seed))
        assert len(out) == 1 and set(out.items()) <= set(RECORD.items())
    out = FieldDropout(1.0, keep=["title"])(RECORD, rng())
    assert out == {"title": "Toy Story"}
    # empty fields are not what is kept when everything else goes
    assert FieldDropout(1.0)({"a": "", "b": None, "c": "text"}, rng()) == {"c": "text"}
    r = rng(4)
    sizes = [len(FieldDropout(0.25)(dict.fromkeys("abcdefghij", "x"), r)) for _ in range(2000)]
    assert np.mean(sizes) == pytest.approx(7.5, abs=0.1)
    with pytest.raises(TypeError, match="dict of fields"):
        FieldDropout(0.5)("a string", rng())


def test_field_shuffle():
    aug = FieldShuffle()
    orders = {tuple(aug(RECORD, rng(s))) for s in range(200)}
    assert len(orders) == math.factorial(4)
    out = aug(RECORD, rng(7))
    assert out == RECORD  # same content
    assert list(aug(RECORD, rng(7))) == list(out)


def test_compose_applies_in_order():
    aug = Compose([FieldDropout(1.0, keep=["description"]), WordDropout(1.0)])
    out = aug(RECORD, rng())
    assert list(out) == ["description"] and len(out["description"].split()) == 1
    r = rng(1)
    expected = [aug(RECORD, r), aug(RECORD, r)]
    assert aug.batch([RECORD, RECORD], rng(1)) == expected


def test_bad_text_parameters():
    for make in (lambda: WordDropout(1.5), lambda: SpanCrop(0.9, 0.5), lambda: FieldDropout(-0.1)):
        with pytest.raises(ConfigError):
            make()


# ------------------------------------------------------------------------------------------- sequences


def _left_padded(rows, width, pad=0):
    out = np.full((len(rows), width), pad, dtype=np.int64)
    for i, r in enumerate(rows):
        if r:
            out[i, width - len(r) :] = r
    return out


def _row(a, pad=0):
    return [int(v) for v in a if v != pad]


def _is_contiguous_part(part, whole):
    return any(whole[s : s + len(part)] == part for s in range(len(whole) - len(part) + 1))


def test_crop_one_sequence():
    seq = np.arange(1, 11)
    out = SequenceCrop(0.6)(seq, rng())
    assert len(out) == 6 and _is_contiguous_part(out.tolist(), seq.tolist())
    assert len(SequenceCrop(0.1)(np.arange(1, 6), rng())) == 1  # ⌊0.5⌋ = 0, at least one kept
    assert SequenceCrop(0.5)([7], rng()).tolist() == [7]
    assert len(SequenceCrop(0.29)(np.arange(100), rng())) == 29  # no float rounding down to 28
    starts = {int(SequenceCrop(0.5)(np.arange(10), rng(s))[0]) for s in range(100)}
    assert starts == set(range(6))


def test_crop_padded_batch_left_and_right():
    rows = [[5, 6, 7, 8, 9], [3], [], [1, 2, 3, 4, 5, 6, 7, 8]]
    batch = _left_padded(rows, 8)
    out = SequenceCrop(0.5)(batch, rng(1))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    for got, row in zip(out, rows, strict=True):
        kept = _row(got)
        assert len(kept) == (max(1, len(row) // 2) if row else 0)
        assert _is_contiguous_part(kept, row)
        assert (got[: 8 - len(kept)] == 0).all()  # still left-padded
    right_padded = np.array([r + [0] * (8 - len(r)) for r in rows])
    right = SequenceCrop(0.5, padding_side="right")(right_padded, rng(1))
    for got, row in zip(right, rows, strict=True):
        kept = _row(got)
        assert _is_contiguous_part(kept, row) and (got[len(kept) :] == 0).all()


def test_torch_batch_matches_numpy_and_explicit_lengths():
    batch = _left_padded([[4, 5, 6, 7], [8, 9]], 5)
    aug = SequenceReorder(1.0)
    out = aug(torch.from_numpy(batch).to(torch.int32), rng(3))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int32
    np.testing.assert_array_equal(out.numpy(), aug(batch, rng(3)))
    # with a pad token that is also an item (0 here), lengths say where the sequences are
    items = np.array([[9, 9, 0, 1, 2], [9, 9, 9, 0, 4]])
    masked = SequenceMask(0.99, mask_token=7, pad_token=9)(items, rng(), lengths=[3, 2])
    assert (masked == 7).sum(axis=1).tolist() == [2, 1]
    assert (masked[:, :2] == 9).all()


def test_mask_counts_and_untouched_items():
    rows = [list(range(1, 11)), [4], [2, 3], list(range(1, 6))]
    batch = _left_padded(rows, 10)
    out = SequenceMask(0.5, mask_token=99)(batch, rng(2))
    for got, row, orig in zip(out, rows, batch, strict=True):
        n_mask = min(int(0.5 * len(row)), len(row) - 1)
        assert (got == 99).sum() == n_mask
        keep = got != 99
        np.testing.assert_array_equal(got[keep], orig[keep])  # padding and other items unchanged
    assert SequenceMask(1.0, mask_token=99)([5], rng()).tolist() == [5]
    # every position gets masked at some point: the masked subset is random
    hits = sum((SequenceMask(0.2, mask_token=99)(np.arange(1, 11), rng(s)) == 99) for s in range(300))
    assert (hits > 0).all()


def test_reorder_shuffles_one_window():
    seq = np.arange(1, 21)
    for seed in range(50):
        out = SequenceReorder(0.3)(seq, rng(seed))
        assert sorted(out.tolist()) == seq.tolist()
        changed = np.flatnonzero(out != seq)
        if len(changed):
            assert changed[-1] - changed[0] < 6  # inside one window of ⌊0.3·20⌋ = 6
    assert any(not np.array_equal(SequenceReorder(0.3)(seq, rng(s)), seq) for s in range(5))
    batch = _left_padded([[1, 2, 3, 4], [5, 6]], 6)
    out = SequenceReorder(1.0)(batch, rng(0))
    assert (out[:, :2] == 0).all() and (out[1, :4] == 0).all()
    assert sorted(out[0, 2:]) == [1, 2, 3, 4] and sorted(out[1, 4:]) == [5, 6]


SIMILAR = np.array([0, 2, 3, 1, 5, 4, 6, 8, 7, 10, 9, 11])  # token -> a correlated token (0: padding)


def test_substitute_swaps_items_for_correlated_ones():
    seq = np.arange(1, 11)
    for seed in range(20):
        out = SequenceSubstitute(0.3, SIMILAR)(seq, rng(seed))
        swapped = out != seq
        assert len(out) == 10 and swapped.sum() <= 3  # ⌊0.3·10⌋ chosen (an item may map to itself)
        np.testing.assert_array_equal(out[swapped], SIMILAR[seq[swapped]])
    assert (SequenceSubstitute(0.01, SIMILAR)([4], rng()) == [5]).all()  # at least one item
    hits = sum(
        SequenceSubstitute(0.2, SIMILAR)(np.arange(1, 6), rng(s)) != np.arange(1, 6) for s in range(200)
    )
    assert (hits > 0).all()  # every position can be chosen
    batch = _left_padded([[1, 2, 3, 4], [5], []], 6)
    out = SequenceSubstitute(0.5, SIMILAR)(batch, rng(1))
    assert (out == 0).sum(axis=1).tolist() == [2, 5, 6]  # padding untouched
    assert (out[0, 2:] != batch[0, 2:]).sum() == 2 and out[1, 5] == 4


def test_insert_puts_correlated_items_before_chosen_ones():
    marked = np.r_[np.arange(100), np.zeros(11, dtype=int)]  # item x (1..10) -> marker 100 + x
    marked[1:11] = np.arange(101, 111)
    marked[100:] = np.arange(100, 111)
    seq = np.arange(1, 11)
    positions = set()
    for seed in range(30):
        out = SequenceInsert(0.3, marked)(seq, rng(seed))
        inserted = out >= 100
        assert len(out) == 13 and inserted.sum() == 3
        np.testing.assert_array_equal(out[~inserted], seq)  # the sequence itself, in order
        at = np.flatnonzero(inserted)
        np.testing.assert_array_equal(out[at] - 100, out[at + 1])  # just before the item it comes from
        positions |= set(out[at + 1].tolist())
    assert positions == set(range(1, 11))  # any item can be chosen
    # a padded row that grows past its width keeps its most recent items
    batch = _left_padded([[1, 2, 3, 4, 5, 6], [7, 8], []], 6)
    out = SequenceInsert(0.5, marked)(batch, rng(2))
    full = SequenceInsert(0.5, marked)([1, 2, 3, 4, 5, 6], rng(2))  # same draws for row 0
    assert len(full) == 9 and out[0].tolist() == full[-6:].tolist()
    assert _row(out[1])[-1] == 8 and len(_row(out[1])) == 3 and (out[2] == 0).all()
    with pytest.raises(ConfigError, match="pad_token to itself"):
        SequenceInsert(0.5, np.array([1, 2, 3]))
    with pytest.raises(ConfigError, match="outside"):
        SequenceSubstitute(0.5, np.array([0, 5]))
    # an item replaced by padding would empty a one-item sequence: refused
    with pytest.raises(ConfigError, match="maps item 2 to the pad token"):
        SequenceSubstitute(1.0, np.array([0, 1, 0, 3]))
    # chosen at random, an insertion still lengthens a 1-D sequence (it dropped the oldest items)
    out = RandomSequenceAugment([SequenceInsert(0.3, marked)])(seq, rng(0))
    assert len(out) == 13 and out[~(out >= 100)].tolist() == seq.tolist()


def test_sequence_augments_are_deterministic():
    batch = np.random.default_rng(0).integers(1, 50, size=(16, 12))
    for aug in (
        SequenceCrop(0.6),
        SequenceMask(0.3, mask_token=99),
        SequenceReorder(0.5),
        SequenceSubstitute(0.5, np.r_[0, np.arange(2, 50), 1]),  # item x -> x + 1
        SequenceInsert(0.5, np.r_[0, np.arange(2, 50), 1]),
    ):
        np.testing.assert_array_equal(aug(batch, rng(11)), aug(batch, rng(11)))
        assert not np.array_equal(aug(batch, rng(11)), aug(batch, rng(12)))


def test_random_choice_per_sequence():
    batch = np.tile(np.arange(1, 11), (300, 1))
    aug = RandomSequenceAugment([SequenceCrop(0.5), SequenceMask(0.5, mask_token=99)])
    out = aug(batch, rng(0))
    cropped = (out == 0).sum(axis=1) == 5
    masked = (out == 99).sum(axis=1) == 5
    assert (cropped ^ masked).all()
    assert 100 < cropped.sum() < 200
    only_mask = RandomSequenceAugment([SequenceCrop(0.5), SequenceMask(0.5, mask_token=99)], p=[0, 1])
    assert ((only_mask(batch, rng()) == 99).sum(axis=1) == 5).all()
    with pytest.raises(ConfigError, match="same pad_token"):
        RandomSequenceAugment([SequenceCrop(0.5), SequenceCrop(0.5, padding_side="right")])


def test_bad_sequence_parameters():
    for make in (
        lambda: SequenceCrop(0.0),
        lambda: SequenceMask(0.5, mask_token=0),
        lambda: SequenceReorder(2.0),
        lambda: SequenceCrop(0.5, padding_side="middle"),
    ):
        with pytest.raises(ConfigError):
            make()
