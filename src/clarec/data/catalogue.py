"""The catalogue of public data sets: what exists, where it comes from, which files it needs.

Each :class:`DatasetInfo` names a data set's folder under the data root, its source kind (the reader in
:mod:`clarec.data.sources`), its downloads, its needed and optional files with their sha256 when known,
its loader options and its licence. Built in: MovieLens, the S3-Rec Amazon 2014 sequences, Amazon 2018
categories and LightGCN's Gowalla; :func:`register_dataset` adds more. Getting the files onto disk is
:mod:`clarec.data.download`; reading them is :mod:`clarec.data.loading`.

Data live under a root folder laid out like the official archives (``ml-100k/u.data``,
``ml-latest-small/ratings.csv``, ``amazon2018-gift-cards/Gift_Cards_5.json.gz``...). The root is the
``root`` argument, else ``$CLAREC_DATA``, else ``~/.cache/clarec/datasets``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from clarec.data.sources import SOURCES
from clarec.data.sources._io import find_file
from clarec.errors import ConfigError

DEFAULT_ROOT = Path("~/.cache/clarec/datasets")


@dataclass(frozen=True)
class Download:
    """One file to download. ``archive``: ``zip`` (extract ``archive_dir``), ``gz`` (gunzip), ``file``."""

    url: str
    filename: str
    archive: str = "file"
    sha256: str | None = None
    archive_dir: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set.

    ``files`` maps each needed file (relative to ``folder``) to its sha256 when known; a file may
    also be present gzip'd (``name.gz``). ``optional`` files are used when present. ``options`` are
    the loader's defaults; ``optional_options`` are added only when the named file exists.
    """

    name: str
    folder: str
    kind: str
    downloads: tuple[Download, ...]
    files: dict[str, str | None]
    options: dict = field(default_factory=dict)
    optional: dict[str, str | None] = field(default_factory=dict)
    optional_options: dict[str, str] = field(default_factory=dict)
    licence: str = ""
    homepage: str = ""
    description: str = ""


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_GROUPLENS_TERMS = (
    "GroupLens licence: research use, cite Harper & Konstan (TiiS 2015), no endorsement, "
    "no redistribution or commercial use without permission"
)
_AMAZON_TERMS = (
    "McAuley lab: research use, cite the release's paper; review and product text is Amazon content"
)
_AMAZON2018_REVIEWS = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/categoryFilesSmall"
_AMAZON2018_META = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/metaFiles2"
_S3REC_RAW = "https://raw.githubusercontent.com/aHuiWang/CIKM2020-S3Rec/master/data"
_LIGHTGCN_RAW = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/gowalla"

#: Categories of the Amazon Review Data (2018) release.
AMAZON2018_CATEGORIES = (
    "AMAZON_FASHION", "All_Beauty", "Appliances", "Arts_Crafts_and_Sewing", "Automotive", "Books",
    "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Digital_Music",
    "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food", "Home_and_Kitchen", "Industrial_and_Scientific",
    "Kindle_Store", "Luxury_Beauty", "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments",
    "Office_Products", "Patio_Lawn_and_Garden", "Pet_Supplies", "Prime_Pantry", "Software",
    "Sports_and_Outdoors", "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games",
)  # fmt: skip

# sha256 of extracted files, as checked on the staged copies (see the shared datasets README).
_SHA = {
    "ml-100k/u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "ml-100k/u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "ml-100k/u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "ml-100k/u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "ml-1m/movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
    "ml-1m/users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
    "ml-latest-small/ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "ml-latest-small/movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "ml-latest-small/tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
    "Beauty.txt": "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
    "Sports_and_Outdoors.txt": "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
    "Toys_and_Games.txt": "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
    "Beauty_item2attributes.json": "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4",
    "Sports_and_Outdoors_item2attributes.json": "7fb10733ac4f1811384a52144cdefa7fcc7536fa80a7232c5da9bd789155c34b",
    "Toys_and_Games_item2attributes.json": "d371acd25101eedac04afc727626464b7acec770c4eda708705d51eb76eb1ad0",
    "Gift_Cards_5.json.gz": "41e1f0e50d3c1c9d7d949fb6315944c8bde51ea6b7429a29fdd0d02cbc07ef25",
    "meta_Gift_Cards.json.gz": "07fd154b7275ab9b1537e3802913508c7a5f84ed00f73201cd3fa18b2b51b342",
    "Magazine_Subscriptions_5.json.gz": "95c124603d62d6acdfd1bd62284934fb6c513db836ea64c2e8176c14256426f2",
    "meta_Magazine_Subscriptions.json.gz": "4e64f9028648dee43200a4bd3e7b8c497ffd80ea52018e8f994a5fbd5d97faf6",
    "gowalla/test.txt": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3",
    "gowalla/user_list.txt": "5344c4d0deef610e1f148f23ad216a0db03b36f88834cd39a06786a672c5f5a1",
    "gowalla/item_list.txt": "6b186f92890cc3f0c15a6dae5d6285f125a302bb8c5ea0cd9a16cf9c16347139",
}


