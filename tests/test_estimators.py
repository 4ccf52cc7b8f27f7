"""Fitted scikit-learn, XGBoost and LightGBM models registered in SQL: results with
skipping equal results without, and equal the library's own predict.

Each estimator kind is fitted on clustered data, then the file it is queried on also
holds rows at every split threshold and one step of the model's grid either side
(float32 for scikit-learn trees and XGBoost, float64 for LightGBM and
HistGradientBoosting): a wrong reading of the comparison sends those rows down the
wrong branch. Query thresholds sit at the output's extremes and at a quantile.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pyarrow as pa
import pytest

import mlskip
from mlskip.errors import ModelInputError, UnsupportedModelError

sklearn = pytest.importorskip("sklearn")
xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

from sklearn import ensemble, linear_model, neural_network, pipeline, preprocessing, tree  # noqa: E402

from mlskip.verifier.estimators import from_estimator  # noqa: E402
from mlskip.verifier.trees import TreeEnsemble  # noqa: E402


def _estimators() -> dict:
    mlp = {"hidden_layer_sizes": (8,), "max_iter": 60, "random_state": 0}
    return {
        "DecisionTreeRegressor": tree.DecisionTreeRegressor(max_depth=5),
        "DecisionTreeClassifier": tree.DecisionTreeClassifier(max_depth=4),
        "RandomForestRegressor": ensemble.RandomForestRegressor(8, max_depth=4, random_state=0),
        "RandomForestClassifier": ensemble.RandomForestClassifier(8, max_depth=4, random_state=0),
        "ExtraTreesRegressor": ensemble.ExtraTreesRegressor(8, max_depth=4, random_state=0),
        "ExtraTreesClassifier": ensemble.ExtraTreesClassifier(8, max_depth=4, random_state=0),
        "GradientBoostingRegressor": ensemble.GradientBoostingRegressor(n_estimators=15),
        "GradientBoostingClassifier": ensemble.GradientBoostingClassifier(n_estimators=15),
        "GradientBoostingClassifier3": ensemble.GradientBoostingClassifier(n_estimators=8),
        "HistGradientBoostingRegressor": ensemble.HistGradientBoostingRegressor(max_iter=15),
        "HistGradientBoostingClassifier": ensemble.HistGradientBoostingClassifier(max_iter=15),
        "HistGradientBoostingClassifier3": ensemble.HistGradientBoostingClassifier(max_iter=8),
        "LinearRegression": linear_model.LinearRegression(),
        "LogisticRegression": linear_model.LogisticRegression(max_iter=300),
        "LogisticRegression3": linear_model.LogisticRegression(max_iter=300),
        "MLPRegressor": neural_network.MLPRegressor(**mlp),
        "MLPClassifier": neural_network.MLPClassifier(**mlp),
        "Pipeline(StandardScaler, MLPRegressor)": pipeline.make_pipeline(
            preprocessing.StandardScaler(), neural_network.MLPRegressor(**mlp)
        ),
        "Pipeline(MinMaxScaler, RandomForestRegressor)": pipeline.make_pipeline(
            preprocessing.MinMaxScaler(), ensemble.RandomForestRegressor(6, max_depth=4)
        ),
        "XGBRegressor": xgb.XGBRegressor(n_estimators=15, max_depth=3),
        "XGBClassifier": xgb.XGBClassifier(n_estimators=15, max_depth=3),
        "XGBClassifier3": xgb.XGBClassifier(n_estimators=8, max_depth=3),
        "XGBRegressor(reg:logistic)": xgb.XGBRegressor(
            n_estimators=10, max_depth=3, objective="reg:logistic"
        ),
        "LGBMRegressor": lgb.LGBMRegressor(n_estimators=15, num_leaves=8, verbose=-1),
        "LGBMClassifier": lgb.LGBMClassifier(n_estimators=15, num_leaves=8, verbose=-1),
        "LGBMClassifier3": lgb.LGBMClassifier(n_estimators=8, num_leaves=8, verbose=-1),
    }


def _data(rng: np.random.Generator, n: int = 3000):
    a = np.sort(rng.uniform(0, 100, n))
    b = rng.normal(50, 20, n)
    y = np.sin(a / 10) * b / 50 + rng.normal(0, 0.1, n)
    return np.c_[a, b], y


def _targets(name: str, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Regression targets, or classes that follow ``a`` (so sorted files cluster them)."""
    wave = np.sin(X[:, 0] / 10) + 0.1 * (X[:, 1] - 50) / 20
    if name.endswith("3"):
        return np.digitize(wave, [-0.3, 0.5])
    if "logistic" in name:
        return (wave > 0.3).astype(float)
    if "Classifier" in name or name.startswith("Logistic"):
        return (wave > 0.3).astype(int)
    return y


