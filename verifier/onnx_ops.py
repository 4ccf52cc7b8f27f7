"""The ONNX operators the verifier reads, one rule per operator family (``_RULES``), and
the walk of a graph's single chain of ops from its input (``chain``).

A rule turns one node into the network steps it computes and refuses, with a message
naming the node, whatever it cannot read exactly: an op it does not know, an attribute
that changes the op's meaning (``_ATTRIBUTES``), a shape that would mix rows or features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlskip.errors import UnsupportedModelError

from .layers import Activation, Affine, LeakyReLU, ReLU, Sigmoid, Tanh
from .network import Step

_PASS_THROUGH = {"Identity", "Dropout", "Flatten", "Reshape", "Cast"}

# attributes whose meaning the loader honours, per op; any other attribute (a newer
# opset's, a legacy one such as broadcast/axis, a typo) may change what the runtime
# computes, so the model is refused rather than read as if it were absent
_ATTRIBUTES: dict[str, frozenset[str]] = {
    "Constant": frozenset({"value"}),
    "Identity": frozenset(),
    "Dropout": frozenset({"ratio", "seed", "is_test"}),
    "Flatten": frozenset({"axis"}),
    "Reshape": frozenset({"allowzero"}),
    "Cast": frozenset({"to", "saturate"}),
    "Gemm": frozenset({"alpha", "beta", "transA", "transB"}),
    "MatMul": frozenset(),
    "Add": frozenset(),
    "Sub": frozenset(),
    "Mul": frozenset(),
    "Div": frozenset(),
    "BatchNormalization": frozenset({"epsilon", "momentum", "training_mode", "spatial", "is_test"}),
    "Relu": frozenset(),
    "LeakyRelu": frozenset({"alpha"}),
    "Sigmoid": frozenset(),
    "Tanh": frozenset(),
    "Softmax": frozenset({"axis"}),
}


def _node_label(node: Any) -> str:
    return f"{node.op_type} node {node.name or '(unnamed)'!r}"


def _vector(c: np.ndarray, width: int, label: str) -> np.ndarray:
    """A constant that broadcasts along features only: [] / [1] / [w] / [1, w]."""
    c = np.asarray(c, dtype=np.float64)
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or c.size not in (1, width):
        raise UnsupportedModelError(
            f"{label}: constant of shape {list(c.shape)} does not broadcast over {width} features "
            "(only per-feature constants can be folded)"
        )
    return np.broadcast_to(c.reshape(-1), (width,)).copy()


@dataclass
class _OpCall:
    """One node of the op chain, as its rule reads it."""

    label: str  # "<file>: <node>", for errors
    op: str
    attrs: dict[str, Any]
    ins: list[str]
    current: str  # the chain's tensor this node reads
    width: int  # features of that tensor
    consts: dict[str, np.ndarray]

    def vector(self, name: str) -> np.ndarray:
        return _vector(self.consts[name], self.width, self.label)


# what a rule adds: the steps of the op, the feature width after it, and the final op it
# makes (softmax), if any
_Effect = tuple[list[Step], int, "str | None"]
_RULES: dict[str, Callable[[_OpCall], _Effect]] = {}


def _rule(*ops: str) -> Callable[[Callable[[_OpCall], _Effect]], Callable[[_OpCall], _Effect]]:
    """Register the reading of ONNX ``ops`` (one rule per operator family)."""

    def register(fn: Callable[[_OpCall], _Effect]) -> Callable[[_OpCall], _Effect]:
        for op in ops:
            _RULES[op] = fn
        return fn

    return register


@_rule(*sorted(_PASS_THROUGH))
def _pass_through(n: _OpCall) -> _Effect:
    width = n.width
    if n.op == "Reshape":
        shape = n.consts[n.ins[1]].astype(np.int64).tolist() if len(n.ins) > 1 else []
        if len(shape) != 2 or shape[1] not in (width, -1) or shape[0] not in (0, -1):
            raise UnsupportedModelError(f"{n.label}: only reshapes to [N, {width}] are supported")
    if n.op == "Flatten" and int(n.attrs.get("axis", 1)) != 1:
        raise UnsupportedModelError(f"{n.label}: only Flatten(axis=1) is supported")
    if n.op == "Cast":
        if int(n.attrs.get("to", 0)) not in (1, 11):
            raise UnsupportedModelError(f"{n.label}: only casts to float/double are supported")
        # a cast rounds (double to float): one more rounded step in the error analysis
        return [Affine(np.eye(width), np.zeros(width))], width, None
    return [], width, None


@_rule("Gemm")
def _gemm(n: _OpCall) -> _Effect:
    if int(n.attrs.get("transA", 0)):
        raise UnsupportedModelError(f"{n.label}: transA=1 would mix rows of the batch")
    B = n.consts[n.ins[1]].astype(np.float64)
    if B.ndim != 2:
        raise UnsupportedModelError(f"{n.label}: weight must be 2-D, got shape {list(B.shape)}")
    Bm = B.T if int(n.attrs.get("transB", 0)) else B  # [d, out]
    if Bm.shape[0] != n.width:
        raise UnsupportedModelError(
            f"{n.label}: weight takes {Bm.shape[0]} features, input has {n.width}"
        )
    alpha = float(n.attrs.get("alpha", 1.0))
    beta = float(n.attrs.get("beta", 1.0))
    out = Bm.shape[1]
    bias = _vector(n.consts[n.ins[2]], out, n.label) * beta if len(n.ins) > 2 else np.zeros(out)
    extra = int(alpha != 1.0) + int(beta != 1.0)  # alpha*(AB), beta*C are rounded
    step = Affine(alpha * Bm.T, bias, extra_roundings=extra, sum_scale=abs(alpha) or 1.0)
    return [step], out, None


@_rule("MatMul")
def _matmul(n: _OpCall) -> _Effect:
    B = n.consts[n.ins[1]].astype(np.float64)
    if B.ndim != 2 or B.shape[0] != n.width:
        raise UnsupportedModelError(
            f"{n.label}: weight of shape {list(B.shape)} does not fit {n.width} features"
        )
    return [Affine(B.T, np.zeros(B.shape[1]))], B.shape[1], None


@_rule("Add", "Sub", "Mul", "Div")
def _elementwise(n: _OpCall) -> _Effect:
    other = next(x for x in n.ins if x != n.current) if len(set(n.ins)) == 2 else None
    if other is None:
        raise UnsupportedModelError(f"{n.label}: both operands are the model input")
    c, eye, width = n.vector(other), np.eye(n.width), n.width
    first = n.ins[0] == n.current
    if n.op == "Add":
        step = Affine(eye, c)
    elif n.op == "Sub":
        step = Affine(eye, -c) if first else Affine(-eye, c)
    elif n.op == "Mul":
        step = Affine(np.diag(c), np.zeros(width))
    else:
        if not first:
            raise UnsupportedModelError(f"{n.label}: division by the model input is not supported")
        if (c == 0).any():
            raise UnsupportedModelError(f"{n.label}: division by zero")
        step = Affine(np.diag(1.0 / c), np.zeros(width))
    return [step], width, None


@_rule("BatchNormalization")
def _batch_norm(n: _OpCall) -> _Effect:
    scale, bias, mean, var = (n.vector(x) for x in n.ins[1:5])
    eps = float(n.attrs.get("epsilon", 1e-5))
    k = scale / np.sqrt(var + eps)
    # as two rounded steps, (x - mean), then times k plus bias, with the roundings of
    # computing k (sum, sqrt, division) and of a runtime that folds the statistics into
    # one scale and shift: this covers either implementation
    steps = [Affine(np.eye(n.width), -mean), Affine(np.diag(k), bias, extra_roundings=4)]
    return steps, n.width, None


@_rule("Relu", "LeakyRelu", "Tanh", "Sigmoid")
def _activation(n: _OpCall) -> _Effect:
    act: Activation
    if n.op == "Relu":
        act = ReLU()
    elif n.op == "LeakyRelu":
        act = LeakyReLU(float(n.attrs.get("alpha", 0.01)))
    elif n.op == "Tanh":
        act = Tanh()
    else:
        act = Sigmoid()
    return [act], n.width, None


@_rule("Softmax")
def _softmax(n: _OpCall) -> _Effect:
    if int(n.attrs.get("axis", -1)) not in (-1, 1):
        raise UnsupportedModelError(f"{n.label}: Softmax must act on the feature axis")
    return [], n.width, "softmax"


def chain(
    graph: Any, where: str, consts: dict[str, np.ndarray], current: str, width: int
) -> tuple[list[Step], str | None, str]:
    """Steps of the single chain of ops from the input; the final op; the last tensor."""
    steps: list[Step] = []
    final: str | None = None
    for node in graph.node:
        label = f"{where}: {_node_label(node)}"
        op = node.op_type
        attrs = {a.name: _attr(a) for a in node.attribute}
        _check_semantics(node, attrs, consts, label)
        if op == "Constant":
            if "value" not in attrs:
                raise UnsupportedModelError(f"{label}: only tensor constants are supported")
            consts[node.output[0]] = attrs["value"]
            continue
        if final is not None and (op not in _PASS_THROUGH or op == "Cast"):
            raise UnsupportedModelError(f"{label}: no op may follow the final {final}")
        ins = [n for n in node.input if n]
        live = [n for n in ins if n not in consts]
        rule = _RULES.get(op)
        if rule is None:
            raise UnsupportedModelError(
                f"{label}: operator {op} is not supported by the verifier; "
                "the model can still be used, but row groups will not be skipped"
            )
        if live != [current] or (op not in ("Add", "Mul", "Sub") and ins[0] != current):
            raise UnsupportedModelError(
                f"{label}: only a single chain of ops on the model input is supported "
                f"(expected input {current!r}, got {ins})"
            )
        added, width, made_final = rule(_OpCall(label, op, attrs, ins, current, width, consts))
        steps += added
        final = made_final or final
        current = node.output[0]
    return steps, final, current


def _check_semantics(node: Any, attrs: dict[str, Any], consts: dict, label: str) -> None:
    """Refuse a node whose attributes or inputs make the runtime compute something other
    than what the loader reads (training-mode dropout, legacy broadcasting, ...)."""
    if node.domain not in ("", "ai.onnx"):
        raise UnsupportedModelError(
            f"{label}: operator domain {node.domain!r} is not the standard ONNX domain"
        )
    op = node.op_type
    unknown = sorted(set(attrs) - _ATTRIBUTES.get(op, frozenset(attrs)))
    if unknown:
        raise UnsupportedModelError(
            f"{label}: attribute(s) {unknown} of {op} are not supported by the verifier "
            "(they may change what the runtime computes)"
        )
    ins = list(node.input)
    if op == "Dropout":
        training = ins[2] if len(ins) > 2 and ins[2] else None
        if training is not None and (
            training not in consts or bool(np.asarray(consts[training]).any())
        ):
            raise UnsupportedModelError(
                f"{label}: Dropout in training mode (or with a training_mode that is not a "
                "constant false) drops random values at run time"
            )
        if int(attrs.get("is_test", 1)) == 0:
            raise UnsupportedModelError(f"{label}: Dropout with is_test=0 drops random values")
    elif op == "BatchNormalization":
        if int(attrs.get("training_mode", 0)) or len([o for o in node.output if o]) > 1:
            raise UnsupportedModelError(
                f"{label}: BatchNormalization in training mode normalises by batch statistics"
            )
        if int(attrs.get("is_test", 1)) == 0 or int(attrs.get("spatial", 1)) != 1:
            raise UnsupportedModelError(
                f"{label}: BatchNormalization with is_test=0 or spatial=0 is not supported"
            )
    elif op == "Reshape":
        shape = consts.get(ins[1]) if len(ins) > 1 else None
        if int(attrs.get("allowzero", 0)) and (shape is None or (np.asarray(shape) == 0).any()):
            raise UnsupportedModelError(f"{label}: Reshape with allowzero=1 and a 0 dimension")
    elif op == "LeakyRelu":
        alpha = float(attrs.get("alpha", 0.01))
        if not 0.0 <= alpha <= 1.0:
            raise UnsupportedModelError(
                f"{label}: LeakyRelu alpha {alpha} outside [0, 1] is not supported"
            )


def _attr(a: Any) -> Any:
    from onnx import helper, numpy_helper

    v = helper.get_attribute_value(a)
    if hasattr(v, "dims") and hasattr(v, "data_type"):
        return numpy_helper.to_array(v)
    return v
