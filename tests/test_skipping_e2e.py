"""Differential: every query returns the same rows with skipping as without it."""

from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mlskip
from mlskip.errors import ModelInputError
from mlskip.verifier import Network, ReLU
from mlskip.verifier.cascade import Verifier

N_ROWS = 40_000


def make_table(rng: np.random.Generator, n: int = N_ROWS) -> pa.Table:
    a = rng.uniform(0, 100, n)
    b = 2 * a + rng.normal(0, 8, n)
    c = rng.integers(0, 50, n)
    d = np.where(rng.random(n) < 0.02, np.nan, rng.normal(0, 1, n))
    a_nullable = pa.array(a, mask=rng.random(n) < 0.01)
    return pa.table(
        {"a": a, "b": b, "c": c, "d": d, "a_null": a_nullable, "s": [f"r{i}" for i in range(n)]}
    )


def make_net(rng: np.random.Generator, inputs: int, outputs: int = 1, hidden: int = 16) -> Network:
    scale = np.array([0.02, 0.01, 0.04][:inputs] + [0.5] * max(0, inputs - 3))
    w1 = rng.normal(size=(hidden, inputs)) * scale
    return Network.mlp(
        [
            (w1, rng.normal(size=hidden)),
            (rng.normal(size=(outputs, hidden)), rng.normal(size=outputs)),
        ],
        ReLU(),
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("e2e")
    table = make_table(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlskip.write_parquet(
            table,
            root / "sorted.parquet",
            row_group_size=2_000,
            hulls=[("a", "b")],
            cluster_by=["a"],
        )
        mlskip.write_parquet(
            table.slice(0, 20_000),
            root / "part1.parquet",
            row_group_size=1_500,
            hulls=[("a", "b")],
            cluster_by=["b"],
        )
        mlskip.write_parquet(
            table.slice(20_000), root / "part2.parquet", row_group_size=3_000, hulls=None
        )

    pq.write_table(table, root / "plain.parquet", row_group_size=5_000)  # no mlskip metadata
    return root, table


@pytest.fixture(scope="module")
def connections(dataset):
    rng = np.random.default_rng(11)
    nets = {"risk": make_net(rng, 2), "risk3": make_net(rng, 3), "kind": make_net(rng, 2, 3)}
    fast = Verifier(time_budget=0.3, milp_time_per_region=0.05, bab_time_budget=0.1)
    on, off = mlskip.connect(verifier=fast), mlskip.connect(skipping=False)
    udf_path = mlskip.connect(verifier=fast, batch_evaluation=False)
    for con in (on, off, udf_path):
        for name, net in nets.items():
            con.register_model(name, net)
    on.udf_path = udf_path  # the same plans, with the model evaluated by the SQL function
    return on, off, nets


def output_quantile(net, table, columns, q):
    x = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in columns])
    y = net.evaluate(x.astype(np.float64))[:, 0]
    return float(np.nanquantile(y, q))


