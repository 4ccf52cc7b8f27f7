"""Floating-point margins: the verdicts hold for the model *as computed*.

Two separate effects are bounded here, per region and output.

1. **Evaluation error of the model (``eval_error``).** The SQL UDF runs the
   ONNX model in float32 (ONNX Runtime), so the value compared with the
   threshold is ``fl32(f(x))``, not ``f(x)``. Standard forward error analysis
   (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1/3.5), with
   unit roundoff ``u`` (2^-24 for float32, 2^-53 for float64) and
   ``gamma_k = k u / (1 - k u)``, over the op sequence as the file runs it
   (``Network.fp_steps``, unfolded):

   - input: the float64 column value is rounded to float32:
     ``|e_0| <= u |x| + TINY``; an input that may round to infinity makes the
     margin infinite;
   - affine step ``y = W x + b`` with ``k`` terms per row: whatever the
     summation order, blocking or FMA use of the kernel,
     ``|fl(W x^ + b) - (W x^ + b)| <= gamma_k (|W| |x^| + |b|)``; the error
     already in ``x^`` passes as ``|W| e``. We take ``k = fan_in + 3 +
     extra_roundings``: one extra term for a bias fused into the product by
     the runtime, one for weights that the runtime may re-round when it folds
     constants (for example a ``Mul`` merged into a ``Gemm``), and the
     scalings the op itself performs (Gemm's alpha/beta, BatchNormalization);
   - every partial sum of a dot product is bounded by ``|W| |x^| + |b|``; if
     that bound reaches the largest float, a partial sum may overflow to
     infinity although the exact result is small (``a + b - c`` near 2e38):
     the margin is then infinite. Gemm sums ``A B`` before scaling by alpha,
     so its sums are bounded with ``|W| / |alpha|``;
   - subnormals: a runtime may flush subnormal results to zero and read
     subnormal operands as zero (FTZ/DAZ). Each rounded operation may then
     err by ``TINY`` (2^-126 in float32) absolutely, so every affine output
     adds ``(2 k + 2) TINY`` and every activation ``TINY``; a stored weight
     that is subnormal in float32 counts in full as stored error (``1e-42``
     times ``1e38`` read as zero loses ``1e-4``);
   - ReLU is exact and 1-Lipschitz; LeakyReLU adds ``u alpha |x|``;
     sigmoid (1/4-Lipschitz) and tanh (1-Lipschitz) add a kernel error
     ``ACT_APPROX_ABS_ERROR`` (2^-18 at float32, generous for the MLAS
     rational approximations: measured at most 2^-21.5 for tanh and 2^-22.4
     for sigmoid over every 7th float32 in [-60, 60], whose results exceed
     1 by up to 2e-7);
   - magnitudes ``|x^| <= m + e`` with ``m`` the interval (IBP) bound of the
     exact value over the region's box.

   The output error bound ``e_out`` widens the output bounds; where any
   magnitude could overflow float32 the margin is infinite (UNKNOWN).

2. **Our own bound arithmetic (``bound_margin``).** Bounds are computed in
   float64. Every quantity formed by IBP/CROWN (products of weights with
   slopes in [0, 1], intercepts at most ``|l| + |u| + 1``) is bounded by the
   absolute-value network's magnitude ``M`` (``M_i = |W_i| M_{i-1} + |b_i|``
   plus 1 per activation); each bound is a sum of at most
   ``N = sum_i 4 (fan_in_i + 4)`` rounded operations per chain, so its
   rounding error is at most ``gamma_N M``. We widen every intermediate
   pre-activation bound (so every relaxation stays valid on the true range)
   and every final bound by ``2 gamma_N M``. In float64 these margins are
   ~1e-13 relative: they never cost pruning (measured in bench.py).

What is *not* covered: a runtime whose kernels are not IEEE-conforming
beyond the stated activation error and flush-to-zero. ``tpch/marginfuzz.py``
checks these bounds against ONNX Runtime itself on random networks.
"""

