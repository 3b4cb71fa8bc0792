"""On-disk cache of text embeddings.

Each model identity (weights, tokenizer, pooling, max length, normalisation) gets one SQLite file in the
cache folder; a row maps the SHA-1 of a text to its float32 vector stored as raw little-endian bytes
(no pickle). SQLite in WAL mode lets any number of processes read while one writes. The table is an
ordinary rowid table with an index on the hash: a 1.5 kB vector fits in one 4 kB page there, whereas a
``WITHOUT ROWID`` table spills it to overflow pages (measured: 4x slower writes, 2x larger file).

Identity of a model folder: SHA-256 of its small files plus the SHA-256 of each weights file; the
latter is computed once and remembered in a sidecar (``file_sha256.json``) keyed by path, size and
modification time, because hashing gigabytes on every start would cost more than it saves.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from clarec.errors import DataError

#: Files larger than this are hashed once and remembered in the sidecar.
_MEMO_MIN_BYTES = 4 << 20
_SIDECAR = "file_sha256.json"
#: Parameters per SQL statement (SQLite's limit is 32766 since 3.32; stay well below).
_CHUNK = 900
_FORMAT = "1"
#: Seconds to keep retrying when another process holds the file.
_BUSY_SECONDS = 60.0


def text_hash(text: str) -> bytes:
    """20-byte SHA-1 of a text's UTF-8 bytes: the cache key of one text."""
    return hashlib.sha1(text.encode("utf-8", errors="surrogatepass")).digest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path, memo_dir: str | Path | None = None) -> str:
    """SHA-256 of a file, remembered in ``memo_dir/file_sha256.json`` while its size, mtime, inode
    and ctime hold (a file copied in with its old mtime kept, ``cp -p``, has a new ctime)."""
    path = Path(path).resolve()
    if memo_dir is None:
        return _sha256_file(path)
    sidecar = Path(memo_dir) / _SIDECAR
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
    memo: dict = {}
    try:
        memo = json.loads(sidecar.read_text())
        if not isinstance(memo, dict):
            raise ValueError("not a mapping")
        entry = memo.get(str(path))
        if isinstance(entry, list) and entry[:-1] == stamp and isinstance(entry[-1], str):
            return entry[-1]
    except (OSError, ValueError, IndexError):
        memo = {}  # missing or damaged sidecar: rebuild it
    digest = _sha256_file(path)
    memo[str(path)] = [*stamp, digest]
    _atomic_write(sidecar, json.dumps(memo, indent=0))
    return digest


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so concurrent readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def folder_fingerprint(folder: str | Path, memo_dir: str | Path | None = None) -> str:
    """SHA-256 over the files of a model folder (names and contents; subfolders and ``*.md`` ignored)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name.startswith(".") or f.suffix == ".md":
            continue
        if f.stat().st_size >= _MEMO_MIN_BYTES:
            digest = file_sha256(f, memo_dir)
        else:
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
        h.update(f"{f.name}\0{digest}\n".encode())
    return h.hexdigest()


class EmbeddingCache:
    """Vectors of texts for one model identity, in ``folder/<key>.sqlite``.

    Args:
        folder: cache folder (created when missing).
        key: model identity; texts embedded under another key never mix with these.
        dim: vector length; a file that holds another length is refused.
        description: what the key stands for (model path, pooling...), stored for people reading the file.
    """

    def __init__(
        self, folder: str | Path, key: str, dim: int, description: Mapping[str, object] | None = None
    ):
        self.folder = Path(folder)
        self.key = key
        self.dim = int(dim)
        self.path = self.folder / f"{key[:40]}.sqlite"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(self.folder, f"cannot create the embedding cache folder: {e}") from None
        self._init(dict(description or {}))

    def _connect(self) -> sqlite3.Connection:
        # One short-lived connection per operation: safe across threads and processes. Autocommit
        # mode, so that every write transaction is opened explicitly with BEGIN IMMEDIATE.
        con = sqlite3.connect(self.path, timeout=_BUSY_SECONDS, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(_BUSY_SECONDS * 1000)}")
        return con

    def _fail(self, e: Exception) -> DataError:
        return DataError(self.path, f"not a usable embedding cache ({e}); delete the file to rebuild it")

    def _run(self, operation):
        """Run ``operation(connection)``, retrying while another process holds the file.

        SQLite answers "database is locked" without waiting in a few cases the busy timeout does not
        cover (switching a fresh file to WAL while another process opens it, lock upgrades in
        rollback mode), so those are retried here with a short back-off until ``_BUSY_SECONDS``.
        """
        deadline = time.monotonic() + _BUSY_SECONDS
        pause = 0.005
        while True:
            try:
                con = self._connect()
                try:
                    return operation(con)
                finally:
                    con.close()
            except sqlite3.OperationalError as e:
                text = str(e).lower()
                if ("locked" in text or "busy" in text) and time.monotonic() < deadline:
                    time.sleep(pause)
                    pause = min(pause * 2, 0.2)
                    continue
                raise self._fail(e) from None
            except sqlite3.Error as e:
                raise self._fail(e) from None

    @staticmethod
    def _write(con: sqlite3.Connection, statements) -> None:
        """Run ``statements(con)`` in one write transaction taken up front (no lock upgrade later)."""
        con.execute("BEGIN IMMEDIATE")
        try:
            statements(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _init(self, description: dict) -> None:
        rows = {
            "format": _FORMAT,
            "key": self.key,
            "dim": str(self.dim),
            "dtype": "<f4",
            "description": json.dumps(description, default=str, sort_keys=True),
        }

        def create(con: sqlite3.Connection) -> None:
            con.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
            con.execute("CREATE TABLE IF NOT EXISTS vectors (h BLOB PRIMARY KEY, v BLOB NOT NULL)")
            con.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", rows.items())

        def init(con: sqlite3.Connection) -> dict:
            con.execute("PRAGMA journal_mode = WAL")
            self._write(con, create)
            return dict(con.execute("SELECT k, v FROM meta").fetchall())

        meta = self._run(init)
        if meta.get("dim") != str(self.dim) or meta.get("key") != self.key:
            raise DataError(
                self.path,
                f"embedding cache holds key {meta.get('key')!r} dim {meta.get('dim')}, "
                f"expected {self.key!r} dim {self.dim}; delete the file to rebuild it",
            )

    def __len__(self) -> int:
        return int(self._run(lambda con: con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]))

    def get(self, hashes: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Look up text hashes.

        Returns:
            ``(found, vectors)``: a boolean mask over ``hashes`` and a float32 array with one row per
            found hash, in the order of ``hashes``.
        """
        nbytes = 4 * self.dim
        wanted = list(dict.fromkeys(hashes))

        def select(con: sqlite3.Connection) -> dict[bytes, bytes]:
            rows: dict[bytes, bytes] = {}
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows.update(con.execute(f"SELECT h, v FROM vectors WHERE h IN ({marks})", chunk))
            return rows

        rows = self._run(select)
        found = np.fromiter((len(rows.get(h, b"")) == nbytes for h in hashes), dtype=bool, count=len(hashes))
        blob = b"".join(rows[h] for h, ok in zip(hashes, found, strict=True) if ok)
        vectors = np.frombuffer(blob, dtype="<f4").reshape(-1, self.dim).astype(np.float32, copy=True)
        return found, vectors

    def put(self, hashes: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store one vector per hash (an existing hash is overwritten) in one transaction."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if vectors.shape != (len(hashes), self.dim):
            raise ValueError(f"expected vectors of shape {(len(hashes), self.dim)}, got {vectors.shape}")
        if not len(hashes):
            return
        rows = [(h, v.tobytes()) for h, v in zip(hashes, vectors, strict=True)]
        self._run(
            lambda con: self._write(
                con, lambda c: c.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
            )
        )
