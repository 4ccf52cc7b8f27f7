"""The tree-ensemble model form: a sum of decision trees, a base score and a final link.

A ``TreeEnsemble`` is what the verifier bounds and what the SQL function runs (as
ONNX, tree_onnx.py). Its semantics are ONNX Runtime's ``TreeEnsembleRegressor``
with aggregate SUM, written down once here:

- an input row is first cast to the ensemble's ``precision`` (``float32``: as
  XGBoost, scikit-learn trees and ONNX Runtime on float inputs read features;
  ``float64``: as LightGBM and HistGradientBoosting read them), with numpy's cast,
  the one the runner uses;
- an internal node sends the value ``v`` of its feature to ``left`` when
  ``v <= threshold`` (``strict``: ``v < threshold``), to ``right`` otherwise, and
  a NaN to ``left`` exactly when ``missing_left``;
- the raw outputs ``z [k]`` are ``base`` plus the ``value`` of the leaf each tree
  reaches; ``final`` (None, ``"sigmoid"``, ``"softmax"``) maps them to the outputs,
  as for a ``Network``.

All nodes of all trees live in flat arrays (``roots`` give each tree's first node);
children always have larger indices than their parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mlskip.errors import ModelInputError, UnsupportedModelError

PRECISIONS = ("float32", "float64")
_DTYPE = {"float32": np.float32, "float64": np.float64}


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A sum of decision trees in verifier form (read-only arrays)."""

    feature: np.ndarray  # int64 [nodes]; -1 at leaves
    threshold: np.ndarray  # float64 [nodes]; values of the precision's grid
    strict: np.ndarray  # bool [nodes]: left when v < threshold (else v <= threshold)
    left: np.ndarray  # int64 [nodes]; -1 at leaves
    right: np.ndarray  # int64 [nodes]
    missing_left: np.ndarray  # bool [nodes]: a NaN goes left
    value: np.ndarray  # float64 [nodes, k]; leaf values (0 at internal nodes)
    roots: np.ndarray  # int64 [trees]
    base: np.ndarray  # float64 [k]
    num_features: int
    final: str | None = None
    precision: str = "float32"
    input_names: tuple[str, ...] = ()
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        arrays = {
            "feature": np.asarray(self.feature, dtype=np.int64),
            "threshold": np.asarray(self.threshold, dtype=np.float64),
            "strict": np.asarray(self.strict, dtype=bool),
            "left": np.asarray(self.left, dtype=np.int64),
            "right": np.asarray(self.right, dtype=np.int64),
            "missing_left": np.asarray(self.missing_left, dtype=bool),
            "value": np.asarray(self.value, dtype=np.float64),
            "roots": np.asarray(self.roots, dtype=np.int64),
            "base": np.asarray(self.base, dtype=np.float64).reshape(-1),
        }
        for name, a in arrays.items():
            a = np.array(a)  # an own copy, then frozen
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        self._check()
        names = tuple(self.input_names) or tuple(f"x{i}" for i in range(self.num_features))
        if len(names) != self.num_features:
            raise ModelInputError(
                f"the model takes {self.num_features} inputs but {len(names)} input names "
                f"were given: {names}"
            )
        object.__setattr__(self, "input_names", names)

    def _check(self) -> None:
        n = len(self.feature)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.final not in (None, "sigmoid", "softmax"):
            raise ValueError(f"final op must be None, 'sigmoid' or 'softmax', got {self.final!r}")
        for name in ("threshold", "strict", "left", "right", "missing_left"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} nodes")
        if self.value.shape != (n, len(self.base)) or not len(self.base):
            raise ValueError(
                f"value must be [nodes, k] with k = len(base) >= 1, got {self.value.shape}"
            )
        if not len(self.roots):
            raise UnsupportedModelError("the tree ensemble has no trees")
        leaf = self.feature < 0
        internal = ~leaf
        idx = np.arange(n)
        if (
            (self.left[internal] <= idx[internal]).any()
            or (self.right[internal] <= idx[internal]).any()
            or (self.left[internal] >= n).any()
            or (self.right[internal] >= n).any()
        ):
            raise UnsupportedModelError("a tree node's children must follow it in node order")
        if (self.feature[internal] >= self.num_features).any():
            raise ModelInputError(
                f"a split reads feature {int(self.feature[internal].max())}, but the model "
                f"takes {self.num_features} inputs"
            )
        if not np.isfinite(self.value[leaf]).all() or not np.isfinite(self.base).all():
            raise UnsupportedModelError("the tree ensemble has NaN or infinite leaf values")
        if np.isnan(self.threshold[internal]).any():
            raise UnsupportedModelError("the tree ensemble has a NaN split threshold")
        grid = self.threshold[internal].astype(_DTYPE[self.precision]).astype(np.float64)
        if not np.array_equal(grid, self.threshold[internal]):
            raise ValueError(f"split thresholds must be {self.precision} values")

    # ------------------------------------------------------------------ shape
    @property
    def num_inputs(self) -> int:
        return self.num_features

    @property
    def num_outputs(self) -> int:
        return len(self.base)

    @property
    def num_trees(self) -> int:
        return len(self.roots)

    @property
    def num_nodes(self) -> int:
        return len(self.feature)

    @property
    def leaves(self) -> np.ndarray:
        """Node indices of all leaves, tree by tree (``leaf_tree`` names each one's tree)."""
        return self._derived()["leaves"]

    @property
    def leaf_tree(self) -> np.ndarray:
        return self._derived()["leaf_tree"]

    @property
    def node_tree(self) -> np.ndarray:
        """Per node, the index of its tree."""
        return self._derived()["node_tree"]

    @property
    def levels(self) -> tuple[np.ndarray, ...]:
        """Internal nodes by depth (all trees at once): parents come before children."""
        return self._derived()["levels"]

    @property
    def left_max(self) -> np.ndarray:
        """Per node, the largest value of the precision's grid that goes left (NaN where
        none does: ``x < -inf``)."""
        return self._derived()["left_max"]

    @property
    def right_min(self) -> np.ndarray:
        """Per node, the smallest value of the precision's grid that goes right."""
        return self._derived()["right_min"]

    def _derived(self) -> dict:
        if "leaves" not in self._cache:
            n = self.num_nodes
            tree = np.full(n, -1, dtype=np.int64)
            depth = np.full(n, -1, dtype=np.int64)
            tree[self.roots] = np.arange(self.num_trees)
            depth[self.roots] = 0
            for i in range(n):  # parents precede children: one pass
                if tree[i] < 0:
                    raise UnsupportedModelError(f"tree node {i} is not reachable from a root")
                if self.feature[i] >= 0:
                    for c in (self.left[i], self.right[i]):
                        if tree[c] >= 0:
                            raise UnsupportedModelError(f"tree node {c} has two parents")
                        tree[c], depth[c] = tree[i], depth[i] + 1
            internal = self.feature >= 0
            levels = tuple(
                np.flatnonzero(internal & (depth == k)) for k in range(int(depth.max()) + 1)
            )
            leaves = np.flatnonzero(~internal)
            leaves = leaves[np.argsort(tree[leaves], kind="stable")]
            dtype = _DTYPE[self.precision]
            t = self.threshold.astype(dtype)
            below = np.nextafter(t, dtype(-np.inf)).astype(np.float64)
            above = np.nextafter(t, dtype(np.inf)).astype(np.float64)
            never_left = self.strict & (self.threshold == -np.inf)  # x < -inf: no x
            self._cache.update(
                leaves=leaves,
                leaf_tree=tree[leaves],
                node_tree=tree,
                levels=tuple(lv for lv in levels if len(lv)),
                left_max=np.where(never_left, np.nan, np.where(self.strict, below, self.threshold)),
                right_min=np.where(self.strict, self.threshold, above),
            )
        return self._cache

    # ------------------------------------------------------------------ evaluation
    def cast(self, x: np.ndarray) -> np.ndarray:
        """Inputs as the trees compare them: cast to the precision, as float64 values."""
        return np.asarray(x, dtype=np.float64).astype(_DTYPE[self.precision]).astype(np.float64)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The leaf node each tree reaches for each row: int64 [n, trees]."""
        v = self.cast(_rows(x, self.num_features))
        n = len(v)
        node = np.broadcast_to(self.roots, (n, self.num_trees)).copy()
        rows = np.arange(n)[:, None]
        for _ in range(len(self.levels) + 1):
            f = self.feature[node]
            inner = f >= 0
            if not inner.any():
                break
            value = v[rows, np.where(inner, f, 0)]
            t = self.threshold[node]
            go_left = np.where(
                np.isnan(value),
                self.missing_left[node],
                np.where(self.strict[node], value < t, value <= t),
            )
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return node

    def evaluate(self, x: np.ndarray, dtype: type = np.float64, final: bool = True) -> np.ndarray:
        """Outputs for inputs ``x [n, d]`` (float64 sums; ``final=False``: raw scores)."""
        z = self.base + self.value[self.apply(x)].sum(axis=1)
        if final and self.final == "sigmoid":
            z = 0.5 * (1.0 + np.tanh(0.5 * z))
        elif final and self.final == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            z = e / e.sum(axis=1, keepdims=True)
        return z.astype(dtype)

    def tree_dicts(self) -> list[dict]:
        """The trees as node dicts with local indices (``concatenate``'s form)."""
        bounds = np.r_[self.roots, self.num_nodes]
        out = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            out.append({
                "feature": self.feature[a:b], "threshold": self.threshold[a:b],
                "strict": self.strict[a:b], "missing_left": self.missing_left[a:b],
                "left": np.where(self.left[a:b] >= 0, self.left[a:b] - a, -1),
                "right": np.where(self.right[a:b] >= 0, self.right[a:b] - a, -1),
                "value": self.value[a:b],
            })  # fmt: skip
        return out

    def node_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each node's box on the precision's grid, the values its path lets through:
        closed ``[lo, hi]`` [nodes, d]."""
        if "boxes" not in self._cache:
            d = self.num_features
            lo = np.full((self.num_nodes, d), -np.inf)
            hi = np.full((self.num_nodes, d), np.inf)
            for level in self.levels:
                f = self.feature[level]
                for child, side in ((self.left[level], 0), (self.right[level], 1)):
                    lo[child], hi[child] = lo[level], hi[level]
                    if side == 0:
                        hi[child, f] = np.minimum(hi[level, f], self.left_max[level])
                    else:
                        lo[child, f] = np.maximum(lo[level, f], self.right_min[level])
            self._cache["boxes"] = (lo, hi)
        return self._cache["boxes"]

    def leaf_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each leaf's box on the precision's grid: closed ``[lo, hi]`` [leaves, d]."""
        lo, hi = self.node_boxes()
        return lo[self.leaves], hi[self.leaves]

    def __repr__(self) -> str:
        fin = f", final={self.final}" if self.final else ""
        return (
            f"TreeEnsemble({self.num_trees} trees, {len(self.leaves)} leaves, "
            f"{self.num_features}->{self.num_outputs}, {self.precision}{fin})"
        )


def _rows(x: np.ndarray, d: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != d:
        raise ModelInputError(f"expected inputs of shape [n, {d}], got {x.shape}")
    return x


def concatenate(trees: Sequence[dict], **kwargs) -> TreeEnsemble:
    """An ensemble from per-tree node dicts (local indices; children after parents).

    Each dict holds ``feature, threshold, strict, left, right, missing_left`` [nodes]
    and ``value`` [nodes, k]; the remaining keyword arguments go to ``TreeEnsemble``.
    """
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("feature", "threshold", "strict", "left", "right", "missing_left", "value")
    }
    roots, offset = [], 0
    for tree in trees:
        size = len(tree["feature"])
        roots.append(offset)
        for key in parts:
            a = np.asarray(tree[key])
            if key in ("left", "right"):
                a = np.where(a >= 0, a + offset, -1)
            parts[key].append(a)
        offset += size
    if not roots:
        raise UnsupportedModelError("the tree ensemble has no trees")
    return TreeEnsemble(
        **{k: np.concatenate(v) for k, v in parts.items()}, roots=np.array(roots), **kwargs
    )


def tree_from_arrays(
    feature: np.ndarray,
    threshold: np.ndarray,
    strict: np.ndarray | bool,
    left: np.ndarray,
    right: np.ndarray,
    missing_left: np.ndarray,
    value: np.ndarray,
    root: int = 0,
) -> dict:
    """One tree as a node dict (``concatenate``'s form) from a library's node arrays
    (leaves: ``left < 0``), in breadth-first order from ``root``: children after
    parents, and nodes no path reaches (pruned ones) dropped."""
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    order = [int(root)]
    i = 0
    while i < len(order):
        node = order[i]
        if left[node] >= 0:
            order += [int(left[node]), int(right[node])]
        i += 1
    order_a = np.array(order, dtype=np.int64)
    if len(set(order)) != len(order):
        raise UnsupportedModelError("a tree's nodes do not form a tree")
    position = np.full(len(left), -1, dtype=np.int64)
    position[order_a] = np.arange(len(order_a))
    inner = left[order_a] >= 0
    strict_a = np.broadcast_to(np.asarray(strict, dtype=bool), left.shape)
    return {
        "feature": np.where(inner, np.asarray(feature, dtype=np.int64)[order_a], -1),
        "threshold": np.where(inner, np.asarray(threshold, dtype=np.float64)[order_a], 0.0),
        "strict": np.where(inner, strict_a[order_a], False),
        "left": np.where(inner, position[np.maximum(left[order_a], 0)], -1),
        "right": np.where(inner, position[np.maximum(right[order_a], 0)], -1),
        "missing_left": np.where(inner, np.asarray(missing_left, dtype=bool)[order_a], False),
        "value": np.where(inner[:, None], 0.0, np.asarray(value, dtype=np.float64)[order_a]),
    }


def float32_at_most(t: np.ndarray) -> np.ndarray:
    """The largest float32 ``<= t`` (as float64): ``v <= t`` for a float32 ``v`` is
    ``v <= float32_at_most(t)``."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(over="ignore"):
        t32 = t.astype(np.float32)
    t32 = np.where(t32.astype(np.float64) > t, np.nextafter(t32, np.float32(-np.inf)), t32)
    return t32.astype(np.float64)


def split_boundary(precision: str, t: np.ndarray) -> np.ndarray:
    """The float64 value between "cast <= t" and "cast > t", both sides closed (a
    relaxation): ``t`` itself for float64, the midpoint to the next float32 for float32."""
    if precision == "float64":
        return t
    f32 = np.float32
    above = np.nextafter(t.astype(f32), f32(np.inf)).astype(np.float64)
    return np.where(np.isfinite(above), (t + above) / 2, t)
