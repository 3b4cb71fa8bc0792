"""Written profiles (RLMRec / KAR style): a generative model describes each item from its text and
each user from their **training** interactions; the profiles become ordinary text columns
(``profile``) of the item and user tables, which every text model reads (``fields: [profile]``,
``user_fields: [profile]``).

``write_profiles`` writes ``items.tsv`` and ``users.tsv`` (id, profile) and ``profiles.json`` (the
model, the settings, counts, seconds, the tokens of the profiles — cached ones included — and a
fingerprint of the training interactions) into a folder. ``attach_profiles`` adds them to a split
after checking the fingerprint: user profiles read training interactions, so profiles written for
another split (another seed, other data) would leak that split's validation and test items; they are
refused.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from clarec.data.dataset import Dataset
from clarec.data.split import Split
from clarec.errors import ConfigError
from clarec.llm.base import Generator
from clarec.models._lm import choose_fields
from clarec.text.templates import item_text, user_text

__all__ = ["ITEM_PROMPT", "USER_PROMPT", "attach_profiles", "train_fingerprint", "write_profiles"]

ITEM_PROMPT = (
    "Here is an item from a catalogue.\n{text}\n"
    "In one or two sentences, say what this item is and what kind of person would enjoy it."
)
USER_PROMPT = (
    "Here are the items a user chose, most recent first.\n{text}\n"
    "In one or two sentences, describe this user's tastes."
)
META = "profiles.json"


def train_fingerprint(train: Dataset) -> str:
    """SHA-256 of the training (user id, item id) pairs, in a canonical order (pandas' fixed-key
    row hashes of the sorted pairs: vectorised, so millions of interactions take seconds)."""
    df = train.interactions
    pairs = pd.DataFrame(
        {
            "user": train.user_ids[df["user"].to_numpy()].astype(str),
            "item": train.item_ids[df["item"].to_numpy()].astype(str),
        }
    ).sort_values(["user", "item"], kind="stable")
    return hashlib.sha256(pd.util.hash_pandas_object(pairs, index=False).to_numpy().tobytes()).hexdigest()


def _write_tsv(path: Path, ids, texts) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "profile"])
        w.writerows(
            zip([str(i) for i in ids], [t.replace("\t", " ").replace("\n", " ") for t in texts], strict=True)
        )


def write_profiles(
    split: Split,
    generator: Generator,
    out: str | Path,
    item_fields: list[str] | None = None,
    n_recent: int = 20,
    progress=None,
) -> dict:
    """Profiles of every item and every training user of ``split``; returns what ``profiles.json`` holds."""
    say = progress or (lambda line: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # the folder's profiles stop counting as written for any split until this write is complete: a
    # rewrite that stops half-way must not leave one split's profiles under another's fingerprint
    (out / META).unlink(missing_ok=True)
    train = split.train
    fields = choose_fields(train.items, item_fields, "profiles")
    item_texts = item_text(train.items, fields)
    if not any(item_texts):
        raise ConfigError(f"profiles: the items have no text in the fields {fields}")
    # the titles themselves (item_text would label each "Title: ..." inside the user's text)
    titles = train.items["title"].tolist() if "title" in train.items.columns else item_texts
    histories = train.user_histories()
    user_fields = [str(c) for c in train.users.columns if c not in ("user_id", "profile")]
    user_texts = user_text(
        train.users, histories, titles, user_fields, n_recent=n_recent, history_label="Items"
    )
    start, before = time.perf_counter(), generator.generated
    say(f"item profiles: {len(item_texts)}")
    item_profiles = generator.generate([ITEM_PROMPT.format(text=t) for t in item_texts])
    # a user with no training item has nothing to describe: an empty profile, not an invented one
    known = [u for u, h in enumerate(histories) if len(h)]
    say(f"user profiles: {len(known)}")
    user_profiles = [""] * len(user_texts)
    for u, text in zip(
        known, generator.generate([USER_PROMPT.format(text=user_texts[u]) for u in known]), strict=True
    ):
        user_profiles[u] = text
    seconds = time.perf_counter() - start
    _write_tsv(out / "items.tsv", train.item_ids, item_profiles)
    _write_tsv(out / "users.tsv", train.user_ids, user_profiles)
    empty = {
        "items": sum(not t.strip() for t in item_profiles),
        "users": sum(not user_profiles[u].strip() for u in known),
    }
    if empty["items"] or empty["users"]:
        say(
            f"note: the model wrote nothing for {empty['items']} items and {empty['users']} users (empty profiles)"
        )
    tokenizer = getattr(generator, "tokenizer", None)
    tokens = None
    if tokenizer is not None:
        tokens = int(
            sum(
                len(x)
                for x in tokenizer(item_profiles + user_profiles, add_special_tokens=False)["input_ids"]
            )
        )
    meta = {
        "model": generator.model_id,
        "settings": asdict(generator.settings),
        "item_fields": fields,
        "n_recent": n_recent,
        "items": len(item_profiles),
        "users": len(user_profiles),
        "generated": generator.generated - before,
        "seconds": round(seconds, 1),
        "tokens": tokens,
        "empty": empty,
        "train_fingerprint": train_fingerprint(train),
        # the files this record speaks for (attach_profiles checks them)
        "files": {name: _sha256(out / name) for name in ("items.tsv", "users.tsv")},
    }
    (out / META).write_text(json.dumps(meta, indent=2))
    return meta


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_tsv(path: Path) -> pd.Series:
    if not path.is_file():
        raise ConfigError(f"profiles: {path} is missing (write it with clarec profile)")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)
    if list(df.columns) != ["id", "profile"]:
        raise ConfigError(f"profiles: {path} must have the columns id, profile; it has {list(df.columns)}")
    return pd.Series(df["profile"].to_numpy(), index=df["id"].to_numpy())


def attach_profiles(split: Split, folder: str | Path) -> None:
    """Add the ``profile`` column of ``folder``'s profiles to the split's item and user tables
    (shared by its parts); items or users without a profile get an empty one."""
    folder = Path(folder)
    meta_path = folder / META
    if not meta_path.is_file():
        raise ConfigError(f"profiles: {meta_path} is missing (write the folder with clarec profile)")
    meta = json.loads(meta_path.read_text())
    train = split.train
    if meta.get("train_fingerprint") != train_fingerprint(train):
        raise ConfigError(
            f"profiles in {folder} were written for another training split (other data, split or seed): "
            "user profiles read training interactions, so using them here would leak; write them for this split"
        )
    for name, digest in meta.get("files", {}).items():  # folders written before this check have none
        if (folder / name).is_file() and _sha256(folder / name) != digest:
            raise ConfigError(
                f"profiles: {folder / name} is not the file {META} was written with (changed or replaced "
                "since): write the profiles again with clarec profile"
            )
    items = _read_tsv(folder / "items.tsv")
    users = _read_tsv(folder / "users.tsv")
    train.items["profile"] = items.reindex(train.item_ids.astype(str)).fillna("").to_numpy()
    # the parts share one item table and one user table, so this reaches valid and test too
    train.users["profile"] = users.reindex(train.user_ids.astype(str)).fillna("").to_numpy()
