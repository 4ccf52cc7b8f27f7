"""XGBoost and LightGBM models in verifier form, read from their own model dumps.

XGBoost (``save_raw("json")``): float32 features, ``x < t`` goes left (``yes``),
a missing value goes ``default_left``; leaf values summed with the base margin (the
objective's link of ``base_score``). LightGBM (``dump_model()``): float64 features,
``x <= t`` goes left; with ``missing_type`` NaN a NaN goes ``default_left``, with
None it reads as 0.0. Both use the iterations their ``predict`` uses (the best
iteration after early stopping).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mlskip.errors import UnsupportedModelError

from .estimators import Converted, feature_names, unfitted
from .trees import concatenate, tree_from_arrays

_IDENTITY = ("reg:squarederror", "reg:squaredlogerror", "reg:absoluteerror",
             "reg:pseudohubererror", "reg:quantileerror", "binary:logitraw",
             "rank:pairwise", "rank:ndcg", "rank:map")  # fmt: skip
_LOGISTIC = ("binary:logistic", "reg:logistic")
_SOFTMAX = ("multi:softprob", "multi:softmax")


# ---------------------------------------------------------------------- XGBoost
def from_xgboost(obj: Any, input_names: Any = None) -> Converted:
    import xgboost as xgb

    name = type(obj).__name__
    wrapper = not isinstance(obj, xgb.Booster)
    try:
        booster = obj.get_booster() if wrapper else obj
    except Exception as error:  # NotFittedError and friends
        raise unfitted(name) from error
    raw = json.loads(bytes(booster.save_raw("json")))
    learner = raw["learner"]
    gb = learner["gradient_booster"]
    if gb["name"] != "gbtree":
        raise UnsupportedModelError(
            f"{name}: booster {gb['name']!r} is not supported (only 'gbtree'; DART drops "
            "trees at random while training and scales them at prediction)"
        )
    objective = learner["objective"]["name"]
    params = learner["learner_model_param"]
    d = int(params["num_feature"])
    num_class = max(int(params.get("num_class", "0")), 1)
    if int(params.get("num_target", "1")) > 1:
        raise UnsupportedModelError(f"{name}: multi-target models are not supported")
    base_score = np.atleast_1d(np.asarray(json.loads(params["base_score"]), dtype=np.float64))
    model = gb["model"]
    trees = model["trees"]
    info = np.asarray(model["tree_info"], dtype=np.int64)
    rounds = _xgb_rounds(obj, booster, wrapper)
    if rounds is not None:
        indptr = model.get("iteration_indptr")
        per_round = len(trees) // max(booster.num_boosted_rounds(), 1)
        keep = indptr[rounds] if indptr else rounds * per_round
        trees, info = trees[:keep], info[:keep]
    classifier = wrapper and hasattr(obj, "predict_proba") and "Classifier" in name
    if objective in _LOGISTIC:
        margin = _logit(base_score)
        link = "sigmoid"
    elif objective in _SOFTMAX:
        margin = base_score
        link = "softmax"
    elif objective in _IDENTITY:
        margin, link = base_score, None
    else:
        raise UnsupportedModelError(
            f"{name}: objective {objective!r} is not supported (its link is not one the "
            "verifier bounds: identity, logistic or softmax)"
        )
    k = num_class if link == "softmax" else 1
    margin = np.broadcast_to(margin, (k,)).astype(np.float64) if margin.size in (1, k) else None
    if margin is None:
        raise UnsupportedModelError(
            f"{name}: base_score {params['base_score']} does not fit {k} outputs"
        )
    binary = classifier and link == "sigmoid"
    width = 2 if binary else k
    parts = []
    for tree, cls in zip(trees, info, strict=True):
        if any(tree.get("split_type", [])) or tree.get("categories"):
            raise UnsupportedModelError(f"{name}: categorical splits are not supported")
        left = np.asarray(tree["left_children"], dtype=np.int64)
        cond = np.asarray(tree["split_conditions"], dtype=np.float64)
        cond32 = cond.astype(np.float32).astype(np.float64)
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise UnsupportedModelError(f"{name}: vector-leaf trees are not supported")
        value = np.zeros((len(left), width))
        value[:, 1 if binary else int(cls) if k > 1 else 0] = np.where(left < 0, cond32, 0.0)
        parts.append(
            tree_from_arrays(
                tree["split_indices"], cond32, True, left, tree["right_children"],
                np.asarray(tree["default_left"], dtype=bool), value,
            )
        )  # fmt: skip
    if not parts:
        raise UnsupportedModelError(f"{name} has no trees")
    base = np.array([0.0, margin[0]]) if binary else margin
    names = _xgb_names(obj, booster, d, input_names)
    ens = concatenate(
        parts, base=base, num_features=d, final="softmax" if binary else link,
        input_names=names,
    )  # fmt: skip
    return Converted(ens, _xgb_predict(obj, booster, wrapper, classifier, rounds), name)


def _logit(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def _xgb_rounds(obj: Any, booster: Any, wrapper: bool) -> int | None:
    """The boosting rounds ``predict`` uses: the best iteration's after early stopping."""
    if not wrapper:
        return None
    try:
        best = obj.best_iteration
    except AttributeError:
        return None
    return (
        int(best) + 1 if best is not None and int(best) + 1 < booster.num_boosted_rounds() else None
    )


def _xgb_names(obj: Any, booster: Any, d: int, given: Any) -> tuple[str, ...]:
    if given is not None:
        return tuple(given)
    names = booster.feature_names
    if names and len(names) == d:
        return tuple(str(n) for n in names)
    return feature_names(obj, d, None)


