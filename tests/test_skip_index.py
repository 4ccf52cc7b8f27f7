"""Skip indexes for Parquet mlskip did not write: build, plan, stale entries, refresh.

The backbone is differential: every query over indexed files returns what the same
query returns without skipping, whether the index is fresh, stale, partial, replaced
while queries run, or unreadable.
"""

from __future__ import annotations

import os
import threading
import warnings

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import mlskip
from mlskip.cli import app
from mlskip.errors import MlskipError, SkippingFallbackWarning
from mlskip.metadata.file_index import index_file
from mlskip.metadata.reader import footer_hash_of, read_skip_metadata
from mlskip.skipper.skip_index import build_index, refresh_index, show_index
from mlskip.verifier import Network, ReLU
from tests.test_skipping_e2e import make_net, make_table

N_FILES = 6
ROWS = 6_000


def _table(rng: np.random.Generator, part: int) -> pa.Table:
    table = make_table(rng, ROWS)
    ids = pa.array(np.arange(ROWS) + part * ROWS)
    return table.append_column("id", ids).sort_by("a")


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Plain Parquet files written by pyarrow (p*) and DuckDB (d*), and files with mlskip
    footers (m*). DuckDB's files differ from pyarrow's in their Parquet types, so a scan
    of both runs unplanned: queries scan GLOBS, each one writer's files."""
    rng = np.random.default_rng(11)
    root = tmp_path_factory.mktemp("lake")
    tables = []
    for i in range(N_FILES):
        table = _table(rng, i)
        tables.append(table)
        if i % 3 == 0:
            pq.write_table(table, root / f"p{i}.parquet", row_group_size=1_000)
        elif i % 3 == 1:
            con = duckdb.connect()
            con.register("t", table)
            con.execute(
                f"COPY t TO '{root / f'd{i}.parquet'}' (FORMAT parquet, ROW_GROUP_SIZE 1000)"
            )
            con.close()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlskip.write_parquet(
                    table, root / f"m{i}.parquet", row_group_size=1_000, hulls=[("a", "b")]
                )
    return root, pa.concat_tables(tables)


@pytest.fixture(scope="module")
def index(lake, tmp_path_factory):
    root, _ = lake
    path = tmp_path_factory.mktemp("index") / "lake.index.parquet"
    report = build_index(str(root / "*.parquet"), str(path))
    assert report.files == N_FILES and report.failed == ()
    return str(path)


NET = make_net(np.random.default_rng(5), 2)
GLOBS = ["[pm]*.parquet", "d*.parquet"]
QUERIES = [
    "SELECT count(*), sum(id) FROM '{g}' WHERE f(a, b) > {hi}",
    "SELECT id FROM '{g}' WHERE f(a, b) < {lo} ORDER BY id",
    "SELECT count(*) FROM '{g}' WHERE f(a, b) BETWEEN {lo} AND {hi}",
    "SELECT count(*), sum(id) FROM '{g}' WHERE f(a, d) > {hi}",  # d holds NaN
    "SELECT count(*) FROM '{g}' WHERE f(a_null, b) > {hi}",  # NULLs
]


def _thresholds(table: pa.Table) -> tuple[float, float]:
    from mlskip.udf.model import prepare_model
    from mlskip.udf.runtime import make_runner

    x = np.column_stack([table.column(c).to_numpy() for c in ("a", "b")]).astype(np.float32)
    y = make_runner(prepare_model(NET))(x).ravel()
    return float(np.quantile(y, 0.05)), float(np.quantile(y, 0.95))


def _cons(index: str | None) -> list:
    cons = [mlskip.connect(index=index), mlskip.connect(skipping=False)]
    for con in cons:
        con.register_model("f", NET)
    return cons


def test_index_results_equal_unskipped_and_prune_more_than_footers(lake, index):
    root, table = lake
    lo, hi = _thresholds(table)
    with_index, plain = _cons(index)
    footers = _cons(None)[0]
    pruned = {"index": 0, "footers": 0}
    for q, glob in ((q, g) for q in QUERIES for g in GLOBS):
        sql = q.format(g=root / glob, lo=lo, hi=hi)
        expected = plain.sql(sql).fetchall()
        assert with_index.sql(sql).fetchall() == expected, sql
        assert footers.sql(sql).fetchall() == expected, sql
        pruned["index"] += with_index.explain_skipping(sql).pruned
        pruned["footers"] += footers.explain_skipping(sql).pruned
    # plain files have no NaN counts or polygons in their footers: only the index prunes them
    assert pruned["index"] > pruned["footers"]


