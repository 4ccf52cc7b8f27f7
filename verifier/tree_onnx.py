"""Tree ensembles as ONNX: the canonical graph the SQL function runs, and reading it back.

The canonical graph is one ``ai.onnx.ml`` ``TreeEnsembleRegressor`` (aggregate SUM,
no post-transform, one target per output) on the input ``[N, d]`` (FLOAT for
float32 ensembles, DOUBLE for float64 ones, whose thresholds and leaf values are then
stored as double tensors), followed by a standard ``Sigmoid`` or ``Softmax`` node for
the final link. The verifier's ``TreeEnsemble`` is read back from those bytes, so it
bounds exactly what ONNX Runtime evaluates. ``read_tree_graph`` also reads graphs
written by skl2onnx and onnxmltools (``TreeEnsembleRegressor`` and
``TreeEnsembleClassifier`` with SUM/AVERAGE, NONE/LOGISTIC/SOFTMAX, ``ZipMap``);
udf.model re-emits those in canonical form and checks both on ONNX Runtime.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mlskip.errors import UnsupportedModelError

from .trees import TreeEnsemble

ML_DOMAIN = "ai.onnx.ml"
_SWAPPED = {"BRANCH_GT": "BRANCH_LEQ", "BRANCH_GTE": "BRANCH_LT"}


def to_onnx(ens: TreeEnsemble, opset: int = 17) -> bytes:
    """The canonical ONNX graph of ``ens`` (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    double = ens.precision == "float64"
    tree_ids, node_ids, features, modes, values = [], [], [], [], []
    true_ids, false_ids, missing = [], [], []
    t_tree, t_node, t_ids, t_weights = [], [], [], []
    roots = list(ens.roots) + [ens.num_nodes]
    k = ens.num_outputs
    for t in range(ens.num_trees):
        start, stop = int(roots[t]), int(roots[t + 1])
        for i in range(start, stop):
            local = i - start
            tree_ids.append(t)
            node_ids.append(local)
            if ens.feature[i] < 0:
                features.append(0)
                modes.append("LEAF")
                values.append(0.0)
                true_ids.append(0)
                false_ids.append(0)
                missing.append(0)
                row = ens.value[i]
                targets = np.flatnonzero(row) if row.any() else np.array([0])
                for j in targets:
                    t_tree.append(t)
                    t_node.append(local)
                    t_ids.append(int(j))
                    t_weights.append(float(row[j]))
            else:
                features.append(int(ens.feature[i]))
                modes.append("BRANCH_LT" if ens.strict[i] else "BRANCH_LEQ")
                values.append(float(ens.threshold[i]))
                true_ids.append(int(ens.left[i]) - start)
                false_ids.append(int(ens.right[i]) - start)
                missing.append(int(ens.missing_left[i]))
    attrs: dict[str, Any] = dict(
        n_targets=k,
        nodes_treeids=tree_ids,
        nodes_nodeids=node_ids,
        nodes_featureids=features,
        nodes_modes=modes,
        nodes_truenodeids=true_ids,
        nodes_falsenodeids=false_ids,
        nodes_missing_value_tracks_true=missing,
        target_treeids=t_tree,
        target_nodeids=t_node,
        target_ids=t_ids,
        aggregate_function="SUM",
        post_transform="NONE",
    )
    if double:
        attrs["nodes_values_as_tensor"] = numpy_helper.from_array(np.array(values, np.float64))
        attrs["target_weights_as_tensor"] = numpy_helper.from_array(np.array(t_weights, np.float64))
        attrs["base_values_as_tensor"] = numpy_helper.from_array(ens.base.astype(np.float64))
    else:
        attrs["nodes_values"] = np.array(values, np.float32).tolist()
        attrs["target_weights"] = np.array(t_weights, np.float32).tolist()
        attrs["base_values"] = ens.base.astype(np.float32).tolist()
    nodes = [
        helper.make_node(
            "TreeEnsembleRegressor", ["input"], ["scores"], name="trees", domain=ML_DOMAIN, **attrs
        )
    ]
    cur = "scores"
    if ens.final is not None:
        op = "Softmax" if ens.final == "softmax" else "Sigmoid"
        kw = {"axis": -1} if op == "Softmax" else {}
        nodes.append(helper.make_node(op, [cur], ["final"], name="final", **kw))
        cur = "final"
    nodes.append(helper.make_node("Identity", [cur], ["output"], name="out"))
    in_type = TensorProto.DOUBLE if double else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "mlskip_trees",
        [helper.make_tensor_value_info("input", in_type, ["N", ens.num_inputs])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", k])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(ML_DOMAIN, 3)]
    )
    model.ir_version = 8
    helper.set_model_props(model, {"mlskip.input_columns": json.dumps(list(ens.input_names))})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def has_tree_ops(graph: Any) -> bool:
    """Whether an ONNX graph holds a tree-ensemble operator."""
    ops = ("TreeEnsembleRegressor", "TreeEnsembleClassifier", "TreeEnsemble")
    return any(n.domain == ML_DOMAIN and n.op_type in ops for n in graph.node)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper, numpy_helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if a.type == a.TENSOR:
            v = numpy_helper.to_array(v)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _listed(attrs: dict[str, Any], name: str, dtype: Any) -> np.ndarray:
    """An attribute as an array, from its ``_as_tensor`` form when present."""
    if name + "_as_tensor" in attrs:
        return np.asarray(attrs[name + "_as_tensor"], dtype=np.float64).reshape(-1)
    v = attrs.get(name, [])
    return np.asarray([x.decode() if isinstance(x, bytes) else x for x in v], dtype=dtype)


def read_tree_node(
    node: Any, precision: str, where: str
) -> tuple[list[dict], np.ndarray, int, str, str, np.ndarray | None]:
    """The trees of one ``TreeEnsembleRegressor``/``TreeEnsembleClassifier`` node.

    Returns per-tree node dicts (trees.concatenate's form, children after parents),
    the base values, the number of targets, the aggregate function, the post
    transform, and the class labels (classifiers; None for regressors).
    """
    a = _attrs(node)
    op = node.op_type
    what = f"{where}: ONNX node {node.name or op!r} ({op})"
    classifier = op == "TreeEnsembleClassifier"
    if classifier:
        labels = a.get("classlabels_int64s")
        if labels is None or not len(labels):
            strings = a.get("classlabels_strings")
            if strings is None:
                raise UnsupportedModelError(f"{what} has no class labels")
            labels = [s.decode() if isinstance(s, bytes) else s for s in strings]
        labels = np.asarray(labels)
        k = len(labels)
        prefix = "class_"
    else:
        labels = None
        k = int(a.get("n_targets", 1))
        prefix = "target_"
    tree_ids = _listed(a, "nodes_treeids", np.int64)
    node_ids = _listed(a, "nodes_nodeids", np.int64)
    feats = _listed(a, "nodes_featureids", np.int64)
    modes = _listed(a, "nodes_modes", object)
    vals = _listed(a, "nodes_values", np.float64)
    true_ids = _listed(a, "nodes_truenodeids", np.int64)
    false_ids = _listed(a, "nodes_falsenodeids", np.int64)
    miss = _listed(a, "nodes_missing_value_tracks_true", np.int64)
    if not len(miss):
        miss = np.zeros(len(tree_ids), np.int64)
    lengths = {len(x) for x in (tree_ids, node_ids, feats, modes, vals, true_ids, false_ids, miss)}
    if len(lengths) != 1:
        raise UnsupportedModelError(f"{what}: its node attributes have different lengths")
    if precision == "float32":
        vals = vals.astype(np.float32).astype(np.float64)
    w_tree = _listed(a, prefix + "treeids", np.int64)
    w_node = _listed(a, prefix + "nodeids", np.int64)
    w_ids = _listed(a, prefix + "ids", np.int64)
    w_val = _listed(a, prefix + "weights", np.float64)
    if "base_values_as_tensor" in a or "base_values" in a:
        base = _listed(a, "base_values", np.float64)
    else:
        base = np.zeros(k)
    if len(base) != k and not (classifier and k == 2 and len(base) == 1):
        raise UnsupportedModelError(f"{what}: {len(base)} base values for {k} outputs")
    aggregate = str(a.get("aggregate_function", "SUM"))
    post = str(a.get("post_transform", "NONE"))
    unknown = sorted(
        set(a)
        - {
            "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
            "nodes_values_as_tensor", "nodes_truenodeids", "nodes_falsenodeids",
            "nodes_missing_value_tracks_true", "nodes_hitrates", "nodes_hitrates_as_tensor",
            prefix + "treeids", prefix + "nodeids", prefix + "ids", prefix + "weights",
            prefix + "weights_as_tensor", "base_values", "base_values_as_tensor", "n_targets",
            "aggregate_function", "post_transform", "classlabels_int64s",
            "classlabels_strings",
        }
    )  # fmt: skip
    if unknown:
        raise UnsupportedModelError(f"{what}: attribute {unknown[0]!r} is not supported")
    trees = []
    for t in np.unique(tree_ids):
        rows = np.flatnonzero(tree_ids == t)
        trees.append(
            _one_tree(
                int(t), rows, node_ids, feats, modes, vals, true_ids, false_ids, miss,
                (w_tree, w_node, w_ids, w_val), k, what,
            )
        )  # fmt: skip
    return trees, base, k, aggregate, post, labels


_AGGREGATE5 = {0: "AVERAGE", 1: "SUM", 2: "MIN", 3: "MAX"}
_POST5 = {0: "NONE", 1: "SOFTMAX", 2: "LOGISTIC", 3: "SOFTMAX_ZERO", 4: "PROBIT"}
_MODES5 = {0: "BRANCH_LEQ", 1: "BRANCH_LT", 2: "BRANCH_GTE", 3: "BRANCH_GT", 4: "BRANCH_EQ",
           5: "BRANCH_NEQ", 6: "BRANCH_MEMBER"}  # fmt: skip


def read_tree_ensemble5(
    node: Any, precision: str, where: str
) -> tuple[list[dict], np.ndarray, int, str, str, None]:
    """The trees of one ``TreeEnsemble`` node (ai.onnx.ml opset 5), as ``read_tree_node``
    returns them: interior nodes in ``nodes_*``, leaves in ``leaf_*``, each branch naming
    one or the other (``nodes_trueleafs`` / ``nodes_falseleafs``)."""
    a = _attrs(node)
    what = f"{where}: ONNX node {node.name or node.op_type!r} (TreeEnsemble)"
    known = {
        "aggregate_function", "post_transform", "tree_roots", "nodes_hitrates",
        "nodes_missing_value_tracks_true", "nodes_modes", "leaf_weights", "leaf_targetids",
        "nodes_falsenodeids", "n_targets", "nodes_trueleafs", "nodes_featureids",
        "nodes_splits", "nodes_falseleafs", "nodes_truenodeids", "membership_values",
    }  # fmt: skip
    unknown = sorted(set(a) - known)
    if unknown:
        raise UnsupportedModelError(f"{what}: attribute {unknown[0]!r} is not supported")
    k = int(a.get("n_targets", 1))
    feats = np.asarray(a.get("nodes_featureids", []), dtype=np.int64)
    modes = np.asarray(a.get("nodes_modes", []), dtype=np.int64).reshape(-1)
    splits = np.asarray(a.get("nodes_splits", []), dtype=np.float64).reshape(-1)
    if precision == "float32":
        splits = splits.astype(np.float32).astype(np.float64)
    true_ids = np.asarray(a.get("nodes_truenodeids", []), dtype=np.int64)
    false_ids = np.asarray(a.get("nodes_falsenodeids", []), dtype=np.int64)
    true_leaf = np.asarray(a.get("nodes_trueleafs", []), dtype=bool)
    false_leaf = np.asarray(a.get("nodes_falseleafs", []), dtype=bool)
    miss = np.asarray(a.get("nodes_missing_value_tracks_true", [0] * len(feats)), dtype=bool)
    weights = np.asarray(a.get("leaf_weights", []), dtype=np.float64).reshape(-1)
    targets = np.asarray(a.get("leaf_targetids", []), dtype=np.int64)
    n = len(feats)
    if not all(
        len(x) == n for x in (modes, splits, true_ids, false_ids, true_leaf, false_leaf, miss)
    ):
        raise UnsupportedModelError(f"{what}: its node attributes have different lengths")
    if len(weights) != len(targets) or (
        len(targets) and not (0 <= targets).all() & (targets < k).all()
    ):
        raise UnsupportedModelError(f"{what}: leaf weights and targets do not fit {k} outputs")
    trees = []
    for root in np.asarray(a.get("tree_roots", []), dtype=np.int64):
        out = {
            key: [] for key in ("feature", "threshold", "strict", "left", "right", "missing_left")
        }
        values: list[np.ndarray] = []
        order = [("node", int(root))]
        i = 0
        while i < len(order):
            kind, idx = order[i]
            if kind == "leaf":
                if not 0 <= idx < len(weights):
                    raise UnsupportedModelError(f"{what}: a branch names a missing leaf {idx}")
                v = np.zeros(k)
                v[targets[idx]] = weights[idx]
                for key, val in (("feature", -1), ("threshold", 0.0), ("strict", False),
                                 ("left", -1), ("right", -1), ("missing_left", False)):  # fmt: skip
                    out[key].append(val)
                values.append(v)
            else:
                if not 0 <= idx < n:
                    raise UnsupportedModelError(f"{what}: a branch names a missing node {idx}")
                mode = _MODES5.get(int(modes[idx]), str(modes[idx]))
                yes = ("leaf" if true_leaf[idx] else "node", int(true_ids[idx]))
                no = ("leaf" if false_leaf[idx] else "node", int(false_ids[idx]))
                m = bool(miss[idx])
                if mode in _SWAPPED:
                    yes, no, m = no, yes, not m
                    mode = _SWAPPED[mode]
                if mode not in ("BRANCH_LEQ", "BRANCH_LT"):
                    raise UnsupportedModelError(f"{what}: node mode {mode} is not supported")
                if yes == no:  # a one-leaf tree: both branches name the same leaf
                    order[i] = yes
                    continue
                out["feature"].append(int(feats[idx]))
                out["threshold"].append(float(splits[idx]))
                out["strict"].append(mode == "BRANCH_LT")
                out["left"].append(len(order))
                out["right"].append(len(order) + 1)
                out["missing_left"].append(m)
                values.append(np.zeros(k))
                order += [yes, no]
                if len(order) > 2 * (n + len(weights)) + 2:
                    raise UnsupportedModelError(f"{what}: its branches do not form trees")
            i += 1
        trees.append({**{key: np.array(v) for key, v in out.items()},
                      "value": np.array(values).reshape(-1, k)})  # fmt: skip
    aggregate = _AGGREGATE5.get(int(a.get("aggregate_function", 1)), "?")
    post = _POST5.get(int(a.get("post_transform", 0)), "?")
    return trees, np.zeros(k), k, aggregate, post, None


def _one_tree(t, rows, node_ids, feats, modes, vals, true_ids, false_ids, miss, weights, k, what):
    """One tree as a node dict in breadth-first order (children after parents)."""
    local = {int(node_ids[r]): r for r in rows}
    if len(local) != len(rows):
        raise UnsupportedModelError(f"{what}: tree {t} repeats a node id")
    w_tree, w_node, w_ids, w_val = weights
    mine = np.flatnonzero(w_tree == t)
    leaf_value: dict[int, np.ndarray] = {}
    for r in mine:
        j = int(w_ids[r])
        if not 0 <= j < k:
            raise UnsupportedModelError(f"{what}: tree {t} writes output {j} of {k}")
        leaf_value.setdefault(int(w_node[r]), np.zeros(k))[j] += w_val[r]
    # the root is the node no other node names as a child
    children = {int(true_ids[r]) for r in rows if modes[r] != "LEAF"}
    children |= {int(false_ids[r]) for r in rows if modes[r] != "LEAF"}
    roots = [n for n in local if n not in children]
    if len(roots) != 1:
        raise UnsupportedModelError(f"{what}: tree {t} has {len(roots)} roots")
    order, position = [roots[0]], {roots[0]: 0}
    out = {key: [] for key in ("feature", "threshold", "strict", "left", "right", "missing_left")}
    values = []
    i = 0
    while i < len(order):
        nid = order[i]
        if nid not in local:
            raise UnsupportedModelError(f"{what}: tree {t} names a missing node {nid}")
        r = local[nid]
        mode = str(modes[r])
        if mode == "LEAF":
            out["feature"].append(-1)
            out["threshold"].append(0.0)
            out["strict"].append(False)
            out["left"].append(-1)
            out["right"].append(-1)
            out["missing_left"].append(False)
            values.append(leaf_value.get(nid, np.zeros(k)))
        elif mode in ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GT", "BRANCH_GTE"):
            yes, no, m = int(true_ids[r]), int(false_ids[r]), bool(miss[r])
            if mode in _SWAPPED:  # x > t is "not x <= t": children swap, NaN keeps its side
                yes, no, m = no, yes, not m
                mode = _SWAPPED[mode]
            for c in (yes, no):
                if c in position:
                    raise UnsupportedModelError(f"{what}: tree {t} is not a tree (node {c})")
                position[c] = len(order)
                order.append(c)
            out["feature"].append(int(feats[r]))
            out["threshold"].append(float(vals[r]))
            out["strict"].append(mode == "BRANCH_LT")
            out["left"].append(position[yes])
            out["right"].append(position[no])
            out["missing_left"].append(m)
            values.append(np.zeros(k))
        else:
            raise UnsupportedModelError(f"{what}: node mode {mode} is not supported")
        i += 1
    if len(order) != len(rows):
        raise UnsupportedModelError(f"{what}: tree {t} has nodes unreachable from its root")
    return {**out, "value": np.array(values).reshape(len(order), k)}


def from_onnx(model: Any, input_names: Any = None, where: str = "model") -> TreeEnsemble:
    """The ``TreeEnsemble`` of a canonical graph (to_onnx's form)."""
    from .trees import concatenate

    graph = model.graph
    ops = [n for n in graph.node if n.op_type != "Identity"]
    if not ops or ops[0].op_type != "TreeEnsembleRegressor" or ops[0].domain != ML_DOMAIN:
        raise UnsupportedModelError(f"{where}: not a canonical tree-ensemble graph")
    final = None
    if len(ops) == 2 and ops[1].op_type in ("Sigmoid", "Softmax"):
        final = ops[1].op_type.lower()
        if final == "softmax":
            axis = _attrs(ops[1]).get("axis", -1)
            if axis not in (-1, 1):
                raise UnsupportedModelError(f"{where}: Softmax over axis {axis}")
    elif len(ops) != 1:
        raise UnsupportedModelError(
            f"{where}: ONNX op {ops[1].op_type!r} after the trees is not supported"
        )
    x = graph.input[0]
    elem = x.type.tensor_type.elem_type
    from onnx import TensorProto

    if elem not in (TensorProto.FLOAT, TensorProto.DOUBLE):
        raise UnsupportedModelError(f"{where}: tree input must be float or double")
    precision = "float64" if elem == TensorProto.DOUBLE else "float32"
    trees, base, k, aggregate, post, _ = read_tree_node(ops[0], precision, where)
    if aggregate != "SUM" or post != "NONE":
        raise UnsupportedModelError(f"{where}: not a canonical tree-ensemble graph")
    dims = x.type.tensor_type.shape.dim
    d = int(dims[1].dim_value) if len(dims) == 2 else 0
    return concatenate(
        trees,
        base=base,
        num_features=d,
        final=final,
        precision=precision,
        input_names=tuple(input_names or ()),
    )
