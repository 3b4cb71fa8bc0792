"""Getting data set files onto disk: download or import, verify checksums, install into place.

:func:`fetch` streams each download of a catalogue entry to a temporary file under the data root,
checks its sha256 when known, unpacks it (zip members only under the archive's folder, never outside
the target; gunzip; plain file), verifies the extracted files and renames them into place.
:func:`import_local` does the same from a local folder or an official zip. Either skips the work when
the needed files are already present, unless ``force``. The catalogue is :mod:`clarec.data.catalogue`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from clarec.data.catalogue import DatasetInfo, Download, data_root, get_info, missing_files
from clarec.data.sources._io import find_file
from clarec.errors import DataError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, expected: str | None, decompressed: bool = False) -> None:
    """Check ``path`` against its sha256 (of the gunzipped content when ``decompressed``: a ``.gz``
    copy of a file whose checksum is known); with no checksum, a ``.gz`` must at least be a whole
    gzip stream."""
    if expected is not None and not decompressed and sha256_file(path) != expected:
        raise DataError(
            path, f"checksum mismatch: sha256 is not {expected[:12]}… (corrupt or different version)"
        )
    if decompressed or (expected is None and path.name.endswith(".gz")):
        import gzip

        h = hashlib.sha256()
        try:
            with gzip.open(path, "rb") as f:
                while block := f.read(1 << 24):
                    h.update(block)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                path, f"not a complete gzip file ({e}): an interrupted copy or download?"
            ) from None
        if decompressed and expected is not None and h.hexdigest() != expected:
            raise DataError(
                path,
                f"checksum mismatch: the gunzipped content's sha256 is not {expected[:12]}… "
                "(corrupt or different version)",
            )


def _verify_files(info: DatasetInfo, folder: Path) -> None:
    """Every file of ``info`` in ``folder`` (or its ``.gz`` copy) against its known checksum."""
    for f, sha in {**info.files, **info.optional}.items():
        p = find_file(folder, f, required=False)
        if p is not None:
            _verify(p, sha, decompressed=p.name != Path(f).name)


def _download(url: str, dest: Path, timeout: float, known_sha: bool = True) -> None:
    """Stream ``url`` to ``dest`` with a progress bar; ``known_sha``: whether a checksum will check
    the result (else the server's length must)."""
    import requests
    from tqdm.auto import tqdm

    try:
        # identity: with a compressed transfer, requests would unzip the body while Content-Length
        # counts the compressed bytes (and a .gz could be stored unzipped under its .gz name)
        with requests.get(url, stream=True, timeout=timeout, headers={"Accept-Encoding": "identity"}) as r:
            r.raise_for_status()
            total = int(r.headers.get("content-length") or 0) or None
            if total is None and not known_sha:
                raise DataError(
                    url,
                    "the server gives no length and the catalogue no checksum for this file, so a "
                    "cut-off download could not be told from a whole one: download it by hand and "
                    "use 'clarec data import'",
                )
            with (
                open(dest, "wb") as f,
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name.split(".part")[0]) as bar,
            ):
                for block in r.iter_content(chunk_size=1 << 16):
                    f.write(block)
                    bar.update(len(block))
            if total is not None and dest.stat().st_size != total:
                raise DataError(url, f"download incomplete: {dest.stat().st_size} of {total} bytes")
    except requests.RequestException as e:
        raise DataError(url, f"download failed: {e}") from None


def _safe_extract(zpath: Path, archive_dir: str, into: Path) -> None:
    """Extract the members under ``archive_dir/`` of a zip into ``into`` (flattening that prefix)."""
    try:
        with zipfile.ZipFile(zpath) as z:
            prefix = archive_dir.strip("/") + "/" if archive_dir else ""
            for member in z.infolist():
                if member.is_dir() or not member.filename.startswith(prefix):
                    continue
                rel = Path(member.filename[len(prefix) :])
                if rel.is_absolute() or ".." in rel.parts:
                    continue  # never write outside the target folder
                target = into / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:  # a bad archive, or a corrupt member
        raise DataError(zpath, f"not a valid zip archive: {e}") from None


def _installed(info: DatasetInfo, folder: Path) -> None:
    """The files already in ``folder`` checked against their known checksums (an installed copy
    cut short or changed is not taken as the data set)."""
    try:
        _verify_files(info, folder)
    except DataError as e:
        raise DataError(
            e.path,
            f"{e.reason}; the installed copy of {info.name!r} is not the known one: fetch or "
            "import it again with --force",
        ) from None


def _checked_inside(d: Download, info: DatasetInfo) -> bool:
    """Whether what ``d`` unpacks to is checked without the server's length: a zip's directory and a
    gzip stream's end find a cut-off copy; a plain file needs its checksum."""
    return d.archive != "file" or bool(info.files.get(d.filename) or info.optional.get(d.filename))


