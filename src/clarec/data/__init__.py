"""Data: sources, cleaning, filters, splits, the :class:`Dataset` type, and public data sets by name.

Public data sets: :mod:`~clarec.data.catalogue` (what exists), :mod:`~clarec.data.download` (getting
the files onto disk) and :mod:`~clarec.data.loading` (reading them, by name or from a config section).
"""

from clarec.data.catalogue import DatasetInfo, data_root, dataset_info, list_datasets, register_dataset
from clarec.data.clean import CleanReport, FilterStep, Issue
from clarec.data.dataset import Dataset
from clarec.data.download import fetch, import_local
from clarec.data.filters import apply_filters, dedupe, k_core, to_implicit, weight_behaviors
from clarec.data.loading import load_dataset, load_from_config
from clarec.data.sources import SOURCES, LoadResult, RawData, load_source, read_source
from clarec.data.split import (
    Split,
    cold_start_split,
    global_temporal_split,
    leave_one_out_split,
    load_predefined_split,
    make_split,
    random_split,
    user_temporal_split,
)

__all__ = [
    "SOURCES",
    "Split",
    "cold_start_split",
    "global_temporal_split",
    "leave_one_out_split",
    "load_predefined_split",
    "make_split",
    "random_split",
    "user_temporal_split",
    "CleanReport",
    "Dataset",
    "DatasetInfo",
    "FilterStep",
    "Issue",
    "LoadResult",
    "RawData",
    "apply_filters",
    "data_root",
    "dataset_info",
    "dedupe",
    "fetch",
    "import_local",
    "k_core",
    "list_datasets",
    "load_dataset",
    "load_from_config",
    "load_source",
    "read_source",
    "register_dataset",
    "to_implicit",
    "weight_behaviors",
]
