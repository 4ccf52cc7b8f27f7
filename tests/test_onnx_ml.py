"""ONNX-ML graphs from skl2onnx and onnxmltools registered in SQL: each is read, re-emitted
in canonical form, and then answers as the original graph does on ONNX Runtime, with
skipping equal to without."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pyarrow as pa
import pytest

import mlskip
from mlskip.errors import UnsupportedModelError

skl2onnx = pytest.importorskip("skl2onnx")
onnxmltools = pytest.importorskip("onnxmltools")
lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")

from onnx import TensorProto, helper  # noqa: E402
from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: E402
from sklearn import ensemble, linear_model, pipeline, preprocessing  # noqa: E402

from mlskip.verifier.trees import TreeEnsemble  # noqa: E402


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = np.c_[np.sort(rng.uniform(0, 100, n)), rng.normal(50, 20, n)]
    wave = np.sin(X[:, 0] / 10) + 0.1 * (X[:, 1] - 50) / 20
    return X, wave * X[:, 1] / 50, (wave > 0.3).astype(int), np.digitize(wave, [-0.3, 0.5])


CASES = {
    "skl2onnx RandomForestClassifier": (lambda: ensemble.RandomForestClassifier(5, max_depth=4), "c"),
    "skl2onnx ExtraTreesClassifier (3 classes)": (lambda: ensemble.ExtraTreesClassifier(5, max_depth=4), "3"),
    "skl2onnx GradientBoostingClassifier": (lambda: ensemble.GradientBoostingClassifier(n_estimators=8), "c"),
    "skl2onnx GradientBoostingClassifier (3 classes)": (lambda: ensemble.GradientBoostingClassifier(n_estimators=5), "3"),
    "skl2onnx RandomForestRegressor": (lambda: ensemble.RandomForestRegressor(5, max_depth=4), "r"),
    "skl2onnx GradientBoostingRegressor": (lambda: ensemble.GradientBoostingRegressor(n_estimators=8), "r"),
    "skl2onnx LogisticRegression": (lambda: linear_model.LogisticRegression(max_iter=300), "c"),
    "skl2onnx LogisticRegression (3 classes)": (lambda: linear_model.LogisticRegression(max_iter=300), "3"),
    "skl2onnx LinearRegression": (lambda: linear_model.LinearRegression(), "r"),
    "skl2onnx Pipeline(StandardScaler, RandomForestRegressor)": (
        lambda: pipeline.make_pipeline(preprocessing.StandardScaler(), ensemble.RandomForestRegressor(4, max_depth=4)), "r"),
    "skl2onnx Pipeline(MinMaxScaler, LogisticRegression)": (
        lambda: pipeline.make_pipeline(preprocessing.MinMaxScaler(), linear_model.LogisticRegression()), "c"),
    "onnxmltools LGBMClassifier": (lambda: lgb.LGBMClassifier(n_estimators=8, verbose=-1), "c"),
    "onnxmltools LGBMRegressor": (lambda: lgb.LGBMRegressor(n_estimators=8, verbose=-1), "r"),
    "onnxmltools XGBClassifier": (lambda: xgb.XGBClassifier(n_estimators=8, max_depth=3), "c"),
    "onnxmltools XGBRegressor": (lambda: xgb.XGBRegressor(n_estimators=8, max_depth=3), "r"),
}  # fmt: skip


def _convert(name: str, est, X) -> bytes:
    types = [("X", FloatTensorType([None, 2]))]
    if "LGBM" in name:
        return onnxmltools.convert_lightgbm(
            est, initial_types=types, zipmap=False
        ).SerializeToString()
    if "XGB" in name:
        return onnxmltools.convert_xgboost(est, initial_types=types).SerializeToString()
    return skl2onnx.to_onnx(est, X[:1].astype(np.float32)).SerializeToString()


def _original_scores(data: bytes, x: np.ndarray, classifier: bool) -> np.ndarray:
    """The original graph's probabilities or values, as ONNX Runtime computes them."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    outs = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})
    if not classifier:
        return np.asarray(outs[0], dtype=np.float64).reshape(len(x), -1)
    probs = outs[1]
    if isinstance(probs, list):  # ZipMap: a list of {label: probability}
        keys = sorted(probs[0])
        return np.array([[row[k] for k in keys] for row in probs])
    return np.asarray(probs, dtype=np.float64)


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_ml_graph_answers_as_the_original(name, tmp_path):
    make, kind = CASES[name]
    X, y, yc, y3 = _data()
    est = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, {"r": y, "c": yc, "3": y3}[kind])
        data = _convert(name, est, X)
    con, plain = mlskip.connect(), mlskip.connect(skipping=False)
    model = con.register_model("m", data, ["a", "b"])
    plain.register_model("m", data, ["a", "b"])
    rows = X.copy()
    if isinstance(model.network, TreeEnsemble):  # rows on split thresholds, +-1 float32 step
        ens = model.network
        rng = np.random.default_rng(1)
        inner = np.flatnonzero(ens.feature >= 0)[:100]
        extra = []
        for node in inner:
            t = np.float32(ens.threshold[node])
            for v in (np.nextafter(t, np.float32(-np.inf)), t, np.nextafter(t, np.float32(np.inf))):
                row = X[rng.integers(len(X))].copy()
                row[int(ens.feature[node])] = float(v)
                extra.append(row)
        rows = np.vstack([rows, extra])
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    path = str(tmp_path / "t.parquet")
    mlskip.write_parquet(pa.table({"a": rows[:, 0], "b": rows[:, 1]}), path, row_group_size=250,
                         hulls=[("a", "b")])  # fmt: skip
    classifier = kind != "r"
    want = _original_scores(data, rows, classifier)
    fetched = con.execute(f"SELECT m(a, b) FROM read_parquet('{path}')").fetchall()
    got = np.array([np.ravel(np.asarray(r[0], dtype=np.float64)) for r in fetched])
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4)
    if classifier:
        wheres = [f"m_class(a, b) = {k}" for k in range(model.num_outputs)]
    else:
        wheres = [f"m(a, b) {op} {float(np.quantile(want, q))!r}" for q in (0.1, 0.9, 1.0)
                  for op in (">", "<=")]  # fmt: skip
    for where in wheres:
        sql = f"SELECT count(*) FROM read_parquet('{path}') WHERE {where}"
        assert con.execute(sql).fetchone()[0] == plain.execute(sql).fetchone()[0], where


