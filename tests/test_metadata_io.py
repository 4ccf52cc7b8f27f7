"""Writer and reader: column types, engines, corrupt or stale footers."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import struct
import warnings
import zlib

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from mlskip.errors import InputDataError, SkippingFallbackWarning
from mlskip.metadata import copy, read_skip_metadata, to_numeric, write_file, write_parquet
from mlskip.metadata.footer import KEY, decode_footer

N = 5000


def _table(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    nulls = rng.uniform(size=n) < 0.05
    base = np.datetime64("2020-01-01")
    return pa.table(
        {
            "i8": pa.array(rng.integers(-128, 127, n), pa.int8()),
            "i16": pa.array(rng.integers(-(2**15), 2**15 - 1, n), pa.int16()),
            "i32": pa.array((x * 1e6).astype(np.int32)),
            "i64": pa.array((x * 2**60).astype(np.int64)),
            "u8": pa.array(rng.integers(0, 255, n), pa.uint8()),
            "u64": pa.array(rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2), pa.uint64()),
            "f32": pa.array((x * 3 + 1).astype(np.float32)),
            "f64": pa.array(x * 2 + 0.5, mask=nulls),
            "dec": pa.array([decimal.Decimal(f"{v:.2f}") for v in x * 1000], pa.decimal128(15, 2)),
            "dec30": pa.array([decimal.Decimal(f"{v:.4f}") for v in x * 1e9], pa.decimal128(30, 4)),
            "date": pa.array(
                (base + (x * 300).astype("timedelta64[D]")).astype("datetime64[D]"), pa.date32()
            ),
            "ts_s": pa.array((x * 1e8).astype(np.int64), pa.timestamp("s")),
            "ts_ms": pa.array((x * 1e11).astype(np.int64), pa.timestamp("ms", tz="Europe/Berlin")),
            "ts_us": pa.array((x * 1e14).astype(np.int64), pa.timestamp("us", tz="UTC")),
            "ts_ns": pa.array((x * 1e17).astype(np.int64), pa.timestamp("ns")),
            "s": pa.array([f"r{i}" for i in range(n)]),
        }
    )


NUMERIC = [
    "i8",
    "i16",
    "i32",
    "i64",
    "u8",
    "u64",
    "f32",
    "f64",
    "dec",
    "dec30",
    "date",
    "ts_s",
    "ts_ms",
    "ts_us",
    "ts_ns",
]


def _assert_contains(table, meta, rg_size):
    """Every row's float64 value is in the box, hull and halfspaces of its row group."""
    for r, rg in enumerate(meta.row_groups):
        part = table.slice(r * rg_size, rg.num_rows)
        vals = {c: to_numeric(part.column(c)) for c in NUMERIC}
        for c, num in vals.items():
            v = num.values if num.valid is None else num.values[num.valid]
            lo, hi = rg.box[c]
            assert (v >= lo).all() and (v <= hi).all(), (r, c)
        for (a, b), verts in rg.hulls.items():
            va, vb = vals[a], vals[b]
            ok = np.ones(rg.num_rows, bool)
            for n in (va, vb):
                if n.valid is not None:
                    ok &= n.valid
            pts = np.column_stack([va.values[ok], vb.values[ok]])
            A, bb = rg.halfspaces[(a, b)]
            assert ((A @ pts.T) <= bb[:, None]).all(), (r, a, b)
            assert rg.hull_bytes[(a, b)] <= meta.hull_budget
            if len(verts) >= 3 and np.abs(verts).max() < 1e15:
                assert shapely.Polygon(verts).covers(shapely.points(pts)).all()


def test_roundtrip_all_types(tmp_path):
    t = _table()
    pairs = [
        (NUMERIC[i], NUMERIC[j])
        for i in range(len(NUMERIC))
        for j in range(i + 1, len(NUMERIC))
        if (i + j) % 3 == 0
    ]
    path = tmp_path / "t.parquet"
    rep = write_parquet(t, path, row_group_size=1200, hulls=pairs)
    assert rep.num_row_groups == 5 and rep.num_rows == N
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = read_skip_metadata(path)
    assert meta.status == "ok" and set(meta.pairs) == set(pairs)
    assert [rg.num_rows for rg in meta.row_groups] == [1200] * 4 + [200]
    assert set(meta.columns) == set(NUMERIC)
    assert meta.row_groups[0].null_counts["f64"] == t.column("f64").slice(0, 1200).null_count
    assert "f64" not in meta.row_groups[0].may_have_nan or "f64" not in dict(meta.pairs)
    _assert_contains(t, meta, 1200)
    assert pq.read_table(path).cast(t.schema).equals(t)