def test_whole_files_are_pruned_from_the_index(lake, index):
    root, table = lake
    _, hi = _thresholds(table)
    con, plain = _cons(index)
    sql = f"SELECT count(*) FROM '{root / GLOBS[0]}' WHERE f(a, b) > {hi * 10 + 100}"
    report = con.explain_skipping(sql)
    assert report.pruned == report.row_groups > 0
    assert all(m.startswith("file-level") for f in report.files for m, _ in f.methods)
    assert con.sql(sql).fetchall() == plain.sql(sql).fetchall()


def test_files_with_mlskip_footers_are_indexed_from_their_footers(lake, index):
    coverage = show_index(index)
    assert coverage.files == N_FILES
    assert coverage.from_footers == N_FILES // 3
    root, _ = lake
    groups = sum(pq.ParquetFile(f).metadata.num_row_groups for f in root.glob("*.parquet"))
    assert coverage.row_groups == groups
    assert coverage.rows == N_FILES * ROWS


def test_index_of_a_plain_file_holds_the_writers_polygons(tmp_path):
    """The summaries computed for a plain file are those write_parquet stores for the
    same row groups."""
    table = _table(np.random.default_rng(4), 0)
    pq.write_table(table, tmp_path / "plain.parquet", row_group_size=1_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlskip.write_parquet(table, tmp_path / "own.parquet", row_group_size=1_000,
                             hulls=[("a", "b"), ("a", "c")])  # fmt: skip
    own = read_skip_metadata(tmp_path / "own.parquet")
    with open(tmp_path / "plain.parquet", "rb") as handle:
        fhash = footer_hash_of(handle, os.fstat(handle.fileno()).st_size)
        handle.seek(0)
        entry = index_file(handle, "plain.parquet", fhash, hulls=[("a", "b"), ("a", "c")])
    assert entry.origin == "rows" and entry.status == "ok"
    from mlskip.metadata.reader import skip_metadata_from

    got = skip_metadata_from(entry.facts, entry.footer, entry.key, label="x", footer_key=None)
    assert got.pairs == own.pairs
    for mine, theirs in zip(got.row_groups, own.row_groups, strict=True):
        for pair in own.pairs:
            np.testing.assert_array_equal(mine.hulls[pair], theirs.hulls[pair])
        assert mine.may_have_nan == theirs.may_have_nan


def _rewrite(path, table: pa.Table) -> None:
    """Replace a file in place with other rows (same name, new content)."""
    tmp = str(path) + ".new"
    pq.write_table(table, tmp, row_group_size=1_000)
    os.replace(tmp, path)


def test_stale_entries_are_never_used_and_refresh_fixes_them(tmp_path):
    rng = np.random.default_rng(21)
    for i in range(3):
        pq.write_table(_table(rng, i), tmp_path / f"p{i}.parquet", row_group_size=1_000)
    index = str(tmp_path / "idx" / "i.parquet")
    build_index(str(tmp_path / "p*.parquet"), index)
    glob = tmp_path / "p*.parquet"
    # p1 now holds rows the index does not describe (values far above the old ones)
    shifted = _table(rng, 1)
    shifted = shifted.set_column(0, "a", pa.compute.add(shifted.column("a"), 1000.0))
    _rewrite(tmp_path / "p1.parquet", shifted)
    con, plain = _cons(index)
    lo, hi = _thresholds(pa.concat_tables([_table(np.random.default_rng(0), 0)]))
    for q in QUERIES:
        sql = q.format(g=glob, lo=lo, hi=hi)
        assert con.sql(sql).fetchall() == plain.sql(sql).fetchall(), sql
    report = con.explain_skipping(QUERIES[0].format(g=glob, lo=lo, hi=hi))
    stale = [f for f in report.files if any("stale" in limit for limit in f.limits)]
    assert [os.path.basename(f.path) for f in stale] == ["p1.parquet"]
    # a new file is planned from its footer; a removed one simply is not scanned
    pq.write_table(_table(rng, 3), tmp_path / "p3.parquet", row_group_size=1_000)
    os.remove(tmp_path / "p0.parquet")
    sql = QUERIES[0].format(g=glob, lo=lo, hi=hi)
    assert con.sql(sql).fetchall() == plain.sql(sql).fetchall()
    refreshed = refresh_index(index)
    assert (refreshed.files, refreshed.indexed, refreshed.kept, refreshed.dropped) == (3, 2, 1, 1)
    report = con.explain_skipping(sql)
    assert not any("index" in limit for f in report.files for limit in f.limits)
    assert con.sql(sql).fetchall() == plain.sql(sql).fetchall()


def test_same_size_same_mtime_rewrite_is_caught_by_the_footer_hash(tmp_path):
    """A rewrite that keeps size and modification time still changes the footer."""
    rng = np.random.default_rng(8)
    table = _table(rng, 0)
    path = tmp_path / "p.parquet"
    pq.write_table(table, path, row_group_size=1_000, compression="none")
    index = str(tmp_path / "i.parquet")
    build_index(str(path), index)
    st = os.stat(path)
    flipped = table.set_column(0, "a", pa.compute.multiply(table.column("a"), -1.0))
    pq.write_table(flipped, path, row_group_size=1_000, compression="none")
    os.truncate(path, st.st_size) if os.stat(path).st_size > st.st_size else None
    if os.stat(path).st_size != st.st_size:
        pytest.skip("the rewrite changed the file size; the size check covers it")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    con, plain = _cons(index)
    lo, hi = _thresholds(table)
    for q in QUERIES[:3]:
        sql = q.format(g=path, lo=lo, hi=hi)
        assert con.sql(sql).fetchall() == plain.sql(sql).fetchall()


def test_queries_during_refresh_always_see_a_whole_index(tmp_path):
    rng = np.random.default_rng(31)
    tables = [_table(rng, i) for i in range(4)]
    for i, t in enumerate(tables):
        pq.write_table(t, tmp_path / f"p{i}.parquet", row_group_size=1_000)
    index = str(tmp_path / "i.parquet")
    build_index(str(tmp_path / "p*.parquet"), index)
    lo, hi = _thresholds(tables[0])
    sql = QUERIES[0].format(g=tmp_path / "p*.parquet", lo=lo, hi=hi)
    con, plain = _cons(index)
    expected = plain.sql(sql).fetchall()
    stop = threading.Event()
    errors: list[BaseException] = []

    def refresher() -> None:
        try:
            for k in range(1_000):
                if stop.is_set():
                    return
                # another index over the same files, then a refresh of it: each replaces it
                build_index(str(tmp_path / "p*.parquet"), index, hulls=None if k % 2 else "auto")
                refresh_index(index)
        except BaseException as error:  # noqa: BLE001 (reported by the test)
            errors.append(error)

    thread = threading.Thread(target=refresher)
    thread.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SkippingFallbackWarning)  # never a torn index
            for _ in range(15):
                assert con.sql(sql).fetchall() == expected
    finally:
        stop.set()
        thread.join()
    assert not errors


