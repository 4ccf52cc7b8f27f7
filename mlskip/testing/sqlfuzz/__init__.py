"""``mlskip selfcheck --sql``: a differential SQL fuzzer (issue 16, point 5).

In the spirit of SQLancer and sqlsmith: each trial draws, from its seed alone,

- a dataset of several Parquet files in a temporary folder: 2-4 numeric columns
  (INTEGER / BIGINT / DOUBLE / FLOAT) and sometimes a string column, with column
  order, types and sets that differ between files in some trials, names that differ
  only in case, NULL / NaN / +-inf values, hive-partitioned folders (``p=1/``),
  dot-files, empty files (0 row groups), written by ``mlskip.write_parquet`` (with or
  without hulls), by pyarrow and by DuckDB's ``COPY``;
- one to three models (seeded ``mlskip.verifier.Network`` or torch MLPs: regressors,
  sigmoid heads, classifiers with and without softmax), registered on
  ``mlskip.connect()`` and on ``mlskip.connect(skipping=False)``;
- several queries over DuckDB's grammar touching those files: every join kind
  (INNER, LEFT, RIGHT, FULL, CROSS, POSITIONAL, ASOF, NATURAL, LATERAL, SEMI, ANTI),
  CTEs (also names that shadow others), subqueries (scalar, IN, EXISTS, correlated),
  set operations, window functions, repeatable samples, PIVOT / UNPIVOT, aliases with
  column lists, prepared parameters, settings (``SET integer_division = true`` ...),
  and ML predicates in WHERE, ON, HAVING, SELECT, under OR / NOT / CASE, BETWEEN,
  class functions, affine arguments, with thresholds drawn from the model's outputs
  on the data (so that predicates are selective, and sometimes empty or full).

Oracle: each query runs on both connections; it passes when both return the same
multiset of rows (floats equal within 1e-9 relative, NaN equals NaN, int and float
values are not interchangeable) or both raise an exception of the same class. The
generator avoids nondeterministic queries (no LIMIT without a total ORDER BY, samples
always REPEATABLE, order-dependent window functions ordered by every column they
see, DuckDB on one thread); a mismatch whose baseline does not repeat itself is
counted as ``flaky`` (a generator bug), not as a mismatch.

Trial ``i`` of a campaign uses ``random.Random(seed + i)`` (and numpy generators seeded
from it); ``replay(seed, index)`` runs one query of one trial again.
"""

from .campaign import main, replay, run_campaign, run_chunk, run_trial
from .oracle import (
    CampaignResult,
    Outcome,
    Query,
    QueryResult,
    check_query,
    run_query,
    same_outcome,
    same_rows,
    sort_key,
    values_equal,
)
from .queries import QueryGen

__all__ = [
    "CampaignResult",
    "Outcome",
    "Query",
    "QueryGen",
    "QueryResult",
    "check_query",
    "main",
    "replay",
    "run_campaign",
    "run_chunk",
    "run_query",
    "run_trial",
    "same_outcome",
    "same_rows",
    "sort_key",
    "values_equal",
]