def test_parquet_boxes_without_footer(tmp_path):
    t = _table(seed=3)
    path = tmp_path / "plain.parquet"
    pq.write_table(t, path, row_group_size=1000)
    meta = read_skip_metadata(path)
    assert meta.status == "no-summaries" and not meta.warnings
    for c in NUMERIC:
        assert np.isfinite(meta.row_groups[0].box[c]).all(), c
    _assert_contains(t, meta, 1000)


def test_float_stats_with_nan_and_missing(tmp_path):
    t = pa.table(
        {
            "f": pa.array([np.nan, 1.0, -2.0, np.inf]),
            "g": pa.array([None, None, None, None], pa.float64()),
        }
    )
    path = tmp_path / "f.parquet"
    write_parquet(t, path, hulls=[("f", "g")])
    rg = read_skip_metadata(path).row_groups[0]
    assert rg.box["f"][0] <= -2.0 and rg.box["f"][1] == np.inf
    assert rg.box["g"] == (-np.inf, np.inf)
    assert "f" in rg.may_have_nan and not rg.hulls


@pytest.mark.parametrize("kind", ["table", "reader", "polars", "lazy", "duckdb"])
def test_inputs_and_engines(tmp_path, kind):
    t = _table(2000).drop_columns(
        ["u64"]
    )  # DuckDB has no exact UBIGINT->Parquet roundtrip issue, keep simple
    if kind == "table":
        data = t
    elif kind == "reader":
        data = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=333))
    elif kind == "polars":
        data = pl.from_arrow(t)
    elif kind == "lazy":
        data = pl.from_arrow(t).lazy()
    else:
        con = duckdb.connect()
        con.register("t", t)
        data = con.sql("SELECT * FROM t")
    path = tmp_path / "x.parquet"
    rep = write_parquet(data, path, row_group_size=700, hulls=[("i32", "f64"), ("dec", "date")])
    assert rep.num_rows == 2000
    meta = read_skip_metadata(path)
    assert meta.status == "ok"
    assert [rg.num_rows for rg in meta.row_groups] == [700, 700, 600]
    assert all(("i32", "f64") in rg.hulls for rg in meta.row_groups)
    # ordinary Parquet for every engine
    assert duckdb.sql(f"SELECT count(*), sum(i32) FROM read_parquet('{path}')").fetchone() == (
        2000,
        pa.compute.sum(t["i32"]).as_py(),
    )
    assert pl.read_parquet(path).height == 2000
    assert pq.read_table(path).num_rows == 2000


def test_copy_and_write_file(tmp_path):
    con = duckdb.connect()
    rep = copy(
        con,
        "SELECT range AS a, range * 2 + (range % 7) AS b FROM range(10000)",
        tmp_path / "c.parquet",
        row_group_size=4096,
        hulls=[("a", "b")],
    )
    assert rep.num_row_groups == 3
    meta = read_skip_metadata(tmp_path / "c.parquet")
    assert meta.status == "ok" and len(meta.row_groups[0].hulls[("a", "b")]) >= 3
    con.sql(
        f"COPY (SELECT * FROM read_parquet('{tmp_path / 'c.parquet'}')) TO '{tmp_path / 'c.csv'}' (HEADER)"
    )
    rep2 = write_file(tmp_path / "c.csv", tmp_path / "d.parquet", row_group_size=5000)
    assert rep2.pairs == (("a", "b"),)
    assert read_skip_metadata(tmp_path / "d.parquet").status == "ok"
    rep3 = write_file(tmp_path / "d.parquet", tmp_path / "e.parquet", hulls=None)
    assert rep3.pairs == () and read_skip_metadata(tmp_path / "e.parquet").status == "ok"


def test_auto_pairs_pick_correlated():
    from mlskip.metadata import select_pairs

    rng = np.random.default_rng(0)
    x = rng.uniform(size=20000)
    t = pa.table(
        {
            "x": x,
            "y": x + rng.uniform(size=20000) * 0.01,
            "z": rng.uniform(size=20000),
            "w": rng.uniform(size=20000),
        }
    )
    assert select_pairs(t, 1) == [("x", "y")]
    assert select_pairs(t, 5) == [("x", "y")]  # independent pairs fill their box


