"""The same skip plan for Arrow and Polars: read only the row groups that can match.

``scan`` returns the rows of Parquet files that satisfy ``model(inputs) <op>
value``: pruned row groups are never read, all-match row groups are returned
without running the model, and the rest are filtered by evaluating it (in
float32 with ONNX Runtime, like the SQL function). ``scan_dataset`` gives the
row groups to read as a ``SkipDataset`` (unfiltered; its methods agree, where
pyarrow's ``count_rows`` on row-group subsets does not), and
``scan_polars`` a Polars LazyFrame of ``scan``'s result.

``index=`` plans from a skip index (``mlskip index build``) instead of footers.
``s3://`` paths (and globs, listed with the filesystem) are read through
pyarrow's S3 filesystem: pass ``s3=S3Options(...)`` (or a dict of its fields),
or a ``planner`` made with them; otherwise pyarrow's default AWS chain.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mlskip.errors import MlskipError, ModelInputError, PredicateError
from mlskip.skipper.paths import expand_paths
from mlskip.skipper.plan import FilePlan
from mlskip.skipper.planner import BoundPredicate, Planner
from mlskip.skipper.remote import S3Options, is_s3, s3_key
from mlskip.skipper.rules.predicates import AffineArg
from mlskip.udf.inputs import model_rows
from mlskip.udf.model import SqlModel, prepare_model
from mlskip.udf.runtime import Runner, make_runner
from mlskip.udf.skip_dataset import SkipDataset
from mlskip.verifier import Predicate
from mlskip.verifier.predicate import KIND_OF_OP

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FORMS = [
    (re.compile(rf"^\s*(>=|<=|>|<)\s*({_NUMBER})\s*$"), "cmp"),
    (re.compile(rf"^\s*between\s+({_NUMBER})\s+and\s+({_NUMBER})\s*$", re.I), "between"),
    (re.compile(rf"^\s*(?:class\s*)?=\s*({_NUMBER})\s*$", re.I), "eq"),
]


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
            return getattr(Predicate, KIND_OF_OP[match.group(1)])(float(match.group(2)))
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
    planner: Planner


_PLANNERS: dict[tuple[S3Options | None, str | None], Planner] = {}
_PLANNERS_LOCK = threading.Lock()


def _planner(
    planner: Planner | None, s3: S3Options | dict | None, index: str | os.PathLike | None = None
) -> Planner:
    """The planner to use: the given one, else one per distinct ``s3`` options and skip
    index (kept for the process: its caches serve every later scan)."""
    if planner is not None:
        return planner
    options = S3Options.coerce(s3)
    if index is not None and not is_s3(os.fspath(index)):
        index = os.path.abspath(index)
    key = (options, os.fspath(index) if index is not None else None)
    with _PLANNERS_LOCK:
        if key not in _PLANNERS:
            _PLANNERS[key] = Planner(s3=options, index=key[1])
        return _PLANNERS[key]


def plan_scan(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None = None,
    planner: Planner | None = None,
    s3: S3Options | dict | None = None,
    index: str | os.PathLike | None = None,
) -> ScanPlan:
    """Plan ``model(inputs) <predicate>`` over the files (globs allowed); ``index``: a skip
    index to plan from (``mlskip index build``)."""
    planner = _planner(planner, s3, index)
    prepared, names, pred, defaulted = prepare_predicate(model, predicate, inputs)
    files = expand_files(paths, planner)
    _check_inputs_are_columns(files[0], names, defaulted, planner)
    plans = planner.plan_files(files, [bind_predicate(prepared, pred, names)], {})
    return ScanPlan(prepared, pred, names, plans, planner)


def prepare_predicate(
    model: Any, predicate: str | Predicate, inputs: Sequence[str] | None
) -> tuple[SqlModel, tuple[str, ...], Predicate, bool]:
    """The prepared model, its input columns, the parsed predicate, and whether the
    columns are the defaults x0, x1, ... of a model that stores no names."""
    prepared = model if isinstance(model, SqlModel) else prepare_model(model, inputs)
    names = tuple(inputs) if inputs is not None else prepared.input_names
    if len(names) != prepared.num_inputs:
        raise ModelInputError(f"the model takes {prepared.num_inputs} inputs, got columns {names}")
    pred = parse_predicate(predicate, prepared.is_classifier)
    defaulted = inputs is None and names == tuple(f"x{i}" for i in range(len(names)))
    return prepared, names, pred, defaulted


def expand_files(
    paths: str | os.PathLike | Sequence[str | os.PathLike], planner: Planner
) -> list[str]:
    """The files that paths and globs name (``s3://`` globs listed with the planner's
    filesystem); ``ModelInputError`` when none."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = [
        f
        for p in paths
        for f in expand_paths(os.fspath(p), planner.filesystem if is_s3(os.fspath(p)) else None)
    ]
    if not files:
        raise ModelInputError(f"no Parquet file matches {[os.fspath(p) for p in paths]}")
    return files


