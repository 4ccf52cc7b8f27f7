"""How many branch-and-bound pieces a region would need: where work pays.

Branch and bound splits a region until the bound on every piece decides it.
CROWN's relaxation error shrinks about quadratically with a piece's width, so
a region whose bounds must close a fraction ``t`` of their gap needs its
width cut by about ``sqrt(1 / t)`` along each of its ``d`` inputs:
``(1 / t) ** (d / 2)`` pieces. The gap is measured against the rows' range
over points the witness search evaluated inside the region (an inner
estimate: the true range is wider, so the estimate errs towards trying):
``t`` is the largest fraction of the way from those values back to the
current bounds at which the predicate is still decided. A region that is
not decided even at the points' own range cannot be decided by any bound
(it needs infinitely many pieces). Nothing here decides a region; it only
orders and limits the work of branch and bound.
"""

from __future__ import annotations

import numpy as np

from .predicate import UNKNOWN, Spec

STEPS = 16  # bisection steps on t


def pieces_needed(
    spec: Spec,
    L: np.ndarray,
    U: np.ndarray,
    seen_lo: np.ndarray,
    seen_hi: np.ndarray,
    mg: np.ndarray,
    precision: str,
    d: int,
) -> np.ndarray:
    """Estimated pieces ``[n]`` to decide each region (1 where no point was seen inside,
    ``inf`` where no bound could decide it) from its row bounds ``L, U [n, m]``, the
    rows' range ``seen_lo, seen_hi`` over points inside it and the margins ``mg``."""
    n = L.shape[0]
    out = np.ones(n)
    seen = np.isfinite(seen_lo).all(1) & np.isfinite(seen_hi).all(1)
    idx = np.flatnonzero(seen)
    if not len(idx):
        return out
    L, U, mg = L[idx], U[idx], mg[idx]
    wlo, whi = np.fmin(seen_lo[idx], seen_hi[idx]), seen_hi[idx]
    L = np.where(np.isfinite(L), np.minimum(L, wlo), wlo - 1e300)
    U = np.where(np.isfinite(U), np.maximum(U, whi), whi + 1e300)

    def decided(t: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            lo = wlo - t[:, None] * (wlo - L)
            hi = whi + t[:, None] * (U - whi)
            return spec.verdicts(lo - mg, hi + mg, precision) != UNKNOWN

    a = np.zeros(len(idx))  # decided at a (or a = 0 and hopeless)
    b = np.ones(len(idx))  # undecided at b
    can = decided(a)
    for _ in range(STEPS):
        mid = 0.5 * (a + b)
        ok = decided(mid)
        a = np.where(ok, mid, a)
        b = np.where(ok, b, mid)
    with np.errstate(divide="ignore"):
        est = np.where(can, (1.0 / np.maximum(a, 2.0**-STEPS)) ** (0.5 * d), np.inf)
    out[idx] = est
    return out
