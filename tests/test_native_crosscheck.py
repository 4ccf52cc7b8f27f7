"""Cross-check: the Rust kernel (native/) against the numba reference, byte for byte."""

from __future__ import annotations

import datetime
import decimal
import struct
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlskip.metadata import native
from mlskip.metadata.footer import KEY
from mlskip.metadata.polygon import PairPolygon, pair_polygon
from mlskip.metadata.writer import select_pairs, summarize_row_group, write_parquet

if not native.available():
    pytest.skip(
        "mlskip native library not built: run `cargo build --release` at the repository "
        f"root (looked in {[str(p) for p in native.library_candidates()]})",
        allow_module_level=True,
    )

MAX = sys.float_info.max
TINY = 5e-324


def _bits(v: float) -> bytes:
    return struct.pack("<d", v)


def _same_summary(a, b) -> None:
    assert _bits(a.lo) == _bits(b.lo) and _bits(a.hi) == _bits(b.hi), (a, b)
    assert a[2:] == b[2:], (a, b)


def _run(f, *args, **kw):
    try:
        return f(*args, **kw)
    except Exception as e:  # the native path must raise the same exception type
        return type(e)


def _check(x, y, valid=None, hull_bytes=45, **kw) -> PairPolygon | type:
    ref = _run(pair_polygon, x, y, valid, hull_bytes, **kw)
    nat = _run(native.pair_polygon_native, x, y, valid, hull_bytes, **kw)
    if isinstance(ref, type):
        assert nat is ref
        return ref
    assert nat.record == ref.record
    assert nat.null_count == ref.null_count
    _same_summary(nat.x, ref.x)
    _same_summary(nat.y, ref.y)
    return ref


def _pts(xs, ys):
    return np.array(xs, np.float64), np.array(ys, np.float64)


