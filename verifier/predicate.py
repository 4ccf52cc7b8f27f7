"""Predicates on a model's output and how bounds decide them.

A predicate is compiled against a network into *specification rows*: a
matrix ``C [m, k]`` over the network's logits ``z`` (the outputs before any
final sigmoid/softmax). ``C`` is multiplied into the last affine map
(specification as a layer), so every method bounds exactly the quantities
that are tested. ``verdicts(L, U)`` then turns sound bounds on ``C z``
(already widened by the float margins) into NONE / ALL / UNKNOWN:

- ``> t``: NONE if U <= t, ALL if L > t (``>=``, ``<``, ``<=`` alike);
- ``between(lo, hi)`` (inclusive): NONE if U < lo or L > hi, ALL if
  lo <= L and U <= hi;
- ``argmax == k`` with rows ``z_k - z_j``: the runtime's argmax returns the
  *first* maximal index, so class k wins iff ``z_k > z_j`` for ``j < k`` and
  ``z_k >= z_j`` for ``j > k``. ALL if those hold on the whole region;
  NONE if one class j beats k everywhere (``z_j >= z_k`` for ``j < k``,
  ``z_j > z_k`` for ``j > k``).

Final ops, through monotonicity: a final sigmoid maps logit bounds
``[L, U]`` to ``[s(L) - eps, s(U) + eps]``; a final softmax keeps the argmax
of the logits (with a tie margin for rounding in the softmax kernel), and
for thresholds ``p_k = 1 / (1 + sum_j exp(z_j - z_k))`` is bounded from the
rows ``z_j - z_k``. ``eps`` is the kernel error from fp_margin.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlskip.errors import PredicateError

from .fp_margin import UNIT, final_op_error
from .network import Network

NONE, ALL, UNKNOWN = np.int8(0), np.int8(1), np.int8(2)
_OPS = (">", ">=", "<", "<=", "between", "argmax")
# the comparisons by symbol and by the name the SQL rules give them (one spelling each)
KIND_OF_OP = {
    ">": "gt",
    ">=": "ge",
    "<": "lt",
    "<=": "le",
    "between": "between",
    "argmax": "argmax",
}
OP_OF_KIND = {kind: op for op, kind in KIND_OF_OP.items()}


@dataclass(frozen=True)
class Predicate:
    """``c . y  op  threshold`` on the outputs ``y``, or ``argmax(y) == label``.

    Build with ``Predicate.gt(t)``, ``ge``, ``lt``, ``le``, ``between(lo, hi)``
    or ``argmax(k)``; ``output`` picks one output, ``coef`` a linear function.
    """

    op: str
    threshold: float = 0.0
    high: float = 0.0
    output: int = 0
    coef: tuple[float, ...] | None = None
    label: int = 0

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise PredicateError(f"unknown predicate operator {self.op!r}; use one of {_OPS}")
        for name in ("threshold", "high"):
            v = float(getattr(self, name))
            if np.isnan(v):
                raise PredicateError(f"predicate {name} is NaN")
            object.__setattr__(self, name, v)
        if self.op == "between" and self.high < self.threshold:
            raise PredicateError(f"BETWEEN {self.threshold} AND {self.high} is empty (low > high)")
        if self.coef is not None:
            c = tuple(float(v) for v in self.coef)
            if not c or not np.isfinite(c).all():
                raise PredicateError("predicate coefficients must be finite and non-empty")
            object.__setattr__(self, "coef", c)

    # constructors
    @classmethod
    def gt(cls, t: float, output: int = 0) -> Predicate:
        return cls(">", t, output=output)

    @classmethod
    def ge(cls, t: float, output: int = 0) -> Predicate:
        return cls(">=", t, output=output)

    @classmethod
    def lt(cls, t: float, output: int = 0) -> Predicate:
        return cls("<", t, output=output)

    @classmethod
    def le(cls, t: float, output: int = 0) -> Predicate:
        return cls("<=", t, output=output)

    @classmethod
    def between(cls, lo: float, hi: float, output: int = 0) -> Predicate:
        return cls("between", lo, hi, output=output)

    @classmethod
    def argmax(cls, k: int) -> Predicate:
        return cls("argmax", label=int(k))

    @classmethod
    def linear(
        cls,
        coef: tuple[float, ...] | list[float] | np.ndarray,
        op: str,
        t: float,
        high: float = 0.0,
    ) -> Predicate:
        return cls(op, t, high, coef=tuple(np.asarray(coef, dtype=float).tolist()))

    @classmethod
    def comparison(cls, kind: str, values: tuple[float, ...]) -> Predicate:
        """The predicate of an SQL comparison: ``kind`` is ``gt ge lt le between argmax``."""
        if kind == "argmax":
            return cls.argmax(int(values[0]))
        if kind == "between":
            return cls.between(values[0], values[1])
        if kind not in ("gt", "ge", "lt", "le"):
            raise PredicateError(f"unknown comparison {kind!r}")
        return getattr(cls, kind)(values[0])

    # evaluation on concrete outputs: the one definition of predicate truth
    def holds(self, y: np.ndarray) -> np.ndarray:
        """Whether the predicate holds for output rows ``y [n, k]``, as DuckDB decides it.

        DuckDB orders NaN above every number, so ``NaN > t`` and ``NaN >= t`` hold while
        ``NaN < t``, ``NaN <= t`` and ``NaN BETWEEN lo AND hi`` do not; the class is the
        first maximal index, as the SQL class function returns it (numpy's argmax, which
        also takes the first NaN as maximal)."""
        y = np.asarray(y)
        if self.op == "argmax":
            return np.argmax(y, axis=1) == self.label
        if self.coef is None:  # one output, as SQL reads it: inf * 0 elsewhere is no NaN
            self._c(y.shape[1])  # validates the output index
            v = y[:, self.output].astype(np.float64)
        else:
            with np.errstate(invalid="ignore"):
                v = y.astype(np.float64) @ self._c(y.shape[1])
        t, h = self.threshold, self.high
        nan = np.isnan(v)
        with np.errstate(invalid="ignore"):
            if self.op == ">":
                return (v > t) | nan
            if self.op == ">=":
                return (v >= t) | nan
            if self.op == "<":
                return v < t
            if self.op == "<=":
                return v <= t
            return (v >= t) & (v <= h)

    def _c(self, k: int) -> np.ndarray:
        if self.coef is not None:
            if len(self.coef) != k:
                raise PredicateError(
                    f"predicate has {len(self.coef)} coefficients for a model with {k} outputs"
                )
            return np.asarray(self.coef)
        if not 0 <= self.output < k:
            raise PredicateError(f"predicate names output {self.output}, the model has {k} outputs")
        c = np.zeros(k)
        c[self.output] = 1.0
        return c

    def compile(self, net: Network) -> Spec:
        """Specification rows for ``net`` (validated against its outputs)."""
        k = net.num_outputs
        if self.op == "argmax":
            if k < 2:
                raise PredicateError("argmax needs a model with at least 2 outputs")
            if not 0 <= self.label < k:
                raise PredicateError(
                    f"argmax class {self.label} is not one of the model's {k} outputs"
                )
            if net.final == "sigmoid":  # compare sigmoid outputs as intervals
                return Spec(self, net, np.eye(k), "sigmoid_argmax")
            others = [j for j in range(k) if j != self.label]
            C = np.zeros((k - 1, k))
            C[np.arange(k - 1), self.label] = 1.0
            C[np.arange(k - 1), others] = -1.0
            return Spec(self, net, C, "argmax", others=np.array(others))
        c = self._c(k)
        if net.final is None:
            return Spec(self, net, c[None, :], "linear")
        if net.final == "sigmoid":
            nz = np.flatnonzero(c)
            return Spec(self, net, np.eye(k)[nz], "sigmoid", outputs=nz)
        # softmax: rows z_j - z_i for every involved i and j != i
        nz = np.flatnonzero(c)
        rows = []
        for i in nz:
            for j in range(k):
                if j != i:
                    r = np.zeros(k)
                    r[j], r[i] = 1.0, -1.0
                    rows.append(r)
        C = np.array(rows) if rows else np.zeros((0, k))
        return Spec(self, net, C, "softmax", outputs=nz)


@dataclass(frozen=True, eq=False)
class Spec:
    """A predicate compiled for one network: rows ``C`` over logits and a decision rule."""

    predicate: Predicate
    net: Network
    C: np.ndarray
    kind: str
    others: np.ndarray | None = None
    outputs: np.ndarray | None = None

    @property
    def spec_net(self) -> Network:
        """The network whose outputs are the rows ``C z`` (last layer premultiplied)."""
        last = self.net.affines[-1]
        return self.net.with_last(self.C @ last.W, self.C @ last.b)

    def value_bounds(
        self, L: np.ndarray, U: np.ndarray, precision: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bounds on the predicate's scalar ``c . y`` from row bounds (threshold kinds)."""
        p = self.predicate
        c = p._c(self.net.num_outputs)
        if self.kind == "linear":
            return L[:, 0], U[:, 0]
        # not clipped to [0, 1]: the runtime's kernels are not the mathematical functions
        # (ONNX Runtime's float32 sigmoid returns 1.0000001 at 17.844)
        eps = final_op_error(precision)
        if self.kind == "sigmoid":
            with np.errstate(over="ignore"):
                lo = _sig(L) - eps
                hi = _sig(U) + eps
        else:  # softmax: rows grouped per involved output i, k-1 rows each
            k = self.net.num_outputs
            n_out = len(self.outputs)
            Lr = L.reshape(L.shape[0], n_out, k - 1)
            Ur = U.reshape(U.shape[0], n_out, k - 1)
            with np.errstate(over="ignore"):
                lo = 1.0 / (1.0 + np.exp(Ur).sum(-1)) - eps
                hi = 1.0 / (1.0 + np.exp(Lr).sum(-1)) + eps
        cs = c[self.outputs]
        vlo = np.where(cs > 0, cs * lo, cs * hi).sum(-1)
        vhi = np.where(cs > 0, cs * hi, cs * lo).sum(-1)
        # rounding in the SQL-side linear combination (float64)
        slack = (
            4
            * len(cs)
            * UNIT["float64"]
            * (np.abs(cs) * np.maximum(np.abs(lo), np.abs(hi))).sum(-1)
        )
        return vlo - slack, vhi + slack

    def verdicts(self, L: np.ndarray, U: np.ndarray, precision: str = "float32") -> np.ndarray:
        """NONE / ALL / UNKNOWN per region from sound row bounds ``L, U [n, m]``.

        A region whose bounds are empty (``L > U`` in every row, e.g. an
        empty box) satisfies both NONE and ALL; NONE is reported.
        """
        L = np.where(np.isnan(L), -np.inf, L)
        U = np.where(np.isnan(U), np.inf, U)
        p = self.predicate
        n = L.shape[0]
        out = np.full(n, UNKNOWN, dtype=np.int8)
        if self.kind in ("argmax", "sigmoid_argmax"):
            none, all_ = self._argmax(L, U, precision)
        else:
            lo, hi = self.value_bounds(L, U, precision)
            t, h = p.threshold, p.high
            if p.op == ">":
                none, all_ = hi <= t, lo > t
            elif p.op == ">=":
                none, all_ = hi < t, lo >= t
            elif p.op == "<":
                none, all_ = lo >= t, hi < t
            elif p.op == "<=":
                none, all_ = lo > t, hi <= t
            else:
                none, all_ = (hi < t) | (lo > h), (lo >= t) & (hi <= h)
        out[all_] = ALL
        out[none] = NONE
        if L.shape[1]:
            out[(L > U).any(axis=1)] = NONE  # empty region
        return out

    def _argmax(
        self, L: np.ndarray, U: np.ndarray, precision: str
    ) -> tuple[np.ndarray, np.ndarray]:
        k = self.predicate.label
        if self.kind == "sigmoid_argmax":
            eps = final_op_error(precision)
            lo, hi = _sig(L) - eps, _sig(U) + eps
            others = [j for j in range(L.shape[1]) if j != k]
            dl = lo[:, [k]] - hi[:, others]  # bounds on y_k - y_j
            du = hi[:, [k]] - lo[:, others]
            others_a = np.array(others)
        else:
            dl, du = L, U
            others_a = self.others
            if self.net.final == "softmax":
                # rounding in the softmax kernel may tie or swap nearly equal classes
                mag = np.maximum(np.abs(L), np.abs(U))
                tie = 64 * UNIT[precision] * (1.0 + np.where(np.isfinite(mag), mag, 0.0))
                dl, du = dl - tie, du + tie
        before = others_a < k  # classes that win ties against k
        all_ = np.where(before, dl > 0, dl >= 0).all(axis=1)
        none = np.where(before, du <= 0, du < 0).any(axis=1)
        return none, all_


def _sig(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 0.5 * (1.0 + np.tanh(0.5 * x))
