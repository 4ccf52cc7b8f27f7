"""Model-aware summaries: the codec, the intervals' soundness, and queries that return the
same rows with skipping as without, at thresholds on the bins' edges."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mlskip
from mlskip.errors import MetadataError, SkippingFallbackWarning
from mlskip.metadata.model_summary import (
    KEY,
    ModelHeader,
    ModelSummary,
    OutputRecord,
    bin_intervals,
    class_record,
    decode_models,
    encode_models,
    value_range,
    value_record,
)
from mlskip.verifier import Network, ReLU
from mlskip.verifier.onnx_loader import to_onnx

ROW_GROUP = 1_000


def _header(kind="value", lo=0.0, hi=1.0, budget=32, k=1, tol=0.0) -> ModelHeader:
    return ModelHeader(
        "m", "ab" * 32, kind, "float32", ("a", "b"), ("DOUBLE->DOUBLE",) * 2, "test", k,
        lo, hi, tol, budget,
    )  # fmt: skip


# ---------------------------------------------------------------------- codec
def test_codec_round_trip_and_bindings():
    rng = np.random.default_rng(0)
    ys = [rng.normal(size=50) * s for s in (1, 10, 0.01)] + [np.array([]), np.array([np.nan])]
    lo, hi = value_range(ys)
    value = ModelSummary(_header(lo=lo, hi=hi), tuple(value_record(y, lo, hi, 32) for y in ys))
    scores = [rng.random((40, 3)) for _ in range(4)] + [np.zeros((0, 3))]
    cls = ModelSummary(
        _header("class", k=3, tol=0.01, budget=2),
        tuple(class_record(s, 0.01) for s in scores),
    )
    text = encode_models([value, cls], layout=1234)
    got = decode_models(text, layout=1234, num_rows=[1] * 5)
    assert [g.header for g in got] == [value.header, cls.header]
    assert [g.records for g in got] == [value.records, cls.records]
    assert got[0].records[3].state == "empty" and got[0].records[4].state == "unusable"
    with pytest.raises(MetadataError, match="other row groups"):
        decode_models(text, layout=1235, num_rows=[1] * 5)
    with pytest.raises(MetadataError, match="row groups"):
        decode_models(text, layout=1234, num_rows=[1] * 4)
    with pytest.raises(MetadataError, match="signed"):
        decode_models(text, layout=1234, num_rows=[1] * 5, key=b"k" * 16)
    signed = encode_models([value], layout=7, key=b"k" * 16)
    assert (
        decode_models(signed, layout=7, num_rows=[1] * 5, key=b"k" * 16)[0].header == value.header
    )
    with pytest.raises(MetadataError, match="signed"):
        decode_models(signed, layout=7, num_rows=[1] * 5, key=b"j" * 16)


def test_corrupt_values_are_rejected():
    y = [np.linspace(0, 1, 100)]
    text = encode_models([ModelSummary(_header(), (value_record(y[0], 0, 1, 32),))], layout=1)
    raw = bytearray(__import__("base64").b64decode(text))
    for at in range(5, len(raw), 7):
        bad = bytearray(raw)
        bad[at] ^= 0x20
        with pytest.raises(MetadataError):
            decode_models(__import__("base64").b64encode(bytes(bad)), layout=1, num_rows=[1])
    with pytest.raises(MetadataError):
        decode_models(text[:-8], layout=1, num_rows=[1])
    with pytest.raises(MetadataError):
        decode_models("not base64!", layout=1, num_rows=[1])


finite = st.floats(
    allow_nan=False, allow_infinity=False, width=64, min_value=-1e300, max_value=1e300
)


@given(
    st.lists(st.lists(finite, min_size=1, max_size=30), min_size=1, max_size=5),
    st.sampled_from([5, 8, 16, 32, 64]),
)
def test_every_output_lies_in_its_row_groups_intervals(groups, budget):
    """The decoded intervals contain every summarized output, at any magnitude, spread
    and byte budget (the codec's own rounding included)."""
    ys = [np.array(g) for g in groups]
    rng = value_range(ys)
    if rng is None:
        return
    lo, hi = rng
    h = _header(lo=lo, hi=hi, budget=budget)
    records = tuple(value_record(y, lo, hi, budget) for y in ys)
    got = decode_models(encode_models([ModelSummary(h, records)], layout=0), layout=0,
                        num_rows=[1] * len(ys))[0]  # fmt: skip
    for r, y in enumerate(ys):
        iv = got.intervals(r)
        inside = ((y[:, None] >= iv[None, :, 0]) & (y[:, None] <= iv[None, :, 1])).any(axis=1)
        assert inside.all()
        assert len(iv) <= max(1, 8 * (budget - 4))


def test_bins_are_tight_where_outputs_cluster():
    y = np.r_[np.zeros(100), np.ones(100)]
    rec = value_record(y, 0.0, 1.0, 32)
    iv = bin_intervals(_header(), rec)
    assert len(iv) == 2 and iv[0, 1] < 0.01 and iv[1, 0] > 0.99


# ---------------------------------------------------------------------- queries
def _net(rng, inputs=2, outputs=1, hidden=12, final=None) -> Network:
    return Network.mlp(
        [
            (rng.normal(size=(hidden, inputs)) * 0.05, rng.normal(size=hidden)),
            (rng.normal(size=(outputs, hidden)), rng.normal(size=outputs)),
        ],
        ReLU(),
        final=final,
        input_names=["a", "b"][:inputs],
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(3)
    n = 30_000
    a = rng.uniform(0, 100, n)
    b = rng.normal(0, 30, n)
    b[rng.choice(3 * ROW_GROUP, 5)] = np.nan  # NaN in the first three row groups only
    table = pa.table({"a": a, "b": b, "a_null": pa.array(a, mask=rng.random(n) < 0.02)})
    f = _net(rng)
    cls = _net(rng, outputs=3, final="softmax")
    (root / "f.onnx").write_bytes(to_onnx(f))
    (root / "cls.onnx").write_bytes(to_onnx(cls))
    # a variant of f: its small weights pruned
    W1, b1 = f.affines[0].W.copy(), f.affines[0].b
    W1[np.abs(W1) < np.quantile(np.abs(W1), 0.25)] = 0.0
    g = Network.mlp([(W1, b1), (f.affines[1].W, f.affines[1].b)], ReLU(), input_names=["a", "b"])
    (root / "g.onnx").write_bytes(to_onnx(g))
    models = {"f": str(root / "f.onnx"), "cls": str(root / "cls.onnx"),
              "fn": (str(root / "f.onnx"), ["a_null", "b"])}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippingFallbackWarning)
        mlskip.write_parquet(table, root / "data.parquet", row_group_size=ROW_GROUP,
                             models=models)  # fmt: skip
    return root, table


def _connections(root, **models):
    on, off = mlskip.connect(), mlskip.connect(skipping=False)
    for con in (on, off):
        for name, file in models.items():
            con.register_model(name, str(root / file))
    return on, off


def _same(on, off, sql: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippingFallbackWarning)
        report = on.explain_skipping(sql)
        got = sorted(on.sql(sql).fetchall())
    assert got == sorted(off.sql(sql).fetchall()), sql
    return report


def _methods(report) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in report.files:
        for m, n in f.methods:
            out[m] = out.get(m, 0) + n
    return out


def _edge_thresholds(root, off, call: str, picks: int) -> list[float]:
    """Thresholds at the bins' edges and at the edges widened by the runtime bound, +-1
    ulp, and at the outputs' extremes and quantiles (``picks`` edges, spread over the
    file)."""
    from mlskip.verifier import load_model
    from mlskip.verifier.output_summaries import output_error

    meta = mlskip.read_skip_metadata(root / "data.parquet")
    summary = next(m for m in meta.models if m.header.name == "f")
    net = load_model(str(root / "f.onnx"))
    edges = []
    for r in range(3, 30, 3):  # the bins' edges, and the edges widened as the planner widens
        box = meta.row_groups[r].box
        lo, hi = np.array([[box["a"][0], box["b"][0]]]), np.array([[box["a"][1], box["b"][1]]])
        widen = 2 * float(output_error(net, lo, hi)[0, 0])
        iv = summary.intervals(r)
        edges += [iv.ravel(), iv[:, 0] - widen, iv[:, 1] + widen]
    edges = np.concatenate(edges)
    y = off.sql(f"SELECT {call} AS y FROM '{root / 'data.parquet'}'").fetchnumpy()["y"]
    y = y[np.isfinite(y)]
    chosen = edges[np.linspace(0, len(edges) - 1, picks).astype(int)]
    base = np.r_[chosen, y.min(), y.max(), np.quantile(y, [0.001, 0.999])]
    return sorted(
        {float(v) for t in base for v in (np.nextafter(t, -np.inf), t, np.nextafter(t, np.inf))}
    )


@pytest.mark.parametrize("picks", [4, pytest.param(60, marks=pytest.mark.slow)])
def test_value_model_same_rows_at_bin_edges(files, picks):
    root, _ = files
    on, off = _connections(root, f="f.onnx")
    path = root / "data.parquet"
    used = 0
    for t in _edge_thresholds(root, off, "f(a, b)", picks):
        hi = float(np.nextafter(t, np.inf)) + 0.01
        for where in (f"f(a, b) > {t!r}", f"f(a, b) <= {t!r}", f"f(a, b) BETWEEN {t!r} AND {hi!r}"):
            report = _same(on, off, f"SELECT count(*), min(a), max(a) FROM '{path}' WHERE {where}")
            used += _methods(report).get("summary", 0)
    assert used > 0


def test_nulls_never_make_all_match(files):
    """Rows with a NULL input return NULL: a summary (of the other rows) may prune the row
    group but never claim that every row qualifies."""
    root, _ = files
    on, off = _connections(root, fn="f.onnx")
    path = root / "data.parquet"
    used = 0
    for t in (-1e9, 1e9):
        for op in ("<", ">"):
            report = _same(on, off, f"SELECT count(*) FROM '{path}' WHERE fn(a_null, b) {op} {t!r}")
            used += _methods(report).get("summary", 0)
            assert report.all_match == 0
    assert used > 0


def test_classifier_class_sets(files):
    root, _ = files
    on, off = _connections(root, cls="cls.onnx")
    path = root / "data.parquet"
    used = 0
    for k in range(3):
        report = _same(on, off, f"SELECT count(*) FROM '{path}' WHERE cls_class(a, b) = {k}")
        used += _methods(report).get("summary", 0)
    assert used > 0


def test_other_models_arguments_or_types_never_use_a_summary(files):
    root, _ = files
    path = root / "data.parquet"
    on, off = _connections(root, f="cls.onnx")  # another model under the summary's name
    for t in (0.1, 0.5):
        report = _same(
            on, off, f"SELECT count(*) FROM '{path}' WHERE f_class(a, b) = 1 AND a > {t}"
        )
        assert "summary" not in _methods(report)
    on, off = _connections(root, f="f.onnx")
    for where in (
        "f(b, a) > 0.5",
        "f(a::FLOAT, b) > 0.5",
        "f(a + 0, b) > 0.5",
        "f(a, b * 1) > 0.5",
    ):
        report = _same(on, off, f"SELECT count(*) FROM '{path}' WHERE {where}")
        assert "summary" not in _methods(report), where


def test_variant_planned_through_its_dense_models_summary(files):
    root, _ = files
    path = root / "data.parquet"
    on, off = _connections(root, f="f.onnx", g="g.onnx")
    y = off.sql(f"SELECT g(a, b) AS y FROM '{path}'").fetchnumpy()["y"]
    y = y[np.isfinite(y)]
    used = 0
    for q in (0.0005, 0.01, 0.5, 0.99, 0.9995):
        t = float(np.quantile(y, q))
        for op in (">", "<"):
            report = _same(on, off, f"SELECT count(*) FROM '{path}' WHERE g(a, b) {op} {t!r}")
            used += _methods(report).get("summary-deviation", 0)
    assert used > 0
    alone, _ = _connections(root, g="g.onnx")  # without f registered: no deviation
    report = _same(alone, off, f"SELECT count(*) FROM '{path}' WHERE g(a, b) > 0.0")
    assert "summary-deviation" not in _methods(report)


def test_pasted_summaries_are_not_used(files, tmp_path):
    root, table = files
    src = pq.ParquetFile(root / "data.parquet").metadata.metadata
    other = table.slice(0, 29_000)  # other row groups
    pq.write_table(other, tmp_path / "x.parquet", row_group_size=ROW_GROUP)
    t = pq.read_table(tmp_path / "x.parquet")
    pq.write_table(t.replace_schema_metadata({KEY: src[KEY.encode()]}), tmp_path / "y.parquet",
                   row_group_size=ROW_GROUP)  # fmt: skip
    with pytest.warns(SkippingFallbackWarning, match="model summaries"):
        meta = mlskip.read_skip_metadata(tmp_path / "y.parquet")
    assert meta.models == ()


def test_index_build_with_models_plans_like_the_footer(files, tmp_path):
    root, table = files
    pq.write_table(table, tmp_path / "plain.parquet", row_group_size=ROW_GROUP)
    mlskip.build_index([str(tmp_path / "plain.parquet")], str(tmp_path / "idx.parquet"),
                       models={"f": str(root / "f.onnx")})  # fmt: skip
    on = mlskip.connect(index=str(tmp_path / "idx.parquet"))
    on.register_model("f", str(root / "f.onnx"))
    off = mlskip.connect(skipping=False)
    off.register_model("f", str(root / "f.onnx"))
    y = off.sql(f"SELECT f(a, b) AS y FROM '{tmp_path / 'plain.parquet'}'").fetchnumpy()["y"]
    t = float(np.quantile(y[np.isfinite(y)], 0.999))
    report = _same(
        on, off, f"SELECT count(*) FROM '{tmp_path / 'plain.parquet'}' WHERE f(a, b) > {t!r}"
    )
    assert _methods(report).get("summary", 0) > 0


def test_arrow_scan_uses_summaries_of_double_columns(files):
    root, _ = files
    path = root / "data.parquet"
    off = mlskip.connect(skipping=False)
    off.register_model("f", str(root / "f.onnx"))
    y = off.sql(f"SELECT f(a, b) AS y FROM '{path}'").fetchnumpy()["y"]
    t = float(np.quantile(y[np.isfinite(y)], 0.999))
    plan = mlskip.plan_scan(str(path), str(root / "f.onnx"), f"> {t!r}")
    assert any("summary" in m for p in plan.files for ms in p.methods for m in ms)
    got = mlskip.scan(str(path), str(root / "f.onnx"), f"> {t!r}")
    assert (
        got.num_rows
        == off.sql(f"SELECT count(*) FROM '{path}' WHERE f(a, b) > {t!r}").fetchone()[0]
    )


def test_models_reading_missing_columns_are_refused(tmp_path, files):
    root, _ = files
    with pytest.raises(mlskip.InputDataError, match="column"):
        mlskip.write_parquet(pa.table({"a": [1.0]}), tmp_path / "z.parquet",
                             models={"f": str(root / "f.onnx")})  # fmt: skip


def test_output_record_states():
    assert value_record(np.array([]), 0, 1, 32) == OutputRecord("empty")
    assert value_record(np.array([np.inf]), 0, 1, 32).state == "unusable"
    assert class_record(np.array([[0.5, np.nan]]), 0.1).state == "unusable"


# ---------------------------------------------------------------------- deviation bounds
def _triangle(rng, centre, half):
    """A triangle around ``centre`` inside its box, as halfspaces ``A x <= b``."""
    pts = centre + (rng.random((3, 2)) * 2 - 1) * half
    c = pts.mean(axis=0)
    A, b = [], []
    for i in range(3):
        p, q = pts[i], pts[(i + 1) % 3]
        normal = np.array([q[1] - p[1], p[0] - q[0]])
        if normal @ (c - p) > 0:
            normal = -normal
        A.append(normal)
        b.append(normal @ p)
    return np.array(A), np.array(b)


@pytest.mark.parametrize("kind", ["pruned", "perturbed", "deeper", "wider"])
def test_deviation_bounds_contain_every_difference(kind):
    """Bounds on f - g over boxes hold at every sampled point (aligned pairs by difference
    propagation and CROWN, others by CROWN on the joint network)."""
    from mlskip.verifier import RegionBatch
    from mlskip.verifier.output_summaries import deviation_bounds

    rng = np.random.default_rng(hash(kind) % 2**32)
    layers = [(rng.normal(size=(10, 2)), rng.normal(size=10)),
              (rng.normal(size=(8, 10)) * 0.5, rng.normal(size=8)),
              (rng.normal(size=(1, 8)), rng.normal(size=1))]  # fmt: skip
    f = Network.mlp(layers, ReLU())
    if kind == "pruned":
        g_layers = [(np.where(np.abs(W) < 0.4, 0.0, W), b) for W, b in layers]
    elif kind == "perturbed":
        g_layers = [(W + rng.normal(size=W.shape) * 0.05, b + 0.01) for W, b in layers]
    elif kind == "deeper":
        g_layers = layers[:1] + [(rng.normal(size=(5, 10)), rng.normal(size=5)),
                                 (rng.normal(size=(4, 5)), rng.normal(size=4)),
                                 (rng.normal(size=(1, 4)), rng.normal(size=1))]  # fmt: skip
    else:
        g_layers = [(rng.normal(size=(20, 2)), rng.normal(size=20)),
                    (rng.normal(size=(1, 20)) * 0.3, rng.normal(size=1))]  # fmt: skip
    g = Network.mlp(g_layers, ReLU())
    n = 40
    centre = rng.normal(size=(n, 2)) * 3
    half = rng.random((n, 2)) * 2
    boxes = RegionBatch(centre - half, centre + half)
    A, b = zip(*[_triangle(rng, centre[r], half[r]) for r in range(n)], strict=True)
    shaped = RegionBatch(centre - half, centre + half, ((0, 1),), ((np.array(A), np.array(b)),))
    widths = {}
    for name, regions, pieces in (("box", boxes, 1), ("box64", boxes, 64), ("poly64", shaped, 64)):
        lo, hi = deviation_bounds(f, g, regions, pieces)
        assert np.isfinite(lo).all() and (lo <= hi).all()
        widths[name] = float(np.median(hi - lo))
        for r in range(n):
            x = centre[r] - half[r] + rng.random((4000, 2)) * 2 * half[r]
            if regions.has_polygons:
                x = x[(x @ A[r].T <= b[r]).all(axis=1)]
            d = (f.evaluate(x, final=False) - g.evaluate(x, final=False))[:, 0]
            slack = 1e-9 * (1 + np.abs(d).max(initial=0.0))
            assert (
                lo[r] - slack <= d.min(initial=np.inf) and d.max(initial=-np.inf) <= hi[r] + slack
            )
    assert widths["box64"] <= widths["box"]  # pieces tighten


def test_tree_deviation_bounds_contain_every_difference():
    pytest.importorskip("sklearn")
    from sklearn.ensemble import GradientBoostingRegressor

    from mlskip.verifier import RegionBatch
    from mlskip.verifier.estimators import from_estimator
    from mlskip.verifier.output_summaries import deviation_bounds

    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 2))
    y = np.sin(x[:, 0]) + x[:, 1] ** 2 + rng.normal(size=2000) * 0.1
    f = from_estimator(GradientBoostingRegressor(n_estimators=30, max_depth=3).fit(x, y)).model
    g = from_estimator(GradientBoostingRegressor(n_estimators=10, max_depth=3).fit(x, y)).model
    n = 30
    centre = rng.normal(size=(n, 2))
    half = rng.random((n, 2))
    lo, hi = deviation_bounds(f, g, RegionBatch(centre - half, centre + half))
    for r in range(n):
        pts = centre[r] - half[r] + rng.random((3000, 2)) * 2 * half[r]
        d = (f.evaluate(pts, final=False) - g.evaluate(pts, final=False))[:, 0]
        assert lo[r] <= d.min() + 1e-12 and d.max() <= hi[r] + 1e-12


