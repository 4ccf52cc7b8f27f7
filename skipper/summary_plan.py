"""Plan row groups from model-aware summaries, before any verification (MODELS.md).

A row group's summary of a model f is used for a predicate on a model g when

- the summary was computed on exactly the predicate's arguments: each one a bare column
  (no arithmetic, no cast but DuckDB's own to the function's type), of the column type
  and function input type recorded when it was summarized;
- and either g is f (same digest), or f is a model the connection also knows (its
  network is among the predicate's ``references``) and the verifier can bound ``f - g``
  over the row group's region.

Everything else, and every row group the summary leaves open, goes to the verifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlskip.metadata.model_summary import ModelHeader, RowGroupOutputs
from mlskip.verifier import UNKNOWN, RegionBatch
from mlskip.verifier.output_summaries import (
    FINAL_LIPSCHITZ,
    class_verdicts,
    deviation_bounds,
    output_error,
    reference_verdicts,
    value_verdicts,
)
from mlskip.verifier.trees import TreeEnsemble

# column types whose conversion to the model's DOUBLE input is the same in DuckDB and in
# the Arrow scans (exact, or IEEE round-to-nearest of an integer): only these let a scan
# without DuckDB types (mlskip.scan, Polars, Dask) use a summary
ARROW_SAFE_TYPES = frozenset(
    {"DOUBLE", "FLOAT", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
     "UINTEGER", "UBIGINT"}
)  # fmt: skip


# pieces per row group that bound a variant's deviation from the summarized model: box
# pieces are what CROWN is tight on (a piece costs one bound of a network twice as wide)
DEVIATION_PIECES = 64


def argument_inputs(bound) -> tuple[tuple[str, str | None], ...] | None:
    """``(column, DuckDB column type or None)`` per argument of a bound predicate when every
    argument is a bare column, else None."""
    out = []
    for arg in bound.args:
        if len(arg.coeffs) != 1 or arg.coeffs[0][1] != 1.0 or arg.const != 0.0:
            return None
        node = arg.expr
        if node is not None and node[0] == "cast" and str(node[1]).upper() in ("DOUBLE",):
            node = node[2]
        if node is not None and node[0] != "col":
            return None
        column = arg.coeffs[0][0]
        if node is not None and node[2] != column:
            return None
        out.append((column, None if node is None else str(node[1]).upper()))
    return tuple(out)


def input_signature(column_type: str, sql_type: str) -> str:
    """What a summary records per input: the column's type and the function's."""
    return f"{column_type.upper()}->{sql_type.upper()}"


def _matches(header: ModelHeader, inputs, sql_types: Sequence[str]) -> bool:
    if tuple(c for c, _ in inputs) != header.inputs or len(sql_types) != len(inputs):
        return False
    for (_, column_type), sql_type, recorded in zip(
        inputs, sql_types, header.input_types, strict=True
    ):
        if column_type is None:  # a scan that does not know DuckDB's types
            got, _, want_sql = recorded.partition("->")
            if got not in ARROW_SAFE_TYPES or not want_sql == sql_type.upper() == "DOUBLE":
                return False
        elif input_signature(column_type, sql_type) != recorded:
            return False
    return True


def summary_verdicts(
    groups: Sequence, todo: np.ndarray, bound, regions, max_pieces: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Verdicts and deciding methods (``summary``, ``summary-deviation``) for the row
    groups ``todo`` of ``groups`` (indices into ``regions``); UNKNOWN where no summary
    decides. ``max_pieces``: the pieces per row group a model planned through another
    model's summary may split its region into (at least ``DEVIATION_PIECES``)."""
    verdicts = np.full(len(todo), UNKNOWN, dtype=np.int8)
    methods = np.full(len(todo), "", dtype=object)
    inputs = argument_inputs(bound)
    network = bound.network
    trees = isinstance(network, TreeEnsemble)
    if inputs is None or network is None or not len(todo):
        return verdicts, methods
    candidates: dict[tuple, list[int]] = {}  # (digest, name) -> positions in todo
    chosen: dict[int, RowGroupOutputs] = {}
    for pos, i in enumerate(todo):
        for out in getattr(groups[i], "outputs", ()):
            h = out.header
            if out.record.state != "ok" or not _matches(h, inputs, bound.sql_types):
                continue
            if h.digest != bound.digest and h.digest not in bound.references:
                continue
            # a row group whose inputs may be NaN (rows outside every box): only a tree
            # ensemble's own summary holds for them (its runtime bound is the same for all
            # inputs, NaN too); a network's error bound, and another model's summary, speak
            # of the rows inside the region only
            if regions.untrusted[i] and (h.digest != bound.digest or not trees):
                continue
            if h.digest == bound.digest or pos not in chosen:
                chosen[pos] = out  # the model's own summary first
    for pos, out in chosen.items():
        candidates.setdefault((out.header.digest, out.header.name), []).append(pos)
    for (digest, _), positions in candidates.items():
        pos = np.array(positions)
        rows = todo[pos]
        outs = [chosen[p] for p in positions]
        box = RegionBatch(regions.lower[rows], regions.upper[rows])
        if digest == bound.digest:
            got = _own(network, outs, box, bound.predicate)
            label = "summary"
        else:
            reference = bound.references[digest]
            full = RegionBatch(
                regions.lower[rows], regions.upper[rows], regions.pairs,
                tuple((A[rows], b[rows]) for A, b in regions.halfspaces),
            )  # fmt: skip
            got = _through_reference(
                reference, network, outs, box, full, bound.predicate, max_pieces
            )
            label = "summary-deviation"
        verdicts[pos] = got
        methods[pos] = np.where(got != UNKNOWN, label, "")
    return verdicts, methods


