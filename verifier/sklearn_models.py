"""scikit-learn estimators in verifier form (estimators.py says what is kept exactly).

Trees, random forests, extra trees and gradient boosting read float32 features
(``X[:, f] <= threshold`` with a float64 threshold); HistGradientBoosting reads
float64. Linear models and MLPs become networks. A ``Pipeline`` may put
StandardScaler, MinMaxScaler, MaxAbsScaler or RobustScaler steps in front: a network
takes them as its first affine map; a tree ensemble takes them into its thresholds
(then float64: ``x <= (boundary - offset) / scale``, equal to the pipeline except for
rows within a rounding step of a threshold).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlskip.errors import UnsupportedModelError

from .estimators import Converted, binary_logits, feature_names, unfitted
from .layers import Affine, ReLU, Sigmoid, Tanh
from .network import Network
from .trees import TreeEnsemble, concatenate, float32_at_most, split_boundary, tree_from_arrays

SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")


def from_sklearn(obj: Any, input_names: Any = None) -> Converted:
    name = type(obj).__name__
    if name == "Pipeline":
        return _pipeline(obj, input_names)
    d = _num_features(obj)
    names = feature_names(obj, d, input_names)
    model = _model(obj, names)
    predict = _predict_function(obj)
    return Converted(model, predict, name)


def _num_features(obj: Any) -> int:
    d = getattr(obj, "n_features_in_", None)
    if d is None:
        raise unfitted(type(obj).__name__)
    return int(d)


def _predict_function(obj: Any):
    """The estimator's own output rows as SQL sees them: probabilities or one value."""
    from sklearn.base import is_classifier

    if is_classifier(obj):
        return lambda x: np.asarray(obj.predict_proba(x), dtype=np.float64)
    return lambda x: np.asarray(obj.predict(x), dtype=np.float64).reshape(len(x), -1)


def _model(obj: Any, names: tuple[str, ...]) -> Network | TreeEnsemble:
    name = type(obj).__name__
    if name in ("DecisionTreeRegressor", "DecisionTreeClassifier", "ExtraTreeRegressor",
                "ExtraTreeClassifier"):  # fmt: skip
        return _forest([obj], obj, names)
    if name in ("RandomForestRegressor", "RandomForestClassifier", "ExtraTreesRegressor",
                "ExtraTreesClassifier"):  # fmt: skip
        if not hasattr(obj, "estimators_"):
            raise unfitted(name)
        return _forest(obj.estimators_, obj, names)
    if name in ("GradientBoostingRegressor", "GradientBoostingClassifier"):
        return _gradient_boosting(obj, names)
    if name in ("HistGradientBoostingRegressor", "HistGradientBoostingClassifier"):
        return _hist_gradient_boosting(obj, names)
    if name in ("MLPRegressor", "MLPClassifier"):
        return _mlp(obj, names)
    if type(obj).__module__.startswith("sklearn.linear_model") and hasattr(obj, "coef_"):
        return _linear(obj, names)
    raise UnsupportedModelError(
        f"scikit-learn estimator {name} is not supported; supported: decision trees, random "
        "forests, extra trees, (Hist)GradientBoosting, linear models, MLPs, and Pipelines of "
        f"{', '.join(SCALERS)} in front of one of them"
    )


# ---------------------------------------------------------------------- trees
def _sk_tree(tree: Any, value: np.ndarray) -> dict:
    """A fitted ``tree_`` as a node dict: float32 features, ``x <= t`` in double."""
    left, right = tree.children_left, tree.children_right
    missing = getattr(tree, "missing_go_to_left", np.zeros(len(left), dtype=bool))
    return tree_from_arrays(
        tree.feature, float32_at_most(tree.threshold), False, left, right,
        np.asarray(missing, dtype=bool), value,
    )  # fmt: skip


def _forest(trees: list, obj: Any, names: tuple[str, ...]) -> TreeEnsemble:
    """Averaged trees: regressor values, or classifier class frequencies."""
    from sklearn.base import is_classifier

    classifier = is_classifier(obj)
    if getattr(obj, "n_outputs_", 1) != 1 and classifier:
        raise UnsupportedModelError(f"{type(obj).__name__} with several outputs is not supported")
    parts = []
    for est in trees:
        v = est.tree_.value  # [nodes, outputs, classes]
        if classifier:
            v = v[:, 0, :]
            total = v.sum(axis=1, keepdims=True)
            v = np.divide(v, total, out=np.zeros_like(v), where=total > 0)
        else:
            v = v[:, :, 0]
        parts.append(_sk_tree(est.tree_, v / len(trees)))
    k = parts[0]["value"].shape[1]
    return concatenate(parts, base=np.zeros(k), num_features=len(names), input_names=names)


