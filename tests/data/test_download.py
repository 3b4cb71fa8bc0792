"""Download: fetch from a local HTTP server, checksums, safe extraction, import of local copies, CLI."""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import threading
import zipfile
from pathlib import Path

import pytest

from clarec.cli import main
from clarec.data import catalogue
from clarec.data.catalogue import DatasetInfo, Download, register_dataset
from clarec.data.download import fetch, import_local
from clarec.data.loading import load_dataset
from clarec.errors import DataError

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
    catalogue.REGISTRY.pop("toy-100k", None)


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
    # an installed copy that is not the known one (cut short, edited) is refused, not taken
    (folder / "u.data").write_text("changed")
    with pytest.raises(DataError, match="not the known one: fetch or import it again with --force"):
        fetch("toy-100k", root=root, base_url=url)
    assert (folder / "u.data").read_text() == "changed"
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
    with pytest.raises(DataError, match="holds neither the files"):
        import_local("toy-100k", tmp_path / "zips" / "..", root=tmp_path / "r4")
    # an archive without the files: the error names the user's folder, not a staging one
    with zipfile.ZipFile(zdir / "toy.zip", "w") as z:
        z.writestr("ml-100k/u.data", U_DATA)
    with pytest.raises(DataError, match=rf"^{re.escape(str(zdir))}: the files of 'toy-100k' lack"):
        import_local("toy-100k", zdir, root=tmp_path / "r5")


def test_cli(tmp_path, toy_entry, capsys):
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ml-100k" in out and "toy-100k" in out
    assert "Also amazon2018-<category> for the other" in out and "video-games" in out  # by pattern
    assert main(["data", "info", "amazon2018-video-games"]) == 0 and "Video_Games" in capsys.readouterr().out
    assert main(["data", "info", "ml-100k"]) == 0
    assert "files.grouplens.org/datasets/movielens/ml-100k.zip" in capsys.readouterr().out
    assert main(["data", "info", "nope"]) == 2
    assert "unknown data set" in capsys.readouterr().err
    src = tmp_path / "src"
    src.mkdir()
    for name, text in (("u.data", U_DATA), ("u.item", U_ITEM), ("u.user", U_USER)):
        (src / name).write_text(text)
    root = tmp_path / "r"
    assert main(["data", "import", "toy-100k", str(src), "--root", str(root)]) == 0
    assert (root / "toy-100k" / "u.data").is_file() and "already" not in capsys.readouterr().out
    # already present: nothing downloaded
    assert main(["data", "fetch", "toy-100k", "--root", str(root)]) == 0
    # imported again: said, not done, unless --force; a folder without the files is refused either way
    (src / "u.data").write_text("1\t1\t5\t100\n")  # other content: a checksum mismatch if copied
    assert main(["data", "import", "toy-100k", str(src), "--root", str(root)]) == 0
    assert "already installed: nothing copied; --force replaces it" in capsys.readouterr().out
    assert (root / "toy-100k" / "u.data").read_text() == U_DATA
    assert main(["data", "import", "toy-100k", str(src), "--root", str(root), "--force"]) == 2
    assert (
        "checksum mismatch" in capsys.readouterr().err
        and (root / "toy-100k" / "u.user").read_text() == U_USER
    )
    (tmp_path / "empty").mkdir()
    assert main(["data", "import", "toy-100k", str(tmp_path / "empty"), "--root", str(root)]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {tmp_path / 'empty'}: holds neither the files of 'toy-100k'"
    )