def test_unreadable_index_falls_back_to_footers_with_a_warning(lake, tmp_path):
    root, table = lake
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not an index")
    con, plain = _cons(str(bad))
    lo, hi = _thresholds(table)
    sql = QUERIES[0].format(g=root / "*.parquet", lo=lo, hi=hi)
    with pytest.warns(SkippingFallbackWarning, match="skip index"):
        got = con.sql(sql).fetchall()
    assert got == plain.sql(sql).fetchall()


def test_index_under_another_footer_key_plans_soundly(lake, index, monkeypatch):
    """Planning that trusts only footers signed with a key gets boxes from the unsigned
    index values, and the same results."""
    root, table = lake
    lo, hi = _thresholds(table)
    con = mlskip.connect(index=index, footer_key="secret")
    con.register_model("f", NET)
    plain = _cons(None)[1]
    for q in QUERIES:
        sql = q.format(g=root / GLOBS[0], lo=lo, hi=hi)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippingFallbackWarning)
            assert con.sql(sql).fetchall() == plain.sql(sql).fetchall()
    with pytest.raises(MlskipError, match="footer key"):
        refresh_index(index, footer_key="secret")


def test_index_cli_build_show_refresh(lake, tmp_path):
    root, _ = lake
    index = str(tmp_path / "cli.parquet")
    runner = CliRunner()
    built = runner.invoke(app, ["index", "build", str(root / "*.parquet"), "--index", index,
                                "--hulls", "a:b"])  # fmt: skip
    assert built.exit_code == 0, built.output
    assert f"{N_FILES} file(s)" in built.output
    shown = runner.invoke(app, ["index", "show", "--index", index])
    assert shown.exit_code == 0 and "polygons for (a, b)" in shown.output
    again = runner.invoke(app, ["index", "refresh", "--index", index, "--json"])
    assert again.exit_code == 0 and '"kept": 6' in again.output
    missing = runner.invoke(app, ["index", "build", str(tmp_path / "none*.parquet"),
                                  "--index", index])  # fmt: skip
    assert missing.exit_code == 2 and "no Parquet file matches" in missing.output