def _gradient_boosting(obj: Any, names: tuple[str, ...]) -> TreeEnsemble:
    name = type(obj).__name__
    if not hasattr(obj, "estimators_"):
        raise unfitted(name)
    init = obj.init_
    if not (init == "zero" or type(init).__name__ in ("DummyRegressor", "DummyClassifier")):
        raise UnsupportedModelError(
            f"{name} with init={type(init).__name__} is not supported (only the default "
            "constant or 'zero' initial model)"
        )
    base = np.asarray(obj._raw_predict_init(np.zeros((1, len(names)))), dtype=np.float64)[0]
    stages = obj.estimators_  # [stages, K]
    K = stages.shape[1]
    lr = float(obj.learning_rate)
    scale = 1.0
    final = None
    classifier = name.endswith("Classifier")
    if classifier and K == 1:  # binary: predict_proba is [1 - s(z), s(z)]
        loss = getattr(obj, "loss", "log_loss")
        scale = 2.0 if loss == "exponential" else 1.0  # exponential: s(2 z)
    parts = []
    for stage in stages:
        for j, est in enumerate(stage):
            v = est.tree_.value[:, 0, 0] * lr * scale
            out = np.zeros((len(v), 2 if classifier and K == 1 else K))
            col = 1 if classifier and K == 1 else j
            out[:, col] = v
            parts.append(_sk_tree(est.tree_, out))
    if classifier:
        final = "softmax"
        base = np.array([0.0, base[0] * scale]) if K == 1 else base
    return concatenate(parts, base=base, num_features=len(names), final=final, input_names=names)


def _hist_gradient_boosting(obj: Any, names: tuple[str, ...]) -> TreeEnsemble:
    name = type(obj).__name__
    if not hasattr(obj, "_predictors"):
        raise unfitted(name)
    classifier = name.endswith("Classifier")
    loss = type(obj._loss).__name__
    if not classifier and loss not in ("HalfSquaredError", "AbsoluteError", "PinballLoss",
                                       "HuberLoss"):  # fmt: skip
        raise UnsupportedModelError(
            f"{name} with loss {obj.loss!r} is not supported: its link (exp) is not a final "
            "op the verifier bounds"
        )
    baseline = np.asarray(obj._baseline_prediction, dtype=np.float64).reshape(-1)
    K = len(obj._predictors[0])
    binary = classifier and K == 1
    width = 2 if binary else K
    parts = []
    for stage in obj._predictors:
        for j, pred in enumerate(stage):
            nodes = pred.nodes
            if nodes["is_categorical"].any():
                raise UnsupportedModelError(f"{name}: categorical splits are not supported")
            leaf = nodes["is_leaf"].astype(bool)
            out = np.zeros((len(nodes), width))
            out[:, 1 if binary else j] = nodes["value"]
            parts.append(
                tree_from_arrays(
                    nodes["feature_idx"], nodes["num_threshold"], False,
                    np.where(leaf, -1, nodes["left"].astype(np.int64)),
                    np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    nodes["missing_go_to_left"].astype(bool), out,
                )
            )  # fmt: skip
    base = np.array([0.0, baseline[0]]) if binary else baseline
    return concatenate(
        parts, base=base, num_features=len(names), final="softmax" if classifier else None,
        precision="float64", input_names=names,
    )  # fmt: skip


# ---------------------------------------------------------------------- networks
def _linear(obj: Any, names: tuple[str, ...]) -> Network:
    from sklearn.base import is_classifier

    W = np.atleast_2d(np.asarray(obj.coef_, dtype=np.float64))
    b = np.atleast_1d(np.asarray(obj.intercept_, dtype=np.float64))
    if b.size == 1 and W.shape[0] > 1:
        b = np.repeat(b, W.shape[0])
    if not is_classifier(obj):
        return Network.from_steps([Affine(W, b)], None, names)
    if not hasattr(obj, "predict_proba"):
        raise UnsupportedModelError(
            f"{type(obj).__name__} has no predict_proba: a SQL classifier returns probabilities"
        )
    if W.shape[0] == 1:
        W, b = binary_logits(W, b)
    return Network.from_steps([Affine(W, b)], "softmax", names)


