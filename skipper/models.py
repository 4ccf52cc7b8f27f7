"""What the planner and the executor share about models: a SQL function bound to a model
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


@dataclass(frozen=True, eq=False)
class ModelBinding:
    """A SQL function backed by a model: ``kind`` is ``value`` (a number) or
    ``class`` (the argmax); ``network`` is None when it cannot be verified."""

    name: str
    kind: str
    num_inputs: int
    network: Network | None
    digest: str
    unverifiable: str | None = None
    num_outputs: int = 1
    input_types: tuple[str, ...] = ()  # DuckDB type of each argument; () all DOUBLE

    @property
    def sql_types(self) -> tuple[str, ...]:
        return self.input_types or ("DOUBLE",) * self.num_inputs


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
