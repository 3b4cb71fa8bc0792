"""LightGCN/NGCF benchmark folders (Gowalla, Yelp2018, Amazon-Book): ``train.txt`` + ``test.txt``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clarec.data.clean import CleanReport
from clarec.data.sources._io import find_file
from clarec.data.sources.base import RawData
from clarec.data.sources.sequences import read_user_lines


def read(
    path: str | Path,
    strict: bool = False,
    train_file: str = "train.txt",
    test_file: str | None = "test.txt",
) -> RawData:
    """Read the remapped ``user item item ...`` files (``.gz`` copies are found too).

    The data set holds train and test interactions together; the official split is kept in
    ``extras["official_split"]`` (user_id, item_id, part = "train"/"test") so an experiment can use it
    verbatim. There are no times: ``timestamp`` is the position in the line, which carries no meaning.
    """
    folder = Path(path)
    report = CleanReport()
    train = read_user_lines(find_file(folder, train_file), report, strict, allow_empty=True)
    train["part"] = "train"
    frames = [train]
    if test_file:
        test = read_user_lines(find_file(folder, test_file), report, strict, allow_empty=True)
        test["part"] = "test"
        frames.append(test)
    inter = pd.concat(frames, ignore_index=True)
    split = inter[["user_id", "item_id", "part"]].copy()
    return RawData(
        inter.drop(columns=["_line", "part"]), None, None, {"official_split": split}, report, name=folder.name
    )
