"""Input regions: a batch of boxes, optionally cut by 2D polygons on input pairs.

Region ``r`` is ``{x : lower[r] <= x <= upper[r]}`` intersected, for every
pair ``(i, j)`` in ``pairs``, with ``{x : A[r] @ (x_i, x_j) <= b[r]}``. Each
pair has its own halfspace arrays ``A [n, m, 2]`` and ``b [n, m]``; rows may
be padding that every point satisfies (``A = 0, b >= 0`` or ``b = +inf``).
Bounds may be infinite (unknown statistics).

The vertices of each polygon cut by its box are enumerated once per batch
(``pair_vertices``) and cached: concretize.py uses them to minimise linear
functions exactly and to certify the minimum with a dual solution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mlskip.errors import ModelInputError


@dataclass(frozen=True)
class PairVertices:
    """Candidate vertices of polygon ∩ box for one pair.

    ``xy [n, V, 2]``, ``rows [n, V, 2]`` (the two constraint rows meeting at each
    vertex: polygon rows ``0..K-1``, then the box rows ``K + (0: -x_i, 1: +x_i,
    2: -x_j, 3: +x_j)``), ``valid [n, V]`` (invalid entries repeat a valid vertex of
    the region, so a minimum over all V entries needs no mask), ``usable [n]``
    (False: ignore this polygon for the region: unbounded box, or no vertex found).
    The polygon rows of region r are ``A[src[r]] [K, 2]``, ``b[src[r]] [K]`` (the
    root batch's arrays: pieces share them, nothing is copied per piece); the box
    rows are the region's current box, taken when a bound is certified.
    """

    xy: np.ndarray
    rows: np.ndarray
    valid: np.ndarray
    usable: np.ndarray
    A: np.ndarray
    b: np.ndarray
    src: np.ndarray

    def take(self, idx: np.ndarray) -> PairVertices:
        """The vertices of regions ``idx``."""
        return PairVertices(
            self.xy[idx], self.rows[idx], self.valid[idx], self.usable[idx], self.A, self.b,
            self.src[idx],
        )  # fmt: skip

    def system(self, lower2: np.ndarray, upper2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every region's full constraint rows ``[n, K + 4, 2]``, ``[n, K + 4]`` for its
        box ``[lower2, upper2]`` on the pair (for readable reference code and tests)."""
        n = len(self.src)
        box_A = np.broadcast_to(
            np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]), (n, 4, 2)
        )
        box_b = np.stack([-lower2[:, 0], upper2[:, 0], -lower2[:, 1], upper2[:, 1]], axis=1)
        A = np.concatenate([self.A[self.src], box_A], axis=1)
        return A, np.concatenate([self.b[self.src], box_b], axis=1)


class _Gathered(Sequence):
    """The halfspaces of regions cut from others (``with_boxes``), gathered per pair on
    first use: branch and bound bounds thousands of pieces through their vertices
    alone, which never read them."""

    def __init__(self, source: Sequence, idx: np.ndarray) -> None:
        self._source, self._idx = source, idx
        self._done: dict[int, tuple] = {}

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return tuple(self[i] for i in range(len(self))[k])
        if k not in self._done:
            A, b = self._source[k]
            self._done[k] = _frozen(A[self._idx], b[self._idx])
        return self._done[k]


