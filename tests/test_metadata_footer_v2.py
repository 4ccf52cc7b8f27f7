"""Footer format v2 (v3's body): per-pair byte accounting, v1 compatibility, stale or
foreign footers caught by the checks against Parquet's statistics.

Fresh files carry v3 values; the tests of the statistics checks turn them into v2
values (same body, no layout digest), since v3's digest would reject their rewritten
files before those checks run (tests/test_metadata_integrity.py tests v3's own checks).
"""

from __future__ import annotations

import base64
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from mlskip.errors import InputDataError, SkippingFallbackWarning
from mlskip.metadata import read_skip_metadata, to_numeric, write_parquet
from mlskip.metadata.footer import (
    KEY,
    KEY_V1,
    KEY_V2,
    MIN_PAIR_BYTES,
    ColumnEntry,
    decode_footer,
    pair_shares,
)

V1_FILE = Path(__file__).parent / "data" / "metadata_v1.parquet"


def _table(n: int = 6000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=n)
    return pa.table(
        {
            "x": x,
            "y": x * 3 + rng.normal(size=n) * 0.05,
            "z": pa.array((x * 1e6).astype(np.int64) + rng.integers(0, 1000, n)),
            "d": pa.array((x * 2000 + 8000).astype(np.int32), pa.date32()),
            "w": pa.array(rng.normal(size=n), mask=rng.uniform(size=n) < 0.1),
            "f": np.where(rng.uniform(size=n) < 0.01, np.nan, rng.uniform(size=n)),
        }
    )


PAIRS_6 = [("x", "y"), ("x", "z"), ("y", "z"), ("z", "d"), ("d", "w"), ("x", "w")]


def _footer(path):
    kv = pq.ParquetFile(path).metadata.metadata
    assert KEY_V1.encode() not in kv and KEY_V2.encode() not in kv
    return decode_footer(kv[KEY.encode()])


V3_HEAD = 5  # u8 flags, u32 layout digest (unsigned footers)


def _v2_value(path) -> str:
    """A fresh (unsigned v3) file's footer value as format v2: the body without v3's head."""
    blob = base64.b64decode(pq.ParquetFile(path).metadata.metadata[KEY.encode()])
    assert blob[4] == 3 and blob[13] == 0, "expected an unsigned v3 value"
    return _reblob(blob[13 + V3_HEAD :])


def _assert_rows_inside(table: pa.Table, meta) -> None:
    """Every row is in its row group's box, halfspaces and polygon (shapely covers)."""
    start = 0
    for rg in meta.row_groups:
        part = table.slice(start, rg.num_rows)
        start += rg.num_rows
        nums = {c: to_numeric(part.column(c)) for c in meta.columns}
        for c, num in nums.items():
            v = num.values if num.valid is None else num.values[num.valid]
            v = v[~np.isnan(v)]
            assert (v >= rg.box[c][0]).all() and (v <= rg.box[c][1]).all(), c
        for (a, b), verts in rg.hulls.items():
            ok = np.ones(rg.num_rows, bool)
            for n in (nums[a], nums[b]):
                if n.valid is not None:
                    ok &= n.valid
            pts = np.column_stack([nums[a].values[ok], nums[b].values[ok]])
            A, bb = rg.halfspaces[(a, b)]
            assert ((A @ pts.T) <= bb[:, None]).all(), (a, b)
            if len(verts) >= 3:
                assert shapely.Polygon(verts).covers(shapely.points(pts)).all()


