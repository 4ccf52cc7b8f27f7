"""Compute model-aware summaries of files: the outputs of registered models per row group.

``mlskip.write_parquet(..., models={"price": "price.onnx"})`` summarizes while writing,
``mlskip.build_index(..., models=...)`` for files already written. A model is evaluated on
every row through DuckDB's SQL function of it, exactly the path a query without skipping
takes (DuckDB's casts of the columns, the runtime), and the column types DuckDB saw are
recorded: the planner uses a summary only for arguments that are those columns of those
types (skipper/summary_plan.py). The encoding is metadata/model_summary.py's.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mlskip.errors import InputDataError, ModelInputError, SkippingFallbackWarning
from mlskip.metadata.model_summary import (
    DEFAULT_BYTES,
    KEY,
    ModelHeader,
    ModelSummary,
    OutputRecord,
    class_record,
    encode_models,
    record_budget_ok,
    value_range,
    value_record,
)
from mlskip.skipper.summary_plan import input_signature

if TYPE_CHECKING:
    from mlskip.skipper.models import SqlModel

# class summaries count a class as possible within this many times the largest error
# bound of a row group: the query-time bound (over a box that may be wider) must stay
# within a quarter of the tolerance for the summary to be used
CLASS_TOLERANCE_FACTOR = 8.0


@dataclass(frozen=True)
class SummarizedModel:
    """A model to summarize: its name, the model as SQL runs it, the file columns it
    reads (in argument order) and the bytes per row group."""

    name: str
    model: SqlModel
    columns: tuple[str, ...]
    budget: int = DEFAULT_BYTES


def summarized_models(
    models: Mapping[str, Any], budget: int = DEFAULT_BYTES
) -> list[SummarizedModel]:
    """The models of ``models={name: model or (model, columns)}``, checked: verifiable
    (the planner needs the runtime's error bound) and fitting the byte budget."""
    from mlskip.udf.model import prepare_model

    if not isinstance(models, Mapping):
        raise ModelInputError("models= must map names to models, e.g. {'price': 'price.onnx'}")
    out = []
    for name, spec in models.items():
        src, columns = spec, None
        if isinstance(spec, tuple) and len(spec) == 2 and not isinstance(spec[1], str):
            src, columns = spec
        # named as the columns it reads, as `register_model(name, model, inputs=columns)`
        # names it: the digest a query's model must have covers the names
        prepared = prepare_model(src, columns, name=str(name))
        if prepared.network is None:
            raise ModelInputError(
                f"model {name!r} cannot be summarized: the verifier cannot bound its "
                f"evaluation ({prepared.unverifiable})"
            )
        cols = tuple(columns) if columns is not None else prepared.input_names
        if len(cols) != prepared.num_inputs:
            raise ModelInputError(
                f"model {name!r} takes {prepared.num_inputs} inputs, got columns {list(cols)}"
            )
        sm = SummarizedModel(str(name), prepared, cols, int(budget))
        if not record_budget_ok(_header(sm, (), "", 0.0, 0.0, 0.0)):
            raise ModelInputError(
                f"model {name!r}: {budget} bytes per row group cannot hold its summary "
                f"(at least {_least_bytes(prepared)})"
            )
        out.append(sm)
    return out


def _least_bytes(model: SqlModel) -> int:
    return 1 + (model.num_outputs + 7) // 8 if model.is_classifier else 5


def _header(
    sm: SummarizedModel, types: Sequence[str], runtime: str, lo: float, hi: float, tol: float
) -> ModelHeader:
    m = sm.model
    return ModelHeader(
        name=sm.name, digest=m.digest, kind="class" if m.is_classifier else "value",
        input_dtype=m.input_dtype, inputs=sm.columns, input_types=tuple(types),
        runtime=runtime, num_outputs=m.num_outputs, lo=lo, hi=hi, tolerance=tol,
        budget=sm.budget,
    )  # fmt: skip


def _runtime_words() -> str:
    import duckdb
    import onnxruntime

    return f"duckdb {duckdb.__version__}, onnxruntime {onnxruntime.__version__}"


class _Evaluator:
    """One model's SQL function on a private DuckDB connection."""

    def __init__(self, sm: SummarizedModel) -> None:
        import duckdb

        from mlskip.udf.functions import register_functions
        from mlskip.udf.runtime import make_runner

        self.sm = sm
        self.con = duckdb.connect()
        self.con.execute("SET threads = 1")
        register_functions(self.con, "m", sm.model, make_runner(sm.model, "onnx", 1))
        cols = ", ".join(_quote(c) for c in sm.columns)
        self.args = cols
        self.casts = ", ".join(
            f"CAST({_quote(c)} AS {t})" for c, t in zip(sm.columns, sm.model.sql_types, strict=True)
        )

    def run(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Outputs of the rows with no NULL input (``[n]`` or ``[n, k]``), the box of the
        model's inputs over them, and the signature of each input's types."""
        from mlskip.udf.inputs import model_inputs

        self.con.register("rows", table.select(list(self.sm.columns)))
        try:
            rel = self.con.sql(f"SELECT {self.args} FROM rows")
            types = [
                input_signature(str(t), s)
                for t, s in zip(rel.types, self.sm.model.sql_types, strict=True)
            ]
            where = " AND ".join(f"{_quote(c)} IS NOT NULL" for c in self.sm.columns)
            got = self.con.sql(f"SELECT m({self.args}) AS y, {self.casts} FROM rows WHERE {where}")
            arrow = got.to_arrow_table()
        finally:
            self.con.unregister("rows")
        k = self.sm.model.num_outputs
        y = arrow.column(0)
        if k > 1:
            flat = pa.concat_arrays([c.flatten() for c in y.chunks]) if y.num_chunks else []
            y_np = np.asarray(flat, dtype=np.float64).reshape(-1, k)
        else:
            y_np = np.asarray(y.to_numpy(zero_copy_only=False), dtype=np.float64)
        x = model_inputs([arrow.column(i + 1) for i in range(len(self.sm.columns))])
        if len(x):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, hi = np.min(x, axis=0), np.max(x, axis=0)
        else:
            lo = hi = np.zeros(len(self.sm.columns))
        return y_np, lo, hi, types


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ModelSummarizer:
    """A footer hook (metadata.writer.FooterHook) summarizing models over one file;
    ``skip_missing``: models reading a column the file lacks are left out (an index over
    files of several schemas) instead of refused."""

    def __init__(
        self, models: Sequence[SummarizedModel], schema: pa.Schema, skip_missing: bool = False
    ) -> None:
        kept = []
        for sm in models:
            missing = [c for c in sm.columns if c not in schema.names]
            if missing and not skip_missing:
                raise InputDataError(
                    f"model {sm.name!r} reads column(s) {missing}, which the data does not "
                    f"have (columns: {schema.names})"
                )
            if not missing:
                kept.append(sm)
        models = kept
        self.models = list(models)
        self.columns = tuple(dict.fromkeys(c for sm in models for c in sm.columns))
        self._evaluators = [_Evaluator(sm) for sm in models]
        self._outputs: list[list[np.ndarray]] = [[] for _ in models]
        self._boxes: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in models]
        self._types: list[list[str] | None] = [None for _ in models]

    def add(self, table: pa.Table) -> None:
        for i, ev in enumerate(self._evaluators):
            y, lo, hi, types = ev.run(table)
            if self._types[i] is None:
                self._types[i] = types
            elif self._types[i] != types:  # batches of one file: cannot happen; be strict
                raise InputDataError(f"model {ev.sm.name!r}: column types changed mid-file")
            self._outputs[i].append(y)
            self._boxes[i].append((lo, hi))

    def summaries(self) -> list[ModelSummary]:
        """One summary per model over the row groups added so far."""
        runtime = _runtime_words()
        out = []
        for i, sm in enumerate(self.models):
            types = self._types[i] or [
                input_signature("?", t) for t in sm.model.sql_types
            ]  # no row group
            ys = self._outputs[i]
            if sm.model.is_classifier:
                tol = self._class_tolerance(sm, self._boxes[i], ys)
                header = _header(sm, types, runtime, 0.0, 0.0, tol)
                records = tuple(class_record(y, tol) for y in ys)
            else:
                rng = value_range(ys)
                if rng is None:  # outputs too far apart for a float64 range
                    warnings.warn(
                        f"model {sm.name!r}: its outputs span more than float64 can hold; "
                        "no usable summary",
                        SkippingFallbackWarning,
                        stacklevel=3,
                    )
                    rng = (0.0, 0.0)
                    records = tuple(OutputRecord("unusable" if len(y) else "empty") for y in ys)
                else:
                    records = tuple(value_record(y, *rng, sm.budget) for y in ys)
                header = _header(sm, types, runtime, rng[0], rng[1], 0.0)
            out.append(ModelSummary(header, records))
        return out

    @staticmethod
    def _class_tolerance(sm: SummarizedModel, boxes, ys) -> float:
        from mlskip.verifier.output_summaries import output_error

        worst = 0.0
        for (lo, hi), y in zip(boxes, ys, strict=True):
            if not len(y):
                continue
            e = float(output_error(sm.model.network, lo[None, :], hi[None, :]).max())
            if math.isfinite(e):
                worst = max(worst, e)
        return CLASS_TOLERANCE_FACTOR * worst

    def finish(self, layout: int, key: bytes | None) -> dict[str, str]:
        return {KEY: encode_models(self.summaries(), layout, key=key)}


@dataclass(frozen=True)
class ModelHooks:
    """``footer_hooks`` for the writer and the index: a ModelSummarizer per file
    (picklable, for index builds on Dask processes)."""

    models: tuple[SummarizedModel, ...]
    skip_missing: bool = False  # index builds: files without a model's columns get none

    def __call__(self, schema: pa.Schema) -> list[ModelSummarizer]:
        return [ModelSummarizer(self.models, schema, self.skip_missing)]

    def describe(self) -> list[dict]:
        return [
            {"name": sm.name, "digest": sm.model.digest, "columns": list(sm.columns),
             "bytes": sm.budget}
            for sm in self.models
        ]  # fmt: skip


def model_hooks(
    models: Mapping[str, Any] | None, model_bytes: int, skip_missing: bool = False
) -> ModelHooks | None:
    """The footer hooks of ``models=`` (None without models)."""
    if not models:
        return None
    return ModelHooks(tuple(summarized_models(models, model_bytes)), skip_missing)


def write_parquet(
    data: Any,
    path: str | os.PathLike,
    *,
    models: Mapping[str, Any] | None = None,
    model_bytes: int = DEFAULT_BYTES,
    **kwargs: Any,
):
    """``mlskip.metadata.write_parquet`` (see there), plus, with ``models={name: model}``
    (a model as ``register_model`` takes it, or ``(model, [columns])``), each model's
    outputs summarized per row group in ``model_bytes`` bytes (MODELS.md): queries
    filtering on that model, or on a model near it, skip row groups from a bitmap test."""
    from mlskip.metadata.writer import write_parquet as write

    hooks = _with_models(kwargs.pop("footer_hooks", None), models, model_bytes)
    return write(data, path, footer_hooks=hooks, **kwargs)


def _with_models(
    given: Any, models: Mapping[str, Any] | None, model_bytes: int, skip_missing: bool = False
) -> Any:
    """Footer hooks: those given, plus the model summaries of ``models``."""
    ours = model_hooks(models, model_bytes, skip_missing)
    if ours is None or given is None:
        return ours if given is None else given
    return lambda schema: [*given(schema), *ours(schema)]


def copy(con: Any, sql: str, path: str | os.PathLike, **kwargs: Any):
    """Stream the result of a DuckDB query through ``write_parquet`` (never materialized)."""
    rel = con.sql(sql)
    if rel is None:
        raise InputDataError(f"query returns no result set: {sql!r}")
    return write_parquet(rel, path, **kwargs)


def build_index(
    sources: Any,
    index: str,
    *,
    models: Mapping[str, Any] | None = None,
    model_bytes: int = DEFAULT_BYTES,
    **kwargs: Any,
):
    """``mlskip.skipper.skip_index.build_index`` plus model summaries of every file
    (``models`` as for ``write_parquet``), computed from the files' rows."""
    from mlskip.skipper.skip_index import build_index as build

    hooks = _with_models(kwargs.pop("footer_hooks", None), models, model_bytes, True)
    return build(sources, index, footer_hooks=hooks, **kwargs)


def refresh_index(
    index: str,
    *,
    models: Mapping[str, Any] | None = None,
    model_bytes: int = DEFAULT_BYTES,
    **kwargs: Any,
):
    """``mlskip.skipper.skip_index.refresh_index``; re-indexed files get summaries of
    ``models`` (give the models the index was built with)."""
    from mlskip.skipper.skip_index import refresh_index as refresh

    hooks = _with_models(kwargs.pop("footer_hooks", None), models, model_bytes, True)
    return refresh(index, footer_hooks=hooks, **kwargs)