def _tree_graph(**overrides) -> bytes:
    attrs = dict(
        n_targets=1, nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"], nodes_values=[0.5, 0.0, 0.0],
        nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0], target_treeids=[0, 0],
        target_nodeids=[1, 2], target_ids=[0, 0], target_weights=[1.0, 2.0],
    )  # fmt: skip
    attrs.update(overrides)
    pre = attrs.pop("pre", None)
    nodes = []
    source = "x"
    if pre is not None:
        nodes.append(helper.make_node(pre, ["x"], ["x2"]))
        source = "x2"
    nodes.append(
        helper.make_node("TreeEnsembleRegressor", [source], ["y"], domain="ai.onnx.ml", **attrs)
    )
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 3)])  # fmt: skip
    model.ir_version = 8
    return model.SerializeToString()


def test_unsupported_onnx_ml_parts_are_named():
    con = mlskip.connect()
    con.register_model("ok", _tree_graph())  # the plain graph reads
    with pytest.raises(UnsupportedModelError, match="aggregate_function MAX"):
        con.register_model("a", _tree_graph(aggregate_function="MAX"))
    with pytest.raises(UnsupportedModelError, match="post_transform PROBIT"):
        con.register_model("b", _tree_graph(post_transform="PROBIT"))
    with pytest.raises(UnsupportedModelError, match="BRANCH_EQ"):
        con.register_model("c", _tree_graph(nodes_modes=["BRANCH_EQ", "LEAF", "LEAF"]))
    with pytest.raises(UnsupportedModelError, match="'Abs'"):
        con.register_model("d", _tree_graph(pre="Abs"))


def test_greater_than_modes_keep_missing_values_on_their_side():
    """BRANCH_GT / BRANCH_GTE are read as swapped BRANCH_LEQ / BRANCH_LT; NaN keeps the
    side its flag names (checked against ONNX Runtime at registration, and here)."""
    import onnxruntime as ort

    for mode in ("BRANCH_GT", "BRANCH_GTE"):
        for missing in (0, 1):
            data = _tree_graph(nodes_modes=[mode, "LEAF", "LEAF"],
                               nodes_missing_value_tracks_true=[missing, 0, 0])  # fmt: skip
            model = mlskip.connect().register_model("m", data)
            x = np.array([[0.5], [np.nextafter(np.float32(0.5), np.float32(1))], [0.0], [np.nan]])
            want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
                None, {"x": x.astype(np.float32)})[0]  # fmt: skip
            assert np.array_equal(model.network.evaluate(x), want.astype(np.float64))
    assert onnx  # the module is used to build graphs above


