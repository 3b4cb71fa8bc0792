"""EmbeddingCache and the model fingerprint helpers."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

from clarec.errors import DataError
from clarec.text.cache import EmbeddingCache, file_sha256, folder_fingerprint, text_hash


def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_text_hash_is_sha1_of_utf8():
    assert text_hash("café") == hashlib.sha1("café".encode()).digest()
    assert len(text_hash("")) == 20


def test_put_get_roundtrip_in_request_order(tmp_path):
    cache = EmbeddingCache(tmp_path, "k" * 64, dim=4)
    hashes = [text_hash(f"t{i}") for i in range(5)]
    vecs = _vectors(5, 4)
    cache.put(hashes[:3], vecs[:3])
    assert len(cache) == 3
    found, got = cache.get([hashes[4], hashes[2], hashes[0], hashes[3], hashes[2]])
    np.testing.assert_array_equal(found, [False, True, True, False, True])
    np.testing.assert_array_equal(got, vecs[[2, 0, 2]])
    assert got.dtype == np.float32 and got.flags.writeable
    found, got = cache.get([])
    assert found.shape == (0,) and got.shape == (0, 4)


def test_many_texts_in_one_call(tmp_path):
    cache = EmbeddingCache(tmp_path, "big", dim=8)
    hashes = [text_hash(str(i)) for i in range(5000)]  # several SQL chunks
    vecs = _vectors(5000, 8)
    cache.put(hashes, vecs)
    found, got = cache.get(hashes[::-1])
    assert found.all()
    np.testing.assert_array_equal(got, vecs[::-1])


def test_put_overwrites_and_checks_shape(tmp_path):
    cache = EmbeddingCache(tmp_path, "k", dim=3)
    h = [text_hash("a")]
    cache.put(h, np.ones((1, 3)))
    cache.put(h, np.full((1, 3), 2.0))
    np.testing.assert_array_equal(cache.get(h)[1], [[2.0, 2.0, 2.0]])
    with pytest.raises(ValueError, match="shape"):
        cache.put(h, np.ones((1, 4)))


def test_keys_are_separate_files_and_dim_is_checked(tmp_path):
    a = EmbeddingCache(tmp_path, "model-a", dim=2)
    b = EmbeddingCache(tmp_path, "model-b", dim=2)
    a.put([text_hash("x")], np.ones((1, 2)))
    assert not b.get([text_hash("x")])[0].any()
    assert a.path != b.path
    with pytest.raises(DataError, match="dim 2, expected 'model-a' dim 3"):
        EmbeddingCache(tmp_path, "model-a", dim=3)


def test_damaged_file_gives_one_line_error(tmp_path):
    (tmp_path / "bad.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match="bad.sqlite: not a usable embedding cache"):
        EmbeddingCache(tmp_path, "bad", dim=2)


def test_lock_answered_without_waiting_is_retried(tmp_path, monkeypatch):
    # SQLite can answer "database is locked" at once (no busy wait), e.g. while another process
    # switches a fresh file to WAL; the cache retries instead of calling the file unusable.
    cache = EmbeddingCache(tmp_path, "k", dim=2)
    connect = cache._connect
    answers = iter([sqlite3.OperationalError("database is locked")] * 3)

    def flaky():
        err = next(answers, None)
        if err is not None:
            raise err
        return connect()

    monkeypatch.setattr(cache, "_connect", flaky)
    cache.put([text_hash("a")], np.ones((1, 2), np.float32))
    assert len(cache) == 1


def test_lock_held_past_the_deadline_is_one_error(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path, "k", dim=2)
    monkeypatch.setattr("clarec.text.cache._BUSY_SECONDS", 0.05)

    def locked():
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(cache, "_connect", locked)
    with pytest.raises(DataError, match="database is locked"):
        len(cache)


def test_concurrent_threads_read_while_writing(tmp_path):
    cache = EmbeddingCache(tmp_path, "k", dim=16)
    base = [text_hash(f"base{i}") for i in range(200)]
    base_vecs = _vectors(200, 16)
    cache.put(base, base_vecs)
    errors: list[BaseException] = []

    def reader():
        try:
            for _ in range(20):
                found, got = cache.get(base)
                assert found.all()
                np.testing.assert_array_equal(got, base_vecs)
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            errors.append(e)

    def writer(seed: int):
        try:
            for j in range(10):
                hs = [text_hash(f"w{seed}-{j}-{i}") for i in range(50)]
                cache.put(hs, _vectors(50, 16, seed * 100 + j))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    threads += [threading.Thread(target=writer, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache) == 200 + 2 * 10 * 50


_WRITER = """
import sys
import numpy as np
from clarec.text.cache import EmbeddingCache, text_hash
folder, seed = sys.argv[1], int(sys.argv[2])
cache = EmbeddingCache(folder, "shared", dim=8)
for j in range(5):
    cache.put([text_hash(f"p{seed}-{j}-{i}") for i in range(100)], np.full((100, 8), seed, np.float32))
    cache.get([text_hash(f"p{seed}-0-{i}") for i in range(100)])
"""


def test_concurrent_processes(tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(s)], stderr=subprocess.PIPE)
        for s in (1, 2)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
    assert outcomes == [(0, ""), (0, "")]
    cache = EmbeddingCache(tmp_path, "shared", dim=8)
    assert len(cache) == 1000
    found, got = cache.get([text_hash("p2-4-99"), text_hash("p1-0-0")])
    assert found.all()
    np.testing.assert_array_equal(got[:, 0], [2, 1])


def test_file_sha256_is_memoised_until_the_file_changes(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"abc")
    memo = tmp_path / "memo"
    digest = hashlib.sha256(b"abc").hexdigest()
    assert file_sha256(f, memo) == digest
    sidecar = memo / "file_sha256.json"
    entries = json.loads(sidecar.read_text())
    # Plant a fake digest: it is returned while size and mtime match, proving the file was not reread.
    entries[str(f.resolve())][-1] = "planted"
    sidecar.write_text(json.dumps(entries))
    assert file_sha256(f, memo) == "planted"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert file_sha256(f, memo) == digest
    sidecar.write_text("{damaged")
    assert file_sha256(f, memo) == digest
    assert file_sha256(f) == digest
    # other bytes of the same size put in place with the old mtime kept (cp -p, rsync -a): seen
    st = f.stat()
    new = tmp_path / "new.bin"
    new.write_bytes(b"abd")
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(new, f)
    assert f.stat().st_mtime_ns == st.st_mtime_ns and f.stat().st_size == st.st_size
    assert file_sha256(f, memo) == hashlib.sha256(b"abd").hexdigest()
    sidecar.write_text("[1, 2]")  # valid JSON that is not a mapping: rebuilt too
    assert file_sha256(f, memo) == hashlib.sha256(b"abd").hexdigest()


def test_folder_fingerprint_tracks_content_not_readme(tmp_path):
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "README.md").write_text("hello")
    first = folder_fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("changed")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x").write_text("ignored")
    assert folder_fingerprint(tmp_path) == first
    (tmp_path / "config.json").write_text('{"a": 2}')
    assert folder_fingerprint(tmp_path) != first
