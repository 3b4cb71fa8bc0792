"""The fast CPU path of :class:`~clarec.text.encoder.TextEncoder`: the pooled transformer exported to
ONNX and run by ONNX Runtime, optionally with int8 weights (dynamic quantization, per output channel).

``runtime="onnx"`` computes the same vectors as torch (cosine > 0.99999); ``"onnx-int8"`` trades
agreement for speed (benchmarks/results/encoder_speed.md measures both against sentence-transformers:
throughput and top-20 neighbour agreement with the fp32 vectors). The exported file is written once per
model identity into the encoder's cache folder (or a temporary one) and reused. torch and the ONNX
packages are imported when used, so :data:`RUNTIMES` costs nothing to import. (The other fast
runtime, ``"torch-bf16"``, needs no package: :class:`~clarec.text.encoder.TextEncoder` runs torch under
bfloat16 autocast.)
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from clarec.errors import ConfigError, DataError

RUNTIMES = ("torch", "torch-bf16", "onnx", "onnx-int8")
#: The runtimes run by ONNX Runtime (on CPU).
ONNX_RUNTIMES = ("onnx", "onnx-int8")
_INSTALL = "the ONNX runtimes need onnxruntime, onnx and onnxscript: pip install 'clarec[fast]'"


def _require():
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx.export's exporter)
    except ImportError:
        raise ConfigError(_INSTALL) from None
    return onnxruntime


def export(module, path: Path) -> Path:
    """Write ``module`` (a torch module, ``forward(input_ids, attention_mask) -> (B, d)``) to ``path``
    as ONNX with a dynamic batch and token axis."""
    import torch

    _require()
    example = torch.ones((2, 8), dtype=torch.long)
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
    # the exporter's notes (axis names, upstream deprecations, optional torchvision) are not the user's
    with warnings.catch_warnings(), _quiet("torch.onnx"), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            (example, example.clone()),
            dynamo=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["vectors"],
            dynamic_shapes=({0: batch, 1: tokens}, {0: batch, 1: tokens}),
            verbose=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))
    return path


def quantize(source: Path, target: Path) -> Path:
    """``source`` with int8 weights for every matrix product (scales per output channel); activations
    are quantized per batch at run time."""
    _require()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet(None):  # quantize_dynamic's advice to pre-process goes to the root logger
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    return target


@contextmanager
def _quiet(name: str | None):
    """Only errors from the logger ``name`` (``None``: the root logger) inside the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _part(path: Path) -> Path:
    """A private name to write ``path`` under before renaming it (two processes may export at once)."""
    return path.with_name(f"{path.stem}.{os.getpid()}.part")


class OnnxPooled:
    """An ONNX Runtime session of an exported pooled transformer: ``__call__(input_ids, attention_mask)``
    on int64 numpy arrays gives the unnormalised vectors as a float32 array."""

    def __init__(self, module, runtime: str, key: str, folder: Path | None):
        import torch

        if runtime not in ONNX_RUNTIMES:
            raise ConfigError(f"runtime must be one of {list(ONNX_RUNTIMES)}, got {runtime!r}")
        ort = _require()
        self._tmp = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="clarec-onnx-")
            folder = Path(self._tmp.name)
        fp32 = folder / f"{key}.onnx"
        if not fp32.is_file():
            export(module, _part(fp32)).replace(fp32)
        path = fp32
        if runtime == "onnx-int8":
            path = folder / f"{key}-int8.onnx"
            if not path.is_file():
                quantize(fp32, _part(path)).replace(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own errors (a damaged file: InvalidProtobuf) share no base
            raise DataError(
                path, f"not a readable ONNX model ({type(e).__name__}): delete it to export it again"
            ) from None

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)
