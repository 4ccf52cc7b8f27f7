"""Random datasets (Parquet files from several writers) and models for one trial."""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

NUMERIC_TYPES = ("INTEGER", "BIGINT", "DOUBLE", "FLOAT")
_ARROW_TYPES = {
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
}
TEMPORAL_TYPES = ("DATE", "TIMESTAMP")  # model inputs read as days / microseconds
_NUMERIC_BOUND = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
    r"|FLOAT|DOUBLE|DECIMAL.*)$"
)


# ----------------------------------------------------------------------------- datasets
@dataclass
class Col:
    name: str
    type: str  # DuckDB type
    values: tuple = ()  # a few finite values, for constants

    @property
    def numeric(self) -> bool:
        return bool(_NUMERIC_BOUND.match(self.type))

    @property
    def integer(self) -> bool:
        return self.numeric and "INT" in self.type

    @property
    def string(self) -> bool:
        return self.type == "VARCHAR"

    @property
    def temporal(self) -> bool:
        return self.type in TEMPORAL_TYPES


@dataclass
class Source:
    sql: str  # a FROM item
    cols: list[Col]


@dataclass
class Dataset:
    root: Path
    files: list[str] = field(default_factory=list)  # layout lines
    sources: list[Source] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # mlskip.write_parquet errors
    temporal: tuple[str, ...] = ()  # DATE / TIMESTAMP columns the files have (dt, tm)

    def summary(self) -> str:
        return "\n".join([*self.files, *self.models])


def _values(
    nrng: np.random.Generator, name: str, typ: str, n: int, specials: bool, scale: float
) -> pa.Array:
    if typ == "VARCHAR":
        pool = np.array(["x", "y", "z", "X", "", "ab", "x1"])
        v = pool[nrng.integers(0, len(pool), n)].tolist()
        mask = nrng.random(n) < (0.1 if specials else 0.0)
        return pa.array([None if m else s for s, m in zip(v, mask, strict=True)], pa.string())
    if typ in TEMPORAL_TYPES:  # days around 1997 (timestamps: plus seconds in the day)
        days = nrng.integers(9_000, 11_000, n).astype(np.int64)
        mask = nrng.random(n) < (0.05 if specials else 0.0)
        if typ == "DATE":
            if specials:  # DuckDB's DATE 'infinity' / '-infinity' (days +-(2^31 - 1))
                infinite = nrng.random(n) < 0.02
                days = np.where(infinite, np.where(nrng.random(n) < 0.5, 1, -1) * (2**31 - 1), days)
            return pa.array(days.astype(np.int32), mask=mask).cast(pa.date32())
        micros = days * 86_400_000_000 + nrng.integers(0, 86_400, n) * 1_000_000
        return pa.array(micros, mask=mask).cast(pa.timestamp("us"))
    if name.lower() == "k":
        v = nrng.integers(0, 20, n).astype(np.float64)
    elif typ in ("INTEGER", "BIGINT"):
        v = np.round(nrng.normal(0, scale, n))
    else:
        v = nrng.normal(nrng.uniform(-scale, scale), scale, n)
        if nrng.random() < 0.3:
            v = np.round(v, 1)
    mask = nrng.random(n) < (nrng.choice([0.0, 0.05, 0.3]) if specials else 0.0)
    if typ in ("DOUBLE", "FLOAT") and specials:
        odd = nrng.random(n) < 0.05
        v = np.where(odd, nrng.choice([np.nan, np.inf, -np.inf], n), v)
    arrow = _ARROW_TYPES[typ]
    if typ in ("INTEGER", "BIGINT"):
        return pa.array(v.astype(np.int64), mask=mask).cast(arrow)
    return pa.array(v.astype(arrow.to_pandas_dtype()), mask=mask)


def _table(
    rnd: random.Random,
    nrng: np.random.Generator,
    cols: list[tuple[str, str]],
    n: int,
    specials: bool,
) -> pa.Table:
    scale = rnd.choice([5.0, 50.0, 500.0])
    table = pa.table({name: _values(nrng, name, typ, n, specials, scale) for name, typ in cols})
    numeric = [name for name, typ in cols if typ != "VARCHAR"]
    if numeric and n and rnd.random() < 0.5:  # sorted rows: summaries can prune
        table = table.sort_by([(rnd.choice(numeric), rnd.choice(["ascending", "descending"]))])
    return table


def _write(
    rnd: random.Random, table: pa.Table, path: Path, writer: str, probe: Any
) -> tuple[str, str]:
    """Write ``table`` with ``writer``; returns (writer description, note)."""
    import pyarrow.parquet as pq

    import mlskip

    path.parent.mkdir(parents=True, exist_ok=True)
    rg = rnd.choice([7, 20, 50, 100])
    if writer == "mlskip":
        numeric = [f.name for f in table.schema if not pa.types.is_string(f.type)]
        hulls = rnd.choice([None, "auto", "auto"])
        cluster = [rnd.choice(numeric)] if numeric and rnd.random() < 0.3 else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlskip.write_parquet(
                    table, path, row_group_size=rg, hulls=hulls, cluster_by=cluster
                )
            return f"mlskip(rg={rg}, hulls={hulls}, cluster={cluster})", ""
        except Exception as error:  # noted in the layout; the file is written by pyarrow
            note = f" [mlskip.write_parquet failed: {type(error).__name__}: {error}]"
            writer = "pyarrow"
    else:
        note = ""
    if writer == "pyarrow":
        pq.write_table(table, path, row_group_size=rg)
        return f"pyarrow(rg={rg})", note
    probe.register("__fuzz_table", table)
    try:
        probe.execute(
            f"COPY (SELECT * FROM __fuzz_table) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE {rg})"
        )
    finally:
        probe.unregister("__fuzz_table")
    return f"duckdb(rg={rg})", note


