"""The skip plan on Dask: plan on the workers, read only the row groups that can match.

``read_parquet`` returns a Dask DataFrame of the rows where ``model(inputs)
<predicate>`` holds, the rows ``mlskip.scan`` returns. Planning runs as Dask
tasks, a chunk of files each, with a ``Planner`` kept per worker process;
the DataFrame has one partition per batch of kept row groups of one file (at
most ``partition_rows`` rows, at least one row group). Pruned row groups are
never read, all-match ones are kept without running the model, the rest are
filtered by it (ONNX Runtime, float32, like the SQL function); a file the
planner could not plan is one partition, every row evaluated.

The prepared model travels inside the tasks as pickled bytes and is unpickled,
and its ONNX Runtime session made, once per worker process (by digest). Every
partition is checked to come from the file that was planned: a file replaced
after ``read_parquet`` fails its partition with ``MlskipError``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import pickle
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mlskip.errors import MlskipError, ModelInputError
from mlskip.skipper.plan import FilePlan
from mlskip.skipper.planner import Planner
from mlskip.skipper.remote import S3Options, is_s3
from mlskip.udf.arrow_scan import (
    ScanPlan,
    _check_inputs_are_columns,
    _chunks,
    _conform,
    _FileChanged,
    _planner,
    bind_predicate,
    expand_files,
    file_schema,
    prepare_predicate,
    qualifying_rows,
)
from mlskip.udf.model import SqlModel
from mlskip.udf.runtime import Runner, make_runner
from mlskip.verifier import Predicate

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

PLAN_CHUNK_FILES = 64  # files per planning task at most (one batched verifier call each)
PARTITION_ROWS = 1 << 20  # rows per output partition at most (unless one row group has more)
KEEP = 8  # models and runners kept per process

Paths = str | os.PathLike | Sequence[str | os.PathLike]


class _Lru:
    """A small thread-safe map that keeps the ``KEEP`` most recently used entries."""

    def __init__(self) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: two threads may both make it, one is kept
        with self._lock:
            value = self._items.setdefault(key, value)
            self._items.move_to_end(key)
            while len(self._items) > KEEP:
                self._items.popitem(last=False)
            return value


_MODELS, _RUNNERS = _Lru(), _Lru()


@dataclass(frozen=True)
class _ModelRef:
    """A prepared model as tasks carry it: pickled bytes, unpickled once per process."""

    key: str
    payload: bytes

    @classmethod
    def of(cls, model: SqlModel, kind: str) -> _ModelRef:
        """The reference to ``model``, keyed by its pickled bytes (one ONNX digest may
        come with other input names or types)."""
        payload = pickle.dumps(model)
        ref = cls(f"{kind}:{hashlib.sha256(payload).hexdigest()}", payload)
        _MODELS.get(ref.key, lambda: model)  # this process (threaded scheduler) has it
        return ref

    def get(self) -> SqlModel:
        return _MODELS.get(self.key, lambda: pickle.loads(self.payload))  # noqa: S301


def _runner(model: SqlModel) -> Runner:
    """One ONNX Runtime session per model and process (sessions are thread-safe)."""
    return _RUNNERS.get(model.digest, lambda: make_runner(model))


def _worker_planner(s3: S3Options | None, index: str | None) -> Planner:
    """This process's planner for ``s3`` and skip index (shared with ``mlskip.scan``)."""
    return _planner(None, s3, index)


def _plan_chunk(
    files: list[str],
    model: _ModelRef,
    predicate: Predicate,
    inputs: tuple[str, ...],
    defaulted: bool,
    check: bool,
    s3: S3Options | None,
    index: str | None,
) -> tuple[tuple[FilePlan, ...], pa.Schema | None]:
    """A planning task: the plans of ``files`` and their unified Arrow schema (None when
    no schema could be read; a file that could not be planned may be unreadable)."""
    planner = _worker_planner(s3, index)
    prepared = model.get()
    if check:  # like mlskip.scan: the first file names the columns
        _check_inputs_are_columns(files[0], inputs, defaulted, planner)
    plans = planner.plan_files(files, [bind_predicate(prepared, predicate, inputs)], {})
    schemas = []
    for file in plans:
        try:
            schemas.append(file_schema(file.path, planner))
        except (OSError, ValueError):
            if file.reason is None:
                raise
    schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
    return plans, schema