def test_arrow_and_polars_scans_plan_from_the_index(lake, index):
    root, table = lake
    _, hi = _thresholds(table)
    glob = str(root / GLOBS[0])
    plain = mlskip.scan(glob, NET, f"> {hi}", inputs=["a", "b"])
    indexed = mlskip.scan(glob, NET, f"> {hi}", inputs=["a", "b"], index=index)
    assert sorted(indexed.column("id").to_pylist()) == sorted(plain.column("id").to_pylist())
    by_index = mlskip.plan_scan(glob, NET, f"> {hi}", inputs=["a", "b"], index=index)
    by_footers = mlskip.plan_scan(glob, NET, f"> {hi}", inputs=["a", "b"])
    assert sum(f.pruned.sum() for f in by_index.files) > sum(
        f.pruned.sum() for f in by_footers.files
    )
    lazy = mlskip.scan_polars(glob, NET, f"> {hi}", inputs=["a", "b"], index=index)
    assert sorted(lazy.collect()["id"].to_list()) == sorted(plain.column("id").to_pylist())
    dataset = mlskip.scan_dataset(glob, NET, f"> {hi}", inputs=["a", "b"], index=index)
    assert dataset.count_rows() <= mlskip.scan_dataset(glob, NET, f"> {hi}",
                                                       inputs=["a", "b"]).count_rows()  # fmt: skip


def test_int96_timestamps_get_no_polygon(tmp_path):
    """pyarrow reads INT96 as nanoseconds where DuckDB truncates to microseconds: a polygon
    over pyarrow's values could exclude DuckDB's, so such columns get none."""
    n = 2_000
    ts = pa.array(np.arange(n) * 1_000_000_777 + 1_700_000_000_000_000_999, pa.timestamp("ns"))
    table = pa.table({"ts": ts, "a": np.linspace(0, 1, n), "b": np.linspace(1, 2, n)})
    path = tmp_path / "int96.parquet"
    pq.write_table(table, path, row_group_size=500, use_deprecated_int96_timestamps=True)
    with open(path, "rb") as handle:
        fhash = footer_hash_of(handle, os.fstat(handle.fileno()).st_size)
        handle.seek(0)
        entry = index_file(handle, str(path), fhash, hulls=[("ts", "a"), ("a", "b")])
    from mlskip.metadata.reader import skip_metadata_from

    got = skip_metadata_from(entry.facts, entry.footer, entry.key, label="x", footer_key=None)
    assert got.pairs == (("a", "b"),)


def test_explain_says_what_the_index_did(lake, index, tmp_path):
    root, table = lake
    con, _ = _cons(index)
    _, hi = _thresholds(table)
    sql = f"SELECT count(*) FROM '{root / GLOBS[0]}' WHERE f(a, b) > {hi * 10 + 100}"
    text = " ".join(str(con.explain_skipping(sql)).split())  # unwrapped
    files = len(list(root.glob("[pm]*.parquet")))
    assert f"skip index: {files} file(s) planned from it, {files} pruned whole" in text
    assert "0 planned from their own footers" in text


# f(a, b) = a - b
DIFF = Network.mlp([(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2)),
                    (np.array([[1.0, -1.0]]), np.zeros(1))], ReLU())  # fmt: skip
PLAIN = {"compression": "none", "use_dictionary": False, "write_statistics": False}


def _diff_results(index: str, glob: str, threshold: float) -> tuple[list, list]:
    con, ref = mlskip.connect(index=index), mlskip.connect(skipping=False)
    for c in (con, ref):
        c.register_model("f", DIFF)
    sql = f"SELECT a, b FROM '{glob}' WHERE f(a, b) > {threshold}"
    assert con.explain_skipping(sql).pruned > 0
    return con, ref, sql


