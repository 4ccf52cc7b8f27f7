"""Random tables (numeric types, layouts, NULL / NaN / inf, extreme magnitudes) and
random networks for the self-check campaign."""

from __future__ import annotations

import decimal

import numpy as np
import pyarrow as pa

NUMERIC_TYPES = ("int8", "int16", "int32", "int64", "uint16", "float32", "float64", "decimal")
EXTRA_TYPES = ("date", "timestamp")


def _values(rng: np.random.Generator, n: int, kind: str, layout: str) -> np.ndarray:
    """float64 values of one column before casting to its type."""
    shape = rng.choice(["uniform", "normal", "constant", "duplicates", "wide", "tiny"])
    if shape == "uniform":
        v = rng.uniform(-100, 100, n)
    elif shape == "normal":
        v = rng.normal(rng.uniform(-50, 50), rng.uniform(0.01, 30), n)
    elif shape == "constant":
        v = np.full(n, rng.uniform(-10, 10))
    elif shape == "duplicates":
        v = rng.choice(rng.uniform(-20, 20, 3), n)
    elif shape == "wide":
        v = rng.uniform(-1, 1, n) * 10.0 ** rng.integers(3, 300)
    else:
        v = rng.uniform(-1, 1, n) * 10.0 ** -rng.integers(3, 300)
    if layout == "sorted":
        v = np.sort(v)
    elif layout == "clustered":
        v = np.sort(v).reshape(-1)[np.argsort(np.arange(n) // max(1, n // 7) + rng.random(n) * 0.5)]
    if kind.startswith(("int", "uint")):
        info = np.iinfo(kind)
        v = np.clip(
            np.round(v / (10.0 ** max(0, np.log10(np.abs(v).max() + 1) - 6))), info.min, info.max
        )
    return v


def _column(rng: np.random.Generator, n: int, kind: str, layout: str) -> pa.Array:
    v = _values(rng, n, kind, layout)
    mask = rng.random(n) < rng.choice([0.0, 0.0, 0.05, 0.5, 1.0])
    if kind in ("float32", "float64"):
        special = rng.random(n) < rng.choice([0.0, 0.0, 0.01])
        v = np.where(special, rng.choice([np.nan, np.inf, -np.inf], n), v)
        if kind == "float32":
            with np.errstate(over="ignore"):
                v = v.astype(np.float32)
        return pa.array(v, mask=mask)
    if kind == "decimal":
        scale = int(rng.integers(0, 4))
        q = decimal.Decimal(1).scaleb(-scale)
        values = [
            None if m else decimal.Decimal(repr(float(np.clip(x, -1e12, 1e12)))).quantize(q)
            for x, m in zip(v, mask, strict=True)
        ]
        return pa.array(values, type=pa.decimal128(18, scale))
    if kind == "date":
        days = np.clip(np.round(v), -100_000, 100_000).astype("int32")
        return pa.array(days, type=pa.int32(), mask=mask).cast(pa.date32())
    if kind == "timestamp":
        us = np.clip(np.round(v * 1e6), -1e15, 1e15).astype("int64")
        return pa.array(us, type=pa.int64(), mask=mask).cast(pa.timestamp("us"))
    return pa.array(v.astype(kind), mask=mask)


def random_table(rng: np.random.Generator, n: int) -> tuple[pa.Table, list[str]]:
    """A table of 2-5 numeric columns (model inputs) plus a date, a timestamp and a row id."""
    layout = rng.choice(["random", "sorted", "clustered"])
    columns: dict[str, pa.Array] = {}
    numeric: list[str] = []
    for i in range(int(rng.integers(2, 6))):
        kind = str(rng.choice(NUMERIC_TYPES))
        name = f"c{i}_{kind}"
        columns[name] = _column(rng, n, kind, str(layout))
        numeric.append(name)
    for kind in EXTRA_TYPES:
        columns[kind] = _column(rng, n, kind, "random")
    columns["rid"] = pa.array(np.arange(n, dtype=np.int64))
    return pa.table(columns), numeric


def random_network(rng: np.random.Generator, d: int, classes: int):
    from mlskip.verifier import Network, ReLU, Sigmoid, Tanh

    act = [ReLU(), ReLU(), Sigmoid(), Tanh()][int(rng.integers(0, 4))]
    widths = [d, *rng.integers(2, 12, size=int(rng.integers(1, 3))).tolist(), classes]
    scale = float(rng.choice([1e-3, 0.05, 0.5, 3.0]))
    weights = [
        (rng.normal(size=(widths[i + 1], widths[i])) * scale, rng.normal(size=widths[i + 1]))
        for i in range(len(widths) - 1)
    ]
    return Network.mlp(weights, act)


def random_ensemble(
    rng: np.random.Generator, d: int, classes: int, samples: np.ndarray | None = None
):
    """A random tree ensemble (1-12 trees of depth up to 4, either precision, any final
    op): split thresholds are values of ``samples`` [n, d] (finite ones), sometimes one
    grid step off, so rows sit on both sides of and exactly at them."""
    from mlskip.verifier.trees import concatenate

    precision = str(rng.choice(["float32", "float64"]))
    dtype = np.float32 if precision == "float32" else np.float64
    scale = float(rng.choice([0.01, 1.0, 100.0]))
    if classes == 1:
        final = [None, None, "sigmoid"][int(rng.integers(0, 3))]
    else:
        final = [None, "softmax"][int(rng.integers(0, 2))]

    def threshold(f: int) -> float:
        column = samples[:, f] if samples is not None else np.zeros(0)
        column = column[np.isfinite(column)]
        t = float(rng.choice(column)) if len(column) and rng.random() < 0.9 else rng.normal() * 10
        with np.errstate(over="ignore"):
            v = dtype(t)
        if not np.isfinite(v):
            v = dtype(np.sign(t) * np.finfo(dtype).max)
        step = int(rng.integers(-1, 2))
        if step:
            v = np.nextafter(v, dtype(step * np.inf))
        return float(v)

    trees = [
        _random_tree(rng, d, classes, scale, threshold) for _ in range(int(rng.integers(1, 13)))
    ]
    return concatenate(
        trees, base=rng.normal(size=classes) * scale, num_features=d, final=final,
        precision=precision,
    )  # fmt: skip


def _random_tree(rng: np.random.Generator, d: int, classes: int, scale: float, threshold) -> dict:
    """One tree of depth up to 4 (trees.concatenate's node dict)."""
    from mlskip.verifier.trees import tree_from_arrays

    feature: list[int] = []
    thr: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[np.ndarray] = []

    def grow(depth: int) -> int:
        node = len(feature)
        feature.append(-1)
        thr.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(rng.normal(size=classes) * scale)
        if depth < 4 and rng.random() < 0.75:
            f = int(rng.integers(0, d))
            feature[node], thr[node] = f, threshold(f)
            left[node] = grow(depth + 1)
            right[node] = grow(depth + 1)
        return node

    grow(0)
    n = len(feature)
    return tree_from_arrays(
        feature, thr, rng.random(n) < 0.5, left, right, rng.random(n) < 0.5, np.array(value)
    )
