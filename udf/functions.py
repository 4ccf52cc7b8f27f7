"""Register a model as DuckDB scalar functions, vectorised over Arrow batches.

``name(x1, ..., xn)`` returns DOUBLE for a single-output model and the output
vector as DOUBLE[] for a classifier, which also gets ``name_class(...)``
returning the argmax as INTEGER (first maximal index on ties). NULL in any
argument gives NULL. Each argument has the model's input type: DOUBLE (DuckDB casts
numbers to it), DATE (days since 1970-01-01 for the model) or TIMESTAMP
(microseconds); the model reads them as float32, the precision the verifier's
margins cover.
"""

from __future__ import annotations

import inspect
import re

import duckdb
import numpy as np
import pyarrow as pa

from mlskip.errors import ModelInputError
from mlskip.udf.inputs import model_inputs
from mlskip.udf.model import SqlModel
from mlskip.udf.runtime import Runner

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_function_name(name: str) -> str:
    """A model name usable as a SQL function name (letters, digits, underscore)."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ModelInputError(
            f"model name {name!r} is not a valid SQL function name: use letters, digits and "
            "underscores, starting with a letter"
        )
    return name.lower()


def sql_model_name(stem: str) -> str:
    """The SQL function name of a model file's stem: every character other than a letter,
    digit or underscore becomes ``_``, a leading digit gets ``m_`` in front, lower case
    (``lineitem_disc_price__lump_e0.5`` is ``lineitem_disc_price__lump_e0_5``)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = "m_" + name
    return check_function_name(name[:63])


def class_function_name(name: str) -> str:
    return f"{name}_class"


def _value_function(runner: Runner):
    def evaluate(*columns: pa.Array) -> pa.Array:
        out = runner(model_inputs(columns))
        return pa.array(out[:, 0].astype(np.float64))

    return evaluate


def _vector_function(runner: Runner, k: int):
    def evaluate(*columns: pa.Array) -> pa.Array:
        out = runner(model_inputs(columns)).astype(np.float64)
        offsets = np.arange(0, out.shape[0] * k + 1, k, dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(out.reshape(-1)))

    return evaluate


def _class_function(runner: Runner):
    def evaluate(*columns: pa.Array) -> pa.Array:
        return pa.array(np.argmax(runner(model_inputs(columns)), axis=1).astype(np.int32))

    return evaluate


def drop_function(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Remove a Python function from ``con`` if it exists."""
    try:
        con.remove_function(name)
    except (duckdb.InvalidInputException, duckdb.CatalogException):
        pass


def register_functions(
    con: duckdb.DuckDBPyConnection, name: str, model: SqlModel, runner: Runner
) -> tuple[str, ...]:
    """Create the SQL functions for ``model`` on ``con``; returns their names."""
    name = check_function_name(name)
    params = [duckdb.sqltype(t) for t in model.sql_types]
    created: list[tuple[str, object, object]] = []
    if model.is_classifier:
        created.append((name, _vector_function(runner, model.num_outputs), "DOUBLE[]"))
        created.append((class_function_name(name), _class_function(runner), "INTEGER"))
    else:
        created.append((name, _value_function(runner), "DOUBLE"))
    signature = inspect.Signature(
        [
            inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY)
            for i in range(model.num_inputs)
        ]
    )
    for fname, fn, returns in created:
        fn.__signature__ = signature  # DuckDB checks the arity of the Python callable
        drop_function(con, fname)
        con.create_function(
            fname, fn, params, duckdb.sqltype(returns), type="arrow", side_effects=False
        )
    return tuple(f for f, _, _ in created)