def _install(staging: Path, info: DatasetInfo, folder: Path) -> None:
    """Verify the staged files and move them into ``folder`` (each move is an atomic rename)."""
    _verify_files(info, staging)
    missing = [
        f
        for f in info.files
        if find_file(staging, f, required=False) is None and find_file(folder, f, required=False) is None
    ]
    if missing:
        raise DataError(staging, f"the files of {info.name!r} lack {missing}")
    folder.mkdir(parents=True, exist_ok=True)
    for p in sorted(staging.rglob("*")):
        if p.is_file():
            target = folder / p.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, target)


def fetch(
    name: str,
    root: str | Path | None = None,
    force: bool = False,
    base_url: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``name`` into the data root; returns its folder.

    Streams each file to a temporary file under the root with a progress bar, checks the sha256 when
    known, extracts zip/gz archives, verifies the extracted files, then renames them into place, so an
    interrupted fetch never leaves a half-written data file. Skips the download when the needed files
    are already present, unless ``force``. ``base_url`` replaces the directory part of every URL
    (a mirror, or a local server in tests).
    """
    info = get_info(name)
    root_path = data_root(root)
    folder = root_path / info.folder
    if not force and not missing_files(info, folder):
        _installed(info, folder)
        return folder
    root_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".fetch-{info.name}-", dir=root_path) as tmp:
        tmp_path = Path(tmp)
        staging = tmp_path / "staging"
        staging.mkdir()
        for d in info.downloads:
            url = d.url if base_url is None else f"{base_url.rstrip('/')}/{d.url.rsplit('/', 1)[-1]}"
            part = tmp_path / f"{d.filename}.part"
            _download(url, part, timeout, known_sha=d.sha256 is not None or _checked_inside(d, info))
            _verify(part, d.sha256)
            _unpack(part, d, staging)
        _install(staging, info, folder)
    return folder


def _unpack(path: Path, d: Download, staging: Path) -> None:
    if d.archive == "zip":
        _safe_extract(path, d.archive_dir, staging)
    elif d.archive == "gz":
        import gzip

        target = staging / d.filename.removesuffix(".gz")
        try:
            with gzip.open(path, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(path, f"cannot gunzip: {e}") from None
    elif d.archive == "file":
        os.replace(path, staging / d.filename)
    else:  # pragma: no cover - catalogue entries are written by us
        raise ValueError(d.archive)


def import_local(name: str, src_dir: str | Path, root: str | Path | None = None, force: bool = False) -> Path:
    """Copy a local copy of ``name`` into the data root layout, verifying checksums; returns the folder.

    ``src_dir`` holds the files directly or in a subfolder named like the official archive
    (``ml-100k/u.data``); a downloaded archive (``ml-100k.zip``) in ``src_dir`` is extracted. A data
    set already installed is left as it is unless ``force`` (``src_dir`` is checked either way).
    """
    info = get_info(name)
    src = Path(src_dir).expanduser()
    if not src.is_dir():
        raise DataError(src, "not a folder")
    base = _locate(src, info)
    archives = [d for d in info.downloads if d.archive == "zip" and (src / d.filename).is_file()]
    if base is None and not archives:  # checked even when installed: a wrong folder is never taken silently
        zips = [d.filename for d in info.downloads if d.archive == "zip"]
        raise DataError(
            src, f"holds neither the files of {info.name!r} ({', '.join(info.files)}) nor its archive {zips}"
        )
    root_path = data_root(root)
    folder = root_path / info.folder
    if not force and not missing_files(info, folder):
        _installed(info, folder)
        return folder
    root_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".import-{info.name}-", dir=root_path) as tmp:
        staging = Path(tmp)
        for d in archives if base is None else []:
            _safe_extract(src / d.filename, d.archive_dir, staging)
        if base is not None:
            for f in {**info.files, **info.optional}:
                p = find_file(base, f, required=False)
                if p is not None:
                    shutil.copy2(p, staging / p.name)
            for f in _companions(info, base):
                shutil.copy2(base / f, staging / f)
        try:
            _install(staging, info, folder)
        except DataError as e:  # name the user's folder, not the staging one
            raise DataError(src, e.reason) from None
    return folder


def _locate(src: Path, info: DatasetInfo) -> Path | None:
    """The folder inside ``src`` that holds the needed files, if any."""
    for cand in (src, src / info.folder, *(src / d.archive_dir for d in info.downloads if d.archive_dir)):
        if all(find_file(cand, f, required=False) is not None for f in info.files):
            return cand
    return None


def _companions(info: DatasetInfo, base: Path) -> Iterable[str]:
    """Other files of a MovieLens archive folder worth keeping (official splits, README)."""
    if not info.kind.startswith("movielens"):
        return []
    known = set(info.files) | set(info.optional)
    return [
        p.name for p in base.iterdir() if p.is_file() and p.name not in known and not p.name.endswith(".zip")
    ]
