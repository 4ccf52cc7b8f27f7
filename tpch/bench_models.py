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


def is_trees(hidden: tuple[int, ...] | str) -> bool:
    """Whether a model setting names a tree-ensemble family (``xgb_t50_d4``, ...) rather
    than the hidden layers of a network."""
    return isinstance(hidden, str)


@dataclass(frozen=True)
class BenchModel:
    """One trained regressor: its spec, hidden layers (or tree family), held-out R2 and
    ONNX file."""

    spec: ModelSpec
    hidden: tuple[int, ...] | str
    score: float
    onnx_path: Path

    @property
    def key(self) -> str:
        if is_trees(self.hidden):
            return f"{self.spec.name}/{self.hidden}"
        return f"{self.spec.name}/{'x'.join(map(str, self.hidden))}"

    @property
    def sql_name(self) -> str:
        return model_sql_name(self.spec.name, self.hidden)


def model_sql_name(spec_name: str, hidden: tuple[int, ...] | str | list) -> str:
    """The SQL function name of a benchmark model (``<spec>_h<depth>``, or
    ``<spec>_<family>`` for tree ensembles)."""
    if isinstance(hidden, str) or (
        isinstance(hidden, list) and hidden and isinstance(hidden[0], str)
    ):
        return f"{spec_name}_{hidden if isinstance(hidden, str) else hidden[0]}"
    return f"{spec_name}_h{len(hidden)}"


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
    spec: ModelSpec, hidden: tuple[int, ...] | str, out_dir: Path, sf: float, epochs: int = 150
) -> BenchModel:
    """Train a dense regressor (or, for a family name, a tree ensemble) on a sample of its
    table and write it as ONNX."""
    from mlskip.model_zoo.export import to_onnx
    from mlskip.model_zoo.train import train_dense

    if is_trees(hidden):
        return train_tree_model(spec, str(hidden), out_dir, sf)

    trained = train_dense(spec, hidden=hidden, sf=sf, epochs=epochs)
    path = out_dir / f"{spec.name}_h{len(hidden)}.onnx"
    proto = to_onnx(trained.model, input_columns=list(spec.inputs), task=REGRESSION)
    path.write_bytes(proto.SerializeToString())
    return BenchModel(spec, tuple(hidden), float(trained.score), path)


TREE_FAMILIES = ("xgb_t50_d4", "xgb_t200_d6", "lgb_t100_l31", "rf_t50_d8")


def train_tree_model(spec: ModelSpec, family: str, out_dir: Path, sf: float) -> BenchModel:
    """Fit one of the zoo's tree families (model_zoo/trees.py) on the spec's training
    sample; writes its canonical ONNX graph and, beside it, the fitted estimator (pickle:
    the library-predict UDF baseline of the end-to-end runs)."""
    import pickle
    import warnings

    from mlskip.model_zoo import trees as tree_zoo
    from mlskip.model_zoo.train import load_dataset
    from mlskip.verifier.estimators import from_estimator

    builders = tree_zoo.dense_builders(spec.task, quick=False)
    if family not in builders:
        raise KeyError(f"unknown tree family {family!r}; known: {sorted(builders)}")
    data = load_dataset(spec, sf=sf)
    make, _ = builders[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(data.x_train, data.y_train)
    ens = from_estimator(est, list(spec.inputs)).model
    path = out_dir / f"{model_sql_name(spec.name, family)}.onnx"
    tree_zoo.save_trees(ens, path, spec, None)
    path.with_suffix(".pkl").write_bytes(pickle.dumps(est))
    score = tree_zoo.tree_score(ens, data.x_test, data.y_test, spec.task)
    return BenchModel(spec, family, score, path)


def evaluate_rows(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    """The model's first output on every row of ``x`` [n, d] as ONNX Runtime computes it
    (inputs cast as the model reads them: float32, or float64 for double trees; 1 thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    double = session.get_inputs()[0].type == "tensor(double)"
    xs = np.nan_to_num(x, nan=0.0).astype(np.float64 if double else np.float32)
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