@pytest.mark.parametrize("estimator", ["gbr", "hist"])
def test_tree_model_summaries_same_rows(tmp_path, estimator):
    pytest.importorskip("sklearn")
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor

    rng = np.random.default_rng(8)
    n = 12_000
    table = pa.table({"a": rng.uniform(0, 10, n), "b": rng.normal(0, 3, n)})
    x = np.c_[table["a"].to_numpy(), table["b"].to_numpy()]
    y = np.sin(x[:, 0]) * x[:, 1]
    cls = GradientBoostingRegressor if estimator == "gbr" else HistGradientBoostingRegressor
    model = cls(max_depth=3, **({"n_estimators": 20} if estimator == "gbr" else {"max_iter": 20}))
    model.fit(x[:3000], y[:3000])
    mlskip.write_parquet(table, tmp_path / "t.parquet", row_group_size=ROW_GROUP,
                         models={"t": (model, ["a", "b"])})  # fmt: skip
    on, off = mlskip.connect(), mlskip.connect(skipping=False)
    for con in (on, off):
        con.register_model("t", model, inputs=["a", "b"])
    out = off.sql(f"SELECT t(a, b) AS y FROM '{tmp_path / 't.parquet'}'").fetchnumpy()["y"]
    used = 0
    for v in np.r_[np.quantile(out, [0.001, 0.5, 0.999]), out.min(), out.max()]:
        for t in (float(np.nextafter(v, -np.inf)), float(v), float(np.nextafter(v, np.inf))):
            for op in (">", "<=", ">="):
                report = _same(on, off, f"SELECT count(*) FROM '{tmp_path / 't.parquet'}' "
                                        f"WHERE t(a, b) {op} {t!r}")  # fmt: skip
                used += _methods(report).get("summary", 0)
    assert used > 0