def bind_predicate(
    prepared: SqlModel, predicate: Predicate, names: Sequence[str]
) -> BoundPredicate:
    """The planner's form of ``model(names) <predicate>``."""
    return BoundPredicate(
        network=prepared.network,
        predicate=predicate,
        args=tuple(AffineArg(((c, 1.0),), 0.0) for c in names),
        digest=prepared.digest,
        sql=repr(predicate),
        sql_types=tuple(prepared.sql_types),
    )


def _check_inputs_are_columns(
    path: str, names: Sequence[str], defaulted: bool, planner: Planner
) -> None:
    """A clear error when the model's inputs are not columns of the file (a model exported
    without mlskip's input names gets x0, x1, ...: the fix is ``inputs=``)."""
    try:
        columns = planner.file_facts(path).column_names
    except Exception:  # an unreadable footer: reading the file reports it
        return
    missing = [n for n in names if n not in columns]
    if not missing:
        return
    hint = (
        f"the model stores no input column names; pass inputs=[...] naming the {len(names)} "
        "columns it takes, in order"
        if defaulted
        else "pass inputs=[...] naming columns of the file"
    )
    raise ModelInputError(
        f"model input {missing[0]!r} is not a column of {path} (columns: {list(columns)}); " + hint
    )


class _FileChanged(Exception):
    """A planned file was replaced before its rows were read."""


def _read_groups(
    plan: FilePlan, groups: np.ndarray | None, columns: Sequence[str] | None, planner: Planner
) -> pa.Table:
    """Row groups ``groups`` of the planned file (None: all of it), checked after the read
    to come from the very file the plan was made for."""
    import pyarrow.parquet as pq

    def changed() -> bool:
        if plan.identity is None:
            return False
        try:
            return planner.identity(plan.path) != plan.identity
        except OSError:
            return True

    try:
        if is_s3(plan.path):
            source = planner.filesystem.open_input_file(s3_key(plan.path))
        else:
            source = pa.OSFile(plan.path)
        with source:
            parquet = pq.ParquetFile(source)
            # a column some files of a set lack is read where present (NULL elsewhere)
            wanted = [c for c in columns if c in parquet.schema_arrow.names] if columns else None
            if groups is None:
                table = parquet.read(columns=wanted)
            elif len(groups) == 0:
                empty = parquet.schema_arrow.empty_table()
                table = empty.select(wanted) if wanted else empty
            else:
                table = parquet.read_row_groups(groups.tolist(), columns=wanted)
    except (OSError, ValueError):
        if changed():  # e.g. row groups the new file does not have
            raise _FileChanged(plan.path) from None
        raise
    if changed():
        raise _FileChanged(plan.path)
    return table


def scan(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    planner: Planner | None = None,
    s3: S3Options | dict | None = None,
    index: str | os.PathLike | None = None,
) -> pa.Table:
    """The rows where ``model(inputs) <predicate>`` holds, reading only what the plan keeps.

    Every file is checked after its read to be the one planned; if one was
    replaced meanwhile the scan is planned again (``MlskipError`` after three
    tries). A file whose footer could not be planned is read in full."""
    for _ in range(3):
        plan = plan_scan(paths, model, predicate, inputs, planner, s3, index)
        try:
            return _scan_planned(plan, columns)
        except _FileChanged as changed:
            last = changed
    raise MlskipError(f"{last} kept changing while it was scanned")


