"""ONNX-ML graphs (skl2onnx, onnxmltools) as the canonical graphs SQL runs and the
verifier bounds.

A graph with ``ai.onnx.ml`` operators is read as one chain from its input: an optional
``Cast``, an optional ``Scaler``, then ``TreeEnsembleRegressor``,
``TreeEnsembleClassifier``, ``LinearRegressor`` or ``LinearClassifier``, then what
reads its scores (``Normalizer``, ``ZipMap``, ``Cast``, ``Identity``). Its reading
(a ``TreeEnsemble`` or a ``Network``) is re-emitted in canonical form (one input
``[N, d]``, one output ``[N, k]``: a classifier's probabilities, whose first maximum is
its class) and kept only if ONNX Runtime gives the same outputs for both graphs on probe
rows at every split threshold and one grid step either side of it. Where the operators
leave a choice (the two-class form of ``TreeEnsembleClassifier`` with weights on one
class), each reading is tried and the one ONNX Runtime agrees with is kept; if none
agrees the model is refused, naming the operator. A ``Scaler`` in front of trees is
folded into their thresholds exactly: the largest input whose scaled float32 value still
goes left, found by bisection over float32 values with the Scaler's own arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlskip.errors import ModelInputError, UnsupportedModelError
from mlskip.verifier.estimators import Converted
from mlskip.verifier.layers import Affine
from mlskip.verifier.network import Network
from mlskip.verifier.tree_onnx import ML_DOMAIN, _attrs, read_tree_ensemble5, read_tree_node
from mlskip.verifier.trees import TreeEnsemble, concatenate

MODEL_OPS = (
    "TreeEnsembleRegressor",
    "TreeEnsembleClassifier",
    "TreeEnsemble",
    "LinearRegressor",
    "LinearClassifier",
)
AFTER_OPS = ("Normalizer", "ZipMap", "Cast", "Identity")


def has_ml_ops(model: Any) -> bool:
    return any(n.domain == ML_DOMAIN for n in model.graph.node)


def ml_graph_onnx(data: bytes, inputs: Sequence[str] | None, where: str) -> bytes:
    """``data`` itself without ONNX-ML operators; else its checked canonical form."""
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # _onnx_signature reports an invalid model
        return data
    if not has_ml_ops(model):
        return data
    from mlskip.udf.estimator_onnx import check_conversion, model_onnx

    readings, scores, names = _read(model, inputs, where)
    reference = _scores_graph(model, scores)
    problems = []
    for reading in readings:
        candidate = model_onnx(reading)
        try:
            check_conversion(Converted(reading, _runner(reference), f"{where}"), candidate)
        except ModelInputError as error:
            problems.append(str(error))
            continue
        return candidate
    raise UnsupportedModelError(
        f"{where}: its ONNX-ML graph could not be read as ONNX Runtime runs it "
        f"({problems[0] if problems else 'no reading'})"
    )


def _runner(data: bytes):
    """The original graph's scores on ONNX Runtime, for float64 probe rows."""
    from mlskip.udf.model import _session

    session = _session(data)
    feed = session.get_inputs()[0]
    dtype = np.float64 if feed.type == "tensor(double)" else np.float32

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {feed.name: x.astype(dtype)})[0], dtype=np.float64)

    return run


def _scores_graph(model: Any, scores: str) -> bytes:
    """The original graph with the scores tensor as its only output (of the element type
    ONNX's shape inference gives it: TreeEnsemble on doubles returns doubles)."""
    import onnx
    from onnx import helper

    elem = onnx.TensorProto.FLOAT
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for info in [*inferred.graph.value_info, *inferred.graph.output]:
            if info.name == scores and info.type.tensor_type.elem_type:
                elem = info.type.tensor_type.elem_type
    except Exception:  # inference is a hint here; ONNX Runtime reports a wrong type
        pass
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.output[:]
    copy.graph.output.append(helper.make_tensor_value_info(scores, elem, None))
    return copy.SerializeToString()