@pytest.mark.parametrize("kind", ["perturbed", "deeper", "hull"])
def test_reference_verdicts_never_contradict_the_rows(kind):
    """A variant planned through another model's bins: every NONE holds for the rows that
    produced the bins, every ALL too (brute force on the rows, thresholds at their outputs),
    with the 64 first pieces and split further up to 1,024 (which keeps every verdict of
    64 pieces and decides more)."""
    from mlskip.verifier import ALL, NONE, UNKNOWN, Predicate, RegionBatch
    from mlskip.verifier.output_summaries import output_error, reference_verdicts

    rng = np.random.default_rng(17)
    layers = [(rng.normal(size=(12, 2)), rng.normal(size=12)),
              (rng.normal(size=(1, 12)), rng.normal(size=1))]  # fmt: skip
    f = Network.mlp(layers, ReLU())
    if kind != "deeper":
        g = Network.mlp([(W * (1 + 0.05 * rng.normal(size=W.shape)), b) for W, b in layers], ReLU())
    else:
        g = Network.mlp(layers[:1] + [(rng.normal(size=(6, 12)) * 0.3, rng.normal(size=6)),
                                      (rng.normal(size=(1, 6)), rng.normal(size=1))], ReLU())  # fmt: skip
    n = 30
    rows = [rng.normal(size=(200, 2)) * rng.random(2) * 3 + rng.normal(size=2) for _ in range(n)]
    lo = np.array([r.min(axis=0) for r in rows])
    hi = np.array([r.max(axis=0) for r in rows])
    regions = RegionBatch(lo, hi)
    if kind == "hull":  # each row group's convex hull, as the writer's polygons hold it
        from scipy.spatial import ConvexHull

        eqs = [ConvexHull(r).equations for r in rows]
        m = max(len(e) for e in eqs)
        A = np.zeros((n, m, 2))
        b = np.ones((n, m))  # padding rows: 0 <= 1
        for r, e in enumerate(eqs):
            A[r, : len(e)] = e[:, :2]
            b[r, : len(e)] = -e[:, 2] + 1e-9 * (1 + np.abs(e[:, 2]))
        regions = RegionBatch(lo, hi, ((0, 1),), ((A, b),))
    yf = [f.evaluate(r)[:, 0].astype(np.float32).astype(np.float64) for r in rows]
    yg = [g.evaluate(r)[:, 0].astype(np.float32).astype(np.float64) for r in rows]
    ys = np.concatenate(yf)
    rng_lo, rng_hi = value_range(yf)
    h = _header(lo=rng_lo, hi=rng_hi, budget=16)
    intervals = [bin_intervals(h, value_record(y, rng_lo, rng_hi, 16)) for y in yf]
    e_f = output_error(f, lo, hi)[:, 0]
    e_g = output_error(g, lo, hi)[:, 0]
    decided = {64: 0, 1024: 0}
    allg = np.concatenate(yg)
    for t in np.r_[np.quantile(allg, [0.01, 0.2, 0.5, 0.8, 0.99]), ys.min(), ys.max()]:
        for pred in (Predicate.gt(float(t)), Predicate.le(float(t)),
                     Predicate.between(float(t), float(t) + 0.5)):  # fmt: skip
            first = reference_verdicts(f, g, intervals, e_f, e_g, regions, pred, 64)
            split = reference_verdicts(f, g, intervals, e_f, e_g, regions, pred, 64, 1024)
            assert (split[first != UNKNOWN] == first[first != UNKNOWN]).all()
            for v, budget in ((first, 64), (split, 1024)):
                for r in range(n):
                    holds = pred.holds(yg[r][:, None])
                    assert v[r] != NONE or not holds.any()
                    assert v[r] != ALL or holds.all()
                decided[budget] += int((v != UNKNOWN).sum())
    assert 0 < decided[64] < decided[1024]