def test_bad_inputs(tmp_path):
    t = _table(100)
    with pytest.raises(InputDataError):
        write_parquet(t, tmp_path / "a.parquet", hulls=[("s", "i8")])
    with pytest.raises(InputDataError):
        write_parquet(t, tmp_path / "a.parquet", hulls=[("nope", "i8")])
    with pytest.raises(InputDataError):
        write_parquet([1, 2], tmp_path / "a.parquet")


def _rewrite_footer(src, dst, value):
    """Copy a file's data with a different mlskip footer value."""
    t = pq.read_table(src)
    with pq.ParquetWriter(dst, t.schema) as w:
        w.write_table(t, row_group_size=1000)
        if value is not None:
            w.add_key_value_metadata(value)


def _blob(payload: bytes, version=3, crc=None):
    head = struct.pack(
        "<4sBII", b"MLSK", version, zlib.crc32(payload) if crc is None else crc, len(payload)
    )
    return base64.b64encode(head + payload).decode()


@pytest.fixture
def good(tmp_path):
    t = pa.table({"a": np.arange(3000.0), "b": np.arange(3000.0) ** 0.5})
    path = tmp_path / "good.parquet"
    write_parquet(t, path, row_group_size=1000, hulls=[("a", "b")])
    value = pq.ParquetFile(path).metadata.metadata[KEY.encode()].decode()
    return path, value


def _fallback(path, expect, hi=999.0):
    with pytest.warns(SkippingFallbackWarning, match=expect) as rec:
        meta = read_skip_metadata(path)
    assert str(path) in str(rec[0].message)
    assert meta.status == "boxes-only" and not meta.pairs
    assert all(not rg.hulls and not rg.halfspaces for rg in meta.row_groups)
    assert meta.row_groups[0].box["a"] == (0.0, hi)
    return meta


def test_corrupt_footers(tmp_path, good):
    path, value = good
    raw = base64.b64decode(value)
    payload = raw[13:]
    cases = {
        "garbage": ({KEY: "not base64 !!"}, "base64"),
        "checksum": ({KEY: base64.b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).decode()}, "checksum"),
        "truncated": ({KEY: base64.b64encode(raw[:-5]).decode()}, "payload has"),
        "truncated_consistent": ({KEY: _blob(payload[:-7])}, "truncated"),
        "version": ({KEY: _blob(payload, version=9)}, "version"),
        "newer_key": ({"mlskip.v4": value}, "unknown skipping metadata version"),
        "magic": ({KEY: base64.b64encode(b"XXXX" + raw[4:]).decode()}, "magic"),
    }
    for name, (kv, expect) in cases.items():
        dst = tmp_path / f"{name}.parquet"
        _rewrite_footer(path, dst, kv)
        _fallback(dst, expect)


def test_lying_row_counts_and_stale(tmp_path, good):
    path, value = good
    fp = decode_footer(value)
    # checksum-valid footer whose row counts lie: written for 3 x 1000, file has 2 x 1500
    t = pq.read_table(path)
    dst = tmp_path / "stale.parquet"
    with pq.ParquetWriter(dst, t.schema) as w:
        w.write_table(t, row_group_size=1500)
        w.add_key_value_metadata({KEY: value})
    _fallback(dst, "row groups", hi=1499.0)
    dst2 = tmp_path / "stale2.parquet"
    t2 = pa.table({"a": np.arange(3000.0)[::-1].copy(), "b": np.arange(3000.0)})
    with pq.ParquetWriter(dst2, t2.schema) as w:
        w.write_table(t2, row_group_size=1000)
        w.add_key_value_metadata({KEY: value})
    with pytest.warns(SkippingFallbackWarning, match="stale"):
        meta = read_skip_metadata(dst2)
    assert meta.status == "boxes-only"
    assert len(fp.row_groups) == 3