NAN, INF = float("nan"), float("inf")
CASES = {
    "single point": _pts([3.0], [4.0]),
    "duplicates": _pts([1.0] * 50 + [2.0] * 50, [5.0] * 50 + [7.0] * 50),
    "collinear": _pts(np.arange(100.0), 3 * np.arange(100.0) + 1),
    "vertical line": _pts([2.0] * 30, np.linspace(-1, 1, 30)),
    "horizontal line": _pts(np.linspace(-1, 1, 30), [0.5] * 30),
    "nan": _pts([1.0, NAN, 3.0], [1.0, 2.0, 3.0]),
    "inf": _pts([1.0, 2.0, 3.0], [1.0, INF, 3.0]),
    "-inf": _pts([-INF, 2.0, 3.0], [1.0, 2.0, 3.0]),
    "only nan": _pts([NAN, NAN], [1.0, 2.0]),
    "signed zeros": _pts([-0.0, 0.0, -0.0], [0.0, -0.0, 0.0]),
    "subnormal": _pts([TINY, 2 * TINY, 7 * TINY], [-TINY, 0.0, 3 * TINY]),
    "tiny": _pts(np.linspace(1e-310, 3e-308, 40), np.linspace(-1e-300, 1e-300, 40) ** 2),
    "huge": _pts(np.linspace(-1, 1, 40) * 1e308, np.linspace(1e300, 1e307, 40)),
    "near max": _pts([-MAX, MAX], [0.0, 1.0]),  # the reference raises OverflowError
    "mixed magnitudes": _pts([1e-300, 1.0, 1e300], [1e300, 1e-300, -1.0]),
    "integers beyond 2**53": _pts([2.0**60, 2.0**60 + 2**9, 3.0**38], [1.0, 2.0, 3.0]),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("hull_bytes", [1, 5, 9, 17, 45, 255])
@pytest.mark.parametrize("ulps", [(0, 0), (1, 2), (8, 0)])
def test_edge_cases(name, hull_bytes, ulps):
    x, y = CASES[name]
    _check(x, y, None, hull_bytes, x_ulps=ulps[0], y_ulps=ulps[1])
    _check(y, x, None, hull_bytes, x_ulps=ulps[1], y_ulps=ulps[0])


def test_out_of_range_arguments(rng):
    x, y = rng.normal(size=200), rng.normal(size=200)
    for hull_bytes in (-3, 0, 2**40):
        _check(x, y, None, hull_bytes)
    _check(x, y, None, 45, x_ulps=-2, y_ulps=-1)
    mask = rng.integers(0, 3, 200)  # any nonzero value marks a valid row
    _check(x, y, mask)


def test_nulls():
    x, y = _pts([1.0, NAN, 3.0, 4.0], [1.0, 2.0, INF, 0.5])
    for mask in ([1, 1, 1, 1], [1, 0, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]):
        _check(x, y, np.array(mask, bool))
    _check(x[:0], y[:0])  # no row at all


@pytest.mark.parametrize("bits", [(16,), (8,), (4,), (6, 4), (12, 16, 10), ()])
def test_bits_choices(bits, rng):
    x = rng.normal(size=3000)
    y = x**2 + rng.uniform(size=3000)
    for hb in (5, 9, 17, 45, 100):
        _check(x, y, None, hb, bits_choices=bits)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_integer_arrays(dtype, rng):
    """Integer arrays go to the kernel uncopied; its conversion equals astype(float64)."""
    hi = np.iinfo(dtype).max
    for scale in (10, 2**20, hi):
        x = rng.integers(-scale, scale, 2000, dtype=dtype, endpoint=True)
        y = (x // 3 + rng.integers(-5, 5, 2000)).astype(dtype)
        for ulps in (0, 1):
            _check(x, y, rng.uniform(size=2000) > 0.1, 45, x_ulps=ulps, y_ulps=1 - ulps)
    big = np.array([2**62 + 1, 2**53 + 1, -(2**63), 2**63 - 1, 7], np.int64)
    _check(big, big[::-1].copy(), None, 45, x_ulps=1)


def test_given_summaries(rng):
    x, y = rng.normal(size=500), rng.normal(size=500)
    ref = pair_polygon(np.append(x, 10.0), np.append(y, -10.0))
    _check(x, y, None, 45, x_summary=ref.x, y_summary=ref.y)


def test_random_buffers():
    """Many random sets: shapes, scales, NaN/inf, masks, budgets, widening."""
    rng = np.random.default_rng(9)
    shapes = ("gauss", "band", "rounded", "constant x", "disk", "few distinct")
    for it in range(600):
        n = int(rng.integers(1, 600))
        sx, sy = 10.0 ** rng.integers(-300, 300, size=2)
        x = rng.normal(size=n)
        shape = shapes[it % len(shapes)]
        if shape == "gauss":
            y = rng.normal(size=n)
        elif shape == "band":
            y = x * rng.uniform(-3, 3) + 1e-3 * rng.normal(size=n)
        elif shape == "rounded":
            x, y = np.round(x * 10), np.round(rng.normal(size=n) * 3)
        elif shape == "constant x":
            y, x = x, np.full(n, x[0])
        elif shape == "disk":
            t = rng.uniform(0, 2 * np.pi, n)
            x, y = np.cos(t) * np.sqrt(rng.uniform(size=n)), np.sin(t)
        else:
            x, y = rng.integers(0, 4, n).astype(float), rng.integers(0, 3, n).astype(float)
        x, y = x * sx, y * sy
        if it % 7 == 0:
            x[rng.integers(n)] = NAN
        if it % 11 == 0:
            y[rng.integers(n)] = rng.choice([INF, -INF])
        valid = rng.uniform(size=n) > 0.3 if it % 3 == 0 else None
        hb = int(rng.choice([1, 5, 9, 17, 33, 45, 100, 255]))
        _check(x, y, valid, hb, x_ulps=int(rng.integers(0, 3)), y_ulps=int(rng.integers(0, 9)))


floats = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)
finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pts=st.lists(st.tuples(st.one_of(finite, floats), st.one_of(finite, floats)), max_size=200),
    scale=st.sampled_from([1.0, 1e-300, 1e300, 1e-8, 1e15]),
    nulls=st.lists(st.booleans(), max_size=200),
    hull_bytes=st.integers(1, 255),
    x_ulps=st.integers(0, 3),
    y_ulps=st.integers(0, 3),
)
def test_hypothesis(pts, scale, nulls, hull_bytes, x_ulps, y_ulps):
    p = np.array(pts, np.float64).reshape(-1, 2)
    with np.errstate(all="ignore"):
        p = p * scale
    valid = None
    if nulls:
        valid = np.resize(np.array(nulls, bool), len(p))
    _check(p[:, 0], p[:, 1], valid, hull_bytes, x_ulps=x_ulps, y_ulps=y_ulps)


