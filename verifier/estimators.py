"""Fitted scikit-learn, XGBoost and LightGBM models in verifier form.

``from_estimator`` turns a fitted estimator into a ``TreeEnsemble`` (trees, forests,
boosting) or a ``Network`` (linear models, MLPs), plus the estimator's own prediction
function, which udf.model checks the converted model against on ONNX Runtime before
SQL uses it. Outputs are what SQL returns: one value for a regressor, the class
probabilities (``predict_proba``) for a classifier, whose class is their first
maximum (``predict`` returns ``classes_`` at that index).

Each library's comparison is kept exactly: scikit-learn's trees and XGBoost read
features as float32 (``x <= t`` in double with a float32 ``x`` is ``x <= t32`` with
``t32`` the largest float32 at most ``t``; XGBoost's ``x < t``); LightGBM and
HistGradientBoosting read doubles (``x <= t``), so their ensembles are float64 and
SQL feeds them doubles. Anything outside that (categorical splits, exp links,
linear trees, DART, zero-as-missing) is refused with the estimator named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlskip.errors import UnsupportedModelError

from .network import Network
from .trees import TreeEnsemble

LIBRARIES = ("sklearn", "xgboost", "lightgbm")


@dataclass(frozen=True)
class Converted:
    """An estimator in verifier form and its own prediction (float64 rows -> [n, k])."""

    model: Network | TreeEnsemble
    predict: Callable[[np.ndarray], np.ndarray]
    name: str  # the estimator's class name, for messages
    exact_at_splits: bool = True  # False where a scaler was folded into split thresholds


def is_estimator(obj: Any) -> bool:
    """Whether ``obj`` comes from scikit-learn, XGBoost or LightGBM."""
    module = type(obj).__module__.split(".")[0]
    return module in LIBRARIES


def from_estimator(obj: Any, input_names: Any = None) -> Converted:
    """The verifier form of a fitted estimator (see the module docstring)."""
    module = type(obj).__module__.split(".")[0]
    if module == "sklearn":
        from .sklearn_models import from_sklearn

        return from_sklearn(obj, input_names)
    if module == "xgboost":
        from .booster_models import from_xgboost

        return from_xgboost(obj, input_names)
    if module == "lightgbm":
        from .booster_models import from_lightgbm

        return from_lightgbm(obj, input_names)
    raise UnsupportedModelError(
        f"{type(obj).__name__} is not a scikit-learn, XGBoost or LightGBM model"
    )


def feature_names(obj: Any, d: int, given: Any) -> tuple[str, ...]:
    """Input names: given, else those the estimator was fitted with, else x0, x1, ..."""
    if given is not None:
        return tuple(given)
    names = getattr(obj, "feature_names_in_", None)
    if names is not None and len(names) == d:
        return tuple(str(n) for n in names)
    return tuple(f"x{i}" for i in range(d))


def binary_logits(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A one-logit binary model as two logits ``[0, z]``: their softmax is
    ``[1 - sigmoid(z), sigmoid(z)]``, the classifier's ``predict_proba``."""
    W = np.atleast_2d(W)
    return np.vstack([np.zeros_like(W), W]), np.concatenate([[0.0], np.atleast_1d(b)])


def unfitted(name: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"{name} is not fitted: fit it before registering it")