def test_a_truncated_gzip_without_a_checksum_does_not_replace_a_good_copy(tmp_path):
    # `data import --force` of an interrupted copy replaced the installed file (no checksum known)
    import gzip

    info = DatasetInfo(
        name="toy-gz", folder="toy-gz", kind="amazon2018", downloads=(), files={"Toy_5.json.gz": None}
    )
    register_dataset(info)
    try:
        good = gzip.compress(b'{"reviewerID": "u", "asin": "a", "overall": 5.0}\n' * 2000)
        src = tmp_path / "src"
        src.mkdir()
        (src / "Toy_5.json.gz").write_bytes(good)
        folder = import_local("toy-gz", src, root=tmp_path / "root")
        (src / "Toy_5.json.gz").write_bytes(good[: len(good) // 2])
        with pytest.raises(DataError, match="not a complete gzip file"):
            import_local("toy-gz", src, root=tmp_path / "root", force=True)
        assert (folder / "Toy_5.json.gz").read_bytes() == good
    finally:
        catalogue.REGISTRY.pop("toy-gz", None)


class _Server(http.server.SimpleHTTPRequestHandler):
    """Compresses its answer when the client accepts gzip (as GitHub's raw files are sent), and
    sends no length for ``nolength.txt``."""

    def log_message(self, *a, **k):
        pass

    def do_GET(self):
        import gzip

        body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        gz = "gzip" in self.headers.get("Accept-Encoding", "")
        payload = gzip.compress(body) if gz else body
        self.send_response(200)
        if gz:
            self.send_header("Content-Encoding", "gzip")
        if "nolength" not in self.path:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True


@pytest.fixture()
def gzip_server(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Server, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_compressing_server_and_a_file_of_unknown_length(gzip_server, tmp_path):
    """A server compressing its answers sends the file as it is (the length it gives counts the
    compressed bytes); a plain file with neither a checksum nor a length is refused, as a cut-off
    download could not be told from a whole one."""
    www, url = gzip_server
    (www / "plain.txt").write_text("1 2 3\n" * 5000)
    (www / "nolength.txt").write_text("1 2 3\n")
    entries = [
        DatasetInfo(name=f"toy-{n}", folder=f"toy-{n}", kind="lightgcn", files={f: None},
                    downloads=(Download(f"https://example.org/{f}", f, "file"),))
        for n, f in (("plain", "plain.txt"), ("nolength", "nolength.txt"))
    ]  # fmt: skip
    for info in entries:
        register_dataset(info)
    try:
        folder = fetch("toy-plain", root=tmp_path / "root", base_url=url)
        assert (folder / "plain.txt").read_text() == "1 2 3\n" * 5000
        with pytest.raises(DataError, match="no length and the catalogue no checksum"):
            fetch("toy-nolength", root=tmp_path / "root", base_url=url)
        assert not (tmp_path / "root" / "toy-nolength").exists()
    finally:
        for info in entries:
            catalogue.REGISTRY.pop(info.name, None)


def test_a_corrupt_archive_member_and_a_cut_gz_copy_of_a_known_file_get_one_error(tmp_path, toy_entry):
    import gzip

    zdir = tmp_path / "zips"
    zdir.mkdir()
    with zipfile.ZipFile(zdir / "toy.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, text in (("u.data", U_DATA * 200), ("u.item", U_ITEM), ("u.user", U_USER)):
            z.writestr(f"ml-100k/{name}", text)
    raw = bytearray((zdir / "toy.zip").read_bytes())
    raw[60:90] = bytes(30)  # inside u.data's compressed stream
    (zdir / "toy.zip").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="not a valid zip archive"):
        import_local("toy-100k", zdir, root=tmp_path / "r1")
    # a .gz copy of u.data, whose checksum is the plain file's: its gunzipped content is checked
    src = tmp_path / "src"
    src.mkdir()
    (src / "u.data.gz").write_bytes(gzip.compress(U_DATA[:-10].encode()))
    (src / "u.item").write_text(U_ITEM)
    (src / "u.user").write_text(U_USER)
    with pytest.raises(DataError, match="gunzipped content's sha256"):
        import_local("toy-100k", src, root=tmp_path / "r2")
    (src / "u.data.gz").write_bytes(gzip.compress(U_DATA.encode()))
    assert (import_local("toy-100k", src, root=tmp_path / "r2") / "u.data.gz").is_file()
