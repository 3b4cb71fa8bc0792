"""Registry: names, data root, fetch from a local HTTP server, import, config loading, CLI."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clarec.cli_data import data_app
from clarec.data import registry
from clarec.data.registry import (
    DatasetInfo,
    Download,
    data_root,
    dataset_info,
    fetch,
    get_info,
    import_local,
    list_datasets,
    load_dataset,
    load_from_config,
    register_dataset,
)
from clarec.errors import ConfigError, DataError

U_DATA = "1\t1\t5\t100\n1\t2\t3\t101\n2\t1\t4\t102\n2\t2\t2\t103\n"
U_ITEM = "1|A (1990)|||u|" + "|".join("0" * 19) + "\n2|B (1991)|||u|" + "|".join("0" * 19) + "\n"
U_USER = "1|20|M|x|1\n2|30|F|y|2\n"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _zip(path: Path, folder: str) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{folder}/u.data", U_DATA)
        z.writestr(f"{folder}/u.item", U_ITEM)
        z.writestr(f"{folder}/u.user", U_USER)
        z.writestr(f"{folder}/README", "toy")
        z.writestr("../evil.txt", "never written outside")
    return path


@pytest.fixture()
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def toy_entry():
    info = DatasetInfo(
        name="toy-100k",
        folder="toy-100k",
        kind="movielens-100k",
        downloads=(Download("https://example.org/data/toy.zip", "toy.zip", "zip", None, "ml-100k"),),
        files={"u.data": _sha(U_DATA), "u.item": None, "u.user": None},
    )
    register_dataset(info)
    yield info
    registry.REGISTRY.pop("toy-100k", None)


def test_names_and_patterns():
    names = list_datasets()
    for n in ["ml-100k", "ml-1m", "ml-latest-small", "ml-20m", "ml-25m", "ml-32m", "amazon2018-gift-cards",
              "amazon2018-magazine-subscriptions", "amazon2018-all-beauty", "amazon2014-beauty", "amazon2014-sports",
              "amazon2014-toys", "gowalla-lightgcn"]:  # fmt: skip
        assert n in names
    books = get_info("amazon2018-Books")
    assert books.folder == "amazon2018-books" and books.options == {"category": "Books"}
    assert books.downloads[0].url.endswith("/categoryFilesSmall/Books_5.json.gz")
    assert get_info("amazon2018-video-games").options["category"] == "Video_Games"
    assert (
        get_info("ml-100k").files["u.data"]
        == "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
    )
    assert get_info("ml-100k").downloads[0].sha256 is None  # archive hash unknown, not invented
    with pytest.raises(ConfigError, match="unknown data set"):
        get_info("ml-7m")


def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAREC_DATA", str(tmp_path))
    assert data_root() == tmp_path and data_root("/x") == Path("/x")
    monkeypatch.delenv("CLAREC_DATA")
    assert data_root() == Path("~/.cache/clarec/datasets").expanduser()


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="clarec data fetch ml-100k"):
        load_dataset("ml-100k", root=tmp_path)
    info = dataset_info("ml-100k", root=tmp_path)
    assert info["installed"] is False and info["files"]["u.data"]["present"] is False


def test_fetch_from_local_server(server, tmp_path, toy_entry):
    www, url = server
    _zip(www / "toy.zip", "ml-100k")
    root = tmp_path / "root"
    folder = fetch("toy-100k", root=root, base_url=url)
    assert folder == root / "toy-100k" and (folder / "u.data").read_text() == U_DATA
    assert (
        (folder / "README").is_file()
        and not (root / "evil.txt").exists()
        and not (tmp_path / "evil.txt").exists()
    )
    assert [p.name for p in root.iterdir()] == ["toy-100k"]  # no temporary files left behind
    res = load_dataset("toy-100k", root=root)
    assert res.dataset.name == "toy-100k" and res.dataset.n_interactions == 4
    (folder / "u.data").write_text("changed")
    assert (
        fetch("toy-100k", root=root, base_url=url) == folder and (folder / "u.data").read_text() == "changed"
    )
    fetch("toy-100k", root=root, base_url=url, force=True)
    assert (folder / "u.data").read_text() == U_DATA


def test_fetch_checksum_mismatch_leaves_nothing(server, tmp_path, toy_entry):
    www, url = server
    with zipfile.ZipFile(www / "toy.zip", "w") as z:
        z.writestr("ml-100k/u.data", U_DATA.replace("5", "4"))
        z.writestr("ml-100k/u.item", U_ITEM)
        z.writestr("ml-100k/u.user", U_USER)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch("toy-100k", root=root, base_url=url)
    assert list(root.iterdir()) == []


def test_fetch_http_error(server, tmp_path, toy_entry):
    _, url = server
    with pytest.raises(DataError, match="download failed"):
        fetch("toy-100k", root=tmp_path / "root", base_url=url)


def test_import_local_folder_and_zip(tmp_path, toy_entry):
    src = tmp_path / "src" / "ml-100k"
    src.mkdir(parents=True)
    for name, text in (("u.data", U_DATA), ("u.item", U_ITEM), ("u.user", U_USER), ("u1.base", U_DATA)):
        (src / name).write_text(text)
    folder = import_local("toy-100k", tmp_path / "src", root=tmp_path / "r1")
    assert sorted(p.name for p in folder.iterdir()) == ["u.data", "u.item", "u.user", "u1.base"]
    zdir = tmp_path / "zips"
    zdir.mkdir()
    _zip(zdir / "toy.zip", "ml-100k")
    folder = import_local("toy-100k", zdir, root=tmp_path / "r2")
    assert (folder / "u.data").read_text() == U_DATA
    (src / "u.data").write_text("1\t1\t5\t100\n")
    with pytest.raises(DataError, match="checksum mismatch"):
        import_local("toy-100k", tmp_path / "src", root=tmp_path / "r3")
    with pytest.raises(DataError, match="lack"):
        import_local("toy-100k", tmp_path / "zips" / "..", root=tmp_path / "r4")


def test_load_from_config(tmp_path):
    (tmp_path / "log.csv").write_text("u,i,r\na,x,5\na,y,2\nb,x,4\nb,y,5\nc,x,5\n")
    cfg = {"source": "tabular", "path": str(tmp_path / "log.csv"), "columns": {"user": "u", "item": "i", "rating": "r"},
           "min_rating": 4, "k_core": 2}  # fmt: skip
    # ratings >= 4 leave a:x, b:x, b:y, c:x; the 2-core drops a, c and y, then b (one item left): nothing remains.
    with pytest.raises(ConfigError, match="removed every interaction") as e:
        load_from_config(cfg)
    assert "min_rating" in str(e.value) and "k_core" in str(e.value)
    res = load_from_config({**cfg, "k_core": 0, "min_user_interactions": 2, "min_item_interactions": 1})
    assert list(res.dataset.user_ids) == ["b"] and [s.name for s in res.report.steps] == [
        "min_rating",
        "k_core",
    ]
    with pytest.raises(ConfigError, match="unknown data config key\\(s\\) \\['min_ratings'\\]"):
        load_from_config({**cfg, "min_ratings": 4})
    assert load_from_config({**cfg, "k_core": 1, "split": "loo"}, allow=["split"]).dataset.n_interactions == 4
    with pytest.raises(ConfigError, match="exactly one"):
        load_from_config({"path": "x"})
    with pytest.raises(ConfigError, match="needs 'path'"):
        load_from_config({"source": "tabular"})
    with pytest.raises(ConfigError, match="non-negative integer"):
        load_from_config({**cfg, "k_core": "5"})
    with pytest.raises(ConfigError, match="dedupe must be"):
        load_from_config({**cfg, "dedupe": "newest"})


def _real_root() -> Path:
    root = os.environ.get("CLAREC_DATA")
    if not root or not (Path(root) / "ml-100k" / "u.data").is_file():
        pytest.skip("ml-100k not under $CLAREC_DATA")
    return Path(root)


def test_real_ml100k_by_name_and_config():
    root = _real_root()
    assert load_dataset("ml-100k", root=root).dataset.n_interactions == 100000
    res = load_from_config({"name": "ml-100k", "min_rating": 4}, root=root)
    assert res.dataset.n_interactions == 55375 and res.report.steps[0].removed_interactions == 44625
    assert set(res.dataset.interactions["weight"]) == {1.0}
    with pytest.raises(ConfigError, match="unknown data config key"):
        load_from_config({"name": "ml-100k", "columns": {}}, root=root)


def test_real_registry_names_resolve():
    root = _real_root()
    for name in [
        "ml-latest-small",
        "amazon2014-beauty",
        "amazon2018-gift-cards",
        "amazon2018-magazine-subscriptions",
    ]:
        assert dataset_info(name, root)["installed"], name
    beauty = load_dataset("amazon2014-beauty", root=root).dataset
    assert beauty.items["title"].notna().sum() == 12094
    assert load_dataset("amazon2018-gift-cards", root=root).dataset.n_users == 458


def test_cli(tmp_path, toy_entry):
    runner = CliRunner()
    out = runner.invoke(data_app, ["list", "--root", str(tmp_path)])
    assert out.exit_code == 0 and "ml-100k" in out.output and "toy-100k" in out.output
    out = runner.invoke(data_app, ["info", "ml-100k"])
    assert out.exit_code == 0 and "files.grouplens.org/datasets/movielens/ml-100k.zip" in out.output
    out = runner.invoke(data_app, ["info", "nope"])
    assert out.exit_code == 1 and "unknown data set" in out.output
    src = tmp_path / "src"
    src.mkdir()
    for name, text in (("u.data", U_DATA), ("u.item", U_ITEM), ("u.user", U_USER)):
        (src / name).write_text(text)
    out = runner.invoke(data_app, ["import", "toy-100k", str(src), "--root", str(tmp_path / "r")])
    assert out.exit_code == 0 and (tmp_path / "r" / "toy-100k" / "u.data").is_file()
    out = runner.invoke(data_app, ["fetch", "toy-100k", "--root", str(tmp_path / "r")])
    assert out.exit_code == 0  # already present: nothing downloaded


def test_load_dataset_applies_filter_keys(real_data_root):
    res = load_dataset("ml-100k", min_rating=4)
    assert res.dataset.n_interactions == 55375
    assert set(res.dataset.interactions["weight"].unique()) == {1.0}