@dataclass(frozen=True, eq=False)
class RegionBatch:
    """A batch of ``n`` regions over ``d`` inputs (see module docstring)."""

    lower: np.ndarray
    upper: np.ndarray
    pairs: tuple[tuple[int, int], ...] = ()
    halfspaces: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        lo = np.array(self.lower, dtype=np.float64, copy=True)
        hi = np.array(self.upper, dtype=np.float64, copy=True)
        if lo.ndim == 1:
            lo, hi = lo[None, :], hi[None, :]
        if lo.ndim != 2 or lo.shape != hi.shape:
            raise ModelInputError(
                f"region bounds must be two [n, d] arrays, got {lo.shape} and {hi.shape}"
            )
        if np.isnan(lo).any() or np.isnan(hi).any():
            raise ModelInputError("region bounds contain NaN; use -inf/+inf for unknown bounds")
        lo.setflags(write=False)
        hi.setflags(write=False)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        pairs = tuple((int(i), int(j)) for i, j in self.pairs)
        if len(pairs) != len(self.halfspaces):
            raise ModelInputError(f"{len(pairs)} pairs but {len(self.halfspaces)} halfspace sets")
        hs = []
        n, d = lo.shape
        for (i, j), (A, b) in zip(pairs, self.halfspaces, strict=True):
            if not (0 <= i < d and 0 <= j < d and i != j):
                raise ModelInputError(f"pair ({i}, {j}) does not name two distinct inputs of {d}")
            A = np.array(A, dtype=np.float64, copy=True)
            b = np.array(b, dtype=np.float64, copy=True)
            if A.ndim == 2:
                A, b = (
                    np.broadcast_to(A, (n, *A.shape)).copy(),
                    np.broadcast_to(b, (n, b.shape[-1])).copy(),
                )
            if A.shape[:1] != (n,) or A.ndim != 3 or A.shape[2] != 2 or b.shape != A.shape[:2]:
                raise ModelInputError(
                    f"pair ({i}, {j}): halfspaces must be A [n, m, 2] and b [n, m] with n={n}, "
                    f"got {A.shape} and {b.shape}"
                )
            if not np.isfinite(A).all() or np.isnan(b).any():
                raise ModelInputError(f"pair ({i}, {j}): halfspace coefficients must be finite")
            A.setflags(write=False)
            b.setflags(write=False)
            hs.append((A, b))
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "halfspaces", tuple(hs))

    @classmethod
    def boxes(cls, lower: np.ndarray, upper: np.ndarray) -> RegionBatch:
        return cls(lower, upper)

    def _derived(
        self, lower: np.ndarray, upper: np.ndarray, halfspaces: tuple | None = None
    ) -> RegionBatch:
        """A batch made from this one's validated arrays (new float64 ``[n, d]`` boxes,
        the same pairs, halfspaces gathered from this batch's): no checks, no copies.
        Branch and bound derives a batch per round, and copying the halfspaces of
        thousands of pieces cost as much as bounding them."""
        out = object.__new__(RegionBatch)
        for a in (lower, upper):
            a.setflags(write=False)
        object.__setattr__(out, "lower", lower)
        object.__setattr__(out, "upper", upper)
        object.__setattr__(out, "pairs", self.pairs)
        object.__setattr__(out, "halfspaces", self.halfspaces if halfspaces is None else halfspaces)
        object.__setattr__(out, "_cache", {})
        return out

    @property
    def n(self) -> int:
        return int(self.lower.shape[0])

    @property
    def d(self) -> int:
        return int(self.lower.shape[1])

    def __len__(self) -> int:
        return self.n

    @property
    def has_polygons(self) -> bool:
        return bool(self.pairs)

    @property
    def has_overlap(self) -> bool:
        """Whether some input is in two pairs (then the greedy subset drops polygons)."""
        return len(self.disjoint_pairs()) < len(self.pairs)

    def subset(self, idx: np.ndarray | Sequence[int]) -> RegionBatch:
        """Regions ``idx`` (an index array) as a new batch."""
        idx = np.asarray(idx)
        out = self._derived(
            np.ascontiguousarray(self.lower[idx]),
            np.ascontiguousarray(self.upper[idx]),
            tuple(_frozen(A[idx], b[idx]) for A, b in self.halfspaces),
        )
        root, index = self.lineage()
        out._cache["lineage"] = (root, index[idx])
        for key, pv in self._cache.items():  # vertices of a subset are a slice
            if key[0] == "vertices":
                out._cache[key] = pv.take(idx)
        return out

    def with_tighter_boxes(self, lower: np.ndarray, upper: np.ndarray) -> RegionBatch:
        """The same point sets with boxes shrunk to ``[lower, upper]`` (still containing
        every polygon ∩ box point). Cached vertices are reused: they only guide
        which dual certificate concretize.py builds, so soundness never depends
        on them; the certificates take the box rows from the new boxes."""
        out = self._derived(*_boxes_like(self, lower, upper))
        out._cache["lineage"] = self.lineage()
        for key, pv in self._cache.items():
            if key[0] == "vertices":
                out._cache[key] = pv
        return out

    def with_boxes(self, lower: np.ndarray, upper: np.ndarray, parent: np.ndarray) -> RegionBatch:
        """Sub-boxes ``[lower, upper]`` each keeping the polygons of region ``parent[k]``."""
        parent = np.asarray(parent)
        out = self._derived(
            *_boxes_like(self, lower, upper, len(parent)), _Gathered(self.halfspaces, parent)
        )
        root, index = self.lineage()
        out._cache["lineage"] = (root, index[parent])
        return out

    def lineage(self) -> tuple[RegionBatch, np.ndarray]:
        """The batch these regions were cut from by ``subset``/``with_boxes``/
        ``with_tighter_boxes`` (itself if none) and each region's index there: every
        region is inside its root region and has the same polygons."""
        got = self._cache.get("lineage")
        if got is None:
            return self, np.arange(self.n)
        return got

    def disjoint_pairs(self) -> list[int]:
        """Indices of pairs chosen greedily so that no input is in two of them."""
        used: set[int] = set()
        keep = []
        for k, (i, j) in enumerate(self.pairs):
            if i not in used and j not in used:
                keep.append(k)
                used.update((i, j))
        return keep

    def pair_vertices(self, k: int) -> PairVertices:
        """Vertices of polygon ``k`` cut by the boxes (cached)."""
        key = ("vertices", k)
        if key not in self._cache:
            self._cache[key] = _enumerate_vertices(self, k)
        return self._cache[key]