def _own(network, outs: list[RowGroupOutputs], box: RegionBatch, predicate) -> np.ndarray:
    """Verdicts from the model's own summaries: outputs move by twice the error bound."""
    e = output_error(network, box.lower, box.upper)  # [n, k]
    if outs[0].header.kind == "class":
        ok = 4 * e.max(axis=1) <= np.array([o.header.tolerance for o in outs])
        got = class_verdicts([o.record.classes for o in outs], predicate)
        return np.where(ok, got, UNKNOWN).astype(np.int8)
    widen = np.nextafter(2 * e[:, 0], np.inf)
    return value_verdicts([o.intervals() for o in outs], widen, widen, predicate)


def _through_reference(
    reference,
    network,
    outs: list[RowGroupOutputs],
    box: RegionBatch,
    full: RegionBatch,
    predicate,
    max_pieces: int | None = None,
) -> np.ndarray:
    """Verdicts for ``network`` (g) from the summaries of ``reference`` (f): the occupied
    bins shifted by a bound on ``f - g`` over each row group's region; where that decides
    nothing, the region's pieces on which f can reach an occupied bin, and g's bounds there,
    split further within ``max_pieces`` (verifier/output_summaries.py)."""
    n = len(outs)
    verdicts = np.full(n, UNKNOWN, dtype=np.int8)
    if outs[0].header.kind != "value":
        return verdicts
    intervals = [o.intervals() for o in outs]
    e_f = output_error(reference, box.lower, box.upper)[:, 0]
    e_g = output_error(network, box.lower, box.upper)[:, 0]
    dev = deviation_bounds(reference, network, full, DEVIATION_PIECES)
    if dev is not None:
        dl, dh = dev
        e = e_f + e_g
        with np.errstate(invalid="ignore", over="ignore"):
            if network.final is None:
                below = np.nextafter(dh + e, np.inf)  # g = f - d with d in [dl, dh]
                above = np.nextafter(-dl + e, np.inf)
            else:
                lip = FINAL_LIPSCHITZ[network.final]
                shift = np.nextafter(lip * np.maximum(np.abs(dl), np.abs(dh)), np.inf)
                below = above = np.nextafter(shift + e, np.inf)
        bad = ~(dl <= dh)  # NaN or an empty reach: no use
        below = np.where(bad, np.inf, below)
        above = np.where(bad, np.inf, above)
        verdicts = value_verdicts(intervals, below, above, predicate)
    open_ = np.flatnonzero(verdicts == UNKNOWN)
    if len(open_):
        verdicts[open_] = reference_verdicts(
            reference, network, [intervals[i] for i in open_], e_f[open_], e_g[open_],
            full.subset(open_), predicate, DEVIATION_PIECES, max_pieces,
        )  # fmt: skip
    return verdicts