def _read(model: Any, given: Sequence[str] | None, where: str):
    """Candidate readings, the name of the scores tensor to compare, input names."""
    from onnx import TensorProto

    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelInputError(f"{where}: a SQL model needs one input tensor, found {len(inputs)}")
    x = inputs[0]
    dims = x.type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].dim_value:
        raise ModelInputError(f"{where}: input {x.name!r} must have shape [N, fixed width]")
    d = int(dims[1].dim_value)
    elem = x.type.tensor_type.elem_type
    if elem not in (TensorProto.FLOAT, TensorProto.DOUBLE):
        raise UnsupportedModelError(f"{where}: input {x.name!r} must be float or double")
    precision = "float64" if elem == TensorProto.DOUBLE else "float32"
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    current = x.name
    prefix: list[tuple[str, np.ndarray]] = []  # elementwise ops on the input, in order
    consts = _constants(graph)
    chain = []
    while True:
        nodes = consumers.get(current, [])
        if len(nodes) != 1:
            raise UnsupportedModelError(
                f"{where}: tensor {current!r} feeds {len(nodes)} nodes; only a chain of "
                f"ONNX-ML operators ({', '.join(MODEL_OPS)}) is supported"
            )
        node = nodes[0]
        chain.append(node)
        if node.op_type == "Cast" and not any(c.op_type in MODEL_OPS for c in chain[:-1]):
            to = _attrs(node).get("to")
            if to == TensorProto.FLOAT:
                precision = "float32"
            elif to != TensorProto.DOUBLE:
                raise UnsupportedModelError(f"{where}: Cast of the input to type {to}")
        elif node.op_type == "Scaler" and node.domain == ML_DOMAIN:
            a = _attrs(node)
            prefix.append(("Sub", _per_feature(a.get("offset", [0.0]), d, where)))
            prefix.append(("Mul", _per_feature(a.get("scale", [1.0]), d, where)))
            precision = _prefix_precision(precision, where)
        elif node.op_type in ("Sub", "Add", "Mul", "Div") and not node.domain:
            if node.input[0] != current or node.input[1] not in consts:
                raise UnsupportedModelError(
                    f"{where}: ONNX op {node.op_type!r} before the model must take the input "
                    "first and a constant second"
                )
            prefix.append((node.op_type, _per_feature(consts[node.input[1]], d, where)))
            precision = _prefix_precision(precision, where)
        elif node.op_type in MODEL_OPS and node.domain == ML_DOMAIN:
            break
        else:
            raise UnsupportedModelError(
                f"{where}: ONNX op {node.op_type!r} ({node.domain or 'ai.onnx'}) before the "
                "model is not supported (only Cast, Scaler, and Sub/Add/Mul/Div by constants)"
            )
        current = node.output[0]
    op = node.op_type
    scores = node.output[1] if op.endswith("Classifier") else node.output[0]
    after = scores
    while consumers.get(after):
        nxt = consumers[after]
        if len(nxt) != 1 or nxt[0].op_type not in AFTER_OPS:
            break
        if nxt[0].op_type in ("ZipMap", "Cast"):
            break
        if nxt[0].op_type == "Normalizer" and _attrs(nxt[0]).get("norm") != "L1":
            raise UnsupportedModelError(
                f"{where}: Normalizer with norm {_attrs(nxt[0]).get('norm')}"
            )
        after = nxt[0].output[0]
    names = tuple(given) if given is not None else _stored_names(model, d)
    if op.startswith("TreeEnsemble"):
        readings = _tree_readings(node, precision, d, names, prefix, where)
    else:
        readings = [_linear_reading(node, d, names, prefix, where)]
    return readings, after, names


