"""Tree-ensemble filter models for the zoo, and their compressed variants.

Per spec: XGBoost and LightGBM at several tree counts and depths, and a random forest,
trained on the same samples as the networks (``train.load_dataset``), converted to the
verifier's ``TreeEnsemble`` (verifier.estimators) and written as the canonical ONNX
graph SQL runs. Compressed variants prune the ensemble rather than weights:

- ``drop``: keep the first trees (boosting: the rounds that carry most of the fit; a
  forest's average is re-weighted over the trees kept);
- ``depth``: cut every tree at a depth, each cut node a leaf holding the mean of the
  leaf values of the calibration rows that reach it;
- ``merge``: snap each feature's split thresholds to a few shared values (quantiles
  of its thresholds), so that fewer distinct cuts remain to branch on.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlskip.model_zoo.specs import CLASSIFICATION, ModelSpec
from mlskip.verifier.trees import TreeEnsemble, concatenate, tree_from_arrays

_DTYPE = {"float32": np.float32, "float64": np.float64}


def available() -> bool:
    """Whether scikit-learn, XGBoost and LightGBM are installed (``mlskip[trees]``)."""
    try:
        import lightgbm  # noqa: F401
        import sklearn  # noqa: F401
        import xgboost  # noqa: F401
    except ImportError:
        return False
    return True


def dense_builders(task: str, quick: bool) -> dict[str, tuple[Callable[[], object], bool]]:
    """Name -> (unfitted estimator, averages its trees) for one task."""
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    clf = task == CLASSIFICATION
    xgb_cls = xgb.XGBClassifier if clf else xgb.XGBRegressor
    lgb_cls = lgb.LGBMClassifier if clf else lgb.LGBMRegressor
    rf_cls = RandomForestClassifier if clf else RandomForestRegressor
    out = {
        "xgb_t50_d4": (lambda: xgb_cls(n_estimators=50, max_depth=4, n_jobs=1), False),
    }
    if not quick:
        out.update(
            {
                "xgb_t200_d6": (lambda: xgb_cls(n_estimators=200, max_depth=6, n_jobs=1), False),
                "lgb_t100_l31": (
                    lambda: lgb_cls(n_estimators=100, num_leaves=31, verbose=-1, n_jobs=1),
                    False,
                ),
                "rf_t50_d8": (
                    lambda: rf_cls(n_estimators=50, max_depth=8, n_jobs=1, random_state=0),
                    True,
                ),
            }
        )
    return out


# ---------------------------------------------------------------------- variants
def _trees_of(
    ens: TreeEnsemble,
    feature: np.ndarray | None = None,
    threshold: np.ndarray | None = None,
    value: np.ndarray | None = None,
) -> list[dict]:
    """The ensemble's trees as node dicts (trees.concatenate's form), with ``feature``,
    ``threshold`` and ``value`` [all nodes] in place of the ensemble's when given
    (feature -1: a leaf)."""
    overrides = {"feature": feature, "threshold": threshold, "value": value}
    bounds = np.r_[ens.roots, ens.num_nodes]
    out = []
    for tree, a, b in zip(ens.tree_dicts(), bounds[:-1], bounds[1:], strict=True):
        tree.update({k: v[a:b] for k, v in overrides.items() if v is not None})
        inner = tree["feature"] >= 0
        left = np.where(inner, tree["left"], -1)
        right = np.where(inner, tree["right"], -1)
        out.append(
            tree_from_arrays(
                tree["feature"], tree["threshold"], tree["strict"], left, right,
                tree["missing_left"], tree["value"],
            )
        )  # fmt: skip
    return out


def _rebuild(ens: TreeEnsemble, trees: list[dict], **changes) -> TreeEnsemble:
    kwargs = dict(
        base=ens.base, num_features=ens.num_features, final=ens.final,
        precision=ens.precision, input_names=ens.input_names,
    )  # fmt: skip
    kwargs.update(changes)
    return concatenate(trees, **kwargs)


def drop_trees(ens: TreeEnsemble, keep: float, average: bool) -> TreeEnsemble:
    """The first ``keep`` share of the trees (a forest re-weighted to stay an average)."""
    trees = _trees_of(ens)
    k = max(1, int(round(keep * len(trees))))
    kept = trees[:k]
    if average:
        kept = [dict(t, value=t["value"] * len(trees) / k) for t in kept]
    return _rebuild(ens, kept)


def truncate_depth(ens: TreeEnsemble, depth: int, x_cal: np.ndarray) -> TreeEnsemble:
    """Every tree cut at ``depth``: a cut node becomes a leaf with the mean leaf value of
    the calibration rows reaching it (of its leaves, unweighted, when none does)."""
    leaves = ens.apply(x_cal)  # [n, trees]
    visits = np.zeros(ens.num_nodes)
    np.add.at(visits, leaves.ravel(), 1.0)
    mass = visits.copy()
    total = ens.value * visits[:, None]
    plain = ens.value.copy()
    count = (ens.feature < 0).astype(float)
    for node in range(ens.num_nodes - 1, -1, -1):  # children follow parents
        if ens.feature[node] >= 0:
            kids = [int(ens.left[node]), int(ens.right[node])]
            mass[node] = mass[kids].sum()
            total[node] = total[kids].sum(axis=0)
            count[node] = count[kids].sum()
            plain[node] = (plain[kids] * count[kids, None]).sum(axis=0) / count[node]
    mean = np.where(mass[:, None] > 0, total / np.maximum(mass, 1)[:, None], plain)
    node_depth = np.zeros(ens.num_nodes, dtype=np.int64)
    for node in range(ens.num_nodes):
        if ens.feature[node] >= 0:
            node_depth[ens.left[node]] = node_depth[ens.right[node]] = node_depth[node] + 1
    cut = (node_depth >= depth) & (ens.feature >= 0)
    feature = np.where(cut, -1, ens.feature)
    value = np.where((feature < 0)[:, None], np.where(cut[:, None], mean, ens.value), 0.0)
    return _rebuild(ens, _trees_of(ens, feature=feature, value=value))


def merge_thresholds(ens: TreeEnsemble, per_feature: int) -> TreeEnsemble:
    """Each feature's split thresholds snapped to ``per_feature`` of their quantiles."""
    dtype = _DTYPE[ens.precision]
    threshold = ens.threshold.copy()
    inner = ens.feature >= 0
    for f in range(ens.num_features):
        mine = inner & (ens.feature == f)
        if not mine.any():
            continue
        t = ens.threshold[mine]
        grid = np.unique(np.quantile(t, np.linspace(0, 1, per_feature)).astype(dtype))
        snap = grid[np.abs(t[:, None] - grid[None, :].astype(np.float64)).argmin(axis=1)]
        threshold[mine] = snap.astype(np.float64)
    return _rebuild(ens, _trees_of(ens, threshold=threshold))


