"""Written profiles: every item from its text, every user from training interactions only; attached
as ``profile`` columns for the split they were written for, refused for any other."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clarec.cli import main
from clarec.config import load_config
from clarec.errors import ConfigError
from clarec.experiment.runner import prepare_data
from clarec.llm import LocalGenerator
from clarec.llm.profiles import USER_PROMPT, attach_profiles, write_profiles


def write_data(folder):
    rng = np.random.default_rng(0)
    titles = [
        "Toy Story",
        "Heat",
        "Fargo",
        "Alien",
        "Up",
        "Jaws",
        "Rocky",
        "Big",
        "Babe",
        "Seven",
        "Ran",
        "Ed",
    ]
    rows = [(f"u{u}", f"i{i}", t) for u in range(15) for t, i in enumerate(rng.choice(12, 5, replace=False))]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(folder / "events.csv", index=False)
    pd.DataFrame({"item_id": [f"i{i}" for i in range(12)], "title": titles}).to_csv(
        folder / "items.csv", index=False
    )
    return folder / "events.csv"


ITEM_COLUMNS = "item_columns: {item: item_id, title: title}"


@pytest.fixture
def config(tmp_path):
    path = write_data(tmp_path / "data")
    p = tmp_path / "c.yaml"
    p.write_text(
        f"name: tiny\ndata: {{source: tabular, path: {path}, item_file: items.csv, {ITEM_COLUMNS}}}\n"
        "split: {method: random, ratios: [0.6, 0.2, 0.2]}\nmodels:\n  - name: popularity\n"
    )
    return p


def test_profiles_are_written_from_training_items_only_and_attached(
    config, tmp_path, tiny_llm_dir, monkeypatch
):
    split = prepare_data(load_config(config)).split
    gen = LocalGenerator(tiny_llm_dir, cache_dir=tmp_path / "cache", max_new_tokens=6)
    prompts = []
    original = gen.generate

    def recording(ps, **kwargs):
        prompts.extend(ps)
        return original(ps, **kwargs)

    monkeypatch.setattr(gen, "generate", recording)
    meta = write_profiles(split, gen, tmp_path / "profiles")
    assert meta["items"] == split.train.n_items and meta["users"] == split.train.n_users
    assert meta["generated"] == meta["items"] + meta["users"] and meta["tokens"] > 0
    titles = split.train.items["title"].tolist()
    for u in range(split.train.n_users):  # each user's prompt names their training items, nothing else
        prompt = prompts[split.train.n_items + u]
        assert prompt.startswith(USER_PROMPT.split("{text}")[0])
        train_items = set(split.train.user_histories()[u].tolist())
        held_out = {
            int(i) for part in (split.valid, split.test) for i in part.user_histories()[u]
        } - train_items
        for i in train_items:
            assert titles[i] in prompt
        assert "Title:" not in prompt  # the titles as they are, not each labelled inside the list
        for i in held_out:
            assert titles[i] not in prompt
    again = write_profiles(
        split, LocalGenerator(tiny_llm_dir, cache_dir=tmp_path / "cache", max_new_tokens=6), tmp_path / "p2"
    )
    assert again["generated"] == 0  # all cached
    attach_profiles(split, tmp_path / "profiles")
    items = pd.read_csv(tmp_path / "profiles" / "items.tsv", sep="\t", keep_default_na=False)
    assert split.test.items["profile"].tolist() == items["profile"].tolist()  # the parts share the tables
    assert len(split.valid.users["profile"]) == split.train.n_users


def test_profiles_of_another_split_are_refused(config, tmp_path, tiny_llm_dir):
    cfg = load_config(config)
    gen = LocalGenerator(tiny_llm_dir, cache_dir="none", max_new_tokens=4)
    write_profiles(prepare_data(cfg).split, gen, tmp_path / "profiles")
    other = prepare_data(load_config(config, ["seed=7"])).split
    with pytest.raises(ConfigError, match="another training split"):
        attach_profiles(other, tmp_path / "profiles")
    with pytest.raises(ConfigError, match="missing"):
        attach_profiles(other, tmp_path / "nothing")


def test_cli_writes_profiles_and_a_config_reads_them(config, tmp_path, tiny_llm_dir, capsys):
    out = tmp_path / "profiles"
    assert (
        main(
            ["profile", str(config), "--out", str(out), "--model", str(tiny_llm_dir), "--max-new-tokens", "4"]
        )
        == 0
    )
    meta = json.loads((out / "profiles.json").read_text())
    assert meta["model"].startswith(tiny_llm_dir.name) and (out / "users.tsv").is_file()
    with_profiles = tmp_path / "with.yaml"
    with_profiles.write_text(config.read_text().replace(ITEM_COLUMNS, f"{ITEM_COLUMNS}, profiles: {out}"))
    split = prepare_data(load_config(with_profiles)).split
    assert "profile" in split.train.items.columns and "profile" in split.train.users.columns
    # the same split saved as a predefined folder reads the same profiles
    split.save(tmp_path / "saved")
    predefined = tmp_path / "predefined.yaml"
    predefined.write_text(
        f"split: {{method: predefined, path: {tmp_path / 'saved'}}}\ndata: {{profiles: {out}}}\n"
        "models: [{name: popularity}]\n"
    )
    again = prepare_data(load_config(predefined)).split
    assert list(again.train.users["profile"]) == list(split.train.users["profile"])
    assert again.train.items["profile"].str.len().gt(0).any()
    assert (
        main(["profile", str(with_profiles), "--out", str(tmp_path / "x"), "--model", str(tiny_llm_dir)]) == 2
    )
    assert "already reads profiles" in capsys.readouterr().err


def test_a_rewrite_that_stops_half_way_or_an_edited_file_is_not_attached(
    config, tmp_path, tiny_llm_dir, monkeypatch
):
    cfg = load_config(config)
    split = prepare_data(cfg).split
    gen = LocalGenerator(tiny_llm_dir, cache_dir="none", max_new_tokens=4)
    out = tmp_path / "profiles"
    write_profiles(split, gen, out)
    attach_profiles(split, out)
    # the same folder rewritten for another split, stopped before its record: the earlier record must
    # not vouch for what is in the folder now
    other = prepare_data(load_config(config, ["seed=7"])).split
    calls = []

    def stops(prompts, **kwargs):
        calls.append(len(prompts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return ["x"] * len(prompts)

    monkeypatch.setattr(gen, "generate", stops)
    with pytest.raises(KeyboardInterrupt):
        write_profiles(other, gen, out)
    with pytest.raises(ConfigError, match="profiles.json is missing"):
        attach_profiles(split, out)
    monkeypatch.undo()
    write_profiles(split, gen, out)
    users = out / "users.tsv"
    users.write_text(users.read_text().replace("\tu", "\tedited u", 1) + "u99\tsomeone else\n")
    with pytest.raises(ConfigError, match="is not the file profiles.json was written with"):
        attach_profiles(split, out)
