"""clarec: contrastive language-aligned recommendation."""

from clarec.data.dataset import Dataset
from clarec.errors import ClarecError, DataError

__version__ = "0.1.0"
__all__ = ["ClarecError", "DataError", "Dataset", "__version__"]
