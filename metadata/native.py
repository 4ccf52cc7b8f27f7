"""Optional Rust kernel for the pair polygon and column summaries (issue 9).

The crate at the repository root (``Cargo.toml``, sources in ``native/``) is a
byte-identical port of ``polygon.pair_polygon`` and of the writer's per-row-group
summaries, loaded here with ctypes (calls release the GIL). The numba code stays
the reference and the fallback:

- ``available()``: the shared library was found and has the expected ABI;
- ``enabled()`` / ``set_enabled(flag)``: whether the writer uses it (default: when
  available, unless the environment sets ``MLSKIP_NATIVE=0``);
- ``pair_polygon_native(...)``: same arguments and result as ``pair_polygon``;
- ``row_group_native(...)``: the writer's summaries and records of one row group,
  reading Arrow buffers directly where the float64 conversion is a plain cast.

The library is looked up at ``$MLSKIP_NATIVE_LIB``, then next to this module,
then in ``<repo>/target/release`` (built by ``make setup`` when cargo exists).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlskip.errors import InputDataError, MetadataError

from .encoding import to_numeric
from .grid import Grid
from .polygon import DEFAULT_BITS_CHOICES, ColumnSummary, PairPolygon, as_mask
from .polygon_codec import BITS_CHOICES

ABI_VERSION = 3
_LIB_FILE = {"darwin": "libmlskip_native.dylib", "win32": "mlskip_native.dll"}.get(
    sys.platform, "libmlskip_native.so"
)
_K_F64, _K_I64, _K_I32, _K_DEC = 0, 1, 2, 3
_STATUS = {
    1: (OverflowError, "math range error (grid beyond float64)"),
    2: (MetadataError, "polygon record not encodable"),
    3: (InputDataError, "invalid arguments to the native kernel"),
    4: (RuntimeError, "native kernel panicked"),
}


class _Column(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int32),
        ("ulps", ctypes.c_int32),
        ("data", ctypes.c_void_p),
        ("len", ctypes.c_int64),
        ("valid", ctypes.c_void_p),
        ("valid_kind", ctypes.c_int32),
        ("_pad", ctypes.c_int32),
        ("valid_offset", ctypes.c_int64),
        ("div", ctypes.c_double),
    ]


class _Summary(ctypes.Structure):
    _fields_ = [
        ("lo", ctypes.c_double),
        ("hi", ctypes.c_double),
        ("nulls", ctypes.c_int64),
        ("nans", ctypes.c_int64),
        ("infs", ctypes.c_int64),
        ("has_grid", ctypes.c_int32),
        ("e", ctypes.c_int32),
        ("n0", ctypes.c_int64),
        ("ulps", ctypes.c_int32),
        ("_pad", ctypes.c_int32),
    ]


class _Record(ctypes.Structure):
    _fields_ = [("len", ctypes.c_int32), ("bytes", ctypes.c_uint8 * 128)]


class _Hull(ctypes.Structure):
    _fields_ = [
        ("status", ctypes.c_int32),
        ("nverts", ctypes.c_int32),
        ("area2", ctypes.c_int64),
        ("xmin", ctypes.c_int64),
        ("xmax", ctypes.c_int64),
        ("ymin", ctypes.c_int64),
        ("ymax", ctypes.c_int64),
    ]


_lib: ctypes.CDLL | None = None
_loaded = False
_switch: bool | None = None


def library_candidates() -> list[Path]:
    """Where the shared library is looked for, in order."""
    here = Path(__file__).resolve().parent
    out = [Path(p) for p in [os.environ.get("MLSKIP_NATIVE_LIB")] if p]
    return out + [here / _LIB_FILE, here.parent / "target" / "release" / _LIB_FILE]


def _load() -> ctypes.CDLL | None:
    global _lib, _loaded
    if _loaded:
        return _lib
    _loaded = True
    for path in library_candidates():
        if not path.is_file():
            continue
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        lib.mlskip_abi_version.restype = ctypes.c_uint32
        if lib.mlskip_abi_version() != ABI_VERSION:
            continue
        p = ctypes.POINTER
        lib.mlskip_pair_polygon.restype = ctypes.c_int32
        lib.mlskip_pair_polygon.argtypes = [
            p(_Column), p(_Column), ctypes.c_uint32, p(ctypes.c_uint32), ctypes.c_size_t,
            p(_Summary), p(_Summary), p(_Summary), p(_Summary), p(_Record),
        ]  # fmt: skip
        lib.mlskip_row_group.restype = ctypes.c_int32
        lib.mlskip_row_group.argtypes = [
            p(_Column), ctypes.c_size_t, p(ctypes.c_uint32), ctypes.c_size_t, ctypes.c_uint32,
            p(ctypes.c_uint32), ctypes.c_size_t, p(_Summary), p(_Record),
        ]  # fmt: skip
        lib.mlskip_fine_hulls.restype = ctypes.c_int32
        lib.mlskip_fine_hulls.argtypes = [
            p(_Column), ctypes.c_size_t, p(ctypes.c_uint32), ctypes.c_size_t,
            p(_Summary), p(_Hull),
        ]  # fmt: skip
        _lib = lib
        break
    return _lib


def available() -> bool:
    """True when the Rust library was found and speaks this ABI version."""
    return _load() is not None


def enabled() -> bool:
    """Whether the writer uses the Rust kernel (available, not switched off)."""
    if _switch is not None:
        return _switch and available()
    return os.environ.get("MLSKIP_NATIVE", "1") != "0" and available()


def set_enabled(flag: bool | None) -> None:
    """Force the kernel on (if available) or off; None restores the default."""
    global _switch
    _switch = flag


def _require() -> ctypes.CDLL:
    lib = _load()
    if lib is None:
        raise RuntimeError(
            "mlskip native library not found (run `cargo build --release` at the "
            f"repository root); looked in {[str(p) for p in library_candidates()]}"
        )
    return lib


def _check(status: int) -> None:
    if status:
        exc, msg = _STATUS.get(status, (RuntimeError, f"native kernel status {status}"))
        raise exc(msg)


def _array_column(values: np.ndarray, mask: np.ndarray, ulps: int) -> tuple[_Column, np.ndarray]:
    """Descriptor of a 1-d array: int64/int32 read as is (converted in the kernel exactly
    as ``astype(float64)`` converts them), anything else as contiguous float64."""
    if values.dtype in (np.int64, np.int32):
        kind = _K_I64 if values.dtype == np.int64 else _K_I32
        values = np.ascontiguousarray(values)
    else:
        kind, values = _K_F64, np.ascontiguousarray(values, dtype=np.float64)
    col = _Column(
        kind=kind, ulps=ulps, data=values.ctypes.data, len=len(values),
        valid=mask.ctypes.data if mask.size else None, valid_kind=0, valid_offset=0, div=1.0,
    )  # fmt: skip
    return col, values


def _to_summary(s: _Summary) -> ColumnSummary:
    grid = Grid(e=int(s.e), n0=int(s.n0)) if s.has_grid else None
    return ColumnSummary(float(s.lo), float(s.hi), int(s.nulls), int(s.nans), int(s.infs), grid)


def _from_summary(s: ColumnSummary) -> _Summary:
    g = s.grid
    return _Summary(
        lo=s.lo,
        hi=s.hi,
        nulls=s.null_count,
        nans=s.nan_count,
        infs=s.inf_count,
        has_grid=g is not None,
        e=g.e if g else 0,
        n0=g.n0 if g else 0,
    )


def _record(r: _Record) -> bytes | None:
    return bytes(r.bytes[: r.len]) if r.len else None


def supports(bits_choices: Sequence[int]) -> bool:
    """True when every lattice width is one the record format can encode."""
    return all(b in BITS_CHOICES for b in bits_choices)


def _bits(bits_choices: Sequence[int]):
    if any(b not in BITS_CHOICES for b in bits_choices):
        raise MetadataError(f"bits_choices {tuple(bits_choices)} not within {BITS_CHOICES}")
    return (ctypes.c_uint32 * len(bits_choices))(*bits_choices), len(bits_choices)


def pair_polygon_native(
    x: np.ndarray,
    y: np.ndarray,
    valid: np.ndarray | None = None,
    hull_bytes: int = 45,
    *,
    x_ulps: int = 0,
    y_ulps: int = 0,
    x_summary: ColumnSummary | None = None,
    y_summary: ColumnSummary | None = None,
    bits_choices: tuple[int, ...] = DEFAULT_BITS_CHOICES,
) -> PairPolygon:
    """``polygon.pair_polygon`` computed by the Rust kernel (byte-identical result).

    int64/int32 arrays are passed without a float64 copy; ``*_ulps`` are used as
    given (as by the reference, which converts with ``astype(float64)``).
    """
    lib = _require()
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.ndim != 1:
        raise InputDataError(
            f"pair_polygon needs two 1-d arrays of one length, got {x.shape}, {y.shape}"
        )
    # out-of-range arguments act as in the reference: budgets below 1 byte hold
    # nothing, at most 31 vertices fit anyway, and negative widening is none
    hull_bytes = min(max(int(hull_bytes), 0), 2**32 - 1)
    x_ulps, y_ulps = (min(max(int(u), 0), 2**31 - 1) for u in (x_ulps, y_ulps))
    mask = as_mask(valid, len(x))
    bits, nbits = _bits(bits_choices)
    (cx, x), (cy, y) = _array_column(x, mask, x_ulps), _array_column(y, mask, y_ulps)
    gx = _from_summary(x_summary) if x_summary else None
    gy = _from_summary(y_summary) if y_summary else None
    ox, oy, rec = _Summary(), _Summary(), _Record()
    _check(
        lib.mlskip_pair_polygon(
            ctypes.byref(cx), ctypes.byref(cy), hull_bytes, bits, nbits,
            ctypes.byref(gx) if gx else None, ctypes.byref(gy) if gy else None,
            ctypes.byref(ox), ctypes.byref(oy), ctypes.byref(rec),
        )
    )  # fmt: skip
    nulls = int(len(x) - mask.sum()) if mask.size else 0
    xs = x_summary or _to_summary(ox)
    ys = y_summary or _to_summary(oy)
    return PairPolygon(_record(rec), xs, ys, nulls)


def _arrow_column(arr: pa.Array, keep: list) -> _Column:
    """Column descriptor over the Arrow buffers where to_numeric is a plain cast, else a copy."""
    t = arr.type
    n = len(arr)
    valid, vkind, voff = None, 1, 0
    if arr.null_count:
        bitmap = arr.buffers()[0]
        valid, voff = bitmap.address, arr.offset
        keep.append(bitmap)
    kind = div = None
    ulps = 0
    if t == pa.float64():
        kind, width = _K_F64, 8
    elif t == pa.int64():
        kind, width, ulps = _K_I64, 8, -1
    elif t in (pa.int32(), pa.date32()):
        kind, width = _K_I32, 4
    elif isinstance(t, pa.Decimal128Type) and t.precision <= 18 and 0 <= t.scale <= 22:
        kind, width = _K_DEC, 16
        div = float(10**t.scale) if t.scale else 1.0
        ulps = 1 if t.precision <= 15 else 2
    if kind is None or arr.buffers()[1] is None:
        num = to_numeric(arr)
        vals = np.ascontiguousarray(num.values, dtype=np.float64)
        keep.append(vals)
        mask = as_mask(num.valid, n)
        keep.append(mask)
        return _Column(
            kind=_K_F64, ulps=num.ulps, data=vals.ctypes.data if n else None, len=n,
            valid=mask.ctypes.data if mask.size else None, valid_kind=0, valid_offset=0, div=1.0,
        )  # fmt: skip
    buf = arr.buffers()[1]
    keep.append(buf)
    return _Column(
        kind=kind, ulps=ulps, data=buf.address + arr.offset * width, len=n, valid=valid,
        valid_kind=vkind, valid_offset=voff, div=div or 1.0,
    )  # fmt: skip


def _columns(table: pa.Table, columns: Sequence[str], keep: list):
    cols = (_Column * max(1, len(columns)))()
    for i, name in enumerate(columns):
        col = table.column(name)
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        if isinstance(arr, pa.ChunkedArray):  # zero chunks
            arr = pa.array([], type=arr.type)
        keep.append(arr)
        cols[i] = _arrow_column(arr, keep)
    return cols


def _pairs(pairs: Sequence[tuple[int, int]]):
    flat = [i for p in pairs for i in p]
    return (ctypes.c_uint32 * max(1, len(flat)))(*flat)


def row_group_native(
    table: pa.Table,
    columns: Sequence[str],
    pairs: Sequence[tuple[int, int]],
    hull_bytes: int,
    bits_choices: tuple[int, ...] = DEFAULT_BITS_CHOICES,
) -> tuple[tuple[ColumnSummary, ...], tuple[bytes | None, ...]]:
    """Column summaries and pair records of one row group (writer.summarize_row_group)."""
    lib = _require()
    keep: list = []
    cols = _columns(table, columns, keep)
    bits, nbits = _bits(bits_choices)
    out_cols = (_Summary * max(1, len(columns)))()
    out_recs = (_Record * max(1, len(pairs)))()
    _check(
        lib.mlskip_row_group(
            cols, len(columns), _pairs(pairs), len(pairs), hull_bytes, bits, nbits,
            out_cols, out_recs,
        )
    )  # fmt: skip
    sums = tuple(_to_summary(out_cols[i]) for i in range(len(columns)))
    return sums, tuple(_record(out_recs[i]) for i in range(len(pairs)))


def hull_ratios(sample: pa.Table, names: Sequence[str], max_ratio: float) -> list:
    """writer.select_pairs' scores by the kernel: sorted (exact fine-hull area / its
    box, a, b) for the pairs of ``names`` (in order) whose columns have a grid and
    lo < hi, whose hull has 3+ vertices and whose ratio is below ``max_ratio``."""
    lib = _require()
    keep: list = []
    cols = _columns(sample, names, keep)
    out_cols = (_Summary * max(1, len(names)))()
    _check(lib.mlskip_fine_hulls(cols, len(names), _pairs([]), 0, out_cols, None))
    usable = [
        i for i in range(len(names)) if out_cols[i].has_grid and out_cols[i].lo != out_cols[i].hi
    ]
    pairs = [(a, b) for k, a in enumerate(usable) for b in usable[k + 1 :]]
    hulls = (_Hull * max(1, len(pairs)))()
    _check(lib.mlskip_fine_hulls(cols, len(names), _pairs(pairs), len(pairs), None, hulls))
    scored = []
    for (a, b), h in zip(pairs, hulls, strict=False):
        if h.status != 0 or h.nverts < 3:
            continue
        box = float(h.xmax - h.xmin) * float(h.ymax - h.ymin)
        ratio = float(h.area2) / 2.0 / box if box > 0 else 1.0
        if ratio < max_ratio:
            scored.append((ratio, names[a], names[b]))
    return sorted(scored)
