"""The benchmark's filter models: zoo regressors trained dense, exported to ONNX, run in float32.

Each model is evaluated on every row with ONNX Runtime in float32, exactly as
the SQL UDF evaluates it, so the ground truth is what a query would return.

The zoo's regressors all take 4 inputs; the reference protocol (MLSkip: 2 to 4
input columns) also uses the 2- and 3-input regressors of ``BENCH_SPECS``,
defined and trained here (not part of the zoo).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlskip.model_zoo.specs import REGRESSION, SPECS, ModelSpec

ONNX_BATCH = 1 << 16

# 2- and 3-input regressors for the reference protocol (trained by the bench like the zoo's)
BENCH_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "lineitem_disc_price_2in",
        "tpch",
        "lineitem",
        ("l_extendedprice", "l_discount"),
        "l_extendedprice * (1 - l_discount)",
        description="TPC-H discounted price from extended price and discount",
    ),
    ModelSpec(
        "lineitem_charge_3in",
        "tpch",
        "lineitem",
        ("l_extendedprice", "l_discount", "l_tax"),
        "l_extendedprice * (1 - l_discount) * (1 + l_tax)",
        description="TPC-H charge from extended price, discount and tax",
    ),
    ModelSpec(
        "store_sales_ext_sales_price_2in",
        "tpcds",
        "store_sales",
        ("ss_quantity", "ss_sales_price"),
        "ss_ext_sales_price",
        description="store_sales extended sales price from quantity and sales price",
    ),
    ModelSpec(
        "store_sales_net_profit_3in",
        "tpcds",
        "store_sales",
        ("ss_quantity", "ss_sales_price", "ss_wholesale_cost"),
        "ss_net_profit",
        description="store_sales net profit from quantity, sales price, wholesale cost",
    ),
    ModelSpec(
        "catalog_sales_ext_sales_price_2in",
        "tpcds",
        "catalog_sales",
        ("cs_quantity", "cs_sales_price"),
        "cs_ext_sales_price",
        description="catalog_sales extended sales price from quantity and sales price",
    ),
)
# the reference protocol's default models, 2 to 4 inputs (one hidden layer of 32 each)
REFERENCE_MODELS: tuple[str, ...] = (
    "lineitem_disc_price_2in",
    "lineitem_charge_3in",
    "lineitem_disc_price",
    "store_sales_ext_sales_price_2in",
    "store_sales_net_profit_3in",
    "store_sales_net_profit",
    "catalog_sales_ext_sales_price_2in",
    "catalog_sales_net_profit",
    "web_sales_net_profit",
    "store_returns_net_loss",
)


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
    """The zoo's regressors (all of them), or the named ones (zoo or ``BENCH_SPECS``) in the
    order named; an unknown name raises ``KeyError``."""
    if not names:
        return [s for s in SPECS if s.task == REGRESSION]
    known = {s.name: s for s in (*SPECS, *BENCH_SPECS) if s.task == REGRESSION}
    missing = [n for n in names if n not in known]
    if missing:
        raise KeyError(f"unknown regressors {missing}; known: {sorted(known)}")
    return [known[n] for n in dict.fromkeys(names)]


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


def permutation_influence(
    onnx_path: Path, x: np.ndarray, sample: int = 20_000, seed: int = 0
) -> np.ndarray:
    """Influence of each input on the output: mean squared change of the output when that
    column alone is shuffled (on an evenly strided sample of rows ``x`` without NULLs)."""
    step = max(1, len(x) // sample)
    xs = x[::step]
    base = evaluate_rows(onnx_path, xs).astype(np.float64)
    rng = np.random.default_rng(seed)
    out = []
    for j in range(x.shape[1]):
        xp = xs.copy()
        xp[:, j] = xp[rng.permutation(len(xp)), j]
        out.append(float(np.mean((evaluate_rows(onnx_path, xp) - base) ** 2)))
    return np.array(out)
