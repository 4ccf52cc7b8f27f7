"""What the planner and the executor share about models: a model as SQL sees it
(``SqlModel``, made by udf.model.prepare_model), a SQL function bound to one
(``ModelBinding``, registered by udf.Connection), and the rows of one file to evaluate in
advance (``EvaluationTask``), which an ``Evaluator`` of the executor turns into a relation
of qualifying row numbers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlskip.skipper.rules.rewrite import (
    Ranges,
)
from mlskip.verifier import Network
from mlskip.verifier.trees import TreeEnsemble


@dataclass(frozen=True, eq=False)
class SqlModel:
    """A model as SQL sees it.

    ``network`` is None when the verifier cannot bound the model
    (``unverifiable`` says why); ``digest`` identifies the exact bytes run.
    """

    onnx_bytes: bytes
    input_names: tuple[str, ...]
    num_outputs: int
    network: Network | TreeEnsemble | None
    unverifiable: str | None
    digest: str
    input_types: tuple[str, ...] = ()  # DuckDB type per input (mlskip.udf.inputs); () all DOUBLE
    input_dtype: str = "float32"  # what the ONNX graph reads: float32, or float64 (trees)

    @property
    def sql_types(self) -> tuple[str, ...]:
        """The DuckDB type of each input of the SQL function."""
        return self.input_types or ("DOUBLE",) * self.num_inputs

    @property
    def num_inputs(self) -> int:
        return len(self.input_names)

    @property
    def is_classifier(self) -> bool:
        return self.num_outputs > 1


@dataclass(frozen=True, eq=False)
class ModelBinding:
    """A SQL function backed by a model: ``kind`` is ``value`` (a number), ``class`` (the
    argmax) or ``vector`` (a classifier's outputs: usable in SQL, never planned)."""

    name: str
    kind: str
    model: SqlModel

    @property
    def network(self) -> Network | TreeEnsemble | None:
        return self.model.network

    @property
    def digest(self) -> str:
        return self.model.digest

    @property
    def unverifiable(self) -> str | None:
        return self.model.unverifiable

    @property
    def num_inputs(self) -> int:
        return self.model.num_inputs

    @property
    def num_outputs(self) -> int:
        return self.model.num_outputs

    @property
    def sql_types(self) -> tuple[str, ...]:
        return self.model.sql_types


@dataclass(frozen=True)
class EvaluationTask:
    """Rows of one file on which one ML predicate is to be evaluated in advance.

    ``source`` is a ``read_parquet(...)`` call exposing ``file_row_number``;
    ``ranges`` the rows to evaluate (None: all); ``filters`` other conjuncts
    on the same scan (rows failing them never reach the result); ``args``
    the model's arguments as SQL; ``kind``/``values`` the comparison.
    """

    source: str
    ranges: Ranges | None
    filters: tuple[str, ...]
    function: str
    args: tuple[str, ...]
    kind: str
    values: tuple[float, ...]


# returns the name of a relation with column file_row_number, or None to keep the SQL function
Evaluator = Callable[[EvaluationTask], "str | None"]