def variants(
    ens: TreeEnsemble, average: bool, x_cal: np.ndarray, quick: bool
) -> list[tuple[str, str, Callable[[], TreeEnsemble]]]:
    """(suffix, method, builder) of one dense ensemble's compressed variants."""
    out: list[tuple[str, str, Callable[[], TreeEnsemble]]] = []
    for keep in (0.5,) if quick else (0.25, 0.5):
        out.append(
            (f"drop{int(keep * 100)}", "tree-drop", lambda k=keep: drop_trees(ens, k, average))
        )
    for depth in (2,) if quick else (2, 3):
        out.append((f"depth{depth}", "tree-depth", lambda d=depth: truncate_depth(ens, d, x_cal)))
    for q in (8,) if quick else (4, 16):
        out.append((f"merge{q}", "tree-merge", lambda q=q: merge_thresholds(ens, q)))
    return out


# ---------------------------------------------------------------------- scoring and files
def tree_score(ens: TreeEnsemble, x: np.ndarray, y: np.ndarray, task: str) -> float:
    """Held-out R2 (regression) or accuracy (classification), as the zoo scores networks."""
    out = ens.evaluate(x)
    if task == CLASSIFICATION:
        return float((out.argmax(1) == y).mean())
    pred = out[:, 0]
    return float(1.0 - np.mean((pred - y) ** 2) / max(np.var(y), 1e-12))


def save_trees(ens: TreeEnsemble, path: Path, spec: ModelSpec, input_types) -> int:
    """Write the canonical ONNX graph with the zoo's metadata; returns its size."""
    import onnx
    from onnx import helper

    from mlskip.verifier.tree_onnx import to_onnx

    model = onnx.load_model_from_string(to_onnx(ens))
    props = {p.key: p.value for p in model.metadata_props}
    props["mlskip.task"] = spec.task
    if input_types:
        props["mlskip.input_types"] = json.dumps(list(input_types))
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    data = model.SerializeToString()
    path.write_bytes(data)
    return len(data)


def build_tree_records(
    spec: ModelSpec,
    data,
    out_dir: Path,
    input_types,
    quick: bool,
    on_variant: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train the spec's tree models, derive their variants, write ONNX, return records."""
    import time

    from mlskip.verifier.estimators import from_estimator

    records = []
    x_cal = data.x_train[:512]
    for name, (make, average) in dense_builders(spec.task, quick).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            est = make().fit(data.x_train, data.y_train)
            fit_seconds = time.perf_counter() - t0
        dense = from_estimator(est, list(spec.inputs)).model
        dense_score = tree_score(dense, data.x_test, data.y_test, spec.task)
        builds = [(name, "trees", lambda dense=dense: dense)]
        builds += [
            (f"{name}_{sfx}", method, fn)
            for sfx, method, fn in variants(dense, average, x_cal, quick)
        ]
        for variant, method, fn in builds:
            t0 = time.perf_counter()
            ens = fn()
            seconds = fit_seconds if variant == name else time.perf_counter() - t0
            path = out_dir / "onnx" / f"{spec.name}__{variant}.onnx"
            nbytes = save_trees(ens, path, spec, input_types)
            records.append(
                {
                    "spec": spec.name, "suite": spec.suite, "table": spec.table,
                    "task": spec.task, "variant": variant, "method": method, "base": name,
                    "onnx": str(path.relative_to(out_dir)), "onnx_bytes": nbytes,
                    "widths": None, "plain_mlp": False, "kind": "trees",
                    "trees": ens.num_trees, "params": int(ens.num_nodes),
                    "nonzero_params": int(len(ens.leaves)),
                    "score": tree_score(ens, data.x_test, data.y_test, spec.task),
                    "base_score": dense_score,
                    "metric": "accuracy" if spec.task == CLASSIFICATION else "r2",
                    "build_seconds": round(seconds, 3), "warnings": [],
                }
            )  # fmt: skip
            if on_variant:
                on_variant(variant)
    return records