def _tree_ensemble5(ens, double: bool) -> bytes:
    """``ens`` as one ai.onnx.ml opset-5 ``TreeEnsemble`` node (interior nodes and
    leaves in separate arrays; a leaf per (leaf, output) pair would need one tree per
    output, so ``ens`` has one output)."""
    from onnx import numpy_helper

    feats, splits, modes, tids, fids, tleaf, fleaf, miss, roots = [], [], [], [], [], [], [], [], []
    weights, targets = [], []
    bounds = list(ens.roots) + [ens.num_nodes]
    for t in range(ens.num_trees):
        a, b = bounds[t], bounds[t + 1]
        index = {}
        for i in range(a, b):  # interior nodes first, leaves apart
            if ens.feature[i] >= 0:
                index[i] = ("node", len(feats) + len(index))
        for i in range(a, b):
            if ens.feature[i] < 0:
                index[i] = ("leaf", len(weights))
                weights.append(float(ens.value[i, 0]))
                targets.append(0)
        inner = [i for i in range(a, b) if ens.feature[i] >= 0]
        if not inner:  # one leaf: a node whose branches both name it
            roots.append(len(feats))
            feats.append(0), splits.append(0.0), modes.append(0), miss.append(0)
            tids.append(index[a][1]), fids.append(index[a][1]), tleaf.append(1), fleaf.append(1)
            continue
        roots.append(index[a][1])
        for i in inner:
            feats.append(int(ens.feature[i]))
            splits.append(float(ens.threshold[i]))
            modes.append(1 if ens.strict[i] else 0)
            miss.append(int(ens.missing_left[i]))
            for _kind, child, ids, leaf in (
                ("t", ens.left[i], tids, tleaf),
                ("f", ens.right[i], fids, fleaf),
            ):
                ids.append(index[int(child)][1])
                leaf.append(int(index[int(child)][0] == "leaf"))
    dtype = np.float64 if double else np.float32
    node = helper.make_node(
        "TreeEnsemble", ["x"], ["y"], domain="ai.onnx.ml", n_targets=1, aggregate_function=1,
        post_transform=0, tree_roots=roots, nodes_featureids=feats,
        nodes_splits=numpy_helper.from_array(np.array(splits, dtype)),
        nodes_modes=numpy_helper.from_array(np.array(modes, np.uint8)),
        nodes_truenodeids=tids, nodes_falsenodeids=fids, nodes_trueleafs=tleaf,
        nodes_falseleafs=fleaf, nodes_missing_value_tracks_true=miss, leaf_targetids=targets,
        leaf_weights=numpy_helper.from_array(np.array(weights, dtype)),
    )  # fmt: skip
    elem = TensorProto.DOUBLE if double else TensorProto.FLOAT
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", elem, ["N", ens.num_inputs])],
        [helper.make_tensor_value_info("y", elem, ["N", 1])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid("ai.onnx.ml", 5)])  # fmt: skip
    model.ir_version = 10
    return model.SerializeToString()


@pytest.mark.parametrize("double", [False, True])
def test_tree_ensemble_opset5_reads_as_onnx_runtime_runs_it(double):
    """ai.onnx.ml opset 5's ``TreeEnsemble`` (leaves apart from interior nodes, one-leaf
    trees as a node naming one leaf twice) registers, answers as the original graph, and
    is bounded like any tree ensemble."""
    import onnxruntime as ort

    from mlskip.testing.random_cases import random_ensemble

    rng = np.random.default_rng(8)
    ens = random_ensemble(rng, 2, 1, rng.normal(size=(64, 2)) * 10)
    ens = type(ens)(ens.feature, ens.threshold.astype(np.float64 if double else np.float32),
                    ens.strict, ens.left, ens.right, ens.missing_left, ens.value, ens.roots,
                    ens.base * 0, 2, None, "float64" if double else "float32")  # fmt: skip
    data = _tree_ensemble5(ens, double)
    model = mlskip.connect().register_model("m", data)
    assert isinstance(model.network, TreeEnsemble)
    x = rng.normal(size=(500, 2)) * 10
    t = ens.threshold[ens.feature >= 0]
    x[:200, 0] = rng.choice(t, 200)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x.astype(np.float64 if double else np.float32)})[0]
    assert np.allclose(model.network.evaluate(x), want, rtol=1e-5, atol=1e-5)
