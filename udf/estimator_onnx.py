"""A fitted scikit-learn / XGBoost / LightGBM model as the ONNX graph SQL runs.

The estimator becomes its verifier form (verifier.estimators) and that form's ONNX
graph: tree ensembles as one ``TreeEnsembleRegressor`` (verifier.tree_onnx), networks
as Gemm layers. ONNX Runtime runs it, like every other model: one runtime for SQL,
batch evaluation, Arrow, Polars and Dask scans. Before SQL uses it, ONNX Runtime's
outputs are compared with the estimator's own ``predict`` / ``predict_proba`` on probe
rows (random rows, and rows at every split threshold and one step of the
precision's grid either side): a model whose conversion disagrees is refused, naming
the estimator, instead of answering queries differently from the library.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mlskip.errors import ModelInputError
from mlskip.verifier.estimators import Converted, from_estimator
from mlskip.verifier.network import Network
from mlskip.verifier.trees import TreeEnsemble

PROBE_ROWS = 512
# float32 outputs against the library's float64 (or float32) arithmetic
REL_TOL = 2e-5


def estimator_onnx(src: Any, inputs: Any = None) -> bytes:
    """The checked ONNX bytes of a fitted estimator (module docstring)."""
    converted = from_estimator(src, inputs)
    data = model_onnx(converted.model)
    check_conversion(converted, data)
    return data


def model_onnx(model: Network | TreeEnsemble) -> bytes:
    """ONNX bytes of a verifier model (trees: the canonical tree graph)."""
    if isinstance(model, TreeEnsemble):
        from mlskip.verifier.tree_onnx import to_onnx as trees_to_onnx

        return trees_to_onnx(model)
    from mlskip.verifier.onnx_loader import to_onnx

    return to_onnx(model)


def probe_rows(converted: Converted, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows to compare on: per feature, split thresholds and their grid neighbours
    (trees), else normal values at scales 1 to 1000."""
    rng = np.random.default_rng(seed)
    model = converted.model
    d = model.num_inputs
    x = rng.standard_normal((rows, d)) * rng.choice([1.0, 10.0, 1000.0], size=(rows, 1))
    if isinstance(model, TreeEnsemble) and converted.exact_at_splits:
        dtype = np.float32 if model.precision == "float32" else np.float64
        inner = model.feature >= 0
        for f in range(d):
            t = model.threshold[inner & (model.feature == f)].astype(dtype)
            if not len(t):
                continue
            pick = rng.choice(t, size=rows)
            step = rng.integers(-1, 2, size=rows)
            pick = np.where(step < 0, np.nextafter(pick, dtype(-np.inf)), pick)
            pick = np.where(step > 0, np.nextafter(pick, dtype(np.inf)), pick)
            use = rng.random(rows) < 0.8
            x[use, f] = pick[use].astype(np.float64)
    return x[np.isfinite(x).all(axis=1)]


def check_conversion(converted: Converted, data: bytes) -> None:
    """Refuse ``data`` unless ONNX Runtime gives the estimator's own outputs on probe rows."""
    from mlskip.udf.model import _session

    x = probe_rows(converted)
    session = _session(data)
    feed = session.get_inputs()[0]
    dtype = np.float64 if feed.type == "tensor(double)" else np.float32
    got = np.asarray(session.run(None, {feed.name: x.astype(dtype)})[0], dtype=np.float64)
    with warnings.catch_warnings():  # "X does not have valid feature names": the probes
        warnings.simplefilter("ignore")  # are plain arrays, in the fitted column order
        want = converted.predict(x)
    where = f"{converted.name}"
    if got.shape != want.shape:
        raise ModelInputError(
            f"{where}: the ONNX conversion gives outputs of shape {list(got.shape)}, the "
            f"estimator {list(want.shape)}"
        )
    tol = REL_TOL * (1.0 + np.abs(want))
    if isinstance(converted.model, TreeEnsemble):  # both sides' float sums of T leaves
        from mlskip.verifier.tree_reach import eval_margin

        tol = tol + 4 * float(eval_margin(converted.model).max())
    else:  # the network's float32 evaluation error at each row (fp_margin.py)
        from mlskip.verifier.fp_margin import eval_error

        net = converted.model
        err = eval_error(net, x, x, "float32")
        if net.final is not None:  # sigmoid / softmax outputs move less than their logits
            err = np.minimum(err.max(axis=1, keepdims=True), 1.0)
        tol = tol + 2 * err
    bad = ~(np.abs(got - want) <= tol)
    if bad.any():
        r = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ModelInputError(
            f"{where}: its ONNX conversion disagrees with its own predict on "
            f"{int(bad.any(axis=1).sum())} of {len(x)} probe rows (row {x[r].tolist()}: "
            f"ONNX Runtime {got[r].tolist()}, {converted.name} {want[r].tolist()}); it "
            "cannot be registered"
        )
