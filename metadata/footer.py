"""The ``mlskip.v1`` footer value: binary layout, checksum, parsing (spec in FORMAT.md).

Everything is little-endian. The value stored in the Parquet key-value metadata
is ``base64(blob)`` with ``blob = b"MLSK" | u8 version | u32 crc32(payload) |
u32 len(payload) | payload``. The payload repeats the row-group count and each
row group's row count so that a footer copied onto another file, or left stale
after a rewrite, is detected by the reader.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass

from mlskip.errors import MetadataError

from .grid import FINE_BITS, Grid
from .polygon import ColumnSummary

KEY = "mlskip.v1"
KEY_PREFIX = "mlskip.v"
MAGIC = b"MLSK"
VERSION = 1
_HEAD = struct.Struct("<4sBII")
_COL = struct.Struct("<BddIII")
_GRID = struct.Struct("<hq")
_F_RANGE = 1  # lo <= hi present (some non-NULL, non-NaN value)
_F_GRID = 2  # grid present


@dataclass(frozen=True)
class FooterRowGroup:
    """One row group as stored: row count, column summaries, pair records."""

    num_rows: int
    columns: tuple[ColumnSummary, ...]
    records: tuple[bytes | None, ...]


@dataclass(frozen=True)
class Footer:
    """The decoded ``mlskip.v1`` value."""

    fine_bits: int
    hull_bytes: int
    columns: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    row_groups: tuple[FooterRowGroup, ...]


def encode_footer(footer: Footer) -> str:
    """Serialize and base64-encode (the string stored under KEY)."""
    out = bytearray()
    out += struct.pack("<BHI", footer.fine_bits, footer.hull_bytes, len(footer.row_groups))
    out += struct.pack("<H", len(footer.columns))
    for name in footer.columns:
        raw = name.encode("utf-8")
        out += struct.pack("<H", len(raw)) + raw
    out += struct.pack("<H", len(footer.pairs))
    for a, b in footer.pairs:
        out += struct.pack("<HH", a, b)
    for rg in footer.row_groups:
        out += struct.pack("<Q", rg.num_rows)
        for c in rg.columns:
            flags = (_F_RANGE if c.lo <= c.hi else 0) | (_F_GRID if c.grid is not None else 0)
            out += _COL.pack(flags, c.lo, c.hi, c.null_count, c.nan_count, c.inf_count)
            if c.grid is not None:
                out += _GRID.pack(c.grid.e, c.grid.n0)
        for rec in rg.records:
            if rec is None:
                out += b"\x00"
            else:
                out += struct.pack("<B", len(rec)) + rec
    payload = bytes(out)
    blob = _HEAD.pack(MAGIC, VERSION, zlib.crc32(payload), len(payload)) + payload
    return base64.b64encode(blob).decode("ascii")


class _Cursor:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: struct.Struct | str):
        s = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        if self.pos + s.size > len(self.data):
            raise MetadataError("truncated mlskip footer payload")
        vals = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return vals

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MetadataError("truncated mlskip footer payload")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b


def decode_footer(value: str | bytes) -> Footer:
    """Parse a stored value; raises MetadataError on any inconsistency."""
    try:
        blob = base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as exc:
        raise MetadataError(f"footer value is not base64 ({exc})") from None
    if len(blob) < _HEAD.size:
        raise MetadataError("truncated mlskip footer header")
    magic, version, crc, length = _HEAD.unpack_from(blob)
    if magic != MAGIC:
        raise MetadataError(f"bad magic {magic!r}")
    if version != VERSION:
        raise MetadataError(f"unsupported format version {version} (this reader knows {VERSION})")
    payload = blob[_HEAD.size :]
    if len(payload) != length:
        raise MetadataError(f"payload has {len(payload)} bytes, header says {length}")
    if zlib.crc32(payload) != crc:
        raise MetadataError("checksum mismatch (corrupt footer)")
    cur = _Cursor(payload)
    fine_bits, hull_bytes, n_rg = cur.take("<BHI")
    if fine_bits != FINE_BITS:
        raise MetadataError(f"unsupported fine grid of {fine_bits} bits")
    (n_cols,) = cur.take("<H")
    columns = []
    for _ in range(n_cols):
        (n,) = cur.take("<H")
        try:
            columns.append(cur.raw(n).decode("utf-8"))
        except UnicodeDecodeError:
            raise MetadataError("column name is not UTF-8") from None
    (n_pairs,) = cur.take("<H")
    pairs = []
    for _ in range(n_pairs):
        a, b = cur.take("<HH")
        if a >= n_cols or b >= n_cols or a == b:
            raise MetadataError(f"pair ({a}, {b}) refers to unknown columns")
        pairs.append((a, b))
    row_groups = []
    for _ in range(n_rg):
        (num_rows,) = cur.take("<Q")
        cols = []
        for _ in range(n_cols):
            flags, lo, hi, nulls, nans, infs = cur.take(_COL)
            grid = None
            if flags & _F_GRID:
                e, n0 = cur.take(_GRID)
                grid = Grid(e=e, n0=n0)
            if not flags & _F_RANGE:
                lo, hi = float("inf"), float("-inf")
            elif not lo <= hi:
                raise MetadataError("column range with lo > hi or NaN")
            cols.append(ColumnSummary(lo, hi, nulls, nans, infs, grid))
        recs = []
        for _ in range(n_pairs):
            (n,) = cur.take("<B")
            recs.append(cur.raw(n) if n else None)
        row_groups.append(FooterRowGroup(num_rows, tuple(cols), tuple(recs)))
    if cur.pos != len(payload):
        raise MetadataError(f"{len(payload) - cur.pos} trailing bytes after the last row group")
    return Footer(fine_bits, hull_bytes, tuple(columns), tuple(pairs), tuple(row_groups))