def _slots() -> int:
    """Threads that run tasks: the default distributed client's, else this machine's."""
    if "distributed" in sys.modules:  # a user with a client has imported it
        from distributed import default_client

        try:
            return max(1, sum(default_client().nthreads().values()))
        except ValueError:  # no client
            pass
    return os.cpu_count() or 1


def _file_chunks(files: list[str]) -> list[list[str]]:
    """Files per planning task: at most ``PLAN_CHUNK_FILES``, fewer when that gives
    fewer than two tasks per thread."""
    size = max(1, min(PLAN_CHUNK_FILES, math.ceil(len(files) / (2 * _slots()))))
    return [files[i : i + size] for i in range(0, len(files), size)]


def _plan(
    paths: Paths,
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None,
    index: str | os.PathLike | None,
    s3: S3Options | dict | None,
) -> tuple[ScanPlan, pa.Schema]:
    """The plan, made by Dask tasks on the current scheduler, and the files' unified
    Arrow schema (without pandas metadata)."""
    import dask

    options = S3Options.coerce(s3)
    if index is not None:  # a local index as an absolute path too
        index = os.fspath(index) if is_s3(os.fspath(index)) else os.path.abspath(index)
    client_planner = _planner(None, options)
    prepared, names, pred, defaulted = prepare_predicate(model, predicate, inputs)
    # local paths absolute: a worker's working folder need not be the client's
    files = [f if is_s3(f) else os.path.abspath(f) for f in expand_files(paths, client_planner)]
    ref = dask.delayed(_ModelRef.of(prepared, "plan"), pure=True, traverse=False)
    # keys in file order, so workers take chunks in the index's order (a skip index is
    # read a slice at a time: neighbouring chunks share its slices); files may change
    run = uuid.uuid4().hex[:12]
    tasks = [
        dask.delayed(_plan_chunk, pure=False)(
            chunk,
            ref,
            pred,
            names,
            defaulted,
            k == 0,
            options,
            index,
            dask_key_name=f"mlskip-plan-{run}-{k:08d}",
        )  # fmt: skip
        for k, chunk in enumerate(_file_chunks(files))
    ]
    results = dask.compute(*tasks)
    plans = tuple(plan for chunk, _ in results for plan in chunk)
    schemas = [schema for _, schema in results if schema is not None]
    if not schemas:  # no file could be read: reading the first reports why
        schemas = [file_schema(files[0], client_planner)]
    schema = pa.unify_schemas(schemas, promote_options="permissive").remove_metadata()
    return ScanPlan(prepared, pred, names, plans, client_planner), schema


def plan(
    paths: Paths,
    model: Any,
    predicate: str | Predicate,
    inputs: Sequence[str] | None = None,
    index: str | os.PathLike | None = None,
    s3: S3Options | dict | None = None,
) -> ScanPlan:
    """The skip plan ``read_parquet`` follows (per-file ``FilePlan``s), made by Dask
    tasks on the current scheduler, for inspection."""
    return _plan(paths, model, predicate, inputs, index, s3)[0]


@dataclass(frozen=True)
class _Part:
    """One output partition: row groups ``groups`` of a planned file (None: all of an
    unplanned file, every row evaluated), or no file (an empty result)."""

    file: FilePlan | None
    groups: tuple[int, ...] | None


def _parts(plan: ScanPlan, partition_rows: int) -> list[_Part]:
    """Partitions of kept row groups, at most ``partition_rows`` rows each (at least one
    row group); one empty partition when nothing is kept."""
    parts = []
    for file in plan.files:
        if file.reason is not None:
            parts.append(_Part(file, None))
            continue
        for groups in _chunks(np.flatnonzero(~file.pruned), file.num_rows, partition_rows):
            parts.append(_Part(file, tuple(groups.tolist())))
    return parts or [_Part(None, None)]