def _frozen(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    A.setflags(write=False)
    b.setflags(write=False)
    return A, b


def _boxes_like(
    regions: RegionBatch, lower: np.ndarray, upper: np.ndarray, n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Own float64 copies of new boxes for ``n`` regions (default: as many as
    ``regions``) over its inputs; ModelInputError when they do not fit."""
    lo = np.array(lower, dtype=np.float64, copy=True)
    hi = np.array(upper, dtype=np.float64, copy=True)
    shape = (regions.n if n is None else n, regions.d)
    if lo.shape != shape or hi.shape != shape or np.isnan(lo).any() or np.isnan(hi).any():
        raise ModelInputError(f"new boxes must be two {shape} arrays without NaN")
    return lo, hi


def _pair_system(regions: RegionBatch, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The constraint rows of pair ``k``: its polygon's, then the box's -x_i, +x_i, -x_j,
    +x_j."""
    i, j = regions.pairs[k]
    Ap, bp = regions.halfspaces[k]
    lo, hi = regions.lower, regions.upper
    n = len(lo)
    box_A = np.broadcast_to(np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]), (n, 4, 2))
    box_b = np.stack([-lo[:, i], hi[:, i], -lo[:, j], hi[:, j]], axis=1)
    A = np.ascontiguousarray(np.concatenate([Ap, box_A], axis=1))
    b = np.ascontiguousarray(np.concatenate([bp, box_b], axis=1))
    return A, b


# near-feasible points are kept (an outward tolerance): vertices only guide the dual
# certificates (concretize.py), so a wrong one can only loosen a bound
GUIDE_TOL = 1e-9


def root_cycles(regions: RegionBatch, k: int) -> tuple[tuple, np.ndarray]:
    """The ordered vertices of polygon ``k`` ∩ box of the regions' root batch (computed
    once per root: ``polygon_cycles``) and each region's index into them."""
    from ._kernels_py import kernels

    root, index = regions.lineage()
    key = ("cycle", k)
    if key not in root._cache:
        root._cache[key] = kernels(root.n).polygon_cycles(*_pair_system(root, k), GUIDE_TOL)
    return root._cache[key], index


def _enumerate_vertices(regions: RegionBatch, k: int) -> PairVertices:
    """Vertices of polygon ``k`` ∩ box: the polygon ∩ box of the batch the regions were
    cut from (its root) is enumerated once, in order, and clipped by each box."""
    from ._kernels_py import kernels

    i, j = regions.pairs[k]
    (xy_c, edge, count), index = root_cycles(regions, k)
    root, _ = regions.lineage()
    cols = [i, j]
    lo2 = np.ascontiguousarray(regions.lower[:, cols])
    hi2 = np.ascontiguousarray(regions.upper[:, cols])
    A, b = root.halfspaces[k]
    K = A.shape[1]
    clip = kernels(regions.n).clip_cycles
    xy, vrows, valid = clip(xy_c, edge, count, index, lo2, hi2, K, GUIDE_TOL)
    finite_box = np.isfinite(lo2).all(axis=1) & np.isfinite(hi2).all(axis=1)
    usable = finite_box & valid.any(axis=1)
    return PairVertices(xy, vrows, valid, usable, A, b, np.ascontiguousarray(index))