def _movielens(name: str, kind: str, files: list[str], optional: list[str], description: str) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        folder=name,
        kind=kind,
        downloads=(Download(f"{_GROUPLENS}/{name}.zip", f"{name}.zip", "zip", None, name),),
        files={f: _SHA.get(f"{name}/{f}") for f in files},
        optional={f: _SHA.get(f"{name}/{f}") for f in optional},
        licence=_GROUPLENS_TERMS,
        homepage="https://grouplens.org/datasets/movielens/",
        description=description,
    )


def _s3rec(name: str, stem: str, item_text: str | None) -> DatasetInfo:
    seq, attrs = f"{stem}.txt", f"{stem}_item2attributes.json"
    return DatasetInfo(
        name=name,
        folder="amazon2014-beauty-sports-toys",
        kind="s3rec",
        downloads=(
            Download(f"{_S3REC_RAW}/{seq}", seq, sha256=_SHA[seq]),
            Download(f"{_S3REC_RAW}/{attrs}", attrs, sha256=_SHA[attrs]),
        ),
        files={seq: _SHA[seq]},
        options={"sequence_file": seq},
        optional={attrs: _SHA[attrs]} | ({item_text: None} if item_text else {}),
        optional_options={"attributes": attrs} | ({"item_text": item_text} if item_text else {}),
        licence=_AMAZON_TERMS
        + "; preprocessing by the S3-Rec authors (CIKM 2020), repository without licence file",
        homepage="https://github.com/aHuiWang/CIKM2020-S3Rec",
        description=f"Amazon 2014 {stem} 5-core sequences as preprocessed by S3-Rec (order only, no times)",
    )


def amazon2018_info(category: str) -> DatasetInfo:
    """The catalogue entry of one Amazon 2018 category (5-core reviews + metadata)."""
    slug = category.lower().replace("_", "-")
    reviews, meta = f"{category}_5.json.gz", f"meta_{category}.json.gz"
    return DatasetInfo(
        name=f"amazon2018-{slug}",
        folder=f"amazon2018-{slug}",
        kind="amazon2018",
        downloads=(
            Download(f"{_AMAZON2018_REVIEWS}/{reviews}", reviews, sha256=_SHA.get(reviews)),
            Download(f"{_AMAZON2018_META}/{meta}", meta, sha256=_SHA.get(meta)),
        ),
        files={reviews: _SHA.get(reviews)},
        optional={meta: _SHA.get(meta)},
        options={"category": category},
        licence=_AMAZON_TERMS + "; cite Ni, Li & McAuley (EMNLP 2019)",
        homepage="https://nijianmo.github.io/amazon/index.html",
        description=f"Amazon Review Data (2018), {category} 5-core reviews with product metadata",
    )