def test_file_objects_and_filesystem(good):
    path, _ = good
    import pyarrow.fs as pafs

    a = read_skip_metadata(path)
    with open(path, "rb") as f:
        b = read_skip_metadata(f)
    c = read_skip_metadata(str(path), filesystem=pafs.LocalFileSystem())
    assert a.footer_hash == b.footer_hash == c.footer_hash and a.size == b.size == c.size
    assert b.status == c.status == "ok"
    np.testing.assert_array_equal(
        a.row_groups[1].hulls[("a", "b")], b.row_groups[1].hulls[("a", "b")]
    )


def test_cluster_by_tightens_boxes(tmp_path):
    rng = np.random.default_rng(0)
    t = pa.table(
        {"x": rng.uniform(size=20000), "y": rng.uniform(size=20000), "k": np.arange(20000)}
    )
    for by in (["x"], ["x", "y"]):
        path = tmp_path / "c.parquet"
        write_parquet(t, path, row_group_size=2000, hulls=[("x", "y")], cluster_by=by)
        meta = read_skip_metadata(path)
        areas = [
            (rg.box["x"][1] - rg.box["x"][0]) * (rg.box["y"][1] - rg.box["y"][0])
            for rg in meta.row_groups
        ]
        assert np.mean(areas) < 0.3
        assert sorted(pq.read_table(path).column("k").to_pylist()) == list(range(20000))


def test_cluster_by_one_column_puts_nulls_and_nan_last(tmp_path):
    """Sorting keeps every row; NULL and NaN keys go to the last row groups."""
    x = [3.0, None, 1.0, float("nan"), 2.0, None]
    t = pa.table({"x": x, "k": list(range(6))})
    path = tmp_path / "n.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        write_parquet(t, path, row_group_size=2, hulls=None, cluster_by=["x"])
    back = pq.read_table(path)
    assert back.column("x").to_pylist()[:3] == [1.0, 2.0, 3.0]
    assert sorted(back.column("k").to_pylist()) == list(range(6))
    assert [read_skip_metadata(path).row_groups[i].box["x"][0] for i in (0, 1)] == [1.0, 3.0]


def test_dates_and_timestamps_encoding():
    ts = pa.array([dt.datetime(1970, 1, 1, 0, 0, 1)], pa.timestamp("ms"))
    assert to_numeric(ts).values[0] == 1e6
    d = pa.array([dt.date(1970, 1, 11)])
    assert to_numeric(d).values[0] == 10.0


def test_empty_table_writes_a_readable_file_with_no_row_groups(tmp_path):
    """DuckDB's COPY and Polars write such files for empty results; so does mlskip."""
    import mlskip

    empty = pa.table({"a": pa.array([], pa.float64()), "b": pa.array([], pa.int64())})
    report = mlskip.write_parquet(empty, tmp_path / "e.parquet", hulls=[("a", "b")])
    assert report.num_rows == 0 and report.num_row_groups == 0
    assert pq.read_table(tmp_path / "e.parquet").equals(empty)


def test_auto_hulls_measure_row_groups_across_the_table(tmp_path):
    """A pair whose hull pays only after the first row group is still chosen by "auto"
    (the first row group alone said no pair gains)."""
    import mlskip
    from mlskip.metadata.writer import select_pairs

    rng = np.random.default_rng(4)
    n, size = 20_000, 2_000
    a = rng.uniform(0, 1, n)
    b = a + rng.normal(0, 0.01, n)
    b[:size] = rng.uniform(0, 1, size)  # the first row group: independent columns
    table = pa.table({"a": a, "b": b, "c": rng.uniform(0, 1, n)})
    assert select_pairs(table.slice(0, size)) == []
    assert select_pairs(table, row_group_size=size)[0] == ("a", "b")
    report = mlskip.write_parquet(table, tmp_path / "t.parquet", row_group_size=size, hulls="auto")
    assert ("a", "b") in report.pairs


def test_failed_write_keeps_the_existing_target(tmp_path):
    """A write that fails part way never replaces (or truncates) the file it targets."""
    import mlskip

    target = tmp_path / "t.parquet"
    good = pa.table({"a": np.arange(1000.0)})
    mlskip.write_parquet(good, target)

    def failing():
        yield pa.record_batch({"a": np.arange(10.0)})
        raise RuntimeError("source failed")

    reader = pa.RecordBatchReader.from_batches(good.schema, failing())
    with pytest.raises(RuntimeError, match="source failed"):
        mlskip.write_parquet(reader, target, row_group_size=5)
    assert pq.read_table(target).equals(good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # no temporary left