def test_rewrites_that_keep_size_mtime_and_footer_are_caught(tmp_path):
    """Without statistics the footer does not depend on the values: a value rewritten in
    place (mtime restored) and two look-alike files swapped by rename keep size, mtime and
    footer bytes; the change time and inode still tell (found by adversarial testing:
    0 rows instead of 1, and instead of 1,000)."""
    import struct

    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 1000)
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"a": a, "b": a + rng.uniform(0, 0.01, 1000)}), path,
                   row_group_size=100, **PLAIN)  # fmt: skip
    build_index(str(path), str(tmp_path / "i1"), hulls=[("a", "b")])
    con, ref, sql = _diff_results(str(tmp_path / "i1"), str(path), 0.5)
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    at = data.index(struct.pack("<d", a[5]))
    data[at : at + 8] = struct.pack("<d", 3.0)  # f = 3 - b > 0.5 on that row
    with open(path, "r+b") as out:
        out.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert con.sql(sql).fetchall() == ref.sql(sql).fetchall() != []
    # two files alike but for their values, same mtime, swapped by rename
    for name, shift in (("p1", 0.0), ("p2", 0.55)):
        x = rng.uniform(0, 1, 1000)
        pq.write_table(pa.table({"a": x, "b": x - shift + rng.uniform(0, 0.01, 1000)}),
                       tmp_path / f"{name}.parquet", row_group_size=100, **PLAIN)  # fmt: skip
        os.utime(tmp_path / f"{name}.parquet", ns=(1_700_000_000 * 10**9,) * 2)
    build_index(str(tmp_path / "p1.parquet"), str(tmp_path / "i2"), hulls=[("a", "b")])
    con, ref, sql = _diff_results(str(tmp_path / "i2"), str(tmp_path / "p1.parquet"), 0.4)
    os.rename(tmp_path / "p1.parquet", tmp_path / "tmp")
    os.rename(tmp_path / "p2.parquet", tmp_path / "p1.parquet")
    os.rename(tmp_path / "tmp", tmp_path / "p2.parquet")
    assert len(con.sql(sql).fetchall()) == len(ref.sql(sql).fetchall()) == 1000


def _damaged(index: str, target: str, damage) -> None:
    table = pq.read_table(index)
    pq.write_table(damage(table).replace_schema_metadata(table.schema.metadata), target)


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t.drop_columns(["status"]),
        lambda t: t.drop_columns([c for c in t.column_names if c.startswith("min:")][:1]),
        lambda t: t.set_column(
            t.schema.get_field_index("size"), "size", pa.nulls(t.num_rows, pa.int64())
        ),  # fmt: skip
        lambda t: t.set_column(
            t.schema.get_field_index("schema"), "schema", pa.array(['{"names": []}'] * t.num_rows)
        ),  # fmt: skip
    ],
    ids=["column missing", "stats column missing", "size NULL", "schema facts incomplete"],
)
def test_a_damaged_index_falls_back_to_footers(lake, index, tmp_path, damage):
    root, table = lake
    bad = str(tmp_path / "damaged.index")
    _damaged(index, bad, damage)
    con, plain = _cons(bad)
    lo, hi = _thresholds(table)
    sql = QUERIES[0].format(g=root / GLOBS[0], lo=lo, hi=hi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippingFallbackWarning)
        assert con.sql(sql).fetchall() == plain.sql(sql).fetchall()
    assert not con.explain_skipping(sql).files[0].indexed


def test_an_index_of_no_files_is_readable_and_refreshable(tmp_path):
    """A refresh while the lake is empty writes an index of no entries; it is read (every
    file then plans from its footer) and the next refresh fills it."""
    rng = np.random.default_rng(3)
    pq.write_table(_table(rng, 0), tmp_path / "p0.parquet", row_group_size=1_000)
    index = str(tmp_path / "i.parquet")
    build_index(str(tmp_path / "p*.parquet"), index)
    os.rename(tmp_path / "p0.parquet", tmp_path / "away")
    assert refresh_index(index).files == 0
    assert show_index(index).files == 0
    os.rename(tmp_path / "away", tmp_path / "p0.parquet")
    assert refresh_index(index).files == 1