def _boundary_rows(model, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows of X with one feature moved onto a split threshold or one grid step off it."""
    if not isinstance(model, TreeEnsemble):
        return X[:0]
    dtype = np.float32 if model.precision == "float32" else np.float64
    inner = model.feature >= 0
    rows = []
    for node in np.flatnonzero(inner)[:200]:
        f, t = int(model.feature[node]), dtype(model.threshold[node])
        for v in (np.nextafter(t, dtype(-np.inf)), t, np.nextafter(t, dtype(np.inf))):
            row = X[rng.integers(len(X))].copy()
            row[f] = float(v)
            rows.append(row)
    return np.array(rows)


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("estimators")


@pytest.mark.parametrize("name", list(_estimators()))
def test_estimator_in_sql_equals_without_skipping_and_its_predict(name, table_dir):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    X, y = _data(rng)
    est = _estimators()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, _targets(name, X, y))
    converted = from_estimator(est, ["a", "b"])
    extra = _boundary_rows(converted.model, X, rng) if converted.exact_at_splits else X[:0]
    rows = np.vstack([X, extra])
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    path = str(table_dir / f"{zlib.crc32(name.encode())}.parquet")
    mlskip.write_parquet(
        pa.table({"a": rows[:, 0], "b": rows[:, 1]}), path, row_group_size=250, hulls=[("a", "b")]
    )
    con = mlskip.connect()
    plain = mlskip.connect(skipping=False)
    model = con.register_model("m", est, ["a", "b"])
    plain.register_model("m", est, ["a", "b"])
    assert isinstance(model.network, type(converted.model))
    own = converted.predict(rows)
    queries = []
    if model.num_outputs > 1:
        queries = [f"m_class(a, b) = {k}" for k in range(model.num_outputs)]
        want = [int((np.argmax(own, axis=1) == k).sum()) for k in range(model.num_outputs)]
    else:
        p = own[:, 0]
        ts = [float(p.max()), float(p.min()), float(np.quantile(p, 0.9))]
        queries = [f"m(a, b) {op} {t!r}" for t in ts for op in (">", ">=", "<", "<=")]
        want = None
    pruned = 0
    for k, where in enumerate(queries):
        sql = f"SELECT count(*) FROM read_parquet('{path}') WHERE {where}"
        got = con.execute(sql).fetchone()[0]
        assert got == plain.execute(sql).fetchone()[0], where
        if want is not None:  # the class of the library's own probabilities (ties aside)
            top2 = np.sort(own, axis=1)[:, -2:]
            clear = (top2[:, 1] - top2[:, 0]) > 1e-4
            mine = plain.execute(
                f"SELECT count(*) FROM read_parquet('{path}') WHERE {where}"
            ).fetchone()[0]
            assert abs(mine - want[k]) <= (~clear).sum(), where
        explained = con.explain_skipping(sql)
        pruned += explained.pruned + explained.all_match
    if isinstance(converted.model, TreeEnsemble):
        assert pruned > 0  # skipping happened on clustered data


def test_rows_at_split_thresholds_follow_the_library(table_dir):
    """LightGBM compares doubles: rows one double step either side of a threshold take
    different branches, in SQL exactly as in LightGBM."""
    rng = np.random.default_rng(5)
    X, y = _data(rng, 2000)
    est = lgb.LGBMRegressor(n_estimators=5, num_leaves=4, verbose=-1).fit(X, y)
    converted = from_estimator(est, ["a", "b"])
    rows = _boundary_rows(converted.model, X, rng)
    path = str(table_dir / "lgb_edges.parquet")
    mlskip.write_parquet(pa.table({"a": rows[:, 0], "b": rows[:, 1]}), path)
    con = mlskip.connect()
    con.register_model("m", est, ["a", "b"])
    got = np.array(
        con.execute(f"SELECT m(a, b) FROM read_parquet('{path}')").fetchnumpy()["m(a, b)"]
    )
    own = est.predict(rows)
    assert np.allclose(got, own, rtol=1e-5, atol=1e-5)


def test_unsupported_estimators_are_named():
    rng = np.random.default_rng(0)
    X, y = _data(rng, 500)
    with pytest.raises(UnsupportedModelError, match="HistGradientBoostingRegressor.*poisson"):
        from_estimator(
            ensemble.HistGradientBoostingRegressor(loss="poisson", max_iter=3).fit(X, y + 5)
        )
    with pytest.raises(UnsupportedModelError, match="not fitted"):
        from_estimator(ensemble.RandomForestRegressor())
    with pytest.raises(UnsupportedModelError, match="KNeighborsRegressor"):
        from sklearn.neighbors import KNeighborsRegressor

        from_estimator(KNeighborsRegressor().fit(X, y))
    with pytest.raises(UnsupportedModelError, match="zero_as_missing"):
        from_estimator(
            lgb.LGBMRegressor(n_estimators=2, zero_as_missing=True, verbose=-1).fit(
                np.where(X > 50, 0.0, X), y
            )
        )
    with pytest.raises(UnsupportedModelError, match="count:poisson"):
        from_estimator(xgb.XGBRegressor(n_estimators=2, objective="count:poisson").fit(X, y + 5))
    with pytest.raises(UnsupportedModelError, match="dart"):
        from_estimator(xgb.XGBRegressor(n_estimators=2, booster="dart").fit(X, y))
    with pytest.raises(UnsupportedModelError, match="Pipeline step PolynomialFeatures"):
        from_estimator(
            pipeline.make_pipeline(
                preprocessing.PolynomialFeatures(), linear_model.LinearRegression()
            ).fit(X, y)
        )
    with pytest.raises(ModelInputError, match="torch backend"):
        mlskip.connect(backend="torch").register_model(
            "m", tree.DecisionTreeRegressor(max_depth=2).fit(X, y)
        )


def test_booster_objects_and_early_stopping():
    """Raw Booster objects register too, and early-stopped models use the iterations
    their predict uses."""
    rng = np.random.default_rng(2)
    X, y = _data(rng, 2000)
    booster = xgb.train({"max_depth": 3}, xgb.DMatrix(X, label=y), num_boost_round=5)
    lbooster = lgb.train({"num_leaves": 8, "verbose": -1}, lgb.Dataset(X, y), 5)
    early = xgb.XGBRegressor(n_estimators=200, max_depth=3, early_stopping_rounds=2)
    early.fit(X[:1500], y[:1500], eval_set=[(X[1500:], y[1500:])], verbose=False)
    assert early.best_iteration + 1 < 200
    con = mlskip.connect()
    for name, model in (("x", booster), ("l", lbooster), ("e", early)):
        sql_model = con.register_model(name, model, ["a", "b"])
        assert isinstance(sql_model.network, TreeEnsemble)
    e = from_estimator(early)
    assert e.model.num_trees == early.best_iteration + 1
