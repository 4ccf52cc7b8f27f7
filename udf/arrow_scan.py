"""The same skip plan for Arrow and Polars: read only the row groups that can match.

``scan`` returns the rows of Parquet files that satisfy ``model(inputs) <op>
value``: pruned row groups are never read, all-match row groups are returned
without running the model, and the rest are filtered by evaluating it (in
float32 with ONNX Runtime, like the SQL function). ``scan_dataset`` gives the
row groups to read as a ``pyarrow.dataset.Dataset`` (unfiltered), and
``scan_polars`` a Polars LazyFrame of ``scan``'s result.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mlskip.errors import ModelInputError, PredicateError
from mlskip.plan import FilePlan
from mlskip.planner import BoundPredicate, Planner
from mlskip.query import expand_paths
from mlskip.rules.predicates import AffineArg
from mlskip.udf.model import SqlModel, prepare_model
from mlskip.udf.runtime import make_runner
from mlskip.verifier import Predicate

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FORMS = [
    (re.compile(rf"^\s*(>=|<=|>|<)\s*({_NUMBER})\s*$"), "cmp"),
    (re.compile(rf"^\s*between\s+({_NUMBER})\s+and\s+({_NUMBER})\s*$", re.I), "between"),
    (re.compile(rf"^\s*(?:class\s*)?=\s*({_NUMBER})\s*$", re.I), "eq"),
]
_CMP = {">": "gt", ">=": "ge", "<": "lt", "<=": "le"}


def parse_predicate(text: str | Predicate, classifier: bool) -> Predicate:
    """``"> 0.9"``, ``">= t"``, ``"< t"``, ``"<= t"``, ``"between lo and hi"``, or
    ``"= k"`` (the argmax class for classifiers, equality otherwise)."""
    if isinstance(text, Predicate):
        return text
    for pattern, form in _FORMS:
        match = pattern.match(str(text))
        if not match:
            continue
        if form == "cmp":
            return getattr(Predicate, _CMP[match.group(1)])(float(match.group(2)))
        if form == "between":
            return Predicate.between(float(match.group(1)), float(match.group(2)))
        value = float(match.group(1))
        if classifier:
            if value != int(value):
                raise PredicateError(f"class predicate {text!r} needs an integer class")
            return Predicate.argmax(int(value))
        return Predicate.between(value, value)
    raise PredicateError(
        f"cannot read predicate {text!r}: use '> t', '>= t', '< t', '<= t', "
        "'between lo and hi' or '= k'"
    )


@dataclass(frozen=True, eq=False)
class ScanPlan:
    """Per-file plans for one model predicate over a set of files."""

    model: SqlModel
    predicate: Predicate
    inputs: tuple[str, ...]
    files: tuple[FilePlan, ...]


_PLANNER = Planner()


def plan_scan(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None = None,
    planner: Planner | None = None,
) -> ScanPlan:
    """Plan ``model(inputs) <predicate>`` over the files (globs allowed)."""
    prepared = model if isinstance(model, SqlModel) else prepare_model(model, inputs)
    names = tuple(inputs) if inputs is not None else prepared.input_names
    if len(names) != prepared.num_inputs:
        raise ModelInputError(f"the model takes {prepared.num_inputs} inputs, got columns {names}")
    pred = parse_predicate(predicate, prepared.is_classifier)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = [f for p in paths for f in expand_paths(os.fspath(p))]
    if not files:
        raise ModelInputError(f"no Parquet file matches {[os.fspath(p) for p in paths]}")
    bound = BoundPredicate(
        network=prepared.network,
        predicate=pred,
        args=tuple(AffineArg(((c, 1.0),), 0.0) for c in names),
        digest=prepared.digest,
        sql=repr(pred),
    )
    plans = (planner or _PLANNER).plan_files(files, [bound], {})
    return ScanPlan(prepared, pred, names, plans)


def _read_groups(plan: FilePlan, groups: np.ndarray, columns: Sequence[str] | None) -> pa.Table:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(plan.path)
    if len(groups) == 0:
        return (
            parquet.schema_arrow.empty_table().select(columns)
            if columns
            else parquet.schema_arrow.empty_table()
        )
    return parquet.read_row_groups(groups.tolist(), columns=list(columns) if columns else None)


def scan(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    planner: Planner | None = None,
) -> pa.Table:
    """The rows where ``model(inputs) <predicate>`` holds, reading only what the plan keeps."""
    plan = plan_scan(paths, model, predicate, inputs, planner)
    runner = make_runner(plan.model)
    wanted = list(dict.fromkeys([*(columns or []), *plan.inputs])) if columns else None
    parts: list[pa.Table] = []
    for file in plan.files:
        keep_all = np.flatnonzero(file.all_match(0))
        evaluate = np.flatnonzero(~file.pruned & ~file.all_match(0))
        if len(keep_all):
            parts.append(_read_groups(file, keep_all, wanted))
        if len(evaluate):
            table = _read_groups(file, evaluate, wanted)
            parts.append(table.filter(pa.array(_holds(plan, runner, table))))
    if not parts:
        first = plan.files[0]
        parts.append(_read_groups(first, np.zeros(0, dtype=int), wanted))
    result = pa.concat_tables(parts, promote_options="default")
    return result.select(list(columns)) if columns else result


def _holds(plan: ScanPlan, runner, table: pa.Table) -> np.ndarray:
    """Rows where the predicate holds, evaluated like the SQL function (NULL never holds)."""
    n = table.num_rows
    x = np.empty((n, len(plan.inputs)), dtype=np.float32)
    valid = np.ones(n, dtype=bool)
    for j, name in enumerate(plan.inputs):
        column = table.column(name).cast(pa.float64())
        valid &= ~np.asarray(column.is_null().to_numpy(zero_copy_only=False))
        x[:, j] = column.fill_null(0.0).to_numpy()
    out = runner(x).astype(np.float64)
    holds = np.asarray(plan.predicate.holds(out), dtype=bool)
    return holds & valid


def scan_dataset(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None = None,
    planner: Planner | None = None,
) -> Any:
    """A ``pyarrow.dataset.Dataset`` of the row groups that are not pruned (unfiltered)."""
    import pyarrow.dataset as ds

    plan = plan_scan(paths, model, predicate, inputs, planner)
    fragments, schema = [], None
    for file in plan.files:
        dataset = ds.dataset(file.path, format="parquet")
        schema = schema or dataset.schema
        keep = np.flatnonzero(~file.pruned).tolist()
        if keep:
            fragments.extend(f.subset(row_group_ids=keep) for f in dataset.get_fragments())
    return ds.FileSystemDataset(fragments, schema, ds.ParquetFileFormat())


def scan_polars(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> Any:
    """``scan`` as a Polars LazyFrame."""
    import polars as pl

    return pl.from_arrow(scan(paths, model, predicate, inputs, columns)).lazy()
