"""Read a torch ``nn.Module`` through an ONNX export of what its ``forward`` computes.

A module is never read by walking its children: a ``Sequential`` subclass
with its own ``forward``, or any module whose ``forward`` does more than
chain its children, would then be registered as something else. Instead
the module is traced by torch's ONNX exporter (eval mode, float32, dynamic
batch), the export is checked against the module itself on sample rows,
and the ONNX graph is what both the SQL function and the verifier read.

torch is imported lazily: ``import mlskip.verifier`` never loads it.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlskip.errors import MlskipError, UnsupportedModelError

from .network import Network

INPUT, OUTPUT = "input", "output"
CHECK_SCALES = (1.0, 10.0, 1000.0)  # sample rows: normal(0, 1) times each scale
CHECK_ROWS = 32
ALONE_ROWS = 3  # rows per scale also run alone, to catch batch statistics
CHECK_RTOL = 1e-4  # |export - module| <= CHECK_RTOL * (1 + |y| + max|x|), per value


def is_torch_module(obj: Any) -> bool:
    """True for torch modules, checked without importing torch."""
    return any(
        c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__
    )


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def _width(module: Any, input_names: Sequence[str] | None) -> int:
    """Number of input columns: the names given, else the first Linear's in_features."""
    import torch.nn as nn

    if input_names is not None:
        return len(input_names)
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return int(m.in_features)
    raise UnsupportedModelError(
        f"torch module {type(module).__name__}: its number of inputs is unknown (no Linear "
        "layer to read it from); pass inputs=[...] naming its input columns"
    )


def _sample_batches(d: int) -> list[np.ndarray]:
    """A zero row, then CHECK_ROWS random rows per scale (fixed seed: the same check each time)."""
    rng = np.random.default_rng(20261117)
    rows = [np.zeros((1, d), np.float32)]
    rows += [(rng.standard_normal((CHECK_ROWS, d)) * s).astype(np.float32) for s in CHECK_SCALES]
    return rows


def _mismatch(x: np.ndarray, got: np.ndarray, want: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first value where ``got`` is not within tolerance of ``want``."""
    if got.shape != want.shape:
        return (-1, -1)
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    scale = 1.0 + np.abs(want64) + np.abs(x.astype(np.float64)).max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        close = (np.abs(got64 - want64) <= CHECK_RTOL * scale) | (got64 == want64)
    close |= np.isnan(got64) & np.isnan(want64)
    bad = np.argwhere(~close)
    return (int(bad[0][0]), int(bad[0][1])) if bad.size else None


def _module_outputs(module: Any, name: str, batches: list[np.ndarray]) -> list[np.ndarray]:
    """What ``module`` returns for each batch, as float32 [n, k] arrays."""
    import torch

    outs = []
    for x in batches:
        try:
            with torch.no_grad():
                y = module(torch.from_numpy(x))
        except Exception as error:  # whatever the user's forward raises
            raise UnsupportedModelError(
                f"torch module {name}: forward() fails on a float32 batch of shape "
                f"{list(x.shape)} ({_one_line(error)}); pass inputs=[...] naming its input "
                "columns if the number of inputs is wrong"
            ) from None
        if not isinstance(y, torch.Tensor):
            raise UnsupportedModelError(
                f"torch module {name}: forward() returns {type(y).__name__}; a SQL model must "
                "return one tensor of shape [N, k]"
            )
        if y.dim() != 2 or y.shape[0] != x.shape[0]:
            raise UnsupportedModelError(
                f"torch module {name}: forward() returns shape {list(y.shape)} for an input "
                f"of shape {list(x.shape)}; a SQL model must return [N, k] (one row of outputs per "
                "input row): return y.unsqueeze(-1) instead of a squeezed [N] tensor"
            )
        outs.append(y.detach().to(torch.float32).cpu().numpy())
    return outs


def _no_log(*args: Any) -> None:
    """Stands in for torch's ONNX export log while mlskip exports a module."""


def _export(module: Any, name: str, d: int) -> bytes:
    """torch's TorchScript-based ONNX export of ``module`` on a [1, d] input, batch dynamic."""
    import torch

    buffer = io.BytesIO()
    # torch 2.13's TorchScript exporter always enables its ONNX log (it tests a function
    # for truth), which prints the whole IR graph to stdout when an export fails; the
    # error raised below says what failed, so that log is silenced for this call
    log = getattr(torch._C, "_jit_onnx_log", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if log is not None:
                torch._C._jit_onnx_log = _no_log
            torch.onnx.export(
                module,
                (torch.zeros(1, d, dtype=torch.float32),),
                buffer,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "N"}, OUTPUT: {0: "N"}},
                dynamo=False,
            )
        except Exception as error:  # torch raises many kinds (RuntimeError, SymbolicValueError...)
            raise UnsupportedModelError(
                f"torch module {name}: its forward() cannot be exported to ONNX "
                f"({_one_line(error)}); export it yourself and register the ONNX file"
            ) from None
        finally:
            if log is not None:
                torch._C._jit_onnx_log = log
    for w in caught:
        # the tracer saw a tensor turned into a Python value (a branch or loop on the
        # input's values or batch size): the trace holds one path only. Tensors built
        # from Python constants ("registered as constants") are the same on every call.
        text = str(w.message)
        if (
            issubclass(w.category, torch.jit.TracerWarning)
            and ("trace to be incorrect" in text or "might not generalize" in text)
            and "registered as constants" not in text
        ):
            raise UnsupportedModelError(
                f"torch module {name}: forward() cannot be traced faithfully "
                f"({' '.join(text.split('.')[0].split())}: control flow on the "
                "input's values or batch size is recorded for the traced input only); "
                "make forward() a fixed sequence of tensor ops, or export it yourself"
            )
    return buffer.getvalue()