def _scan_planned(plan: ScanPlan, columns: Sequence[str] | None) -> pa.Table:
    parts = list(planned_tables(plan, columns))
    if not parts:
        first = plan.files[0]
        wanted = _wanted(plan, columns)
        parts.append(_read_groups(first, np.zeros(0, dtype=int), wanted, plan.planner))
    result = pa.concat_tables(parts, promote_options="permissive")
    return result.select(list(columns)) if columns else result


def _wanted(plan: ScanPlan, columns: Sequence[str] | None) -> list[str] | None:
    """Columns to read: those asked for and the model's inputs (None: all)."""
    return list(dict.fromkeys([*(columns or []), *plan.inputs])) if columns else None


def planned_tables(
    plan: ScanPlan, columns: Sequence[str] | None = None, chunk_rows: int | None = None
) -> Iterator[pa.Table]:
    """The qualifying rows of each file, in file order: pruned row groups are not read,
    all-match ones are kept without the model, the rest are filtered by it. With
    ``chunk_rows``, a file's row groups are read a few at a time (at least one per
    chunk, at most about ``chunk_rows`` rows), for streaming consumers."""
    runner = make_runner(plan.model)
    wanted = _wanted(plan, columns)
    for file in plan.files:
        if file.reason is not None:  # not planned: read everything, evaluate every row
            yield qualifying_rows(plan, file, None, wanted, runner)
            continue
        for groups in _chunks(np.flatnonzero(~file.pruned), file.num_rows, chunk_rows):
            yield qualifying_rows(plan, file, groups, wanted, runner)


def qualifying_rows(
    plan: ScanPlan,
    file: FilePlan,
    groups: np.ndarray | None,
    wanted: Sequence[str] | None,
    runner: Runner,
) -> pa.Table:
    """The rows of row groups ``groups`` of one planned file where the predicate holds
    (``groups`` None: the whole file, every row evaluated): all-match row groups are
    kept without the model, the model is run on the rest. ``_FileChanged`` if the file
    is no longer the one planned."""
    table = _read_groups(file, groups, wanted, plan.planner)
    if groups is None:
        keep = np.zeros(table.num_rows, dtype=bool)
    else:
        keep = np.repeat(file.all_match(0)[groups], file.num_rows[groups])
    if not keep.all():
        missing = [n for n in plan.inputs if n not in table.column_names]
        if missing:
            raise ModelInputError(
                f"model input {missing[0]!r} is not a column of {file.path} "
                f"(columns: {table.column_names})"
            )
        rest = np.flatnonzero(~keep)
        evaluated = table if len(rest) == table.num_rows else table.take(pa.array(rest))
        keep[rest] = _holds(plan, runner, evaluated)
    return table.filter(pa.array(keep))


def _chunks(groups: np.ndarray, num_rows: np.ndarray, chunk_rows: int | None) -> list[np.ndarray]:
    if len(groups) == 0:
        return []
    if chunk_rows is None:
        return [groups]
    chunks, current, rows = [], [], 0
    for g in groups.tolist():
        if current and rows + int(num_rows[g]) > chunk_rows:
            chunks.append(np.array(current))
            current, rows = [], 0
        current.append(g)
        rows += int(num_rows[g])
    chunks.append(np.array(current))
    return chunks


def _holds(plan: ScanPlan, runner, table: pa.Table) -> np.ndarray:
    """Rows where the predicate holds, evaluated like the SQL function (NULL never holds)."""
    x, valid = model_rows([table.column(name) for name in plan.inputs])
    out = runner(x).astype(np.float64)
    holds = np.asarray(plan.predicate.holds(out), dtype=bool)
    return holds & valid