def _xgb_predict(obj: Any, booster: Any, wrapper: bool, classifier: bool, rounds: int | None):
    import xgboost as xgb

    if classifier:
        return lambda x: np.asarray(obj.predict_proba(x), dtype=np.float64)
    if wrapper:
        return lambda x: np.asarray(obj.predict(x), dtype=np.float64).reshape(len(x), -1)
    return lambda x: np.asarray(
        booster.predict(xgb.DMatrix(x, missing=np.nan)), dtype=np.float64
    ).reshape(len(x), -1)


# ---------------------------------------------------------------------- LightGBM
def from_lightgbm(obj: Any, input_names: Any = None) -> Converted:
    import lightgbm as lgb

    name = type(obj).__name__
    wrapper = not isinstance(obj, lgb.Booster)
    try:
        booster = obj.booster_ if wrapper else obj
    except Exception as error:  # sklearn's NotFittedError, LightGBMError
        raise unfitted(name) from error
    best = int(getattr(booster, "best_iteration", 0) or 0)
    dump = booster.dump_model(num_iteration=best if best > 0 else None)
    objective = str(dump.get("objective", "regression")).split()
    kind = objective[0] if objective else "regression"
    num_class = int(dump.get("num_class", 1))
    per_iter = int(dump.get("num_tree_per_iteration", num_class))
    classifier = wrapper and hasattr(obj, "predict_proba") and "Classifier" in name
    sigmoid = 1.0
    for token in objective[1:]:
        if token.startswith("sigmoid:"):
            sigmoid = float(token.split(":", 1)[1])
    if kind in ("binary", "cross_entropy", "xentropy"):
        link = "sigmoid"
    elif kind in ("multiclass", "softmax"):
        link = "softmax"
    elif kind in ("regression", "regression_l2", "l2", "mean_squared_error", "mse",
                  "regression_l1", "l1", "mean_absolute_error", "mae", "huber", "fair",
                  "quantile", "mape", "lambdarank", "rank_xendcg"):  # fmt: skip
        link = None
    else:
        raise UnsupportedModelError(
            f"{name}: objective {kind!r} is not supported (its link is not one the verifier "
            "bounds: identity, logistic or softmax)"
        )
    if link == "sigmoid" and kind != "binary":
        sigmoid = 1.0
    k = num_class if link == "softmax" else 1
    if per_iter != k:
        raise UnsupportedModelError(f"{name}: {per_iter} trees per iteration for {k} outputs")
    binary = classifier and link == "sigmoid"
    width = 2 if binary else k
    trees = dump["tree_info"]
    average = bool(dump.get("average_output", False))
    iterations = max(len(trees) // k, 1)
    scale = (sigmoid if link == "sigmoid" else 1.0) / (iterations if average else 1.0)
    parts = []
    for i, tree in enumerate(trees):
        if tree.get("is_linear"):
            raise UnsupportedModelError(f"{name}: linear trees are not supported")
        col = 1 if binary else (i % k)
        parts.append(_lgb_tree(tree["tree_structure"], width, col, scale, name))
    d = int(dump.get("max_feature_idx", -1)) + 1
    names = _lgb_names(dump, d, input_names)
    ens = concatenate(
        parts, base=np.zeros(width), num_features=d, precision="float64",
        final="softmax" if binary else link, input_names=names,
    )  # fmt: skip
    return Converted(ens, _lgb_predict(obj, booster, wrapper, classifier, best), name)


def _lgb_tree(root: dict, width: int, col: int, scale: float, name: str) -> dict:
    """One dumped tree (nested dicts) as a node dict, breadth first."""
    nodes = [root]
    feature, threshold, left, right, missing, value = [], [], [], [], [], []
    i = 0
    while i < len(nodes):
        node = nodes[i]
        v = np.zeros(width)
        if "leaf_value" in node:
            feature.append(-1)
            threshold.append(0.0)
            left.append(-1)
            right.append(-1)
            missing.append(False)
            v[col] = float(node["leaf_value"]) * scale
        else:
            if node.get("decision_type", "<=") != "<=":
                raise UnsupportedModelError(f"{name}: categorical splits are not supported")
            t = float(node["threshold"])
            kind = node.get("missing_type", "None")
            if kind == "Zero":
                raise UnsupportedModelError(
                    f"{name}: zero_as_missing splits are not supported (train with "
                    "zero_as_missing=False)"
                )
            missing.append(bool(node["default_left"]) if kind == "NaN" else 0.0 <= t)
            feature.append(int(node["split_feature"]))
            threshold.append(t)
            left.append(len(nodes))
            right.append(len(nodes) + 1)
            nodes += [node["left_child"], node["right_child"]]
        value.append(v)
        i += 1
    return tree_from_arrays(feature, threshold, False, left, right, missing, np.array(value))


def _lgb_names(dump: dict, d: int, given: Any) -> tuple[str, ...]:
    if given is not None:
        return tuple(given)
    names = dump.get("feature_names") or []
    if len(names) == d and not all(n == f"Column_{i}" for i, n in enumerate(names)):
        return tuple(str(n) for n in names)
    return tuple(f"x{i}" for i in range(d))


def _lgb_predict(obj: Any, booster: Any, wrapper: bool, classifier: bool, best: int):
    if classifier:
        return lambda x: np.asarray(obj.predict_proba(x), dtype=np.float64)
    target = obj if wrapper else booster
    return lambda x: np.asarray(target.predict(x), dtype=np.float64).reshape(len(x), -1)
