"""Layer kinds of the internal model form, each with its own bound rules.

One class per layer kind (the bound_propagation / auto_LiRPA pattern): an
``Affine`` map and the elementwise activations ``ReLU``, ``LeakyReLU``,
``Sigmoid``, ``Tanh`` and ``Identity``. Every activation offers

- ``forward(x)``: numpy evaluation (any float dtype, kept);
- ``ibp(l, u)``: the interval image of ``[l, u]`` (all are monotone);
- ``relax(l, u)``: a linear relaxation ``al*x + bl <= f(x) <= au*x + bu`` on
  ``[l, u]``, as four arrays shaped like ``l`` (``bl`` may be ``None``
  meaning zero; CROWN's backward rule);
- ``lower_slope_range(l, u)``: the interval of valid lower slopes that
  alpha-CROWN may optimise over (``None`` when the slope is not optimisable);
- ``lipschitz`` and ``fp_abs_error``: used by the float32 error analysis.

Bounds may be infinite; every rule returns finite slopes and, where a linear
bound does not exist, an infinite intercept (callers multiply safely).
The propagation loops in ibp.py / crown.py never special-case a kind.
"""

# ruff: noqa: E741 -- l / u are the standard names for lower / upper bounds

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_U32 = 2.0**-24


@dataclass(frozen=True, eq=False)
class Affine:
    """``y = W @ x + b`` with ``W`` [out, in] and ``b`` [out], float64, read-only.

    ``extra_roundings`` counts rounded operations per output that the model file
    performs beyond the dot product and bias (Gemm's alpha and beta scalings, the
    normalisation steps of BatchNormalization): the float error analysis adds them.
    ``sum_scale``: the factor applied after the dot product (Gemm's alpha).
    """

    W: np.ndarray
    b: np.ndarray
    extra_roundings: int = 0
    # the runtime sums the dot products of W / sum_scale, then scales them (Gemm computes
    # A B before alpha): its partial sums can overflow where those of W would not
    sum_scale: float = 1.0

    def __post_init__(self) -> None:
        W = np.array(self.W, dtype=np.float64, copy=True)
        b = np.array(self.b, dtype=np.float64, copy=True).reshape(-1)
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise ValueError(
                f"affine layer needs W [out, in] and b [out], got {W.shape}, {b.shape}"
            )
        W.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "b", b)

    @property
    def in_features(self) -> int:
        return int(self.W.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.W.shape[0])

    def forward(self, x: np.ndarray) -> np.ndarray:
        dt = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        return x @ self.W.T.astype(dt) + self.b.astype(dt)

    def then(self, other: Affine) -> Affine:
        """The composition ``other(self(x))`` as one affine map."""
        return Affine(other.W @ self.W, other.W @ self.b + other.b)

    def ibp(self, l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interval image of the box [l, u] ([n, in]); safe with infinite bounds."""
        return linear_box_range(self.W, self.b, l, u)


def linear_box_range(
    W: np.ndarray, b: np.ndarray, l: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact range of ``W x + b`` over boxes [l, u] ([n, in]) -> two [n, out] arrays."""
    if np.isfinite(l).all() and np.isfinite(u).all():
        c = l + u
        c *= 0.5
        r = u - l
        r *= 0.5
        mid = c @ W.T
        mid += b
        rad = r @ np.abs(W).T
        lo = mid - rad
        mid += rad
        return lo, mid
    Wp = np.maximum(W, 0.0)
    Wn = np.minimum(W, 0.0)
    lf = np.where(np.isfinite(l), l, 0.0)
    uf = np.where(np.isfinite(u), u, 0.0)
    lo = lf @ Wp.T + uf @ Wn.T + b
    hi = uf @ Wp.T + lf @ Wn.T + b
    # an infinite input bound reaches every output whose weight on it is nonzero
    linf = (l == -np.inf).astype(np.float64)
    uinf = (u == np.inf).astype(np.float64)
    pos = (W > 0).astype(np.float64).T
    neg = (W < 0).astype(np.float64).T
    lo = np.where((linf @ pos + uinf @ neg) > 0, -np.inf, lo)
    hi = np.where((uinf @ pos + linf @ neg) > 0, np.inf, hi)
    return lo, hi


@dataclass(frozen=True)
class Activation:
    """Base of the elementwise activations (monotone non-decreasing)."""

    name: str = field(init=False, default="activation")
    piecewise_linear: bool = field(init=False, default=False)
    lipschitz: float = field(init=False, default=1.0)

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def ibp(self, l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore"):
            return self.forward(l), self.forward(u)

    def relax(
        self, l: np.ndarray, u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def lower_slope_range(
        self, l: np.ndarray, u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        return None

    def fp_abs_error(self, mag: np.ndarray, unit: float) -> np.ndarray:
        """Bound on |fl(f(x)) - f(x)| for |f(x)| <= mag at unit roundoff ``unit``."""
        return np.zeros_like(mag)


@dataclass(frozen=True)
class Identity(Activation):
    name: str = field(init=False, default="identity")
    piecewise_linear: bool = field(init=False, default=True)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def relax(self, l, u):
        one = np.ones_like(l)
        return one, None, one, np.zeros_like(l)


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """``max(x, alpha x)`` for 0 <= alpha <= 1; alpha = 0 is ReLU."""

    alpha: float = 0.01
    name: str = field(init=False, default="leaky_relu")
    piecewise_linear: bool = field(init=False, default=True)

    def __post_init__(self) -> None:
        if not (0.0 <= float(self.alpha) <= 1.0) or not np.isfinite(self.alpha):
            raise ValueError(f"LeakyReLU alpha must be in [0, 1], got {self.alpha}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.alpha == 0.0:
            return np.maximum(x, 0)
        return np.where(x >= 0, x, x * x.dtype.type(self.alpha))

    def relax(self, l, u):
        if np.isfinite(l).all() and np.isfinite(u).all():
            return self.relax_finite(l, u)
        return self._relax_infinite(l, u)

    def relax_finite(self, l, u):
        """``relax`` for bounds known to be finite (float64 arrays; no check)."""
        al, au, bu, _ = self._relax_core(l, u)
        return al, None, au, bu

    def relax_and_image(self, l, u):
        """``(al, au, bu, f(l), f(u))`` for finite bounds (``bl`` is zero): the
        relaxation and the interval image in one pass (CROWN's fast path)."""
        al, au, bu, up = self._relax_core(l, u)
        if self.alpha == 0.0:
            return al, au, bu, np.maximum(l, 0.0), up
        return al, au, bu, self.forward(l), self.forward(u)

    def _relax_core(self, l, u):
        a = float(self.alpha)
        # ReLU part r(x) = max(x, 0); leaky(x) = a x + (1 - a) r(x).
        # Chord through (l-, 0) and (u+, u+) with l- = min(l, 0), u+ = max(u, 0):
        # slope u+/(u+ - l-) is 1 when active, 0 when inactive, exact there.
        # With q = -l- = max(-l, 0) (negation is exact): bu = -au l- = au q.
        q = np.negative(l)
        np.maximum(q, 0.0, out=q)
        up = np.maximum(u, 0.0)
        al = np.greater(up, q, out=np.empty_like(up))  # adaptive: 1 if the positive side is wider
        den = up + q
        np.maximum(den, 1e-300, out=den)
        au = np.divide(up, den, out=den)
        bu = np.multiply(au, q, out=q)
        if a:
            au = a + (1.0 - a) * au
            bu *= 1.0 - a
            al = a + (1.0 - a) * al
        return al, au, bu, up

    def _relax_infinite(self, l, u):
        """Relaxation when some bounds are infinite (limits of the chord)."""
        a = float(self.alpha)
        active = l >= 0
        inactive = u <= 0
        unstable = ~(active | inactive)
        fin = np.isfinite(l) & np.isfinite(u)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            chord = np.where(
                unstable & fin, (u - a * l) / np.where(unstable & fin, u - l, 1.0), 1.0
            )
            bu = np.where(unstable & fin, (1.0 - chord) * u, 0.0)
        au = np.where(active, 1.0, np.where(inactive, a, chord))
        linf = unstable & np.isneginf(l) & np.isfinite(u)  # y <= a x + (1 - a) u
        uinf = unstable & np.isposinf(u) & np.isfinite(l)  # y <= x - (1 - a) l
        both = unstable & np.isneginf(l) & np.isposinf(u)  # no finite upper line
        au = np.where(linf, a, np.where(uinf | both, 1.0, au))
        with np.errstate(invalid="ignore", over="ignore"):
            bu = np.where(linf, (1.0 - a) * np.where(linf, u, 0.0), bu)
            bu = np.where(uinf, -(1.0 - a) * np.where(uinf, l, 0.0), bu)
        bu = np.where(both, np.inf, bu)
        al = np.where(active, 1.0, np.where(inactive, a, np.where(u >= -l, 1.0, a)))
        return al, None, au, bu

    def lower_slope_range(self, l, u):
        a = float(self.alpha)
        active = l >= 0
        inactive = u <= 0
        lo = np.where(active, 1.0, a)
        hi = np.where(inactive, a, 1.0)
        return lo, hi

    def fp_abs_error(self, mag: np.ndarray, unit: float) -> np.ndarray:
        # max(x, 0) is exact; alpha * x is one rounded product
        return unit * float(self.alpha) * mag

    @property
    def lipschitz(self) -> float:  # type: ignore[override]
        return max(1.0, float(self.alpha))


@dataclass(frozen=True)
class ReLU(LeakyReLU):
    alpha: float = 0.0
    name: str = field(init=False, default="relu")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 0.5 * (1.0 + np.tanh(0.5 * x))


# Absolute error allowed for an ONNX Runtime sigmoid/tanh kernel (MLAS uses
# rational approximations; their documented error is a few ulp). 2^-18 is
# 64 ulp at 1.0 — generous on purpose; see fp_margin.py.
ACT_APPROX_ABS_ERROR = 2.0**-18


@dataclass(frozen=True)
class SShaped(Activation):
    """Sigmoid-like: increasing, convex on x < 0, concave on x > 0."""

    def f(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def df(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.f(x)

    def _tangent_point(self, anchor: np.ndarray, lo: np.ndarray, hi: np.ndarray, upper: bool):
        """Bisection for d in [lo, hi] with the tangent at d passing through anchor.

        Returns the bracket end whose slope keeps the line valid (see relax).
        """
        fa = self.f(anchor)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            # g(d) = f(d) + f'(d)(anchor - d) - f(anchor)
            g = self.f(mid) + self.df(mid) * (anchor - mid) - fa
            if upper:  # anchor = l < 0, d in [0, u]; g > 0 means d too far right
                hi = np.where(g > 0, mid, hi)
                lo = np.where(g > 0, lo, mid)
            else:  # anchor = u > 0, d in [l, 0]; g < 0 means d too far left
                lo = np.where(g < 0, mid, lo)
                hi = np.where(g < 0, hi, mid)
        return lo if upper else hi

    def relax(self, l, u):
        fin = np.isfinite(l) & np.isfinite(u)
        lc = np.where(fin, l, 0.0)  # placeholders where infinite (masked below)
        uc = np.where(fin, u, 0.0)
        fl = self.f(l)
        fu = self.f(u)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = uc - lc
            chord = np.where(
                w > 1e-12, (self.f(uc) - self.f(lc)) / np.where(w > 1e-12, w, 1.0), 0.0
            )
        mid = 0.5 * (lc + uc)
        tmid = self.df(mid)
        # default: constant bounds (always valid for a monotone function)
        al = np.zeros_like(l)
        bl = fl.copy()
        au = np.zeros_like(l)
        bu = fu.copy()
        finite = fin & (w > 1e-12)
        convex = finite & (u <= 0)
        concave = finite & (l >= 0)
        mixed = finite & ~convex & ~concave
        # convex part: tangent at mid below, chord above
        al = np.where(convex, tmid, al)
        bl = np.where(convex, self.f(mid) - tmid * mid, bl)
        au = np.where(convex, chord, au)
        bu = np.where(convex, self.f(lc) - chord * lc, bu)
        # concave part: chord below, tangent at mid above
        al = np.where(concave, chord, al)
        bl = np.where(concave, self.f(lc) - chord * lc, bl)
        au = np.where(concave, tmid, au)
        bu = np.where(concave, self.f(mid) - tmid * mid, bu)
        if mixed.any():
            # upper: line through (l, f(l)) tangent at d in [0, u], or the chord
            dl = self._tangent_point(lc, np.zeros_like(lc), np.maximum(uc, 0.0), upper=True)
            s_up = self.df(dl)
            chord_ok = self.df(uc) >= chord  # chord lies above f on [l, u]
            su = np.where(chord_ok, chord, np.maximum(s_up, chord))
            au = np.where(mixed, su, au)
            bu = np.where(mixed, self.f(lc) - su * lc, bu)
            du = self._tangent_point(uc, np.minimum(lc, 0.0), np.zeros_like(uc), upper=False)
            s_lo = self.df(du)
            chord_ok_l = self.df(lc) >= chord
            sl = np.where(chord_ok_l, chord, np.maximum(s_lo, chord))
            al = np.where(mixed, sl, al)
            bl = np.where(mixed, self.f(uc) - sl * uc, bl)
        return al, bl, au, bu

    def fp_abs_error(self, mag: np.ndarray, unit: float) -> np.ndarray:
        # kernel approximation error, scaled for the precision in use
        return np.full_like(mag, ACT_APPROX_ABS_ERROR * unit / _U32)


@dataclass(frozen=True)
class Sigmoid(SShaped):
    name: str = field(init=False, default="sigmoid")
    lipschitz: float = field(init=False, default=0.25)

    def f(self, x):
        return _sigmoid(x)

    def df(self, x):
        s = _sigmoid(x)
        return s * (1.0 - s)


@dataclass(frozen=True)
class Tanh(SShaped):
    name: str = field(init=False, default="tanh")

    def f(self, x):
        return np.tanh(x)

    def df(self, x):
        t = np.tanh(x)
        return 1.0 - t * t


ACTIVATIONS: dict[str, type[Activation]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "identity": Identity,
}