def _mlp(obj: Any, names: tuple[str, ...]) -> Network:
    if not hasattr(obj, "coefs_"):
        raise unfitted(type(obj).__name__)
    acts = {"relu": ReLU, "tanh": Tanh, "logistic": Sigmoid}
    steps: list = []
    layers = list(zip(obj.coefs_, obj.intercepts_, strict=True))
    for i, (W, b) in enumerate(layers):
        W, b = np.asarray(W, dtype=np.float64).T, np.asarray(b, dtype=np.float64)
        last = i == len(layers) - 1
        if last and obj.out_activation_ == "logistic":
            if W.shape[0] != 1:
                raise UnsupportedModelError("a multi-label MLPClassifier is not supported")
            W, b = binary_logits(W, b)
        steps.append(Affine(W, b))
        if not last and obj.activation != "identity":
            steps.append(acts[obj.activation]())
    finals = {"identity": None, "logistic": "softmax", "softmax": "softmax"}
    if obj.out_activation_ not in finals or (
        obj.activation not in acts and obj.activation != "identity"
    ):
        raise UnsupportedModelError(
            f"{type(obj).__name__} with output activation {obj.out_activation_!r} is not "
            "supported (identity, logistic or softmax)"
        )
    final = finals[obj.out_activation_]
    return Network.from_steps(steps, final, names)


# ---------------------------------------------------------------------- pipelines
def _scaler(step: Any, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``x * scale + offset`` of one fitted scaler step."""
    name = type(step).__name__
    ones, zeros = np.ones(d), np.zeros(d)
    if name == "StandardScaler":
        s = 1.0 / step.scale_ if step.scale_ is not None else ones
        mean = step.mean_ if step.mean_ is not None else zeros
        return s, -mean * s
    if name == "MinMaxScaler":
        return np.asarray(step.scale_, dtype=np.float64), np.asarray(step.min_, dtype=np.float64)
    if name == "MaxAbsScaler":
        return 1.0 / step.scale_, zeros
    if name == "RobustScaler":
        s = 1.0 / step.scale_ if step.scale_ is not None else ones
        c = step.center_ if step.center_ is not None else zeros
        return s, -c * s
    raise UnsupportedModelError(
        f"Pipeline step {name} is not supported; in front of a model only {', '.join(SCALERS)}"
    )


def _pipeline(pipe: Any, input_names: Any) -> Converted:
    steps = [s for _, s in pipe.steps if s is not None and s != "passthrough"]
    if not steps:
        raise UnsupportedModelError("the Pipeline has no estimator")
    last = steps[-1]
    d = _num_features(steps[0])
    names = feature_names(steps[0], d, input_names)
    scale, offset = np.ones(d), np.zeros(d)
    for step in steps[:-1]:
        s, o = _scaler(step, d)
        scale, offset = scale * s, offset * s + o
    model = _model(last, names)
    exact = True
    if isinstance(model, Network):
        first = Affine(np.diag(scale), offset)
        model = Network.from_steps([first, *model.fp_steps], model.final, names)
    elif len(steps) > 1:
        model = _fold_into_thresholds(model, scale, offset)
        exact = False
    return Converted(model, _predict_function(pipe), f"Pipeline({type(last).__name__})", exact)


def _fold_into_thresholds(ens: TreeEnsemble, scale: np.ndarray, offset: np.ndarray) -> TreeEnsemble:
    """Trees on ``x * scale + offset`` as float64 trees on ``x`` (scale > 0)."""
    if not (np.isfinite(scale).all() and (scale > 0).all() and np.isfinite(offset).all()):
        raise UnsupportedModelError("a scaler in front of trees needs positive, finite scales")
    inner = ens.feature >= 0
    f = np.where(inner, ens.feature, 0)
    edge = split_boundary(ens.precision, ens.left_max)  # last scaled value still going left
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.where(inner, (edge - offset[f]) / scale[f], 0.0)
    return TreeEnsemble(
        ens.feature, t, np.zeros(ens.num_nodes, bool), ens.left, ens.right, ens.missing_left,
        ens.value, ens.roots, ens.base, ens.num_features, ens.final, "float64", ens.input_names,
    )  # fmt: skip
