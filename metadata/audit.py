"""Auditing a file's summaries against its data (``mlskip verify``).

The reader checks footers against Parquet's own footer only, so a rewrite that
keeps every row count, statistic and row-group byte size is invisible to it.
This audit reads the data and checks that every row lies in what the reader
would let the verifier assume: its row group's box, its NaN flags and each
pair's polygon. It costs a full read of the summarized columns.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from mlskip.errors import SkippingFallbackWarning

from .encoding import to_numeric
from .reader import read_skip_metadata


@dataclass(frozen=True)
class AuditReport:
    """What ``audit_file`` found: the footer's status and every region that excludes a row."""

    path: str
    status: str  # the reader's status: "ok", "boxes-only", "no-summaries"
    row_groups: int
    rows: int
    violations: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether every row lies in every region the reader trusts."""
        return not self.violations


def _float_values(table, column: str) -> tuple[np.ndarray, np.ndarray]:
    num = to_numeric(table.column(column))
    valid = np.ones(len(num.values), bool) if num.valid is None else num.valid
    return num.values, valid


def audit_file(
    path: str | os.PathLike, *, footer_key: str | bytes | None = None, limit: int = 20
) -> AuditReport:
    """Read ``path``'s data and report every row outside its row group's regions
    (at most ``limit`` violations are listed)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippingFallbackWarning)
        meta = read_skip_metadata(path, footer_key=footer_key)
    notes = tuple(str(w.message) for w in caught if issubclass(w.category, SkippingFallbackWarning))
    pf = pq.ParquetFile(path)
    bad: list[str] = []
    for rg in meta.row_groups:
        if len(bad) >= limit:
            break
        pair_columns = {c for p in rg.halfspaces for c in p}
        columns = sorted(set(rg.box) | pair_columns)
        table = pf.read_row_group(rg.index, columns=columns)
        values = {c: _float_values(table, c) for c in columns}
        for c, (lo, hi) in rg.box.items():
            v, valid = values[c]
            nan = valid & np.isnan(v)
            if nan.any() and c not in rg.may_have_nan:
                bad.append(f"row group {rg.index}, column {c!r}: NaN where the footer says none")
            inside = (v >= lo) & (v <= hi)
            out = valid & ~nan & ~inside
            if out.any():
                x = float(v[np.argmax(out)])
                bad.append(
                    f"row group {rg.index}, column {c!r}: {int(out.sum())} row(s) outside "
                    f"[{lo!r}, {hi!r}], e.g. {x!r}"
                )
        for (a, b), (A, bb) in rg.halfspaces.items():
            va, oka = values[a]
            vb, okb = values[b]
            keep = oka & okb & ~np.isnan(va) & ~np.isnan(vb)
            pts = np.column_stack([va[keep], vb[keep]])
            out = ~(pts @ A.T <= bb).all(axis=1)
            if out.any():
                x, y = map(float, pts[np.argmax(out)])
                bad.append(
                    f"row group {rg.index}: {int(out.sum())} row(s) outside the polygon of "
                    f"({a!r}, {b!r}), e.g. ({x!r}, {y!r})"
                )
    return AuditReport(
        os.fspath(path),
        meta.status,
        len(meta.row_groups),
        meta.num_rows,
        tuple(bad[:limit]),
        notes,
    )
