"""Evaluate ML predicates in advance, in large batches, outside DuckDB's UDF calls.

DuckDB calls a Python scalar function once per 2,048-row chunk, and that call
costs more than the model itself. For the scans the skipper plans, the model
is instead run here on the rows still to evaluate (arguments computed by
DuckDB exactly as for the SQL function, then ONNX Runtime in batches of 8,192
rows, two at a time), and the query selects the qualifying rows by
``file_row_number``. Comparisons follow DuckDB's semantics: NULL arguments
never qualify, and NaN is greater than every number (so ``NaN > t`` holds).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import pyarrow as pa

from mlskip.skipper.models import EvaluationTask
from mlskip.skipper.rules.rewrite import ranges_condition, span_is_cheaper
from mlskip.udf.inputs import model_rows
from mlskip.udf.model import SqlModel
from mlskip.udf.runtime import Runner
from mlskip.verifier import Predicate

BATCH_ROWS = 1 << 16  # rows fetched from DuckDB at a time
MODEL_ROWS = 8192  # rows per model call: larger batches fall out of cache and run slower
MAX_SELECTIVITY = 0.05  # above this share of qualifying rows, the SQL function is cheaper
# model calls of one batch run side by side (ONNX Runtime releases the GIL; DuckDB runs
# the SQL function on its worker threads too): a tree ensemble's rows cost microseconds
# each, so one thread made batch evaluation slower than the SQL function
EVAL_THREADS = max(1, min(2, os.cpu_count() or 1))
_names = itertools.count()


def _next_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def _cut_after_reading(ranges) -> tuple[np.ndarray, np.ndarray] | None:
    """Starts and ends of ``ranges`` when they are better cut from the rows they span after
    reading than by DuckDB's filter (``span_is_cheaper``), else None."""
    if ranges is None or not span_is_cheaper(tuple(sorted(ranges))):
        return None
    ranges = sorted(ranges)
    starts = np.array([lo for lo, _ in ranges], dtype=np.int64)
    ends = np.array([hi for _, hi in ranges], dtype=np.int64)
    return starts, ends


def qualifies(out: np.ndarray, kind: str, values: tuple[float, ...]) -> np.ndarray:
    """Rows whose model output satisfies the comparison, as DuckDB decides it."""
    return Predicate.comparison(kind, values).holds(out)


class BatchEvaluator:
    """Runs ``EvaluationTask``s on one DuckDB connection and registers the results.

    ``models`` maps SQL function names to the model and a batch runner factory.
    The last ``keep`` result relations stay registered (a relation returned by
    ``sql`` may still read them), and every one registered since ``begin_query``
    (a glob of many files needs one per file and predicate).
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        lookup: Callable[[str], tuple[SqlModel, Runner] | None],
        keep: int = 256,
    ) -> None:
        self._con = con
        self._lookup = lookup
        self._registered: deque[str] = deque()
        self._keep = keep
        self._in_query = 0  # registered for the query being planned: never dropped before it runs
        self._lock = threading.Lock()

    def begin_query(self) -> None:
        """Mark the start of a query's planning: older results may be dropped again."""
        with self._lock:
            self._in_query = 0

    def __call__(self, task: EvaluationTask) -> str | None:
        found = self._lookup(task.function)
        if found is None:
            return None
        model, runner = found
        if task.ranges == ():
            rows = np.zeros(0, dtype=np.int64)
        else:
            rows = self._evaluate(task, runner, model.num_inputs)
            if rows is None:
                return None
        return self._register({"file_row_number": np.ascontiguousarray(rows, dtype=np.int64)})

    def _evaluate(self, task: EvaluationTask, runner: Runner, d: int) -> np.ndarray | None:
        """Qualifying row numbers, or None when the first batch shows the predicate is
        not selective (then listing the rows costs the query more than the SQL function)."""
        cut = _cut_after_reading(task.ranges)
        where = []
        if task.ranges is not None:
            span = task.ranges if cut is None else ((int(cut[0][0]), int(cut[1].max())),)
            where.append(ranges_condition(span))
        where += [f"({f})" for f in task.filters]
        args = ", ".join(f"CAST(({a}) AS DOUBLE) AS x{i}" for i, a in enumerate(task.args))
        sql = f"SELECT file_row_number, {args} FROM {task.source}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        cursor = self._con.cursor()
        found: list[np.ndarray] = []
        try:
            reader = cursor.execute(sql).to_arrow_reader(BATCH_ROWS)
            # DuckDB reads the next batch while the model runs on this one (both release the GIL)
            with ThreadPoolExecutor(1) as prefetch, ThreadPoolExecutor(EVAL_THREADS) as pool:
                pending = prefetch.submit(_next_batch, reader)
                seen = 0
                while (batch := pending.result()) is not None:
                    pending = prefetch.submit(_next_batch, reader)
                    rows = self._qualifying_rows(batch, task, runner, d, pool, cut)
                    seen += batch.num_rows
                    if rows.size:
                        found.append(rows)
                    if not found or seen < BATCH_ROWS:
                        continue
                    if sum(r.size for r in found) > MAX_SELECTIVITY * seen:
                        pending.result()
                        return None
        finally:
            cursor.close()
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)

    @staticmethod
    def _qualifying_rows(
        batch: pa.RecordBatch,
        task: EvaluationTask,
        runner: Runner,
        d: int,
        pool: ThreadPoolExecutor | None = None,
        cut: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """``file_row_number`` of the batch's rows that satisfy the predicate; with
        ``cut`` (range starts and ends), of its rows inside those ranges only."""
        if batch.num_rows == 0:
            return np.zeros(0, dtype=np.int64)
        if cut is not None:
            number = batch.column(0).to_numpy(zero_copy_only=False)
            at = np.searchsorted(cut[0], number, side="right") - 1
            inside = (at >= 0) & (number <= cut[1][np.maximum(at, 0)])
            batch = batch.filter(pa.array(inside))
            if batch.num_rows == 0:
                return np.zeros(0, dtype=np.int64)
        x, valid = model_rows([batch.column(j + 1) for j in range(d)])
        chunks = [x[i : i + MODEL_ROWS] for i in range(0, len(x), MODEL_ROWS)]
        outs = (
            pool.map(runner, chunks)
            if pool is not None and len(chunks) > 1
            else map(runner, chunks)
        )
        out = np.concatenate(list(outs))
        keep = qualifies(out, task.kind, task.values) & valid
        return batch.column(0).to_numpy(zero_copy_only=False)[keep]

    def _register(self, table: dict[str, np.ndarray]) -> str:
        """Register the row numbers as a relation (numpy columns: an Arrow table would make
        DuckDB import pyarrow.dataset, a tenth of a second of a first query)."""
        name = f"__mlskip_match_{next(_names)}"
        with self._lock:
            self._con.register(name, table)
            self._registered.append(name)
            self._in_query += 1
            while len(self._registered) > max(self._keep, self._in_query):
                self._con.unregister(self._registered.popleft())
        return name