# ruff: noqa: E741 -- l / u are the standard names for lower / upper bounds

from __future__ import annotations

import weakref

import numpy as np

from .layers import Activation, Affine, linear_box_range
from .network import Network

UNIT = {"float32": 2.0**-24, "float64": 2.0**-53}
TINY = {"float32": 2.0**-126, "float64": 2.0**-1022}  # smallest normal: FTZ/DAZ error
F32_MAX = float(np.finfo(np.float32).max)
_U64 = 2.0**-53


def gamma(k: int | np.ndarray, unit: float) -> float | np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    return k * unit / (1.0 - k * unit)


_EVAL_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
EVAL_CHUNK = 2048  # rows per pass: the [chunk, h] work arrays stay in cache


def _eval_plan(net: Network, precision: str) -> list:
    """Weights-only quantities of ``eval_error`` per step, built once per network."""
    plans = _EVAL_PLANS.setdefault(net, {})
    if precision not in plans:
        u, tiny = UNIT[precision], TINY[precision]
        plan: list = []
        for st in net.fp_steps:
            if isinstance(st, Affine):
                k = int(np.count_nonzero(st.W, axis=1).max(initial=0)) + 3 + st.extra_roundings
                absWT = np.ascontiguousarray(np.abs(st.W).T)
                dWT = np.ascontiguousarray(_stored_error(st.W, precision).T)
                db = _stored_error(st.b, precision)
                flush = (2 * k + 2) * tiny
                overflow = 1.0 / st.sum_scale  # partial sums are those of W / sum_scale
                plan.append((st, float(gamma(k, u)), absWT, np.abs(st.b), dWT, db, flush, overflow))
            else:
                plan.append((st,))
        plans[precision] = plan
    return plans[precision]


def _stored_error(w: np.ndarray, precision: str) -> np.ndarray:
    """How far the weights the runtime uses may be from ``w``: rounding to float32, and
    a stored value that is subnormal read as zero (DAZ)."""
    if precision == "float32":
        stored = w.astype(np.float32).astype(np.float64)
        error = np.abs(w - stored)
    else:
        stored, error = w, np.zeros_like(w)
    subnormal = np.abs(stored) < TINY[precision]
    return error + np.where(subnormal, np.abs(stored), 0.0)


def eval_error(
    net: Network, lower: np.ndarray, upper: np.ndarray, precision: str = "float32"
) -> np.ndarray:
    """Bound on ``|fl(f(x)) - f(x)|`` per output for every x in the boxes -> ``[n, k]``.

    ``f`` stops before the final sigmoid/softmax (those are handled by the
    predicate); ``precision`` is the precision the model is evaluated in.
    Rows are independent; they are processed in cache-sized chunks.
    """
    if precision not in UNIT:
        raise ValueError(f"precision must be one of {sorted(UNIT)}, got {precision!r}")
    n = lower.shape[0]
    if n > EVAL_CHUNK:
        return np.concatenate(
            [
                eval_error(net, lower[s : s + EVAL_CHUNK], upper[s : s + EVAL_CHUNK], precision)
                for s in range(0, n, EVAL_CHUNK)
            ]
        )
    u, tiny = UNIT[precision], TINY[precision]
    limit = F32_MAX if precision == "float32" else float(np.finfo(np.float64).max)
    with np.errstate(over="ignore", invalid="ignore"):
        l, h = lower, upper
        m = np.maximum(np.abs(l), np.abs(h))
        e = u * m + tiny
        e = np.where((m + e < limit) & np.isfinite(e), e, np.inf)  # input rounds to inf
        for step in _eval_plan(net, precision):
            st = step[0]
            if isinstance(st, Affine):
                _, g, absWT, absb, dWT, db, flush, overflow = step
                me = m + e
                partial = me @ absWT  # bounds every partial sum of the dot products
                partial += absb
                sums = partial * overflow if overflow != 1.0 else partial
                rounding = g * partial
                rounding += me @ dWT
                rounding += db
                rounding += flush
                e = e @ absWT
                e += rounding
                e = np.where(sums < limit, e, np.inf)  # a partial sum may overflow
                l, h = linear_box_range(st.W, st.b, l, h)
            elif isinstance(st, Activation):
                e = st.lipschitz * e + st.fp_abs_error(np.maximum(np.abs(l), np.abs(h)) + e, u)
                e += tiny
                l, h = st.ibp(l, h)
            m = np.maximum(np.abs(l), np.abs(h))
            e = np.where((m + e < limit) & np.isfinite(e), e, np.inf)
    return e


