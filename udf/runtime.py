"""Backends that evaluate a model on a batch [n, d] -> [n, k].

ONNX Runtime is the default; torch is an alternative (the paper's baseline, networks
only). Rows arrive as float64 and are cast to what the model reads: float32 for
networks and most tree ensembles, float64 for those that compare doubles (LightGBM,
HistGradientBoosting); the verifier's margins are derived for exactly that.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mlskip.errors import ModelInputError
from mlskip.udf.model import SqlModel
from mlskip.verifier import Network

BACKENDS = ("onnx", "torch")


class Runner(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class OnnxRunner:
    """ONNX Runtime session on the CPU; thread-safe, so DuckDB may call it from any thread."""

    def __init__(self, model: SqlModel, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                model.onnx_bytes, options, providers=["CPUExecutionProvider"]
            )
            self._input = self._session.get_inputs()[0].name
            self._dtype = np.float64 if model.input_dtype == "float64" else np.float32
            probe = self._session.run(
                None, {self._input: np.zeros((1, model.num_inputs), self._dtype)}
            )
        except (
            Exception
        ) as error:  # onnxruntime's own classes (Fail, InvalidGraph, ...) and decode errors
            raise ModelInputError(
                f"ONNX Runtime cannot run this model: {type(error).__name__}: {error}"
            ) from None
        shape = np.shape(probe[0]) if probe else ()
        if shape != (1, model.num_outputs):
            raise ModelInputError(
                f"the model declares an output of width {model.num_outputs}, but ONNX Runtime "
                f"returns shape {list(shape)} for one row: its declared shape is wrong"
            )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs for rows ``x`` [n, d], cast to what the graph reads (numpy's cast: the
        one the verifier's tree ensembles assume)."""
        with np.errstate(over="ignore"):  # doubles beyond float32 read as +-inf, as in SQL
            x = x.astype(self._dtype, copy=False)
        return self._session.run(None, {self._input: x})[0]


class TorchRunner:
    """The model as a torch module, one forward pass per batch (the paper's UDF baseline)."""

    def __init__(self, model: SqlModel, threads: int = 1) -> None:
        import torch

        from mlskip.verifier.torch_loader import network_to_torch

        if model.network is None:
            raise ModelInputError(
                f"the torch backend needs a model the verifier can read ({model.unverifiable})"
            )
        if not isinstance(model.network, Network):
            raise ModelInputError("the torch backend runs networks; use backend='onnx' for trees")
        self._torch = torch
        self._module = network_to_torch(model.network).eval()
        self._threads = threads

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = np.ascontiguousarray(x, dtype=np.float32)
            return self._module(torch.from_numpy(x)).numpy()


def make_runner(model: SqlModel, backend: str = "onnx", threads: int = 1) -> Runner:
    """A runner for ``model`` on ``backend`` (``onnx`` or ``torch``)."""
    if backend == "onnx":
        return OnnxRunner(model, threads)
    if backend == "torch":
        return TorchRunner(model, threads)
    raise ModelInputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