def _arrow_types(kind: pa.DataType) -> Any:
    """The pandas dtypes ``dask.dataframe.read_parquet`` gives when Dask converts strings
    (its default): strings as pyarrow-backed ``string``, dates and decimals as Arrow."""
    import pandas as pd

    if kind in (pa.string(), pa.large_string()):
        return pd.StringDtype("pyarrow")
    if kind in (pa.date32(), pa.date64()) or pa.types.is_decimal(kind):
        return pd.ArrowDtype(kind)
    return None


def _to_pandas(table: pa.Table, convert_string: bool) -> pd.DataFrame:
    """``table`` as ``dask.dataframe.read_parquet`` converts a file's rows."""
    mapper = _arrow_types if convert_string else None
    return table.to_pandas(types_mapper=mapper, use_threads=False)


def _read_part(
    part: _Part,
    model: _ModelRef,
    predicate: Predicate,
    inputs: tuple[str, ...],
    schema: pa.Schema,
    s3: S3Options | None,
    convert_string: bool,
    columns: list[str],
) -> pd.DataFrame:
    """A partition task: the qualifying rows of its row groups, as pandas, with the
    columns ``columns`` (Dask passes those a query needs: required, so that it always
    does) typed as ``schema``."""
    columns = list(columns)
    if part.file is None:
        return _to_pandas(schema.empty_table().select(columns), convert_string)
    prepared = model.get()
    scan_plan = ScanPlan(prepared, predicate, inputs, (part.file,), _planner(None, s3))
    groups = None if part.groups is None else np.array(part.groups, dtype=np.int64)
    wanted = list(dict.fromkeys([*columns, *inputs]))
    try:
        table = qualifying_rows(scan_plan, part.file, groups, wanted, _runner(prepared))
    except _FileChanged:
        raise MlskipError(
            f"{part.file.path} changed after mlskip.dask planned the scan; call read_parquet again"
        ) from None
    table = _conform(table, schema, columns) if columns else table.select([])  # keeps rows
    return _to_pandas(table, convert_string)


def _output_columns(schema: pa.Schema, columns: Sequence[str] | str | None) -> list[str]:
    if columns is None:
        return list(schema.names)
    columns = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ModelInputError(
            f"column {missing[0]!r} is not in the files (columns: {list(schema.names)})"
        )
    return columns


def read_parquet(
    paths: Paths,
    model: Any,
    predicate: str | Predicate,
    columns: Sequence[str] | None = None,
    index: str | os.PathLike | None = None,
    inputs: Sequence[str] | None = None,
    s3: S3Options | dict | None = None,
    partition_rows: int | None = None,
) -> dd.DataFrame:
    """The rows of Parquet files (a path, glob or list; local or ``s3://``) where
    ``model(inputs) <predicate>`` holds, as a Dask DataFrame.

    Planned now by Dask tasks (footers only, on the current scheduler: a
    ``distributed.Client`` if one is the default); rows are read and the model run
    when the DataFrame is computed. ``columns``: the columns returned (the model's
    inputs are read as well); ``index``: a skip index file (``mlskip index build``)
    the planners use, not Dask's index column; ``partition_rows``: rows per
    partition at most (default ``PARTITION_ROWS``). Dtypes follow
    ``dask.dataframe.read_parquet``; each partition has its own ``RangeIndex``."""
    import dask.dataframe as dd
    from dask.dataframe.utils import pyarrow_strings_enabled

    if partition_rows is not None and partition_rows < 1:
        raise MlskipError(f"partition_rows must be at least 1, got {partition_rows}")
    scan_plan, schema = _plan(paths, model, predicate, inputs, index, s3)
    out = _output_columns(schema, columns)
    convert_string = pyarrow_strings_enabled()
    meta = _to_pandas(schema.empty_table().select(out), convert_string)
    run_model = dataclasses.replace(scan_plan.model, network=None)  # tasks only run it
    args = [
        _ModelRef.of(run_model, "run"),
        scan_plan.predicate,
        scan_plan.inputs,
        schema,
        S3Options.coerce(s3),
        convert_string,
    ]
    return dd.from_map(
        _read_part,
        _parts(scan_plan, partition_rows or PARTITION_ROWS),
        args=args,
        meta=meta,
        columns=out,
        label="mlskip-read-parquet",
        enforce_metadata=False,
    )