def _describe(probe: Any, source: str) -> list[Col] | None:
    """The columns DuckDB binds for ``source`` and a few values of each, or None."""
    try:
        described = probe.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        table = probe.execute(f"SELECT * FROM {source}").to_arrow_table()
    except Exception:
        return None
    cols = []
    for j, (name, typ, *_) in enumerate(described):
        col = Col(str(name), str(typ))
        if col.numeric:
            v = table.column(j).cast(pa.float64()).to_numpy(zero_copy_only=False)
            v = np.unique(v[np.isfinite(v)])
            if len(v) > 24:
                v = v[np.linspace(0, len(v) - 1, 24).astype(int)]
            col.values = tuple(float(x) for x in v)
        elif col.string:
            col.values = tuple(sorted({s for s in table.column(j).to_pylist() if s is not None}))
        cols.append(col)
    return cols


def draw_dataset(rnd: random.Random, nrng: np.random.Generator, root: Path, probe: Any) -> Dataset:
    """Files under ``root`` and the FROM items (sources) that read them."""
    data = Dataset(root)
    names = ["k", *rnd.sample(["a", "b", "c", "x", "y"], rnd.randint(1, 3))]
    string = rnd.random() < 0.5
    types = {
        n: rnd.choice(("INTEGER", "BIGINT")) if n == "k" else rnd.choice(NUMERIC_TYPES)
        for n in names
    }
    vary_types, vary_order = rnd.random() < 0.3, rnd.random() < 0.3
    vary_sets, case_only = rnd.random() < 0.25, rnd.random() < 0.15
    specials = rnd.random() < 0.6
    temporal = [t for t in TEMPORAL_TYPES if rnd.random() < 0.3]  # a DATE, a TIMESTAMP column
    data.temporal = tuple(temporal)

    def columns() -> list[tuple[str, str]]:
        cols = [
            (n, rnd.choice(NUMERIC_TYPES) if vary_types and n != "k" else types[n]) for n in names
        ]
        if vary_types and rnd.random() < 0.3:
            cols[0] = ("k", rnd.choice(NUMERIC_TYPES))
        if string:
            cols.append(("s", "VARCHAR"))
        cols += [({"DATE": "dt", "TIMESTAMP": "tm"}[t], t) for t in temporal]
        if vary_sets and len(cols) > 2 and rnd.random() < 0.5:
            cols.pop(rnd.randrange(1, len(cols)))
        if vary_sets and rnd.random() < 0.3:
            cols.append(("extra", rnd.choice(NUMERIC_TYPES)))
        if case_only and rnd.random() < 0.5:
            j = rnd.randrange(len(cols))
            cols[j] = (cols[j][0].upper(), cols[j][1])
        if vary_order and rnd.random() < 0.6:
            rnd.shuffle(cols)
        return cols

    def add(rel: str, n: int, writer: str | None = None, cols=None) -> Path:
        path = root / rel
        cols = cols or columns()
        table = _table(rnd, nrng, cols, n, specials)
        if writer is None:
            writer = rnd.choice(["mlskip", "mlskip", "pyarrow", "duckdb"])
        how, note = _write(rnd, table, path, writer, probe)
        import pyarrow.parquet as pq

        groups = pq.ParquetFile(path).metadata.num_row_groups
        described = ", ".join(f"{c}:{t}" for c, t in cols)
        data.files.append(f"{rel}: {how}, {n} rows, {groups} row groups [{described}]{note}")
        if note:
            data.failures.append(f"{rel} ({n} rows):{note}")
        return path

    main = [
        add(
            f"d/t{i}.parquet",
            0 if rnd.random() < 0.05 else rnd.choice([5, 40, 80, 120, 160, 200, 200]),
        )
        for i in range(rnd.randint(2, 4))
    ]
    if rnd.random() < 0.25:
        add("d/.hidden.parquet", 60)
    if rnd.random() < 0.25:
        add("d/t_empty.parquet", 0, writer=rnd.choice(["duckdb", "mlskip", "pyarrow"]))
    if rnd.random() < 0.1:
        add("d/T0.parquet", 30)  # differs from t0.parquet only in case
    hive = rnd.random() < 0.3
    if hive:
        key = "p" if rnd.random() < 0.85 else names[-1]
        for v in range(1, rnd.randint(2, 3) + 1):
            add(f"h/{key}={v}/part.parquet", rnd.choice([10, 60, 100]))

    d, h = root / "d", root / "h"
    candidates = [f"'{p}'" for p in main]
    candidates += [f"read_parquet('{p}')" for p in main[:1]]
    candidates += [
        f"'{d}/*.parquet'",
        f"read_parquet('{d}/t*.parquet')",
        f"read_parquet('{d}/*.parquet', union_by_name = true)",
        f"read_parquet(['{main[0]}', '{main[-1]}'])",
        f"read_parquet('{d}/t*.parquet', filename = true)",
        f"parquet_scan('{main[0]}')",
    ]
    if hive:
        candidates += [
            f"read_parquet('{h}/*/*.parquet', hive_partitioning = true)",
            f"'{h}/**/*.parquet'",
            f"read_parquet('{h}/*/*.parquet', hive_partitioning = true, union_by_name = true)",
        ]
    for sql in candidates:
        cols = _describe(probe, sql)
        if cols and any(c.numeric or c.temporal for c in cols):
            data.sources.append(Source(sql, cols))
    return data