def _builtin() -> dict[str, DatasetInfo]:
    entries = [
        _movielens(
            "ml-100k",
            "movielens-100k",
            ["u.data", "u.item", "u.user"],
            ["u.genre"],
            "MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies",
        ),
        _movielens(
            "ml-1m",
            "movielens-1m",
            ["ratings.dat", "movies.dat", "users.dat"],
            [],
            "MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 movies",
        ),
        _movielens(
            "ml-latest-small",
            "movielens-csv",
            ["ratings.csv", "movies.csv"],
            ["tags.csv"],
            "MovieLens latest small (development set): 100,836 ratings, 610 users",
        ),
        _movielens(
            "ml-20m",
            "movielens-csv",
            ["ratings.csv", "movies.csv"],
            ["tags.csv"],
            "MovieLens 20M: 20,000,263 ratings, 138,493 users",
        ),
        _movielens(
            "ml-25m",
            "movielens-csv",
            ["ratings.csv", "movies.csv"],
            ["tags.csv"],
            "MovieLens 25M: 25,000,095 ratings, 162,541 users",
        ),
        _movielens(
            "ml-32m",
            "movielens-csv",
            ["ratings.csv", "movies.csv"],
            ["tags.csv"],
            "MovieLens 32M: 32,000,204 ratings, 200,948 users",
        ),
        _s3rec("amazon2014-beauty", "Beauty", "Beauty_item_text_derived.tsv"),
        _s3rec("amazon2014-sports", "Sports_and_Outdoors", None),
        _s3rec("amazon2014-toys", "Toys_and_Games", None),
        DatasetInfo(
            name="gowalla-lightgcn",
            folder="gowalla-lightgcn",
            kind="lightgcn",
            downloads=tuple(
                Download(f"{_LIGHTGCN_RAW}/{f}", f, sha256=_SHA.get(f"gowalla/{f}"))
                for f in ("train.txt", "test.txt", "user_list.txt", "item_list.txt")
            ),
            files={"train.txt": None, "test.txt": _SHA["gowalla/test.txt"]},
            optional={
                "user_list.txt": _SHA["gowalla/user_list.txt"],
                "item_list.txt": _SHA["gowalla/item_list.txt"],
            },
            licence="SNAP Gowalla (cite Cho, Myers & Leskovec, KDD 2011); split by the NGCF/LightGCN authors",
            homepage="https://github.com/gusye1234/LightGCN-PyTorch",
            description="Gowalla check-ins, LightGCN split (train + test in one data set; split in extras)",
        ),
    ]
    entries += [amazon2018_info(c) for c in ("Gift_Cards", "Magazine_Subscriptions", "All_Beauty", "Luxury_Beauty", "Software", "Prime_Pantry")]  # fmt: skip
    return {e.name: e for e in entries}


REGISTRY: dict[str, DatasetInfo] = _builtin()


def register_dataset(info: DatasetInfo) -> None:
    """Add (or replace) a data set entry, e.g. a private data set or a local mirror."""
    if info.kind not in SOURCES:
        raise ConfigError(f"unknown source kind {info.kind!r}; known: {', '.join(SOURCES)}")
    REGISTRY[info.name] = info


def get_info(name: str) -> DatasetInfo:
    """The entry for ``name``; any Amazon 2018 category works as ``amazon2018-<category>``."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("amazon2018-"):
        wanted = name[len("amazon2018-") :]
        for cat in AMAZON2018_CATEGORIES:
            if wanted in (cat, cat.lower().replace("_", "-")):
                return amazon2018_info(cat)
    raise ConfigError(f"unknown data set {name!r}; known: {', '.join(list_datasets())}")


def list_datasets() -> list[str]:
    """Names of registered data sets (Amazon 2018: the listed categories; others work by pattern)."""
    return sorted(REGISTRY)


def data_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$CLAREC_DATA``, else ``~/.cache/clarec/datasets``."""
    if root is None:
        root = os.environ.get("CLAREC_DATA") or DEFAULT_ROOT
    return Path(root).expanduser()


def dataset_info(name: str, root: str | Path | None = None) -> dict:
    """A description of ``name``: source, files, URLs, licence, and whether it is present under the root."""
    info = get_info(name)
    folder = data_root(root) / info.folder
    present = {f: find_file(folder, f, required=False) is not None for f in {**info.files, **info.optional}}
    return {
        "name": info.name,
        "description": info.description,
        "kind": info.kind,
        "folder": str(folder),
        "files": {f: {"sha256": s, "present": present[f], "required": True} for f, s in info.files.items()}
        | {f: {"sha256": s, "present": present[f], "required": False} for f, s in info.optional.items()},
        "downloads": [{"url": d.url, "archive": d.archive, "sha256": d.sha256} for d in info.downloads],
        "options": dict(info.options),
        "licence": info.licence,
        "homepage": info.homepage,
        "installed": all(present[f] for f in info.files),
    }


def missing_files(info: DatasetInfo, folder: Path) -> list[str]:
    """The required files of ``info`` not found in ``folder`` (empty when the data set is installed there)."""
    return [f for f in info.files if find_file(folder, f, required=False) is None]
