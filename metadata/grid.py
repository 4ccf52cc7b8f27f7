"""Per-column quantization grids whose points are exact float64 values.

A grid is ``value(q) = (n0 + q) * 2**e`` for integer ``q`` in ``[0, 2**16 - 1]``.
Because the step is a power of two and ``|n0 + q| < 2**53``, every grid value is
an exact float64: decoding involves no rounding at all, which is what makes the
outward quantization provable and a byte-exact port (Rust) straightforward.
The data range ``[lo, hi]`` sits inside ``[PAD, QMAX - PAD]`` so that polygon
vertices pushed outward by the k-gon reduction still fit on the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FINE_BITS = 16
QMAX = (1 << FINE_BITS) - 1  # largest fine grid coordinate
PAD = 1 << (FINE_BITS - 4)  # free cells on each side of the data range
INNER = QMAX - 2 * PAD  # cells available for [lo, hi]
_MIN_EXP = -1074
_MAG_BITS = 52  # grid exponent >= exponent(max |value|) - 52 keeps |n0 + q| < 2**52 + 2**16


@dataclass(frozen=True)
class Grid:
    """The fine grid of one column in one row group: value(q) = (n0 + q) * 2**e."""

    e: int
    n0: int

    def value(self, q: int) -> float:
        """Exact float64 value of fine grid coordinate ``q``."""
        return math.ldexp(float(self.n0 + q), self.e)


def make_grid(lo: float, hi: float) -> Grid | None:
    """Smallest power-of-two grid that holds ``[lo, hi]`` in ``[PAD, QMAX - PAD]``.

    Returns None when the range is not finite or the grid would overflow float64.
    Deterministic: only frexp, ldexp, floor, ceil and exact comparisons are used.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return None
    mag = max(abs(lo), abs(hi))
    e = _MIN_EXP if mag == 0.0 else max(math.frexp(mag)[1] - _MAG_BITS, _MIN_EXP)
    half_range = hi * 0.5 - lo * 0.5  # no overflow; >= 0
    if half_range > 0.0:
        # range < 2**(er + 1): any e below er + 1 - FINE_BITS cannot fit INNER cells
        e = max(e, math.frexp(half_range)[1] + 1 - FINE_BITS)
    while True:
        a = math.floor(math.ldexp(lo, -e))
        if math.ldexp(float(a), e) > lo:
            a -= 1
        b = math.ceil(math.ldexp(hi, -e))
        if math.ldexp(float(b), e) < hi:
            b += 1
        if b - a <= INNER:
            break
        e += 1
    n0 = a - PAD
    try:
        top = math.ldexp(float(n0 + QMAX), e)
        bottom = math.ldexp(float(n0), e)
    except OverflowError:
        return None
    if not (math.isfinite(top) and math.isfinite(bottom)) or abs(n0) + QMAX >= 1 << 53:
        return None
    return Grid(e=e, n0=n0)
