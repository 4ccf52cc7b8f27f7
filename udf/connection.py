"""``mlskip.connect()``: a DuckDB connection whose queries skip row groups.

It feels like DuckDB's own connection (``sql``, ``execute``, ``fetch*``,
``register``, ...) plus ``register_model`` and ``explain_skipping``. Each
query is planned by the skipper; the rewritten SQL (or the original, where
nothing can be skipped soundly) then runs on the wrapped DuckDB connection.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from mlskip.errors import ModelInputError
from mlskip.planner import Planner
from mlskip.query import ModelBinding, plan_query
from mlskip.report import SkippingReport
from mlskip.udf.batch_eval import BatchEvaluator
from mlskip.udf.functions import check_function_name, class_function_name, register_functions
from mlskip.udf.model import SqlModel, prepare_model
from mlskip.udf.runtime import Runner, make_runner
from mlskip.verifier.cascade import Verifier


class Connection:
    """A DuckDB connection with ML functions and row-group skipping.

    ``skipping=False`` runs the same functions on every row with no planning
    (the baseline, and a switch for users). Attributes this class does not
    define are DuckDB's (``con.table``, ``con.read_parquet``, ...).
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
        batch_evaluation: bool = True,
    ) -> None:
        if isinstance(database, duckdb.DuckDBPyConnection):
            self.duckdb = database
        else:
            self.duckdb = duckdb.connect(database, config=config or {})
        self.skipping = skipping
        self.batch_evaluation = batch_evaluation
        self.backend = backend
        self.threads = threads
        self.planner = Planner(verifier)
        self.models: dict[str, SqlModel] = {}
        self._functions: dict[str, ModelBinding] = {}
        self._runners: dict[str, Runner] = {}
        self._lock = threading.Lock()
        self._evaluator = BatchEvaluator(self.duckdb, self._batch_model)
        if models_dir is not None:
            self.register_models_dir(models_dir)

    # ------------------------------------------------------------------ models
    def register_model(
        self,
        name: str,
        model: Any,
        inputs: Sequence[str] | None = None,
        *,
        backend: str | None = None,
        threads: int | None = None,
    ) -> SqlModel:
        """Make ``model`` callable in SQL as ``name(x1, ..., xn)`` (and
        ``name_class(...)`` for classifiers). ``model``: ONNX path or bytes, a
        torch module, or an ``mlskip.verifier.Network``."""
        fname = check_function_name(name)
        prepared = prepare_model(model, inputs, name=fname)
        runner = make_runner(prepared, backend or self.backend, threads or self.threads)
        with self._lock:
            register_functions(self.duckdb, fname, prepared, runner)
            self.models[fname] = prepared
            self._runners[fname] = runner
            self._functions = {k: v for k, v in self._functions.items() if v.name != fname}
            common = dict(
                num_inputs=prepared.num_inputs,
                network=prepared.network,
                digest=prepared.digest,
                unverifiable=prepared.unverifiable,
            )
            if prepared.is_classifier:
                self._functions[class_function_name(fname)] = ModelBinding(
                    name=class_function_name(fname), kind="class", **common
                )
                # the vector-valued function is usable in SQL, not for skipping
                self._functions[fname] = ModelBinding(name=fname, kind="vector", **common)
            else:
                self._functions[fname] = ModelBinding(name=fname, kind="value", **common)
        return prepared

    def register_models_dir(self, directory: str | os.PathLike) -> list[str]:
        """Register every ``*.onnx`` file in ``directory`` under its file stem."""
        root = Path(directory)
        if not root.is_dir():
            raise ModelInputError(f"models_dir {str(root)!r} is not a directory")
        names = []
        for path in sorted(root.glob("*.onnx")):
            self.register_model(path.stem, path)
            names.append(check_function_name(path.stem))
        return names

    def _batch_model(self, function: str) -> tuple[SqlModel, Runner] | None:
        """The model behind a SQL function and its runner, for batch evaluation."""
        with self._lock:
            binding = self._functions.get(function)
            if binding is None or binding.kind not in ("value", "class"):
                return None
            name = function[: -len("_class")] if binding.kind == "class" else function
            return self.models[name], self._runners[name]

    # ------------------------------------------------------------------ queries
    def explain_skipping(self, query: str) -> SkippingReport:
        """What skipping would do for ``query`` (nothing is executed)."""
        with self._lock:
            functions = dict(self._functions)
        return plan_query(query, functions, self.planner)

    def rewrite(self, query: str) -> str:
        """The SQL that ``sql``/``execute`` run for ``query`` (ML predicates of planned
        scans are evaluated in advance when ``batch_evaluation`` is on)."""
        if not self.skipping:
            return query
        with self._lock:
            functions = dict(self._functions)
        evaluate = self._evaluator if self.batch_evaluation else None
        return plan_query(query, functions, self.planner, evaluate=evaluate).sql

    def sql(self, query: str, *, params: Any = None) -> duckdb.DuckDBPyRelation | None:
        """Like ``duckdb.sql``: a relation for a SELECT, None for a statement without result."""
        return self.duckdb.sql(self.rewrite(query), params=params)

    def query(self, query: str) -> duckdb.DuckDBPyRelation | None:
        return self.sql(query)

    def execute(self, query: str, parameters: Any = None) -> Connection:
        """Like ``DuckDBPyConnection.execute``; fetch with ``fetchall`` and friends."""
        self.duckdb.execute(self.rewrite(query), parameters)
        return self

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


def connect(database: str | duckdb.DuckDBPyConnection = ":memory:", **options: Any) -> Connection:
    """Open a DuckDB connection (or wrap an existing one) with ML functions and skipping;
    ``options`` are those of ``Connection`` (models_dir, skipping, backend, threads,
    verifier, batch_evaluation)."""
    return Connection(database, **options)