def _constants(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and not node.domain:
            value = _attrs(node).get("value")
            if value is not None:
                out[node.output[0]] = np.asarray(value)
    return out


def _per_feature(value: Any, d: int, where: str) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.size not in (1, d):
        raise UnsupportedModelError(f"{where}: a constant of {v.size} values for {d} inputs")
    return np.broadcast_to(v, (d,)).copy()


def _prefix_precision(precision: str, where: str) -> str:
    if precision == "float64":
        raise UnsupportedModelError(
            f"{where}: arithmetic on double inputs before the model is not supported (cast "
            "them to float)"
        )
    return "float32"


def _affine(prefix: list[tuple[str, np.ndarray]], d: int) -> tuple[np.ndarray, np.ndarray]:
    """The prefix ops as ``x * scale + offset`` (exact arithmetic)."""
    scale, offset = np.ones(d), np.zeros(d)
    for op, c in prefix:
        if op == "Add":
            offset = offset + c
        elif op == "Sub":
            offset = offset - c
        elif op == "Mul":
            scale, offset = scale * c, offset * c
        else:
            scale, offset = scale / c, offset / c
    return scale, offset


def _stored_names(model: Any, d: int) -> tuple[str, ...]:
    import json

    props = {p.key: p.value for p in model.metadata_props}
    try:
        names = tuple(json.loads(props["mlskip.input_columns"]))
        if len(names) == d:
            return names
    except (KeyError, ValueError, TypeError):
        pass
    return tuple(f"x{i}" for i in range(d))


def _tree_readings(node, precision, d, names, prefix, where) -> list[TreeEnsemble]:
    what = f"{where}: ONNX node {node.name or node.op_type!r} ({node.op_type})"
    reader = read_tree_ensemble5 if node.op_type == "TreeEnsemble" else read_tree_node
    trees, base, k, aggregate, post, labels = reader(node, precision, where)
    if aggregate not in ("SUM", "AVERAGE"):
        raise UnsupportedModelError(f"{what}: aggregate_function {aggregate} is not supported")
    finals = {"NONE": None, "LOGISTIC": "sigmoid", "SOFTMAX": "softmax"}
    if post not in finals:
        raise UnsupportedModelError(f"{what}: post_transform {post} is not supported")
    if aggregate == "AVERAGE":
        for t in trees:
            t["value"] = t["value"] / len(trees)
    final = finals[post]
    readings = []
    used = np.flatnonzero(np.any([np.abs(t["value"]).sum(axis=0) > 0 for t in trees], axis=0))
    if labels is not None and k == 2 and len(used) <= 1:
        # ONNX Runtime's two-class form: one score s, then [1 - s, s] or [-s, s]
        c = int(used[0]) if len(used) else 1
        s_trees = [dict(t, value=t["value"][:, [c]]) for t in trees]
        s_base = base[0] if len(base) == 1 else base[c]
        for first, sign in ((1.0, -1.0), (0.0, -1.0)):
            parts = [dict(t, value=np.c_[sign * t["value"], t["value"]]) for t in s_trees]
            b = np.array([first + sign * s_base, s_base])
            readings.append((parts, b))
    else:
        if len(base) != k:
            raise UnsupportedModelError(f"{what}: {len(base)} base values for {k} outputs")
        readings.append((trees, base))
    out = []
    for parts, b in readings:
        ens = concatenate(
            parts, base=b, num_features=d, final=final, precision=precision, input_names=names
        )
        if prefix:
            ens = _fold_prefix(ens, prefix, what)
        out.append(ens)
    return out


def _linear_reading(node, d, names, prefix, where) -> Network:
    what = f"{where}: ONNX node {node.name or node.op_type!r} ({node.op_type})"
    a = _attrs(node)
    coef = np.asarray(a.get("coefficients", []), dtype=np.float64)
    intercepts = np.asarray(a.get("intercepts", []), dtype=np.float64)
    post = str(a.get("post_transform", "NONE"))
    if coef.size % d:
        raise UnsupportedModelError(f"{what}: {coef.size} coefficients for {d} inputs")
    W = coef.reshape(-1, d)
    b = intercepts if intercepts.size == W.shape[0] else np.zeros(W.shape[0])
    finals = {"NONE": None, "LOGISTIC": "sigmoid", "SOFTMAX": "softmax"}
    if post not in finals:
        raise UnsupportedModelError(f"{what}: post_transform {post} is not supported")
    steps: list = []
    if prefix:
        scale, offset = _affine(prefix, d)
        steps.append(Affine(np.diag(scale), offset))
    steps.append(Affine(W, b))
    if node.op_type == "LinearClassifier" and W.shape[0] == 1:
        raise UnsupportedModelError(f"{what}: a one-row LinearClassifier is not supported")
    return Network.from_steps(steps, finals[post], names)


def _ordinal(x: np.ndarray) -> np.ndarray:
    """float32 values as integers in the same order."""
    i = x.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def _from_ordinal(i: np.ndarray) -> np.ndarray:
    bits = np.where(i < 0, (-i) | 0x80000000, i).astype(np.int64)
    return (bits & 0xFFFFFFFF).astype(np.uint32).view(np.float32)


def _fold_prefix(ens: TreeEnsemble, prefix, what) -> TreeEnsemble:
    """Trees on the float32 prefix ops of ``x`` as float32 trees on ``x``: per split,
    the largest float32 ``x`` whose transformed value still goes left."""
    for op, c in prefix:
        if not np.isfinite(c).all() or (op in ("Mul", "Div") and not (c > 0).all()):
            raise UnsupportedModelError(
                f"{what}: arithmetic in front of trees needs finite constants and positive "
                "factors (an increasing map)"
            )
    inner = np.flatnonzero(ens.feature >= 0)
    f = ens.feature[inner]
    t = ens.left_max[inner].astype(np.float32)
    ops = [(op, c[f].astype(np.float32)) for op, c in prefix]
    apply = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}

    def left(x32: np.ndarray) -> np.ndarray:
        v = x32
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for op, c in ops:
                v = apply[op](v, c).astype(np.float32)
            return v <= t

    lo = np.full(len(inner), _ordinal(np.array([-np.inf]))[0])  # goes left (or nothing does)
    hi = np.full(len(inner), _ordinal(np.array([np.inf]))[0])
    nothing = ~left(_from_ordinal(lo))
    everything = left(_from_ordinal(hi))
    for _ in range(34):  # invariant: lo goes left, hi does not
        mid = (lo + hi) // 2
        go = left(_from_ordinal(mid))
        lo, hi = np.where(go, mid, lo), np.where(go, hi, mid)
    tau = _from_ordinal(lo).astype(np.float64)
    tau = np.where(nothing, -np.inf, np.where(everything, np.inf, tau))
    threshold = ens.threshold.copy()
    threshold[inner] = np.where(np.isfinite(tau), tau, np.sign(tau) * np.finfo(np.float32).max)
    strict = ens.strict.copy()
    strict[inner] = False
    # nothing goes left: x <= -max still lets -inf through, so make it x < -max
    strict[inner[nothing]] = True
    return TreeEnsemble(
        ens.feature, threshold, strict, ens.left, ens.right, ens.missing_left, ens.value,
        ens.roots, ens.base, ens.num_features, ens.final, "float32", ens.input_names,
    )  # fmt: skip