def _typed_table(n: int, seed: int) -> pa.Table:
    """Every type the writer reads from raw Arrow buffers, plus copies (float32, timestamp)."""
    rng = np.random.default_rng(seed)
    nulls = rng.uniform(size=n) < 0.1
    cents = rng.integers(-(10**9), 10**9, n)
    return pa.table(
        {
            "f64": pa.array(np.where(rng.uniform(size=n) < 0.01, np.nan, rng.normal(size=n))),
            "i64": pa.array(rng.integers(-(2**62), 2**62, n), mask=nulls),
            "i64small": pa.array(rng.integers(-1000, 1000, n)),
            "i32": pa.array(rng.integers(-(2**31), 2**31 - 1, n).astype(np.int32), mask=nulls),
            "date": pa.array(
                [datetime.date(1992, 1, 1) + datetime.timedelta(int(d)) for d in cents % 3000],
                pa.date32(),
            ),
            "dec": pa.array(
                [decimal.Decimal(int(c)).scaleb(-2) for c in cents], pa.decimal128(15, 2)
            ),
            "dec18": pa.array(
                [
                    None if m else decimal.Decimal(int(c) * 997).scaleb(-4)
                    for c, m in zip(cents, nulls, strict=True)
                ],
                pa.decimal128(18, 4),
            ),
            "f32": pa.array(rng.normal(size=n).astype(np.float32)),
            "ts": pa.array(cents * 1000, pa.timestamp("ns")),
            # small raw spans: the kernel's table look-up of cells
            "days": pa.array((cents % 200).astype(np.int32), pa.date32()),
            "qty": pa.array(
                [decimal.Decimal(int(c % 300)).scaleb(-2) for c in cents], pa.decimal128(15, 2)
            ),
            "small18": pa.array(
                [
                    None if m else decimal.Decimal(int(c % 97)).scaleb(-3)
                    for c, m in zip(cents, nulls, strict=True)
                ],
                pa.decimal128(18, 3),
            ),
            "i64tiny": pa.array(cents % 50, mask=nulls),
        }
    )


PAIRS = [("f64", "i64"), ("i64", "i32"), ("date", "dec"), ("dec", "dec18"),
         ("f32", "ts"), ("i64small", "date"), ("dec18", "f64"), ("days", "qty"),
         ("qty", "small18"), ("i64tiny", "days"), ("small18", "dec")]  # fmt: skip


@pytest.mark.parametrize("offset", [0, 3, 1000])
@pytest.mark.parametrize("hull_bytes", [3, 7, 12, 20, 45, 255])
@pytest.mark.parametrize("npairs", [1, 2, 6, len(PAIRS)])
def test_row_group_buffers(offset, hull_bytes, npairs):
    """Raw Arrow buffers (offsets, bitmaps, chunks) give the reference's summaries and
    records, under the v2 byte accounting (grids dropped for columns in no pair or
    where a pair's share leaves no byte; record budgets hull_bytes minus the share)."""
    t = _typed_table(3000, offset).slice(offset, 1500)
    t = pa.concat_tables([t.slice(0, 700), t.slice(700)])  # two chunks per column
    cols = t.column_names
    idx = {c: i for i, c in enumerate(cols)}
    pairs = [(idx[a], idx[b]) for a, b in PAIRS[:npairs]]
    try:
        native.set_enabled(False)
        ref = summarize_row_group(t, cols, pairs, hull_bytes)
    finally:
        native.set_enabled(None)
    sums, recs = native.row_group_native(t, cols, pairs, hull_bytes)
    assert recs == ref.records
    for a, b in zip(sums, ref.columns, strict=True):
        _same_summary(a, b)


def _write(tmp_path, name: str, use_native: bool, **kw) -> bytes:
    path = tmp_path / name
    native.set_enabled(use_native)
    try:
        write_parquet(_typed_table(5000, 1), path, row_group_size=1024, **kw)
    finally:
        native.set_enabled(None)
    return path.read_bytes()


@pytest.mark.parametrize("hulls", [PAIRS, "auto"])
def test_writer_files_identical(tmp_path, hulls):
    """The writer's files (data pages, statistics, mlskip footer) are the same bytes."""
    a = _write(tmp_path, "native.parquet", True, hulls=hulls)
    b = _write(tmp_path, "reference.parquet", False, hulls=hulls)
    fa = pq.ParquetFile(tmp_path / "native.parquet").metadata.metadata[KEY.encode()]
    fb = pq.ParquetFile(tmp_path / "reference.parquet").metadata.metadata[KEY.encode()]
    assert fa == fb
    assert a == b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_select_pairs_identical(seed):
    """hulls="auto" ranks the same pairs with the kernel's fine hulls."""
    t = _typed_table(4000, seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=4000)
    t = t.append_column("band", pa.array(x * 2 + rng.normal(size=4000) * 1e-3))
    t = t.append_column("x", pa.array(x))
    t = t.append_column("const", pa.array(np.full(4000, 3.0)))
    for max_pairs, ratio in ((6, 0.9), (100, 1.01), (3, 0.5)):
        try:
            native.set_enabled(False)
            ref = select_pairs(t, max_pairs, max_ratio=ratio)
        finally:
            native.set_enabled(None)
        assert select_pairs(t, max_pairs, max_ratio=ratio) == ref
        assert ref or ratio < 0.9
