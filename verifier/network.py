"""The internal model form: a frozen chain of affine maps and activations.

A ``Network`` is ``A_L . s_{L-1} . A_{L-1} ... s_1 . A_1`` (affine maps
``A_i``, elementwise activations ``s_i``) followed by an optional monotone
final op (``"sigmoid"`` or ``"softmax"``) that the predicate handles through
its monotonicity. Consecutive affine maps are composed when the network is
built, so bounds see as few layers as possible.

``fp_steps`` keeps the unfolded op sequence as the model file evaluates it
(a normalisation ``Sub``/``Div``, a ``Gemm``, ...): the float32 error analysis
in fp_margin.py must follow the operations the UDF really performs, not our
folded form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mlskip.errors import ModelInputError, UnsupportedModelError

from .layers import Activation, Affine, Identity

FINAL_OPS = (None, "sigmoid", "softmax")
Step = Affine | Activation


def _compose(steps: Sequence[Step]) -> tuple[tuple[Affine, ...], tuple[Activation, ...]]:
    """Normalise steps into alternating affine/activation lists (affine first and last)."""
    affines: list[Affine] = []
    acts: list[Activation] = []
    pending: Affine | None = None
    width: int | None = None
    for st in steps:
        if isinstance(st, Affine):
            if width is not None and st.in_features != width:
                raise UnsupportedModelError(
                    f"layer shapes do not chain: a layer takes {st.in_features} inputs "
                    f"but the previous one gives {width}"
                )
            pending = st if pending is None else pending.then(st)
            width = st.out_features
        elif isinstance(st, Activation):
            if isinstance(st, Identity):
                continue
            if width is None:
                raise UnsupportedModelError(
                    "a model must start with an affine layer (Gemm/MatMul/Linear)"
                )
            if pending is None:
                pending = Affine(np.eye(width), np.zeros(width))
            affines.append(pending)
            acts.append(st)
            pending = None
        else:  # pragma: no cover - guarded by loaders
            raise TypeError(f"not a layer: {st!r}")
    if width is None:
        raise UnsupportedModelError("the model has no affine layer")
    if pending is None:
        pending = Affine(np.eye(width), np.zeros(width))
    affines.append(pending)
    return tuple(affines), tuple(acts)


@dataclass(frozen=True, eq=False)
class Network:
    """A feed-forward network in verifier form (float64 weights, read-only)."""

    affines: tuple[Affine, ...]
    activations: tuple[Activation, ...]
    final: str | None = None
    input_names: tuple[str, ...] = ()
    fp_steps: tuple[Step, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if len(self.activations) != len(self.affines) - 1:
            raise ValueError(
                "a Network needs exactly one activation between consecutive affine maps"
            )
        if self.final not in FINAL_OPS:
            raise ValueError(f"final op must be one of {FINAL_OPS}, got {self.final!r}")
        for i, (a, b) in enumerate(zip(self.affines[:-1], self.affines[1:], strict=True)):
            if a.out_features != b.in_features:
                raise ValueError(
                    f"affine {i} gives {a.out_features} values, affine {i + 1} takes {b.in_features}"
                )
        for a in self.affines:
            if not (np.isfinite(a.W).all() and np.isfinite(a.b).all()):
                raise UnsupportedModelError(
                    "the model has NaN or infinite weights; it cannot be verified"
                )
        names = tuple(self.input_names) or tuple(f"x{i}" for i in range(self.num_inputs))
        if len(names) != self.num_inputs:
            raise ModelInputError(
                f"the model takes {self.num_inputs} inputs but {len(names)} input names were given: {names}"
            )
        object.__setattr__(self, "input_names", names)
        if not self.fp_steps:
            steps: list[Step] = []
            for a, s in zip(self.affines, (*self.activations, None), strict=True):
                steps.append(a)
                if s is not None:
                    steps.append(s)
            object.__setattr__(self, "fp_steps", tuple(steps))

    @classmethod
    def from_steps(
        cls,
        steps: Sequence[Step],
        final: str | None = None,
        input_names: Sequence[str] = (),
    ) -> Network:
        """Build from an op sequence as loaded (kept in ``fp_steps``), composing affine runs."""
        affines, acts = _compose(steps)
        return cls(affines, acts, final, tuple(input_names), tuple(steps))

    @classmethod
    def mlp(
        cls,
        weights: Sequence[tuple[np.ndarray, np.ndarray]],
        activation: Activation | None = None,
        final: str | None = None,
        input_names: Sequence[str] = (),
    ) -> Network:
        """An MLP from (W, b) pairs with one activation kind between them (ReLU by default)."""
        from .layers import ReLU

        act = activation if activation is not None else ReLU()
        steps: list[Step] = []
        for i, (W, b) in enumerate(weights):
            if i:
                steps.append(act)
            steps.append(Affine(W, b))
        return cls.from_steps(steps, final, input_names)

    @property
    def num_inputs(self) -> int:
        return self.affines[0].in_features

    @property
    def num_outputs(self) -> int:
        return self.affines[-1].out_features

    @property
    def is_piecewise_linear(self) -> bool:
        """True when every activation is piecewise linear (complete MILP applies)."""
        return all(a.piecewise_linear for a in self.activations)

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(a.out_features for a in self.affines[:-1])

    def evaluate(self, x: np.ndarray, dtype: type = np.float64, final: bool = True) -> np.ndarray:
        """Outputs for inputs ``x`` [n, d].

        ``dtype=np.float32`` runs the unfolded op sequence in float32, like the
        UDF does; float64 runs the folded form. ``final=False`` stops before
        the final sigmoid/softmax (logits).
        """
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.num_inputs:
            raise ModelInputError(f"expected inputs of shape [n, {self.num_inputs}], got {x.shape}")
        h = x.astype(dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            if dtype == np.float32:
                for st in self.fp_steps:
                    h = st.forward(h).astype(np.float32)
            else:
                for a, s in zip(self.affines, (*self.activations, None), strict=True):
                    h = a.forward(h)
                    if s is not None:
                        h = s.forward(h)
            if final and self.final == "sigmoid":
                h = (0.5 * (1.0 + np.tanh(0.5 * h))).astype(dtype)
            elif final and self.final == "softmax":
                z = h - h.max(axis=1, keepdims=True)
                e = np.exp(z)
                h = (e / e.sum(axis=1, keepdims=True)).astype(dtype)
        return h

    def with_last(self, W: np.ndarray, b: np.ndarray) -> Network:
        """The same network with the last affine map replaced (specification as a layer).

        ``fp_steps`` are kept: float error analysis is about the model as run.
        """
        affines = (*self.affines[:-1], Affine(W, b))
        return Network(affines, self.activations, None, self.input_names, self.fp_steps)

    def __repr__(self) -> str:
        sizes = [self.num_inputs, *self.hidden_sizes, self.num_outputs]
        acts = ",".join(sorted({a.name for a in self.activations})) or "linear"
        fin = f", final={self.final}" if self.final else ""
        return f"Network({'-'.join(map(str, sizes))}, {acts}{fin})"
