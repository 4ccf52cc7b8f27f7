"""``mlskip.connect()``: a DuckDB connection whose queries skip row groups.

It feels like DuckDB's own connection (``sql``, ``execute``, ``fetch*``,
``register``, ...) plus ``register_model`` and ``explain_skipping``. Each
query is planned by the skipper; the rewritten SQL (or the original, where
nothing can be skipped soundly) then runs on the wrapped DuckDB connection.

Files that change under a query: a planned query (only SELECTs are planned)
is run to completion (by ``sql``, its rows are held in an Arrow table that the
returned relation reads, freed with the last relation that reads it; in a
temporary table where a column type would not survive Arrow, or with
parameters), then the identity of every planned file is checked again.
If any file was replaced since it was planned (also when the change made the
rewritten query fail), the result is discarded and the query is planned and
run again; after three such tries it runs as written, without skipping, with
a ``SkippingFallbackWarning``. So a stale plan never reaches a result; a file replaced and then
restored to the very same identity (size, mtime and inode; or size, ETag and
Last-Modified) in between is not detected. DuckDB itself (1.5.5) is not
consistent either when a file is replaced during a query, with or without
mlskip: it opens the file at bind time and again to scan it, and may then fail
("TProtocolException: Invalid data", "don't know what type"); such errors
reach the caller as they are.

Threads: a DuckDB connection is not thread-safe. Give each thread its own
``con.cursor()``: a connection to the same database that shares the models,
the SQL functions, the S3 settings and the planner's caches.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from mlskip.errors import ModelInputError, SkippingFallbackWarning
from mlskip.skipper.binder import Binder, parses_as_call
from mlskip.skipper.explain import SkippingReport
from mlskip.skipper.models import ModelBinding
from mlskip.skipper.planner import Planner
from mlskip.skipper.query import plan_query
from mlskip.skipper.remote import S3Options, load_httpfs
from mlskip.udf.batch_eval import BatchEvaluator
from mlskip.udf.functions import (
    check_function_name,
    class_function_name,
    drop_function,
    register_functions,
    sql_model_name,
)
from mlskip.udf.model import SqlModel, prepare_model
from mlskip.udf.runtime import Runner, make_runner
from mlskip.verifier.cascade import Verifier

_results = itertools.count()
_S3_PATH = re.compile(r"s3[an]?://", re.I)
ATTEMPTS = 3  # plans per query when files change under it; then it runs without skipping
_EXPLAIN = re.compile(r"\s*EXPLAIN\s+(ANALYZE\s+)?", re.IGNORECASE)
RECENT_RESULTS, KEPT_RESULTS = 64, 256  # materialized results kept (see Connection._remember)


class Connection:
    """A DuckDB connection with ML functions and row-group skipping.

    ``skipping=False`` runs the same functions on every row with no planning
    (the baseline, and a switch for users). ``s3`` (an ``S3Options`` or a dict
    of its fields) configures ``s3://`` access for both DuckDB (a secret named
    ``mlskip_s3``) and the planner; without it, DuckDB uses the secrets you
    create and the planner pyarrow's default AWS chain. ``footer_key`` (default
    ``$MLSKIP_FOOTER_KEY``) makes the planner trust only footers signed with it
    (see ``mlskip.write_parquet(key=...)``). ``index`` (a skip index written by
    ``mlskip index build``, local or ``s3://``) plans files from the index instead
    of their footers wherever its entry still matches the file. Attributes this class
    does not define are DuckDB's (``con.table``, ``con.read_parquet``, ...).
    """

    def __init__(
        self,
        database: str | duckdb.DuckDBPyConnection = ":memory:",
        *,
        models_dir: str | os.PathLike | None = None,
        skipping: bool = True,
        backend: str = "onnx",
        threads: int = 1,
        verifier: Verifier | None = None,
        config: dict | None = None,
        read_only: bool = False,
        batch_evaluation: bool = True,
        s3: S3Options | Mapping[str, Any] | None = None,
        footer_key: str | bytes | None = None,
        index: str | os.PathLike | None = None,
        _parent: Connection | None = None,
    ) -> None:
        if isinstance(database, duckdb.DuckDBPyConnection):
            self.duckdb = database
        else:
            self.duckdb = duckdb.connect(database, read_only=read_only, config=config or {})
        self.skipping = skipping
        self.batch_evaluation = batch_evaluation
        self.backend = backend
        self.threads = threads
        self._results: deque[str] = deque()
        self._released: set[str] = set()
        self._batch = BatchEvaluator(self.duckdb, self._batch_model)
        self._evaluator = self._batch  # what evaluates tasks (tests wrap it)
        self._binder = Binder(self.duckdb)  # per DuckDB connection: its catalog and settings
        if _parent is not None:  # a cursor: share models, functions and caches
            self.planner = _parent.planner
            self.models = _parent.models
            self._functions = _parent._functions
            self._runners = _parent._runners
            self._lock = _parent._lock
            self._httpfs = _parent._httpfs
            self._generation = _parent._generation
            return
        self.planner = Planner(verifier, s3=s3, footer_key=footer_key, index=index)
        self.models: dict[str, SqlModel] = {}
        self._functions: dict[str, ModelBinding] = {}
        self._runners: dict[str, Runner] = {}
        self._lock = threading.Lock()
        self._httpfs = [False]  # shared by cursors: httpfs loaded in this database
        self._generation = [0]  # shared by cursors: bumped by every register_model
        if self.planner.s3 is not None:
            self._load_httpfs()
            self.duckdb.execute(self.planner.s3.duckdb_secret_sql())
        if models_dir is not None:
            self.register_models_dir(models_dir)

    def cursor(self) -> Connection:
        """A new connection to the same database for another thread, sharing models,
        SQL functions, S3 settings and the planner (its caches are thread-safe)."""
        return Connection(
            self.duckdb.cursor(),
            skipping=self.skipping,
            backend=self.backend,
            threads=self.threads,
            batch_evaluation=self.batch_evaluation,
            _parent=self,
        )

    def _load_httpfs(self) -> None:
        with self._lock:
            if not self._httpfs[0]:
                load_httpfs(self.duckdb)
                self._httpfs[0] = True

    # ------------------------------------------------------------------ models
    def register_model(
        self,
        name: str,
        model: Any,
        inputs: Sequence[str] | None = None,
        *,
        backend: str | None = None,
        threads: int | None = None,
        replace: bool = False,
        input_types: Sequence[str] | None = None,
    ) -> SqlModel:
        """Make ``model`` callable in SQL as ``name(x1, ..., xn)`` (and
        ``name_class(...)`` for classifiers). ``model``: ONNX path or bytes, a
        torch module, or an ``mlskip.verifier.Network``. ``input_types``: each
        argument's type, DOUBLE (the default), DATE (days since 1970-01-01 for the model)
        or TIMESTAMP (microseconds); models exported by mlskip's zoo store theirs. A name
        already registered needs ``replace=True``; a name DuckDB already knows (a builtin
        function, a macro, another Python function) is refused: DuckDB would then pick
        between them by argument types."""
        fname = check_function_name(name)
        prepared = prepare_model(model, inputs, name=fname, input_types=input_types)
        runner = make_runner(prepared, backend or self.backend, threads or self.threads)
        with self._lock:
            previous = self.models.get(fname)
            self._check_name_free(fname, prepared, previous, replace)
            register_functions(self.duckdb, fname, prepared, runner)
            if previous is not None and previous.is_classifier and not prepared.is_classifier:
                # the old model's argmax function would run the old model, planned as the new
                drop_function(self.duckdb, class_function_name(fname))
            self.models[fname] = prepared
            self._runners[fname] = runner
            for key in (fname, class_function_name(fname)):
                if key in self._functions and (
                    key == fname or self._functions[key].kind == "class"
                ):
                    del self._functions[key]  # in place: cursors share this dict
            if prepared.is_classifier:
                self._functions[class_function_name(fname)] = ModelBinding(
                    class_function_name(fname), "class", prepared
                )
                # the vector-valued function is usable in SQL, not for skipping
                self._functions[fname] = ModelBinding(fname, "vector", prepared)
            else:
                self._functions[fname] = ModelBinding(fname, "value", prepared)
            self._generation[0] += 1
        return prepared

    def _check_name_free(
        self, fname: str, prepared: SqlModel, previous: SqlModel | None, replace: bool
    ) -> None:
        if fname in self._functions and previous is None:
            raise ModelInputError(
                f"model name {fname!r} is the class function of another registered model"
            )
        if previous is not None and not replace:
            raise ModelInputError(
                f"a model is already registered as {fname!r}; pass replace=True to replace it"
            )
        ours = {fname, class_function_name(fname)} if previous is not None else set()
        ours |= {n for n in self._functions}
        wanted = [fname] + ([class_function_name(fname)] if prepared.is_classifier else [])
        for name in wanted:
            if not parses_as_call(name, prepared.num_inputs):
                raise ModelInputError(
                    f"model name {name!r}: DuckDB's parser does not read {name}(...) as a "
                    "function call (an SQL keyword); choose another name"
                )
        taken = sorted(Binder(self.duckdb).function_names(wanted) - ours)
        if taken:
            raise ModelInputError(
                f"model name {fname!r}: DuckDB already has a function or macro named "
                f"{taken[0]!r}; choose another name"
            )

    def register_models_dir(self, directory: str | os.PathLike) -> list[str]:
        """Register every ``*.onnx`` file in ``directory`` under its file stem made a SQL
        name (``sql_model_name``: ``price.v2.onnx`` is ``price_v2``)."""
        root = Path(directory)
        if not root.is_dir():
            raise ModelInputError(f"models_dir {str(root)!r} is not a directory")
        files: dict[str, Path] = {}
        for path in sorted(root.glob("*.onnx")):
            name = sql_model_name(path.stem)
            if name in files:
                raise ModelInputError(
                    f"models_dir {str(root)!r}: {files[name].name} and {path.name} both map to "
                    f"the SQL name {name!r}; rename one of them"
                )
            files[name] = path
        for name, path in files.items():
            self.register_model(name, path)
        return list(files)

    def _batch_model(self, function: str) -> tuple[SqlModel, Runner] | None:
        """The model behind a SQL function and its runner, for batch evaluation."""
        with self._lock:
            binding = self._functions.get(function)
            if binding is None or binding.kind not in ("value", "class"):
                return None
            name = function[: -len("_class")] if binding.kind == "class" else function
            return self.models[name], self._runners[name]

    # ------------------------------------------------------------------ queries
    def _report(self, query: str, evaluate: bool, params: Any = None) -> SkippingReport:
        if _S3_PATH.search(query):
            self._load_httpfs()
        with self._lock:
            functions = dict(self._functions)
        evaluator = self._evaluate_task if evaluate and self.batch_evaluation else None
        if evaluator is not None:
            self._batch.begin_query()
        return plan_query(
            query, functions, self.planner, self._binder, evaluate=evaluator, params=params
        )

    def _evaluate_task(self, task: Any) -> str | None:
        """Batch evaluation, or None (the SQL function then runs in the query) when
        DuckDB fails to read the rows: the query itself reports a lasting error."""
        try:
            return self._evaluator(task)
        except duckdb.Error:
            return None

    def explain_skipping(self, query: str, params: Any = None) -> SkippingReport:
        """What skipping would do for ``query`` (nothing is executed; only footers are read,
        and DuckDB binds the query to learn its columns)."""
        return self._report(query, evaluate=False, params=params)

    def rewrite(self, query: str, params: Any = None) -> str:
        """The SQL that ``sql``/``execute`` run for ``query`` (ML predicates of planned
        scans are evaluated in advance when ``batch_evaluation`` is on)."""
        if not self.skipping:
            return query
        return self._report(query, evaluate=True, params=params).sql

    def changed_files(self, report: SkippingReport) -> list[str]:
        """Planned files whose identity is no longer the one they were planned for."""
        paths = [path for path, _ in report.identities]
        now = self.planner.identities(paths)
        return [p for (p, then), n in zip(report.identities, now, strict=True) if n != then]

    def sql(self, query: str, *, params: Any = None) -> duckdb.DuckDBPyRelation | None:
        """Like ``duckdb.sql``: a relation for a SELECT, None for a statement without result.

        A query that skipping planned is run at once, so that the planned files can be
        checked afterwards; the relation returned reads its rows (held in Arrow, freed
        with the last relation that reads them). ``con.explain_skipping(query)`` shows
        the plan and the SQL that ran."""
        if not self.skipping:
            return self._sql_as_written(query, params)
        explained = self._explained(query, params)
        if explained is not None:
            return self._sql_as_written(explained, params)
        for _ in range(ATTEMPTS):
            generation = self._generation[0]
            report = self._report(query, evaluate=True, params=params)
            if not report.identities or not report.is_query:
                # nothing planned (only queries are): DuckDB runs it as written, lazily
                return self._sql_as_written(query, params)
            if params is None:
                held = self._arrow_result(report, generation)
                if held is None:
                    continue  # a planned file or a model changed meanwhile: plan again
                if held is not False:
                    return held
            name = f"__mlskip_result_{next(_results)}"
            self._remember(name)
            sql = f"CREATE TEMP TABLE {name} AS {report.sql}"
            if self._run_checked(report, sql, params, generation):
                return self._result(name, report.sql)
            self.duckdb.execute(f"DROP TABLE IF EXISTS {name}")
        self._give_up(query)
        return self._sql_as_written(query, params)

    def _explained(self, query: str, params: Any) -> str | None:
        """``EXPLAIN [ANALYZE] q`` for a query ``q`` that skipping plans: the same EXPLAIN of
        the rewritten query (with the rows evaluated in advance for ANALYZE, which runs it;
        without for EXPLAIN, which only shows the plan). None for anything else."""
        head = _EXPLAIN.match(query)
        if head is None:
            return None
        report = self._report(query[head.end() :], evaluate=bool(head.group(1)), params=params)
        if not report.identities or not report.is_query:
            return None
        return head.group(0) + report.sql

    def _arrow_result(
        self, report: SkippingReport, generation: int
    ) -> duckdb.DuckDBPyRelation | None | bool:
        """Run the rewritten query into an Arrow table that the returned relation holds: it
        is freed with the last relation that reads it (``.limit(5)`` and the like keep it).
        None when a planned file or a model changed meanwhile (the rows must not be used);
        False when a column type does not come back from Arrow as it was (UUID, JSON, BIT,
        HUGEINT: then the caller keeps the rows in a temporary table)."""
        relation = self.duckdb.sql(report.sql)
        types = [str(t) for t in relation.types]
        try:
            rows = relation.to_arrow_table()
        except duckdb.Error:
            if self._stale(report, generation):
                return None
            raise
        if self._stale(report, generation):
            return None
        names = rows.column_names
        if len({n.lower() for n in names}) < len(names):  # DuckDB's Arrow scan binds by name
            rows = rows.rename_columns([f"__mlskip_column_{i}" for i in range(len(names))])
        held = self.duckdb.from_arrow(rows)
        if [str(t) for t in held.types] != types:
            return False
        return _with_names(held, relation.columns)

    def _stale(self, report: SkippingReport, generation: int) -> bool:
        """A model was registered again, or a planned file changed, since ``report``."""
        return self._generation[0] != generation or bool(self.changed_files(report))

    def _sql_as_written(self, query: str, params: Any) -> duckdb.DuckDBPyRelation | None:
        """DuckDB's own ``sql``, except with parameters: DuckDB 1.5.5's ``sql(query,
        params=...)`` can deadlock when the query calls a Python UDF (its worker threads
        wait for the GIL the calling thread holds; reproduced with a model in the WHERE
        clause), while ``execute`` does not; such results are materialized."""
        if params is None:
            return self.duckdb.sql(query)
        name = f"__mlskip_result_{next(_results)}"
        try:
            self.duckdb.execute(f"CREATE TEMP TABLE {name} AS {query}", params)
        except duckdb.ParserException:  # not a query (INSERT, SET, ...): nothing to return
            self.duckdb.execute(query, params)
            return None
        self._remember(name)
        return self._result(name, query)

    def query(self, query: str) -> duckdb.DuckDBPyRelation | None:
        return self.sql(query)

    def execute(self, query: str, parameters: Any = None) -> Connection:
        """Like ``DuckDBPyConnection.execute``; fetch with ``fetchall`` and friends."""
        if not self.skipping:
            self.duckdb.execute(query, parameters)
            return self
        explained = self._explained(query, parameters)
        if explained is not None:
            self.duckdb.execute(explained, parameters)
            return self
        for _ in range(ATTEMPTS):
            generation = self._generation[0]
            report = self._report(query, evaluate=True, params=parameters)
            if not report.identities or not report.is_query:
                self.duckdb.execute(query, parameters)
                return self
            if self._run_checked(report, report.sql, parameters, generation):  # materialized
                return self
        self._give_up(query)
        self.duckdb.execute(query, parameters)
        return self

    def _run_checked(self, report: SkippingReport, sql: str, params: Any, generation: int) -> bool:
        """Run the rewritten ``sql``; False when a planned file changed meanwhile, or a
        model was registered again (also when the change made DuckDB fail): the plan
        may not match what ran, so the result must not be used."""

        try:
            self.duckdb.execute(sql, params)
        except duckdb.Error:
            if self._stale(report, generation):
                return False
            raise
        return not self._stale(report, generation)

    @staticmethod
    def _give_up(query: str) -> None:
        warnings.warn(
            "files or models kept changing while planned queries ran; running without "
            f"skipping: {query}",
            SkippingFallbackWarning,
            stacklevel=3,
        )

    def _remember(self, table: str) -> None:
        """Drop materialized results: those whose relation is gone, once 64 newer ones
        exist (a relation derived from one, e.g. ``.limit(5)``, may still read it), and
        any beyond the 256 most recent (as for batch-evaluation results)."""
        self._results.append(table)
        recent = set(list(self._results)[-RECENT_RESULTS:])
        old = [n for n in self._results if n in self._released and n not in recent]
        old += list(self._results)[: max(0, len(self._results) - KEPT_RESULTS)]
        for name in dict.fromkeys(old):
            self.duckdb.execute(f"DROP TABLE IF EXISTS {name}")
            self._results.remove(name)
            self._released.discard(name)

    def _result(self, name: str, sql: str) -> duckdb.DuckDBPyRelation:
        relation = self.duckdb.table(name)
        columns = relation.columns
        # CREATE TABLE AS renames duplicate columns (x, x_1): give them their names back
        if any(re.fullmatch(re.escape(c) + r"_\d+", d, re.I) for c in columns for d in columns):
            relation = _with_names(relation, self.duckdb.sql(sql).columns)  # binds, no run
        # called by the garbage collector, maybe in another thread: only mark it here
        weakref.finalize(relation, self._released.add, name)
        return relation

    def fetchall(self) -> list:
        return self.duckdb.fetchall()

    def fetchone(self) -> Any:
        return self.duckdb.fetchone()

    def fetchdf(self) -> Any:
        return self.duckdb.fetchdf()

    def fetch_arrow_table(self) -> Any:
        return self.duckdb.fetch_arrow_table()

    def close(self) -> None:
        self.duckdb.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.duckdb, name)


def _with_names(relation: duckdb.DuckDBPyRelation, names: Sequence[str]) -> duckdb.DuckDBPyRelation:
    """``relation`` with its columns named ``names`` (a table or an Arrow scan renames
    duplicate names: x, x_1)."""
    if list(relation.columns) == list(names):
        return relation

    def quote(n: str) -> str:
        return '"' + n.replace('"', '""') + '"'

    pairs = zip(relation.columns, names, strict=True)
    return relation.project(", ".join(f"{quote(n)} AS {quote(o)}" for n, o in pairs))


def connect(database: str | duckdb.DuckDBPyConnection = ":memory:", **options: Any) -> Connection:
    """Open a DuckDB connection (or wrap an existing one) with ML functions and skipping;
    ``options`` are those of ``Connection`` (models_dir, skipping, backend, threads,
    verifier, batch_evaluation, s3, footer_key, index) and DuckDB's own ``read_only`` and
    ``config``. One thread per connection: use ``con.cursor()``
    in other threads."""
    return Connection(database, **options)