@pytest.mark.parametrize("n_pairs", [1, 2, 6])
@pytest.mark.parametrize("hull_bytes", [MIN_PAIR_BYTES, 6, 12, 20, 45, 255])
def test_per_pair_byte_accounting(tmp_path, n_pairs, hull_bytes):
    """record + share of its columns' anchors <= hull_bytes for every pair and row group;
    all pair bytes of a row group <= hull_bytes * n_pairs; floats in no pair take 1 byte."""
    t = _table()
    pairs = PAIRS_6[:n_pairs]
    path = tmp_path / "p.parquet"
    write_parquet(t, path, row_group_size=1500, hulls=pairs, hull_bytes=hull_bytes)
    fp = _footer(path)
    assert fp.version == 3 and fp.hull_bytes == hull_bytes
    in_pair = {i for p in fp.pairs for i in p}
    # nothing else per row group: the payload is the header plus entries and records
    payload = base64.b64decode(pq.ParquetFile(path).metadata.metadata[KEY.encode()])
    payload = payload[13 + V3_HEAD :]
    head = 7 + 4 + 2 + sum(2 + len(c) for c in fp.columns) + 2 + 4 * n_pairs
    body = sum(
        sum(rg.entry_bytes) + sum(len(r) if r else 1 for r in rg.records) for rg in fp.row_groups
    )
    assert len(payload) == head + body
    for rg in fp.row_groups:
        assert all(isinstance(c, ColumnEntry) for c in rg.columns)
        shares = pair_shares(rg.entry_bytes, fp.pairs)
        sizes = [len(r) if r is not None else 1 for r in rg.records]
        for size, share in zip(sizes, shares, strict=True):
            assert size + share <= hull_bytes
        pair_bytes = sum(rg.entry_bytes[i] for i in in_pair) + sum(sizes)
        assert pair_bytes <= hull_bytes * n_pairs
        for i, c in enumerate(rg.columns):
            if i not in in_pair:  # a float column in no pair: its NaN/inf flag only
                assert rg.entry_bytes[i] == 1 and c.grid is None
    meta = read_skip_metadata(path)
    assert meta.status == "ok" and meta.hull_budget == hull_bytes
    if hull_bytes >= 20:
        assert all(len(rg.hulls) == n_pairs for rg in meta.row_groups)
    _assert_rows_inside(t, meta)


def test_minimum_budget(tmp_path):
    with pytest.raises(InputDataError, match="hull_bytes"):
        write_parquet(_table(100), tmp_path / "x.parquet", hulls=[("x", "y")], hull_bytes=2)


