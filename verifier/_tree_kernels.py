"""numba kernel of the polygon separation test of tree_reach.separated, for large batches.

The same arithmetic as the numpy statements of ``tree_reach._separated_numpy``, in the
same order (IEEE float64, no fast-math): the minimum of each polygon row over the
rectangle leaf box ∩ region box, lowered by the same rounding allowance; a row whose
coefficients are NaN, or whose bound is not finite, never separates. The tests hold the
two equal bit for bit, so a plan does not depend on which one ran. Compiled on first
use (about a second, cached on disk by numba).
"""

from __future__ import annotations

import numba
import numpy as np

ALLOWANCE = 4 * 2.0**-53


@numba.njit(cache=True)
def separated_pairs(rows, leaves, i, j, dlo, dhi, lower, upper, A, b, out):  # pragma: no cover
    """out[k] |= leaf ``leaves[k]`` of region ``rows[k]`` is separated from polygon (A, b)."""
    for k in range(rows.shape[0]):
        if out[k]:
            continue
        r = rows[k]
        lf = leaves[k]
        lo0 = max(dlo[lf, i], lower[r, i])
        lo1 = max(dlo[lf, j], lower[r, j])
        hi0 = min(dhi[lf, i], upper[r, i])
        hi1 = min(dhi[lf, j], upper[r, j])
        if not (np.isfinite(lo0) and np.isfinite(lo1) and np.isfinite(hi0) and np.isfinite(hi1)):
            continue
        for m in range(A.shape[1]):
            a0 = A[r, m, 0]
            a1 = A[r, m, 1]
            bound = b[r, m]
            if np.isnan(a0) or np.isnan(a1) or not np.isfinite(bound):
                continue
            t0 = 0.0 if a0 == 0 else (a0 * lo0 if a0 > 0 else a0 * hi0)
            t1 = 0.0 if a1 == 0 else (a1 * lo1 if a1 > 0 else a1 * hi1)
            low = t0 + t1
            low -= ALLOWANCE * (abs(t0) + abs(t1)) + 1e-300
            if np.isfinite(low) and low > bound:
                out[k] = True
                break