def same_rows(on, off, sql):
    """Skipping with batch evaluation, skipping with the SQL function, and no skipping agree."""
    want = sorted(map(repr, off.sql(sql).fetchall()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for con in (on, on.udf_path):
            got = sorted(map(repr, con.sql(sql).fetchall()))
            assert got == want, sql
    return on.explain_skipping(sql)


QUERIES = [
    "SELECT * FROM '{root}/sorted.parquet' WHERE risk(a, b) > {hi}",
    "SELECT s, c FROM '{root}/sorted.parquet' WHERE risk(a, b) < {lo} AND c < 30",
    "SELECT count(*), sum(c) FROM '{root}/sorted.parquet' WHERE risk(a, b) BETWEEN {lo} AND {hi}",
    "SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(a, b) >= {hi} AND a < 60",
    "SELECT count(*) FROM '{root}/sorted.parquet' t WHERE risk(t.a / 2 + 1, t.b) <= {lo}",
    "SELECT count(*) FROM read_parquet('{root}/part*.parquet') WHERE risk(a, b) > {hi}",
    "SELECT count(*) FROM read_parquet(['{root}/part1.parquet', '{root}/part2.parquet']) "
    "WHERE risk(a, b) < {lo}",
    "SELECT count(*) FROM '{root}/plain.parquet' WHERE risk(a, b) > {hi}",
    "SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(a_null, b) > {hi}",
    "SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(d, b) > {hi}",
    "SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk3(a, b, c) > {hi}",
    "SELECT kind_class(a, b), count(*) FROM '{root}/sorted.parquet' WHERE kind_class(a, b) = 1 GROUP BY 1",
    "SELECT count(*) FROM '{root}/sorted.parquet' x JOIN '{root}/plain.parquet' y ON x.s = y.s "
    "WHERE risk(x.a, x.b) > {hi} AND y.c < 25",
    "SELECT count(*) FROM '{root}/sorted.parquet' x LEFT JOIN '{root}/plain.parquet' y "
    "ON x.s = y.s AND y.c < 5 WHERE risk(y.a, y.b) > {hi}",
    "WITH f AS (SELECT * FROM '{root}/sorted.parquet' WHERE risk(a, b) > {hi}) "
    "SELECT count(*), max(a) FROM f",
    "SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(a, b) > {hi} OR c = 3",
]


@pytest.mark.parametrize("template", QUERIES)
@pytest.mark.parametrize("q", [0.001, 0.05, 0.5, 0.999])
def test_results_equal_with_and_without_skipping(dataset, connections, template, q):
    root, table = dataset
    on, off, nets = connections
    lo = output_quantile(nets["risk"], table, ["a", "b"], q)
    hi = output_quantile(nets["risk"], table, ["a", "b"], 1 - q)
    lo, hi = min(lo, hi), max(lo, hi)
    same_rows(on, off, template.format(root=root, lo=repr(lo), hi=repr(hi)))


def test_selective_query_prunes_row_groups(dataset, connections):
    root, table = dataset
    on, off, nets = connections
    hi = output_quantile(nets["risk"], table, ["a", "b"], 0.999)
    report = same_rows(on, off, f"SELECT * FROM '{root}/sorted.parquet' WHERE risk(a, b) > {hi!r}")
    assert report.rewritten and report.pruned > 0
    assert report.row_groups == report.pruned + report.all_match + report.evaluated


def test_batch_evaluation_applies_where_nothing_is_pruned(dataset, connections):
    """A selective query on a file nothing can be pruned from (no mlskip metadata) still
    runs the model in batches, not per DuckDB chunk; a non-selective one runs as written."""
    root, table = dataset
    on, off, nets = connections
    hi = output_quantile(nets["risk"], table, ["a", "b"], 0.999)
    sql = f"SELECT count(*) FROM '{root}/plain.parquet' WHERE risk(a, b) > {hi!r}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = same_rows(on, off, sql)
        assert report.pruned == 0
        assert "__mlskip_match" in on.rewrite(sql)
        # non-selective: batch evaluation gives up after its first 65,536 rows
        big = root / "plain_big.parquet"
        if not big.exists():
            pq.write_table(pa.concat_tables([table] * 3), big, row_group_size=20_000)
        median = output_quantile(nets["risk"], table, ["a", "b"], 0.5)
        common = f"SELECT count(*) FROM '{big}' WHERE risk(a, b) > {median!r}"
        assert on.rewrite(common) == common
        same_rows(on, off, common)


def test_batch_evaluation_gives_up_once_per_scan(dataset, connections, monkeypatch):
    """When the first file shows a predicate is not selective (the evaluator returns None),
    the scan's other files are not batch-evaluated either, and the query runs as written."""
    root, table = dataset
    on, off, nets = connections
    second = root / "plain_second.parquet"
    if not second.exists():
        pq.write_table(table.slice(0, 10_000), second, row_group_size=5_000)
    calls = []
    monkeypatch.setattr(on, "_evaluator", lambda task: calls.append(task.source) or None)
    hi = output_quantile(nets["risk"], table, ["a", "b"], 0.999)
    files = f"['{root}/plain.parquet', '{second}']"
    sql = f"SELECT count(*) FROM read_parquet({files}) WHERE risk(a, b) > {hi!r}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert on.rewrite(sql) == sql
        assert len(calls) == 1
        same_rows(on, off, sql)


def test_all_match_row_groups_skip_the_model(dataset, connections):
    root, table = dataset
    on, off, nets = connections
    lo = output_quantile(nets["risk"], table, ["a", "b"], 0.0) - 1e6
    report = same_rows(
        on, off, f"SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(a, b) > {lo!r}"
    )
    assert report.all_match == report.row_groups


def test_nan_and_null_columns_are_never_decided_unsoundly(dataset, connections):
    root, table = dataset
    on, off, nets = connections
    report = on.explain_skipping(
        f"SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(a_null, b) > -1e9"
    )
    assert report.all_match == 0  # NULL arguments never qualify


def test_unsupported_shapes_run_unmodified_with_a_reason(dataset, connections):
    root, _ = dataset
    on, _, _ = connections
    report = on.explain_skipping(
        f"SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(a, b) > 1 OR c = 3"
    )
    assert not report.rewritten and any("under OR" in r for r in report.reasons)
    report = on.explain_skipping(
        f"SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(a * b, b) > 1"
    )
    assert not report.rewritten and any("not affine" in r for r in report.reasons)


def test_wrong_arity_is_a_clear_error(dataset, connections):
    """DuckDB's binder error names the function's signature, with skipping as without."""
    root, _ = dataset
    on, off, _ = connections
    for con in (on, off):
        with pytest.raises(duckdb.BinderException, match=r"risk\(DOUBLE, DOUBLE\)"):
            con.sql(f"SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(a) > 0")


def test_unknown_model_is_a_sql_error(dataset, connections):
    import duckdb

    root, _ = dataset
    on, _, _ = connections
    with pytest.raises(duckdb.CatalogException, match="nosuchmodel"):
        on.sql(f"SELECT nosuchmodel(a) FROM '{root}/sorted.parquet'").fetchall()


def test_file_rewritten_after_planning_invalidates_the_plan(tmp_path, connections, rng):
    on, off, nets = connections
    path = tmp_path / "x.parquet"
    table = make_table(rng, 6_000)
    mlskip.write_parquet(table, path, row_group_size=1_000, hulls=None, cluster_by=["a"])
    hi = output_quantile(nets["risk"], table, ["a", "b"], 0.99)
    sql = f"SELECT count(*) FROM '{path}' WHERE risk(a, b) > {hi!r}"
    same_rows(on, off, sql)
    reversed_table = table.take(np.arange(table.num_rows)[::-1].copy())
    mlskip.write_parquet(reversed_table, path, row_group_size=1_000, hulls=None, cluster_by=None)
    same_rows(on, off, sql)


def test_hive_partitioned_folders(tmp_path, connections, rng):
    on, off, nets = connections
    table = make_table(rng, 8_000)
    for k, part in enumerate((table.slice(0, 4_000), table.slice(4_000))):
        (tmp_path / f"k={k}").mkdir()
        mlskip.write_parquet(part, tmp_path / f"k={k}" / "data.parquet", row_group_size=500,
                             hulls=None, cluster_by=["a"])  # fmt: skip
    hi = output_quantile(nets["risk"], table, ["a", "b"], 0.99)
    for sql in (
        f"SELECT k, count(*) FROM read_parquet('{tmp_path}/*/*.parquet', hive_partitioning = true) "
        f"WHERE risk(a, b) > {hi!r} GROUP BY k",
        f"SELECT count(*) FROM read_parquet('{tmp_path}/*/*.parquet') WHERE risk(a, b) > {hi!r} AND k = 1",
    ):
        report = same_rows(on, off, sql)
        assert report.pruned > 0


def test_cli_explain_and_query(dataset, connections, tmp_path):
    from typer.testing import CliRunner

    from mlskip.cli import app
    from mlskip.verifier.onnx_loader import to_onnx

    root, table = dataset
    _, _, nets = connections
    model = tmp_path / "risk.onnx"
    model.write_bytes(to_onnx(nets["risk"]))
    hi = output_quantile(nets["risk"], table, ["a", "b"], 0.999)
    sql = f"SELECT count(*) AS n FROM '{root}/sorted.parquet' WHERE risk(a, b) > {hi!r}"
    runner = CliRunner()
    result = runner.invoke(app, ["explain", sql, "-m", f"risk={model}", "--show-sql"])
    assert result.exit_code == 0, result.output
    assert "pruned" in result.output and "read_parquet" in result.output.lower()
    result = runner.invoke(app, ["query", sql, "-m", f"risk={model}"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["query", sql, "-m", "risk"])
    assert result.exit_code != 0 and "NAME=PATH" in result.output
    # for scripts: the report and the rows as JSON, equal to what the Python API gives
    import json

    on = mlskip.connect()
    on.register_model("risk", model)
    result = runner.invoke(app, ["explain", sql, "-m", f"risk={model}", "--json"])
    data = json.loads(result.output)
    assert data["pruned"] == on.explain_skipping(sql).pruned > 0
    rows_sql = sql.replace("count(*) AS n", "a, b").replace(" > ", " <= ")
    result = runner.invoke(
        app, ["query", rows_sql, "-m", f"risk={model}", "--json", "--limit", "5"]
    )
    got = [json.loads(line) for line in result.output.splitlines()]
    assert got == [dict(zip(["a", "b"], r, strict=True)) for r in on.sql(rows_sql).fetchmany(5)]
    result = runner.invoke(app, ["query", rows_sql, "-m", f"risk={model}", "--limit", "5"])
    total = on.sql(f"SELECT count(*) FROM ({rows_sql})").fetchone()[0]
    # rendered by DuckDB's own box renderer: LIMIT rows (first and last) of the total
    assert total > 5 and "5 shown)" in result.output and f"{total:,} row(s)" in result.output


def test_unverifiable_model_still_answers_correctly(dataset, connections, tmp_path):
    """A model with an op the verifier does not support (here Abs) runs, unpruned."""
    import onnx
    from onnx import helper

    from mlskip.verifier.onnx_loader import to_onnx

    root, table = dataset
    on, off, nets = connections
    model = onnx.load_model_from_string(to_onnx(nets["risk"]))
    graph = model.graph
    last = graph.node[-1]
    graph.node.append(helper.make_node("Abs", [last.output[0]], ["abs_out"], name="abs"))
    graph.output[0].name = "abs_out"
    for con in (on, on.udf_path, off):
        con.register_model("odd", model.SerializeToString())
    sql = f"SELECT count(*) FROM '{root}/sorted.parquet' WHERE odd(a, b) > 1.0 AND a < 20"
    report = same_rows(on, off, sql)
    assert report.pruned > 0  # only from the bound a < 20 on a clustered column
    assert any("cannot be verified" in r and "Abs" in r for r in report.reasons)


def test_string_column_as_model_input_is_a_clear_error(dataset, connections):
    """DuckDB's own binder error, with skipping as without: it names the function
    and the argument types."""
    root, _ = dataset
    on, off, _ = connections
    sql = f"SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(s, b) > 0"
    for con in (on, off):
        with pytest.raises(duckdb.BinderException, match=r"risk\(VARCHAR, DOUBLE\)"):
            con.sql(sql)


def test_hostile_paths_and_model_names(tmp_path, connections, rng):
    on, off, nets = connections
    table = make_table(rng, 3_000)
    weird = tmp_path / "it's; DROP TABLE x; --.parquet"
    mlskip.write_parquet(table, weird, row_group_size=500, hulls=None, cluster_by=["a"])
    quoted = str(weird).replace("'", "''")
    hi = output_quantile(nets["risk"], table, ["a", "b"], 0.99)
    report = same_rows(on, off, f"SELECT count(*) FROM '{quoted}' WHERE risk(a, b) > {hi!r}")
    assert report.rewritten
    for name in ("risk; DROP TABLE x", "1abc", "a b", "x'y", ""):
        with pytest.raises(ModelInputError, match="not a valid SQL function name"):
            on.register_model(name, nets["risk"])


def test_long_in_lists_and_many_conjuncts(dataset, connections):
    root, table = dataset
    on, off, nets = connections
    hi = output_quantile(nets["risk"], table, ["a", "b"], 0.99)
    values = ", ".join(str(v) for v in range(0, 5000))
    sql = (
        f"SELECT count(*) FROM '{root}/sorted.parquet' WHERE risk(a, b) > {hi!r} "
        f"AND c IN ({values}) AND a > -1 AND b < 1e9 AND s NOT IN ('x', 'y')"
    )
    same_rows(on, off, sql)


def test_float_column_bounds_follow_duckdb_float_comparison(tmp_path, connections):
    """DuckDB compares a FLOAT column with 0.1 in FLOAT: float32(0.1) > 0.1 still passes
    `x <= 0.1`. A bound taken in double precision would prune every row here."""
    on, off, _ = connections
    x = np.full(4_000, np.float32(0.1), dtype=np.float32)
    table = pa.table({"x": x, "y": np.arange(4_000, dtype=np.float64), "s": np.arange(4_000)})
    path = tmp_path / "f32.parquet"
    mlskip.write_parquet(table, path, row_group_size=500, hulls=None)
    net = Network.mlp([(np.array([[0.0, 1.0]]), np.zeros(1))])  # uses y, takes x too
    for con in (on, on.udf_path, off):
        con.register_model("ident", net)
    for op in ("<=", "=", ">="):
        sql = f"SELECT count(*) FROM '{path}' WHERE ident(x, y) > -1 AND x {op} 0.1"
        report = same_rows(on, off, sql)
        assert off.sql(sql).fetchall() == [(4_000,)]
        assert report.pruned == 0


def test_reregistering_a_classifier_as_a_regressor_drops_its_class_function(tmp_path, rng):
    """Replacing model ``m`` (a classifier) by a regressor must not leave ``m_class``
    planned with the old network while it runs the new one."""
    path = tmp_path / "x.parquet"
    table = make_table(rng, 6_000)
    mlskip.write_parquet(table, path, row_group_size=1_000, hulls=None, cluster_by=["a"])
    con = mlskip.connect(verifier=Verifier(time_budget=0.3))
    con.register_model("m", make_net(rng, 2, 3))
    sql = f"SELECT count(*) FROM '{path}' WHERE m_class(a, b) = 1"
    con.sql(sql).fetchall()  # planned and cached with the classifier
    with pytest.raises(ModelInputError, match="replace=True"):
        con.register_model("m", make_net(rng, 2))
    con.register_model("m", make_net(rng, 2), replace=True)
    assert "m_class" not in con._functions
    with pytest.raises(Exception, match="m_class"):
        con.sql(sql).fetchall()
    reg = f"SELECT count(*) FROM '{path}' WHERE m(a, b) > 0"
    off = mlskip.connect(skipping=False)
    off.register_model("m", con.models["m"].network)
    assert con.sql(reg).fetchall() == off.sql(reg).fetchall()


def test_models_dir_maps_file_names_to_sql_names(tmp_path, dataset):
    """The zoo's variant files hold dots; each is registered under a valid SQL name."""
    from mlskip.verifier.onnx_loader import to_onnx

    net = Network.mlp([(np.array([[1.0, 0.5]]), np.zeros(1))])
    folder = tmp_path / "models"
    folder.mkdir()
    for stem in ("price.v2", "lineitem_disc_price__lump_e0.5", "2025-model"):
        (folder / f"{stem}.onnx").write_bytes(to_onnx(net))
    con = mlskip.connect()
    names = con.register_models_dir(folder)
    assert sorted(names) == ["lineitem_disc_price__lump_e0_5", "m_2025_model", "price_v2"]
    assert con.sql("SELECT price_v2(2.0, 4.0)").fetchone()[0] == 4.0
    (folder / "price_v2.onnx").write_bytes(to_onnx(net))
    with pytest.raises(mlskip.MlskipError, match="both map to the SQL name 'price_v2'"):
        mlskip.connect().register_models_dir(folder)


def test_connect_takes_duckdbs_own_arguments(tmp_path):
    db = tmp_path / "x.duckdb"
    with duckdb.connect(str(db)) as setup:
        setup.execute("CREATE TABLE t AS SELECT 1 AS a")
    con = mlskip.connect(str(db), read_only=True, config={"threads": 1})
    assert con.sql("SELECT a FROM t").fetchall() == [(1,)]
    assert con.sql("SELECT current_setting('threads')").fetchone()[0] == 1
    with pytest.raises(duckdb.Error, match="read-only"):
        con.execute("CREATE TABLE u AS SELECT 2")


def test_explain_says_what_limits_skipping_per_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MLSKIP_FOOTER_KEY", raising=False)
    table = pa.table({"a": np.arange(1000.0), "b": np.arange(1000.0)})
    pq.write_table(table, tmp_path / "plain.parquet", row_group_size=100)
    mlskip.write_parquet(table, tmp_path / "nohull.parquet", row_group_size=100, hulls=None)
    mlskip.write_parquet(table, tmp_path / "hull.parquet", row_group_size=100, hulls=[("a", "b")])
    net = Network.mlp([(np.array([[1.0, 1.0]]), np.zeros(1))])
    limits = {}
    for key in (None, "wrong"):
        con = mlskip.connect(footer_key=key)
        con.register_model("m", net, inputs=["a", "b"])
        for name in ("plain", "nohull", "hull"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = con.explain_skipping(
                    f"SELECT count(*) FROM '{tmp_path / name}.parquet' WHERE m(a, b) > 500"
                )
            limits[key, name] = " ".join(report.files[0].limits)
            printed = " ".join(str(report).split())
            assert not limits[key, name] or " ".join(limits[key, name].split()) in printed
    assert "no mlskip summaries" in limits[None, "plain"]
    assert "no polygon for the model's columns ['a', 'b']" in limits[None, "nohull"]
    assert limits[None, "hull"] == ""
    assert "not trusted (footer is not signed" in limits["wrong", "hull"]


def test_scattered_row_groups_kept_mostly_are_cut_after_reading(tmp_path, monkeypatch):
    """Pruned row groups between most kept ones: the batch evaluation reads the span and
    drops the pruned rows itself (DuckDB's per-row filter would cost more), and the rows
    are the same as without skipping, at the ranges' edges too."""
    from mlskip.udf import batch_eval

    rng = np.random.default_rng(3)
    groups = 30
    a = np.concatenate([rng.uniform(0, 10, 1000) if i % 3 == 0 else rng.uniform(50, 100, 1000)
                        for i in range(groups)])  # fmt: skip
    mlskip.write_parquet(pa.table({"a": a, "b": np.round(-a * 1000).astype(np.int64)}), tmp_path / "t.parquet",
                         row_group_size=1000, hulls=None)  # fmt: skip
    identity = Network.mlp([(np.ones((1, 1)), np.zeros(1))], ReLU())
    on, off = mlskip.connect(), mlskip.connect(skipping=False)
    for con in (on, off):
        con.register_model("m", identity)
    cuts = []
    real = batch_eval._cut_after_reading
    monkeypatch.setattr(
        batch_eval, "_cut_after_reading", lambda r: cuts.append(real(r)) or cuts[-1]
    )
    top = np.sort(a)[::-1]
    for t in (top[30], top[5], np.nextafter(top[0], -np.inf)):
        sql = f"SELECT count(*), sum(b), min(b), max(b) FROM '{tmp_path / 't.parquet'}' WHERE m(a) > {float(t)!r}"
        report = same_rows_plain(on, off, sql)
        assert groups // 3 <= report.pruned < groups
    assert any(c is not None for c in cuts)


def same_rows_plain(on, off, sql):
    want = off.sql(sql).fetchall()
    assert on.sql(sql).fetchall() == want, sql
    return on.explain_skipping(sql)


def test_ranges_cut_after_reading_cover_their_span_in_any_order():
    from mlskip.udf.batch_eval import _cut_after_reading

    starts, ends = _cut_after_reading(((5000, 5999), (0, 999), (1000, 2999)))
    assert starts.tolist() == [0, 1000, 5000] and ends.tolist() == [999, 2999, 5999]
    assert _cut_after_reading(((0, 999), (9000, 9999))) is None  # 20% kept: DuckDB filters
    assert _cut_after_reading(((0, 999),)) is None  # one range: a pushed-down BETWEEN