def test_overlapping_pairs_share_anchors(tmp_path):
    """Three pairs on one column: that column's anchor is split three ways (rounded up)."""
    t = _table()
    pairs = [("x", "y"), ("x", "z"), ("x", "d")]
    path = tmp_path / "o.parquet"
    write_parquet(t, path, row_group_size=2000, hulls=pairs)
    fp = _footer(path)
    ix = fp.columns.index("x")
    for rg in fp.row_groups:
        sz = rg.entry_bytes
        for (a, b), share in zip(fp.pairs, pair_shares(sz, fp.pairs), strict=True):
            assert a == ix
            assert share == -(-sz[ix] // 3) + sz[b]


def test_v1_file_still_read():
    """A file written by the v1 writer (key mlskip.v1) reads with its polygons."""
    kv = pq.ParquetFile(V1_FILE).metadata.metadata
    assert KEY_V1.encode() in kv and KEY_V2.encode() not in kv
    assert decode_footer(kv[KEY_V1.encode()]).version == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = read_skip_metadata(V1_FILE)
    assert meta.status == "ok" and meta.pairs == (("a", "b"), ("a", "c"), ("c", "d"))
    assert all(len(rg.hulls) == 3 for rg in meta.row_groups)
    t = pq.read_table(V1_FILE)
    assert meta.row_groups[0].null_counts["b"] == t.column("b").slice(0, 1000).null_count
    assert "a" not in meta.row_groups[0].may_have_nan and "f" in meta.row_groups[0].may_have_nan
    _assert_rows_inside(t, meta)


def _with_value(src, dst, kv, row_group_size=1000, table=None):
    t = table if table is not None else pq.read_table(src)
    with pq.ParquetWriter(dst, t.schema) as w:
        w.write_table(t, row_group_size=row_group_size)
        w.add_key_value_metadata(kv)


def _reblob(payload: bytes) -> str:
    head = struct.pack("<4sBII", b"MLSK", 2, zlib.crc32(payload), len(payload))
    return base64.b64encode(head + payload).decode()


def _rejected(path, expect):
    with pytest.warns(SkippingFallbackWarning, match=expect):
        meta = read_skip_metadata(path)
    assert meta.status == "boxes-only" and not meta.pairs
    assert all(not rg.hulls for rg in meta.row_groups)
    return meta


def test_v2_corrupt_and_truncated(tmp_path):
    t = pa.table({"a": np.arange(3000.0), "b": np.arange(3000.0) ** 0.5})
    path = tmp_path / "good.parquet"
    write_parquet(t, path, row_group_size=1000, hulls=[("a", "b")])
    value = _v2_value(path)
    payload = base64.b64decode(value)[13:]
    fp = decode_footer(value)
    # u8 u16 u32, varint rows per group (1000: 2 bytes), varint rows in the last (2 bytes)
    rg0 = 7 + 4 + 2 + sum(2 + len(c) for c in fp.columns) + 2 + 4 * len(fp.pairs)
    last = len(fp.row_groups[-1].records[-1])  # the last record ends the payload
    cases = {
        "cut": (payload[:-3], "truncated"),
        "cut mid varint": (payload[: rg0 + 1], "truncated"),
        "trailing": (payload + b"\x00", "trailing"),
        "overlong varint": (payload[:7] + b"\xe8\x87\x00" + payload[9:], "non-canonical"),
        "row counts": (payload[:7] + b"\xe9\x07" + payload[9:], "rows"),
        "bad head": (payload[:rg0] + b"\x08" + payload[rg0 + 1 :], "column entry"),
        "bad record": (payload[:-last] + b"\xff" + payload[1 - last :], "record header"),
    }
    for name, (data, expect) in cases.items():
        dst = tmp_path / f"{name}.parquet"
        _with_value(path, dst, {KEY_V2: _reblob(data)})
        _rejected(dst, expect)
    # a budget of 3 bytes written into the header: the stored records exceed it
    forged = payload[:1] + struct.pack("<H", 3) + payload[3:]
    _with_value(path, tmp_path / "budget.parquet", {KEY_V2: _reblob(forged)})
    _rejected(tmp_path / "budget.parquet", "budget")


def test_pasted_footer_caught_by_bounding_box(tmp_path):
    """A footer from another file with the same row counts: grids still cover the
    new statistics, but the polygons' bounding boxes do not (no NULLs: cover check)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(size=3000)
    src = pa.table({"a": x, "b": 2 * x + rng.uniform(size=3000) * 0.1})
    path = tmp_path / "src.parquet"
    write_parquet(src, path, row_group_size=1000, hulls=[("a", "b")])
    value = _v2_value(path)
    fp = decode_footer(value)
    wider = pa.table({"a": x * 1.04 - 0.02, "b": src.column("b")})  # a 4% wider range
    for r, rg in enumerate(fp.row_groups):  # the grids alone would accept it
        g = rg.columns[0].grid
        part = wider.column("a").slice(1000 * r, 1000).to_numpy()
        assert g.value(0) <= part.min() and part.max() <= g.value(65535)
    dst = tmp_path / "pasted.parquet"
    _with_value(path, dst, {KEY_V2: value}, table=wider)
    _rejected(dst, "polygon of .* does not cover the statistics")
    # same with NULLs in b: the polygon must still meet a's range (it holds some row)
    b = pa.array(src.column("b").to_numpy(), mask=rng.uniform(size=3000) < 0.2)
    shifted = pa.table({"a": 1.1 + x * 0.3, "b": b})  # a within the grid, beyond the polygon
    dst2 = tmp_path / "pasted2.parquet"
    _with_value(path, dst2, {KEY_V2: value}, table=shifted)
    _rejected(dst2, "polygon of .* does not cover the statistics")
    # the genuine file passes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_skip_metadata(path).status == "ok"


def test_pasted_footer_caught_by_grid(tmp_path):
    """Statistics outside a column's grid range: stale or foreign."""
    t = pa.table({"a": np.arange(3000.0), "b": np.arange(3000.0) % 7})
    path = tmp_path / "g.parquet"
    write_parquet(t, path, row_group_size=1000, hulls=[("a", "b")])
    value = _v2_value(path)
    other = pa.table({"a": np.arange(3000.0) + 1500, "b": np.arange(3000.0) % 7})
    dst = tmp_path / "o.parquet"
    _with_value(path, dst, {KEY_V2: value}, table=other)
    _rejected(dst, "grid .* does not cover")


def test_v2_prefers_v2_and_reports_unknown(tmp_path):
    t = pa.table({"a": np.arange(2000.0), "b": np.arange(2000.0) ** 2})
    path = tmp_path / "a.parquet"
    write_parquet(t, path, row_group_size=1000, hulls=[("a", "b")])
    value = _v2_value(path)
    dst = tmp_path / "both.parquet"
    v1 = pq.ParquetFile(V1_FILE).metadata.metadata[KEY_V1.encode()].decode()
    _with_value(path, dst, {KEY_V2: value, KEY_V1: v1})  # the v1 value is foreign
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_skip_metadata(dst).status == "ok"
    dst2 = tmp_path / "v4.parquet"
    _with_value(path, dst2, {"mlskip.v4": value})
    _rejected(dst2, "unknown skipping metadata version")


def test_nan_flags_and_boxes(tmp_path):
    """may_have_nan from the flags; boxes and NULL counts are Parquet's."""
    t = _table(4000, seed=5)
    path = tmp_path / "n.parquet"
    write_parquet(t, path, row_group_size=1000, hulls=[("x", "y"), ("d", "w")])
    meta = read_skip_metadata(path)
    for r, rg in enumerate(meta.row_groups):
        part = t.slice(1000 * r, 1000)
        has_nan = bool(np.isnan(part.column("f").to_numpy(zero_copy_only=False)).any())
        assert ("f" in rg.may_have_nan) == has_nan
        assert "x" not in rg.may_have_nan and "w" not in rg.may_have_nan
        assert rg.null_counts["w"] == part.column("w").null_count
        assert rg.box["x"] == (pa.compute.min(part["x"]).as_py(), pa.compute.max(part["x"]).as_py())


def _v1_file(tmp_path, t, hull_bytes, segment: bool):
    """A v1 file whose records are what the v1 writer's buggy box fallback stored:
    the segment (xmin, ymin) - (xmax, ymax) of the fine hull on the 16-bit lattice."""
    from mlskip.metadata.footer import Footer, FooterRowGroup, encode_footer
    from mlskip.metadata.polygon import cells, fine_hull, pair_polygon, summarize_column
    from mlskip.metadata.polygon_codec import encode_record

    groups = []
    for start in range(0, t.num_rows, 1000):
        x, y = (t.column(c).slice(start, 1000).to_numpy() for c in ("a", "b"))
        sx, sy = summarize_column(x, None), summarize_column(y, None)
        if segment:
            hx, hy, _ = fine_hull(cells(x, None, 0, sx.grid), cells(y, None, 0, sy.grid))
            rec = encode_record(np.array([hx.min(), hx.max()]), np.array([hy.min(), hy.max()]), 16)
        else:
            rec = pair_polygon(x, y, None, hull_bytes).record
        groups.append(FooterRowGroup(1000, (sx, sy), (rec,)))
    value = encode_footer(Footer(16, hull_bytes, ("a", "b"), ((0, 1),), tuple(groups), version=1))
    path = tmp_path / f"v1_{hull_bytes}_{segment}.parquet"
    _with_value(None, path, {KEY_V1: value}, table=t)
    return path


def test_v1_fallback_segments_widened(tmp_path):
    """v1 records of the buggy fallback (a diagonal segment) are read as their box;
    v1 footers with budgets below 17 bytes give boxes only."""
    rng = np.random.default_rng(2)
    x = rng.uniform(size=3000)
    t = pa.table({"a": x, "b": 2 * x + rng.uniform(size=3000) * 0.3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = read_skip_metadata(_v1_file(tmp_path, t, 45, True))
    assert meta.status == "ok"
    assert all(len(rg.hulls[("a", "b")]) == 4 for rg in meta.row_groups)
    _assert_rows_inside(t, meta)
    _rejected(_v1_file(tmp_path, t, 12, False), "hull_bytes 12 < 17")