def test_arrow_scans_combine_files_whose_types_differ(tmp_path):
    """A column int64 in one file and double in another reads as double, as DuckDB reads
    them, whatever the plan prunes."""
    pq.write_table(pa.table({"a": np.arange(100, dtype=np.int64), "b": np.zeros(100)}),
                   tmp_path / "p1.parquet", row_group_size=10)  # fmt: skip
    pq.write_table(pa.table({"a": np.linspace(0, 99, 100), "b": np.zeros(100)}),
                   tmp_path / "p2.parquet", row_group_size=10)  # fmt: skip
    glob = str(tmp_path / "p*.parquet")
    got = mlskip.scan(glob, DIFF, "> 50", inputs=["a", "b"])
    assert got.schema.field("a").type == pa.float64() and got.num_rows == 98
    assert mlskip.scan_polars(glob, DIFF, "> 50", inputs=["a", "b"]).collect().height == 98


def test_build_on_dask_processes_gives_the_same_index(lake, index, tmp_path):
    """``workers=2`` reads the files on two Dask processes: the same entries."""
    root, _ = lake
    parallel = str(tmp_path / "parallel.index")
    report = build_index(str(root / "*.parquet"), parallel, workers=2)
    assert report.files == N_FILES and not report.failed
    one, two = pq.read_table(index), pq.read_table(parallel)
    assert one.drop_columns(["schema_hash"]).equals(two.drop_columns(["schema_hash"]))


def test_post_query_identity_checks_see_a_changed_file(tmp_path):
    """After a planned query every planned file's identity is checked in one call (local
    ``stat``; S3 LISTs: tests/test_object_storage.py): unchanged files pass, a touched one
    is reported."""
    rng = np.random.default_rng(5)
    for i in range(3):
        pq.write_table(_table(rng, i), tmp_path / f"p{i}.parquet", row_group_size=1_000)
    index = str(tmp_path / "i.parquet")
    build_index(str(tmp_path / "p*.parquet"), index)
    con, _ = _cons(index)
    lo, hi = _thresholds(_table(np.random.default_rng(0), 0))
    report = con.explain_skipping(QUERIES[0].format(g=tmp_path / "p*.parquet", lo=lo, hi=hi))
    assert len(report.identities) == 3 and con.changed_files(report) == []
    os.utime(tmp_path / "p1.parquet")
    assert [os.path.basename(p) for p in con.changed_files(report)] == ["p1.parquet"]


def test_planning_a_slice_reads_only_its_part_of_the_index(lake, index, tmp_path):
    """The index is sorted by path: planning some files reads only the index row groups
    whose path range meets theirs (a Dask planning task reads its slice), and plans them
    as the whole index does."""
    from mlskip.skipper.planner import Planner

    root, table = lake
    small = str(tmp_path / "small-row-groups.index")
    whole = pq.read_table(index)
    pq.write_table(whole, small, row_group_size=4)  # many index row groups
    files = sorted(str(p) for p in root.glob("*.parquet"))
    planner = Planner(index=small)
    one = planner.index.table([os.path.abspath(files[0])])
    assert 0 < one.table.num_rows < whole.num_rows and os.path.abspath(files[0]) in one
    assert planner.index.table(None).table.num_rows == whole.num_rows
    lo, hi = _thresholds(table)
    sql = QUERIES[0].format(g=root / GLOBS[0], lo=lo, hi=hi)
    sliced, full = _cons(small)[0], _cons(index)[0]
    a, b = sliced.explain_skipping(sql), full.explain_skipping(sql)
    assert (a.pruned, a.all_match, a.evaluated) == (b.pruned, b.all_match, b.evaluated)
    assert sliced.sql(sql).fetchall() == full.sql(sql).fetchall()


def test_an_index_among_its_own_sources_is_refused(tmp_path):
    pq.write_table(_table(np.random.default_rng(1), 0), tmp_path / "p0.parquet")
    with pytest.raises(MlskipError, match="among the files"):
        build_index(str(tmp_path / "*.parquet"), str(tmp_path / "lake.index.parquet"))
    with pytest.raises(MlskipError, match="among the files"):
        build_index(str(tmp_path / "**"), str(tmp_path / "sub" / "lake.index"))
    build_index(str(tmp_path / "*.parquet"), str(tmp_path / "lake.index"))  # apart: fine