def _ort_outputs(data: bytes, name: str, batches: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # errors are raised, not logged
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return [np.asarray(session.run(None, {INPUT: x})[0]) for x in batches]
    except Exception as error:  # onnxruntime's own classes (Fail, InvalidArgument, ...)
        raise UnsupportedModelError(
            f"torch module {name}: ONNX Runtime cannot run the traced export of forward() "
            f"({_one_line(error)}); make forward() a fixed sequence of tensor ops that keeps "
            "the batch dimension, or export it yourself"
        ) from None


def torch_to_onnx(module: Any, input_names: Sequence[str] | None = None) -> bytes:
    """Serialized ONNX of what ``module.forward`` computes, checked against the module.

    The module is copied, cast to float32 and put in eval mode (dropout off,
    BatchNorm on its running statistics), then exported with a dynamic batch
    dimension. The export must agree with the module on a zero row and on
    random rows at scales 1, 10 and 1000, or ``UnsupportedModelError`` is
    raised: a model whose SQL function differs from the module is never used.
    """
    import torch
    from onnx import helper, load_model_from_string

    name = type(module).__name__
    if any(m.training for m in module.modules()):
        warnings.warn(
            f"torch module {name} is in training mode; mlskip uses it in eval mode "
            "(dropout off, BatchNorm with its running statistics)",
            UserWarning,
            stacklevel=2,
        )
    d = _width(module, input_names)
    try:
        frozen = copy.deepcopy(module).to(torch.float32).eval()
    except Exception as error:
        raise UnsupportedModelError(
            f"torch module {name}: cannot be copied for export ({_one_line(error)})"
        ) from None
    batches = _sample_batches(d)
    want = _module_outputs(frozen, name, batches)
    data = _export(frozen, name, d)
    got = _ort_outputs(data, name, batches)
    for x, g, w in zip(batches, got, want, strict=True):
        where = _mismatch(x, g, w)
        if where is None:
            continue
        if where == (-1, -1):
            detail = f"shape {list(g.shape)} where the module gives shape {list(w.shape)}"
        else:
            r, c = where
            detail = (
                f"{float(g[r, c])!r} where the module gives {float(w[r, c])!r} "
                f"(output {c} at input row {x[r].tolist()})"
            )
        raise UnsupportedModelError(
            f"torch module {name}: traced export of forward() gives {detail}; forward() "
            "likely branches on its input's values or uses ops the tracer records as "
            "constants: make it a fixed sequence of tensor ops, or export it yourself"
        )
    # each row alone must give what it gives inside a batch: SQL batches rows freely
    alone = [b[i : i + 1] for b in batches[1:] for i in range(ALONE_ROWS)]
    for x, g, w in zip(
        alone,
        _ort_outputs(data, name, alone),
        [y[i : i + 1] for y in got[1:] for i in range(ALONE_ROWS)],
        strict=True,
    ):
        if _mismatch(x, g, w) is not None:
            raise UnsupportedModelError(
                f"torch module {name}: the export of forward() gives {g.ravel().tolist()} for "
                f"the row {x[0].tolist()} alone but {w.ravel().tolist()} for it within a batch "
                f"of {CHECK_ROWS} rows; a SQL model must compute each row on its own "
                "(no statistics over the batch)"
            )
    model = load_model_from_string(data)
    if input_names is not None:
        helper.set_model_props(model, {"mlskip.input_columns": json.dumps(list(input_names))})
        data = model.SerializeToString()
    return data


def load_torch(module: Any, input_names: Sequence[str] | None = None) -> Network:
    """The ``Network`` of ``module``'s checked ONNX export (see ``torch_to_onnx``)."""
    from .onnx_loader import load_onnx

    data = torch_to_onnx(module, input_names)
    try:
        return load_onnx(data, None if input_names is None else list(input_names))
    except MlskipError as error:
        message = str(error).replace("ONNX bytes: ", "", 1)
        raise type(error)(
            f"torch module {type(module).__name__} (as exported to ONNX): {message}"
        ) from None


def network_to_torch(network: Network, dtype: str = "float32", runtime: bool = True) -> Any:
    """The network as a torch ``nn.Sequential`` of Linear and activation modules.

    ``runtime=True``: the steps as the model file computes them (``fp_steps``) and the
    final op, what the SQL function evaluates; ``runtime=False``: the composed affine
    chain without the final op, what bound propagation reads (auto_LiRPA's side)."""
    import torch
    from torch import nn

    from .layers import Affine

    tdtype = getattr(torch, dtype)
    if runtime:
        steps = list(network.fp_steps)
    else:
        affines, acts = network.affines, network.activations
        steps = [s for pair in zip(affines[:-1], acts, strict=True) for s in pair]
        steps.append(affines[-1])
    modules: list[nn.Module] = []
    for step in steps:
        if isinstance(step, Affine):
            linear = nn.Linear(step.in_features, step.out_features, dtype=tdtype)
            with torch.no_grad():
                # copies: the network's arrays are read-only, which torch warns about
                linear.weight.copy_(torch.from_numpy(np.array(step.W, dtype=dtype)))
                linear.bias.copy_(torch.from_numpy(np.array(step.b, dtype=dtype)))
            modules.append(linear)
        elif step.name == "relu":
            modules.append(nn.ReLU())
        elif step.name == "leaky_relu":
            modules.append(nn.LeakyReLU(float(step.alpha)))
        elif step.name == "sigmoid":
            modules.append(nn.Sigmoid())
        elif step.name == "tanh":
            modules.append(nn.Tanh())
        elif step.name != "identity":
            raise UnsupportedModelError(f"no torch module for step {step.name!r}")
    if runtime and network.final == "sigmoid":
        modules.append(nn.Sigmoid())
    elif runtime and network.final == "softmax":
        modules.append(nn.Softmax(dim=-1))
    return nn.Sequential(*modules)