def scan_dataset(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None = None,
    planner: Planner | None = None,
    s3: S3Options | dict | None = None,
    index: str | os.PathLike | None = None,
) -> SkipDataset:
    """The row groups that are not pruned (rows unfiltered), as a ``SkipDataset``: read
    with ``to_table``/``to_batches``/``to_reader``, counted with ``count_rows``."""
    import pyarrow.dataset as ds

    plan = plan_scan(paths, model, predicate, inputs, planner, s3, index)
    fragments, unplanned, schema = [], [], None
    for file in plan.files:
        if is_s3(file.path):
            dataset = ds.dataset(
                s3_key(file.path), format="parquet", filesystem=plan.planner.filesystem
            )
        else:
            dataset = ds.dataset(file.path, format="parquet")
        schema = schema or dataset.schema
        if file.reason is not None:  # not planned: every row group
            whole = list(dataset.get_fragments())
            fragments.extend(whole)
            unplanned.extend(whole)
            continue
        keep = np.flatnonzero(~file.pruned).tolist()
        if keep:
            fragments.extend(f.subset(row_group_ids=keep) for f in dataset.get_fragments())
    return SkipDataset(
        plan, ds.FileSystemDataset(fragments, schema, ds.ParquetFileFormat()), unplanned
    )


def scan_polars(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    s3: S3Options | dict | None = None,
    index: str | os.PathLike | None = None,
) -> Any:
    """``scan`` as a lazy Polars source (a ``LazyFrame``): planned once when called (footers
    only); rows are read and the model run at ``collect`` time, for the columns, filters
    and row count the query pushes into the scan."""
    import polars as pl
    from polars.io.plugins import register_io_source

    plan = plan_scan(paths, model, predicate, inputs, s3=s3, index=index)
    arrow_schema = _unified_schema(plan)
    if columns is not None:
        missing = [c for c in columns if c not in arrow_schema.names]
        if missing:
            raise ModelInputError(f"column {missing[0]!r} is not in {plan.files[0].path}")
        arrow_schema = pa.schema([arrow_schema.field(c) for c in columns])
    schema = pl.from_arrow(arrow_schema.empty_table()).schema

    def source(with_columns, where, n_rows, batch_size):
        out = list(with_columns) if with_columns is not None else list(schema)
        read = list(dict.fromkeys([*out, *(where.meta.root_names() if where is not None else [])]))
        # the model's inputs are read as well; at least one column keeps row counts right
        read = read or [arrow_schema.names[0]]
        left = n_rows
        try:
            for table in planned_tables(plan, read, chunk_rows=max(batch_size or 0, 1 << 16)):
                frame = pl.from_arrow(_conform(table, arrow_schema, read))
                if where is not None:
                    frame = frame.filter(where)
                frame = frame.select(out)
                if left is not None:
                    frame = frame.head(left)
                    left -= frame.height
                yield frame
                if left is not None and left <= 0:
                    return
        except _FileChanged as changed:
            raise MlskipError(
                f"{changed} changed after scan_polars planned it; call scan_polars again"
            ) from None

    planned = [f for f in plan.files if f.reason is None]
    total = sum(f.num_row_groups for f in planned)
    pruned = sum(int(f.pruned.sum()) for f in planned)
    return register_io_source(
        source,
        schema=schema,
        explain_name="mlskip",
        explain_detail=f"{len(plan.files)} file(s), {pruned} of {total} row groups pruned",
    )


def _unified_schema(plan: ScanPlan) -> pa.Schema:
    """The files' Arrow schemas combined as ``scan`` combines their tables."""
    schemas = [file_schema(file.path, plan.planner) for file in plan.files]
    return pa.unify_schemas(schemas, promote_options="permissive")


def file_schema(path: str, planner: Planner) -> pa.Schema:
    """The Arrow schema of one file (``s3://`` read with the planner's filesystem)."""
    import pyarrow.parquet as pq

    if is_s3(path):
        with planner.filesystem.open_input_file(s3_key(path)) as source:
            return pq.read_schema(source)
    return pq.read_schema(path)


def _conform(table: pa.Table, schema: pa.Schema, names: Sequence[str]) -> pa.Table:
    """``table`` with the columns ``names`` typed as in ``schema`` (NULL where a file
    lacks one)."""
    arrays = []
    for name in names:
        field = schema.field(name)
        if name in table.column_names:
            arrays.append(table.column(name).cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.table(arrays, names=list(names))
