"""Range filters ``lo <= model(x) <= hi`` for the paper benchmark, and their ground truth.

Two protocols. ``sweep``: start points are quantiles of the model's output
over the table and widths fractions of the output's central range.
``reference`` (our reading of the MLSkip protocol): start points sweep the
output's value range ``[min, max]`` evenly and widths are fractions of that
range, so the rarest filters sit where the output is sparse (its tails)
rather than in narrow bands in the middle of the distribution. Filters of
both are binned by the selectivity they actually have. The ground truth of a
filter per block comes from the model's float32 output on every row (as the
UDF computes it): a block is *skippable* when no row qualifies and
*all-match* when every row does. A row with a NULL input never qualifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# selectivity bins (upper edges, inclusive); the paper's headline is the first one
BINS: tuple[tuple[str, float, float], ...] = (
    ("<=0.1%", 0.0, 0.001),
    ("0.1-1%", 0.001, 0.01),
    ("1-10%", 0.01, 0.1),
    (">10%", 0.1, 1.0),
)
FULL_STARTS = (0.0005, 0.002, 0.01, 0.5, 0.99, 0.998, 0.9995)
FULL_WIDTHS = (1e-3, 1e-2, 0.1)
QUICK_STARTS = (0.001, 0.5, 0.999)
QUICK_WIDTHS = (1e-3, 1e-2)
# reference protocol: 20 evenly spaced start points over [min, max] of the output, widths as
# fractions of max - min; filters selecting more than REFERENCE_MAX_SELECTIVITY are dropped
REFERENCE_STARTS = tuple(round(0.05 * k, 2) for k in range(20))
REFERENCE_WIDTHS = (1e-3, 1e-2, 0.05)
REFERENCE_MAX_SELECTIVITY = 0.01


@dataclass(frozen=True)
class RangeFilter:
    """``lo <= model(x) <= hi`` with where it came from and what it selects."""

    fid: int
    start_quantile: float
    width_fraction: float
    lo: float
    hi: float
    selectivity: float

    @property
    def bin(self) -> str:
        return selectivity_bin(self.selectivity)


def selectivity_bin(s: float) -> str:
    """Name of the bin holding selectivity ``s``."""
    for name, lo, hi in BINS:
        if lo < s <= hi:
            return name
    return BINS[0][0] if s <= 0 else BINS[-1][0]


def sweep_filters(
    y: np.ndarray,
    starts: Sequence[float] = FULL_STARTS,
    widths: Sequence[float] = FULL_WIDTHS,
) -> list[RangeFilter]:
    """Filters over every (start quantile, width) pair; empty and duplicate ones dropped.

    ``y``: the model's outputs on the qualifying-eligible rows (float32 promoted
    to float64). Widths are fractions of the 0.1%..99.9% output range, so a
    filter is meaningful for any output scale.
    """
    y = np.asarray(y, dtype=np.float64)
    q_lo, q_hi = np.quantile(y, [0.001, 0.999])
    span = max(float(q_hi - q_lo), 1e-12)
    ys = np.sort(y)
    out: list[RangeFilter] = []
    seen: set[tuple[int, int]] = set()
    for u in starts:
        lo = float(np.quantile(ys, u))
        for w in widths:
            hi = lo + w * span
            first = int(np.searchsorted(ys, lo, side="left"))
            last = int(np.searchsorted(ys, hi, side="right"))
            if last <= first or (first, last) in seen:
                continue
            seen.add((first, last))
            out.append(RangeFilter(len(out), float(u), float(w), lo, hi, (last - first) / len(ys)))
    return out


def value_sweep_filters(
    y: np.ndarray,
    starts: Sequence[float] = REFERENCE_STARTS,
    widths: Sequence[float] = REFERENCE_WIDTHS,
    max_selectivity: float = REFERENCE_MAX_SELECTIVITY,
) -> list[RangeFilter]:
    """Filters whose start points sweep the output's value range, not its quantiles.

    ``lo = min(y) + u * (max(y) - min(y))`` for each start ``u`` in ``starts``
    and ``hi = lo + w * (max(y) - min(y))`` for each width ``w``. Filters that
    select no row, duplicates (same rows selected) and filters selecting more
    than ``max_selectivity`` of ``y`` are dropped. ``start_quantile`` of the
    result holds ``u`` (a fraction of the value range here).
    """
    y = np.asarray(y, dtype=np.float64)
    ys = np.sort(y[np.isfinite(y)])
    if not len(ys):
        return []
    y_min, y_max = float(ys[0]), float(ys[-1])
    span = max(y_max - y_min, 1e-12)
    out: list[RangeFilter] = []
    seen: set[tuple[int, int]] = set()
    for u in starts:
        lo = y_min + float(u) * span
        for w in widths:
            hi = lo + float(w) * span
            first = int(np.searchsorted(ys, lo, side="left"))
            last = int(np.searchsorted(ys, hi, side="right"))
            sel = (last - first) / len(ys)
            if last <= first or (first, last) in seen or sel > max_selectivity:
                continue
            seen.add((first, last))
            out.append(RangeFilter(len(out), float(u), float(w), lo, hi, sel))
    return out


@dataclass(frozen=True)
class BlockTruth:
    """Per block: whether it is skippable (no row qualifies) and all-match (every row does)."""

    skippable: np.ndarray
    all_match: np.ndarray
    qualifying_rows: int

    @property
    def n_skippable(self) -> int:
        return int(self.skippable.sum())


def block_truth(qualifies: np.ndarray, block_rows: int) -> BlockTruth:
    """Ground truth per block of ``block_rows`` consecutive rows (the last may be shorter)."""
    n = len(qualifies)
    blocks = -(-n // block_rows)
    counts = np.add.reduceat(qualifies.astype(np.int64), np.arange(0, n, block_rows))
    sizes = np.minimum(block_rows, n - np.arange(blocks) * block_rows)
    return BlockTruth(counts == 0, counts == sizes, int(qualifies.sum()))


def qualifying(
    y: np.ndarray, valid: np.ndarray, lo: float, hi: float, extra: np.ndarray | None = None
) -> np.ndarray:
    """Rows where ``lo <= y <= hi`` (y float32 compared as float64, like DuckDB's BETWEEN)."""
    yy = y.astype(np.float64)
    mask = valid & (yy >= lo) & (yy <= hi)
    return mask if extra is None else mask & extra