# ----------------------------------------------------------------------------- models
@dataclass
class Model:
    name: str  # as registered
    inputs: int
    classes: int  # 1: a regressor (one number)
    obj: Any
    description: str
    types: tuple[str, ...] = ()  # SQL type per input (DATE, TIMESTAMP); () all DOUBLE

    def type_of(self, i: int) -> str:
        return self.types[i] if self.types else "DOUBLE"


TREE_SHARE = 0.3  # of the network models, drawn as random tree ensembles instead


def draw_models(
    rnd: random.Random, nrng: np.random.Generator, seed: int, temporal: Sequence[str] = ()
) -> list[Model]:
    """One to three models; with ``temporal`` (the dataset's DATE / TIMESTAMP column
    types) some take one of those as an input."""
    from mlskip.verifier import Network, ReLU, Sigmoid, Tanh

    names = rnd.sample(["m", "score", "risk", "f2", "Model", "net_a"], rnd.choice([1, 1, 2, 2, 3]))
    models = []
    for name in names:
        d = rnd.randint(1, 3)
        classes = 1 if rnd.random() < 0.65 else rnd.randint(2, 4)
        if classes == 1:
            final = rnd.choice([None, None, "sigmoid"])
        else:
            final = rnd.choice([None, "softmax"])
        hidden = [rnd.randint(2, 8) for _ in range(rnd.randint(1, 2))]
        act = rnd.choice(["relu", "relu", "sigmoid", "tanh"])
        scale = rnd.choice([0.02, 0.2, 1.0])
        if rnd.random() < 0.2:
            obj = _torch_mlp(seed * 7 + len(models), d, hidden, classes, act, final, scale)
            kind = "torch"
        else:
            widths = [d, *hidden, classes]
            weights = [
                (
                    nrng.normal(size=(widths[i + 1], widths[i])) * scale,
                    nrng.normal(size=widths[i + 1]),
                )
                for i in range(len(widths) - 1)
            ]
            types = ["DOUBLE"] * d
            if temporal and rnd.random() < 0.4:  # a date or timestamp input, scaled
                j = rnd.randrange(d)
                types[j] = rnd.choice(list(temporal))
                weights[0][0][:, j] *= 1e-4 if types[j] == "DATE" else 1e-15
            activation = {"relu": ReLU(), "sigmoid": Sigmoid(), "tanh": Tanh()}[act]
            obj = Network.mlp(weights, activation, final=final)
            kind = "Network" + ("" if set(types) == {"DOUBLE"} else f" inputs {types}")
            # a tree ensemble instead, decided and drawn from streams of their own (the
            # draws above, and so every earlier seed's other models and queries, stay)
            if (
                set(types) == {"DOUBLE"}
                and random.Random(f"trees/{seed}/{len(models)}").random() < TREE_SHARE
            ):
                from mlskip.testing.random_cases import random_ensemble

                trng = np.random.default_rng([seed, len(models), 0x7472])
                samples = trng.normal(size=(64, d)) * trng.choice([1.0, 10.0, 100.0], size=(64, 1))
                obj = random_ensemble(trng, d, classes, samples)
                final = obj.final
                kind = f"TreeEnsemble {obj.num_trees} trees {obj.precision}"
        shape = "-".join(map(str, [d, *hidden, classes]))
        models.append(
            Model(
                name,
                d,
                classes,
                obj,
                f"model {name}: {kind} {shape} {act} final={final}",
                tuple(types) if kind.startswith("Network inputs") else (),
            )  # fmt: skip
        )
    return models


def _torch_mlp(seed: int, d: int, hidden: list[int], classes: int, act: str, final, scale: float):
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    layers: list[Any] = []
    widths = [d, *hidden, classes]
    for i in range(len(widths) - 1):
        linear = nn.Linear(widths[i], widths[i + 1])
        with torch.no_grad():
            linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) * scale)
            linear.bias.copy_(torch.randn(linear.bias.shape, generator=generator))
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append({"relu": nn.ReLU(), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}[act])
    if final == "sigmoid":
        layers.append(nn.Sigmoid())
    elif final == "softmax":
        layers.append(nn.Softmax(dim=-1))
    return nn.Sequential(*layers).eval()