def final_op_error(precision: str = "float32") -> float:
    """Absolute error allowed for a final sigmoid/softmax kernel output in [0, 1]."""
    from .layers import ACT_APPROX_ABS_ERROR

    return ACT_APPROX_ABS_ERROR * UNIT[precision] / UNIT["float32"] + 4 * UNIT[precision]


def abs_magnitudes(net: Network, lower: np.ndarray, upper: np.ndarray) -> list[np.ndarray]:
    """``M_i`` [n, h_i] for every affine output of the folded network (see module doc)."""
    with np.errstate(over="ignore", invalid="ignore"):
        m = np.maximum(np.abs(lower), np.abs(upper))
        out = []
        for i, a in enumerate(net.affines):
            m = m @ np.abs(a.W).T + np.abs(a.b)
            out.append(m)
            if i < len(net.activations):
                m = m + 1.0
    return out


def chain_ops(net: Network, upto: int) -> int:
    """``N`` for the bound of affine output ``upto`` (operations along one chain)."""
    return sum(4 * (a.in_features + 4) for a in net.affines[: upto + 1])


def bound_margin(
    net: Network, mags: list[np.ndarray], upto: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """Outward margin for float64 bounds on affine output ``upto`` (optionally of ``C @ z``)."""
    M = mags[upto]
    if rows is not None:
        M = M @ np.abs(rows).T
    g = 2.0 * gamma(chain_ops(net, upto), _U64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(np.isfinite(M), g * (M + 1.0), np.inf)


def row_max(a: np.ndarray) -> np.ndarray:
    """``a.max(axis=1, keepdims=True)`` for ``[n, d]``; a column loop when d is small
    (numpy's reduction over a short inner axis is ~25x slower). NaN propagates."""
    n, d = a.shape
    if d == 0 or d > 16:
        return a.max(axis=1, keepdims=True)
    m = a[:, 0].copy()
    for k in range(1, d):
        np.maximum(m, a[:, k], out=m)
    return m[:, None]


def scalar_magnitudes(net: Network, lower: np.ndarray, upper: np.ndarray) -> list[np.ndarray]:
    """Per-region scalars ``[n, 1]`` bounding ``M_i`` for every neuron of layer i.

    ``M_i <= ||W_i||_inf M_{i-1} + max|b_i|`` (+1 per activation): a cheap,
    looser stand-in for ``abs_magnitudes`` used inside the fast methods.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        m = row_max(np.maximum(np.abs(lower), np.abs(upper)))
        out = []
        for i, a in enumerate(net.affines):
            m = m * float(np.abs(a.W).sum(axis=1).max(initial=0.0)) + float(
                np.abs(a.b).max(initial=0.0)
            )
            out.append(m)
            if i < len(net.activations):
                m = m + 1.0
    return out


def margin_magnitudes(net: Network, lower: np.ndarray, upper: np.ndarray) -> list[np.ndarray]:
    """The magnitudes IBP and CROWN widen their bounds with: per neuron
    (``abs_magnitudes``) where margins compound over two or more hidden layers, so that
    they stay ~1e-13 of the width; the cheap scalars (``scalar_magnitudes``) otherwise."""
    deep = len(net.affines) >= 3
    return (abs_magnitudes if deep else scalar_magnitudes)(net, lower, upper)
