"""The benchmark's filter models: zoo regressors trained dense, exported to ONNX, run in float32.

Each model is evaluated on every row with ONNX Runtime in float32, exactly as
the SQL UDF evaluates it, so the ground truth is what a query would return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlskip.model_zoo.specs import REGRESSION, SPECS, ModelSpec

ONNX_BATCH = 1 << 16


@dataclass(frozen=True)
class BenchModel:
    """One trained regressor: its spec, hidden layers, held-out R2 and ONNX file."""

    spec: ModelSpec
    hidden: tuple[int, ...]
    score: float
    onnx_path: Path

    @property
    def key(self) -> str:
        return f"{self.spec.name}/{'x'.join(map(str, self.hidden))}"

    @property
    def sql_name(self) -> str:
        return f"{self.spec.name}_h{len(self.hidden)}"


def regressor_specs(names: Sequence[str] | None = None) -> list[ModelSpec]:
    """The zoo's regressors (all of them, or the named ones in registry order)."""
    specs = [s for s in SPECS if s.task == REGRESSION]
    if names:
        specs = [s for s in specs if s.name in names]
    return specs


def train_model(
    spec: ModelSpec, hidden: tuple[int, ...], out_dir: Path, sf: float, epochs: int = 150
) -> BenchModel:
    """Train a dense regressor on a sample of its table and write it as ONNX."""
    from mlskip.model_zoo.export import to_onnx
    from mlskip.model_zoo.train import train_dense

    trained = train_dense(spec, hidden=hidden, sf=sf, epochs=epochs)
    path = out_dir / f"{spec.name}_h{len(hidden)}.onnx"
    proto = to_onnx(trained.model, input_columns=list(spec.inputs), task=REGRESSION)
    path.write_bytes(proto.SerializeToString())
    return BenchModel(spec, tuple(hidden), float(trained.score), path)


def evaluate_rows(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    """The model's first output on every row of ``x`` [n, d] in float32 (ONNX Runtime, 1 thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    xs = np.nan_to_num(x, nan=0.0).astype(np.float32)
    parts = [
        session.run(None, {name: xs[i : i + ONNX_BATCH]})[0][:, 0]
        for i in range(0, len(xs), ONNX_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def rank_correlations(x: np.ndarray, y: np.ndarray, sample: int = 200_000) -> np.ndarray:
    """|Spearman correlation| of each input column with the output, on an evenly strided sample."""
    step = max(1, len(y) // sample)
    xs, ys = x[::step], y[::step]

    def ranks(v: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(np.float64)

    ry = ranks(ys)
    out = []
    for j in range(x.shape[1]):
        rx = ranks(xs[:, j])
        sx, sy = rx.std(), ry.std()
        out.append(0.0 if sx == 0 or sy == 0 else abs(float(np.corrcoef(rx, ry)[0, 1])))
    return np.array(out)
