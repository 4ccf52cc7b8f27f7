"""The mlskip footer value: binary layout, checksum, byte accounting, parsing (FORMAT.md).

Everything is little-endian. The value stored in the Parquet key-value metadata
is ``base64(blob)`` with ``blob = b"MLSK" | u8 version | u32 crc32(payload) |
u32 len(payload) | payload``. The payload repeats the row-group count and each
row group's row count so that a footer copied onto another file, or left stale
after a rewrite, is detected by the reader.

The writer writes version 3 (key ``mlskip.v3``): version 2's body (per row group
and column a compact grid anchor, per pair a self-delimiting polygon record, and
a byte accounting, ``account``, under which every pair's record plus its share of
its columns' anchors fits ``hull_bytes``) behind a layout digest of the file's
row groups and an optional keyed signature (``integrity``). Versions 2 and 1 (key
``mlskip.v1``, explicit ranges and counts per column) are still decoded, and
encoded for tests.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from mlskip.errors import MetadataError

from .grid import FINE_BITS, PAD, QMAX, Grid
from .integrity import MAC_BYTES, sign, signature_matches
from .polygon import ColumnSummary
from .polygon_codec import BITS_CHOICES, record_size
from .varint import encode_varint

KEY_V1 = "mlskip.v1"
KEY_V2 = "mlskip.v2"
KEY_V3 = "mlskip.v3"
KEY = KEY_V3  # what the writer writes
KEYS = (KEY_V3, KEY_V2, KEY_V1)  # what the reader reads, preferred first
KEY_PREFIX = "mlskip.v"
MAGIC = b"MLSK"
VERSION = 3
_SIGNED = 1  # v3 flags: a MAC follows the layout digest
_V3_HEAD = struct.Struct("<BI")  # flags, layout digest
E_BIAS = 8  # v2 stores zigzag(e + E_BIAS): grid exponents -24..7 take one head byte
MIN_PAIR_BYTES = 3  # v2: absent record (1) + two one-byte column entries
_HEAD = struct.Struct("<4sBII")
_COL = struct.Struct("<BddIII")
_GRID = struct.Struct("<hq")
_F_RANGE = 1  # v1: lo <= hi present (some non-NULL, non-NaN value)
_F_GRID = 2  # v1: grid present
_MIN_EXP = -1074


class ColumnEntry(NamedTuple):
    """One column in one row group as v2 stores it: grid and NaN/inf presence."""

    grid: Grid | None
    may_have_nan: bool
    may_have_inf: bool


@dataclass(frozen=True)
class FooterRowGroup:
    """One row group as stored: row count, column summaries, pair records.

    ``columns`` holds ColumnSummary (what the writer computed; v1 decoding) or
    ColumnEntry (v2 decoding); ``entry_bytes`` the v2 encoded size of each column.
    """

    num_rows: int
    columns: tuple[ColumnSummary | ColumnEntry, ...]
    records: tuple[bytes | None, ...]
    entry_bytes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Footer:
    """A decoded footer value (``version`` 1, 2 or 3).

    ``layout``: v3's digest of the file's row-group byte sizes (None before v3);
    ``signed``: whether a v3 value carries a MAC (checked only when a key is given).
    """

    fine_bits: int
    hull_bytes: int
    columns: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    row_groups: tuple[FooterRowGroup, ...]
    version: int = VERSION
    layout: int | None = None
    signed: bool = False


# ---------------------------------------------------------------- varints (v2)


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(u: int) -> int:
    return u >> 1 if not u & 1 else -((u + 1) >> 1)


def _flags(c: ColumnSummary | ColumnEntry) -> tuple[bool, bool]:
    if isinstance(c, ColumnEntry):
        return c.may_have_nan, c.may_have_inf
    return c.nan_count > 0, c.inf_count > 0


def column_entry(c: ColumnSummary | ColumnEntry) -> bytes:
    """The v2 bytes of one column in one row group (FORMAT.md, "Column entry").

    With a grid: ``varint(zigzag(e + 8) << 2 | nan << 1 | 1) varint(zigzag(n0 + PAD))``;
    without: the single byte ``inf << 2 | nan << 1``.
    """
    nan, inf = _flags(c)
    g = c.grid
    if g is None:
        return bytes([(inf << 2) | (nan << 1)])
    return encode_varint((_zigzag(g.e + E_BIAS) << 2) | (nan << 1) | 1) + encode_varint(
        _zigzag(g.n0 + PAD)
    )


def pair_users(n_columns: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """How many pairs use each column."""
    users = [0] * n_columns
    for a, b in pairs:
        users[a] += 1
        users[b] += 1
    return users


def pair_shares(entry_bytes: Sequence[int], pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Each pair's share of its columns' entries: ceil(bytes / users) per column, summed."""
    users = pair_users(len(entry_bytes), pairs)
    return [-(-entry_bytes[a] // users[a]) - (-entry_bytes[b] // users[b]) for a, b in pairs]


def account(
    columns: Sequence[ColumnSummary], pairs: Sequence[tuple[int, int]], hull_bytes: int
) -> tuple[list[ColumnSummary], list[int]]:
    """The v2 byte accounting of one row group: (columns as stored, record budget per pair).

    Grids are kept only for columns of some pair. Then, pair by pair in order, a
    pair whose share of its columns' entries leaves no byte for its record header
    (share + 1 > hull_bytes) drops both its columns' grids (entries of one byte;
    this only lowers other pairs' shares). Budget = hull_bytes - share, so record
    + share <= hull_bytes for every pair when hull_bytes >= MIN_PAIR_BYTES.
    """
    users = pair_users(len(columns), pairs)
    cols = [
        c if c.grid is None or users[i] else c._replace(grid=None) for i, c in enumerate(columns)
    ]
    size = [len(column_entry(c)) for c in cols]
    for a, b in pairs:
        share = -(-size[a] // users[a]) - (-size[b] // users[b])
        if share + 1 > hull_bytes:
            for i in (a, b):
                if cols[i].grid is not None:
                    cols[i] = cols[i]._replace(grid=None)
                    size[i] = len(column_entry(cols[i]))
    return cols, [hull_bytes - s for s in pair_shares(size, pairs)]


# ---------------------------------------------------------------- encoding


def _header(footer: Footer) -> bytearray:
    out = bytearray()
    out += struct.pack("<BHI", footer.fine_bits, footer.hull_bytes, len(footer.row_groups))
    if footer.version >= 2:  # row counts: every row group but the last has the first's
        counts = [rg.num_rows for rg in footer.row_groups] or [0]
        if any(n != counts[0] for n in counts[:-1]):
            raise MetadataError("format v2 needs row groups of one size (the last may differ)")
        out += encode_varint(counts[0]) + encode_varint(counts[-1])
    out += struct.pack("<H", len(footer.columns))
    for name in footer.columns:
        raw = name.encode("utf-8")
        out += struct.pack("<H", len(raw)) + raw
    out += struct.pack("<H", len(footer.pairs))
    for a, b in footer.pairs:
        out += struct.pack("<HH", a, b)
    return out


def _blob(version: int, payload: bytes) -> str:
    blob = _HEAD.pack(MAGIC, version, zlib.crc32(payload), len(payload)) + payload
    return base64.b64encode(blob).decode("ascii")


def _signed_message(head: bytes, body: bytes) -> bytes:
    """What a v3 MAC covers: a domain tag, the flags and layout digest, and the body."""
    return KEY_V3.encode() + head + body


def encode_footer(footer: Footer, *, key: bytes | None = None) -> str:
    """Serialize ``footer`` as format ``footer.version`` and base64-encode it.

    Versions 2 and 3 store the columns' grids as given (the writer passes them
    through ``account`` first) and an absent record as the byte 0. Version 3
    needs ``footer.layout`` and is signed when ``key`` is given.
    """
    if footer.version == 1:
        return _encode_v1(footer)
    if footer.version not in (2, 3):
        raise MetadataError(f"cannot encode format version {footer.version}")
    out = _header(footer)
    for rg in footer.row_groups:
        for c in rg.columns:
            out += column_entry(c)
        for rec in rg.records:
            out += rec if rec is not None else b"\x00"
    if footer.version == 2:
        return _blob(2, bytes(out))
    if footer.layout is None:
        raise MetadataError("format v3 needs the layout digest of the file's row groups")
    head = _V3_HEAD.pack(_SIGNED if key is not None else 0, footer.layout)
    mac = sign(key, _signed_message(head, bytes(out))) if key is not None else b""
    return _blob(3, head + mac + bytes(out))


def _encode_v1(footer: Footer) -> str:
    out = _header(footer)
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
    return _blob(1, bytes(out))


# ---------------------------------------------------------------- decoding


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

    def varint(self) -> int:
        u = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise MetadataError("truncated mlskip footer payload")
            byte = self.data[self.pos]
            self.pos += 1
            u |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if byte == 0 and shift:
                    raise MetadataError("non-canonical varint in mlskip footer")
                return u
            shift += 7
            if shift > 63:
                raise MetadataError("varint too long in mlskip footer")


def decode_footer(value: str | bytes, *, key: bytes | None = None) -> Footer:
    """Parse a stored value (version 1, 2 or 3); raises MetadataError on any inconsistency.

    With ``key``, only a v3 value signed with that key is accepted.
    """
    try:
        blob = base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as exc:
        raise MetadataError(f"footer value is not base64 ({exc})") from None
    if len(blob) < _HEAD.size:
        raise MetadataError("truncated mlskip footer header")
    magic, version, crc, length = _HEAD.unpack_from(blob)
    if magic != MAGIC:
        raise MetadataError(f"bad magic {magic!r}")
    if version not in (1, 2, 3):
        raise MetadataError(f"unsupported format version {version} (this reader knows 1 to 3)")
    payload = blob[_HEAD.size :]
    if len(payload) != length:
        raise MetadataError(f"payload has {len(payload)} bytes, header says {length}")
    if zlib.crc32(payload) != crc:
        raise MetadataError("checksum mismatch (corrupt footer)")
    cur = _Cursor(payload)
    layout, signed = None, False
    if version == 3:
        flags, layout = cur.take(_V3_HEAD)
        if flags & ~_SIGNED:
            raise MetadataError(f"unknown v3 flags {flags:#04x}")
        signed = bool(flags & _SIGNED)
        mac = cur.raw(MAC_BYTES) if signed else b""
        if key is not None and not signed:
            raise MetadataError("footer is not signed, but a footer key is set")
        head = payload[: _V3_HEAD.size]
        if key is not None and not signature_matches(
            key, _signed_message(head, payload[cur.pos :]), mac
        ):
            raise MetadataError(
                "footer signature does not match the footer key (modified, or signed with "
                "another key)"
            )
    elif key is not None:
        raise MetadataError(f"format v{version} footers are unsigned, but a footer key is set")
    fine_bits, hull_bytes, n_rg = cur.take("<BHI")
    if fine_bits != FINE_BITS:
        raise MetadataError(f"unsupported fine grid of {fine_bits} bits")
    rows = (cur.varint(), cur.varint()) if version >= 2 else (0, 0)
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
    if version == 1:
        row_groups = [_row_group_v1(cur, n_cols, pairs) for _ in range(n_rg)]
    else:
        row_groups = [
            _row_group_v2(cur, rows[r == n_rg - 1], n_cols, pairs, hull_bytes) for r in range(n_rg)
        ]
    if cur.pos != len(payload):
        raise MetadataError(f"{len(payload) - cur.pos} trailing bytes after the last row group")
    return Footer(
        fine_bits,
        hull_bytes,
        tuple(columns),
        tuple(pairs),
        tuple(row_groups),
        version=version,
        layout=layout,
        signed=signed,
    )


def _row_group_v1(cur: _Cursor, n_cols: int, pairs) -> FooterRowGroup:
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
    for _ in range(len(pairs)):
        (n,) = cur.take("<B")
        recs.append(cur.raw(n) if n else None)
    return FooterRowGroup(num_rows, tuple(cols), tuple(recs))


def check_grid(e: int, n0: int) -> Grid:
    """A decoded grid whose every value is an exact finite float64, else MetadataError."""
    if e < _MIN_EXP or abs(n0) + QMAX >= 1 << 53:
        raise MetadataError(f"grid (e={e}, n0={n0}) outside exact float64")
    g = Grid(e=e, n0=n0)
    try:
        ok = all(abs(g.value(q)) < float("inf") for q in (0, QMAX))
    except OverflowError:
        ok = False
    if not ok:
        raise MetadataError(f"grid (e={e}, n0={n0}) overflows float64")
    return g


def _row_group_v2(cur: _Cursor, num_rows: int, n_cols: int, pairs, hull_bytes: int):
    cols, sizes = [], []
    for _ in range(n_cols):
        start = cur.pos
        head = cur.varint()
        if head & 1:
            grid = check_grid(_unzigzag(head >> 2) - E_BIAS, _unzigzag(cur.varint()) - PAD)
            cols.append(ColumnEntry(grid, bool(head & 2), False))
        else:
            if head >> 3:
                raise MetadataError(f"malformed column entry head {head:#x}")
            cols.append(ColumnEntry(None, bool(head & 2), bool(head & 4)))
        sizes.append(cur.pos - start)
    recs: list[bytes | None] = []
    for _ in range(len(pairs)):
        (h,) = cur.take("<B")
        if h == 0:
            recs.append(None)
            continue
        bits, k = FINE_BITS - 2 * (h >> 5), h & 31
        if bits not in BITS_CHOICES or k == 0:
            raise MetadataError(f"malformed polygon record header {h:#04x}")
        cur.pos -= 1
        recs.append(cur.raw(record_size(k, bits)))
    shares = pair_shares(sizes, pairs)
    for p, rec in enumerate(recs):
        if (len(rec) if rec else 1) + shares[p] > hull_bytes:
            raise MetadataError(
                f"pair {p}: record and anchor share exceed the {hull_bytes}-byte budget"
            )
        if rec is not None and (cols[pairs[p][0]].grid is None or cols[pairs[p][1]].grid is None):
            raise MetadataError(f"pair {p}: polygon record without grids")
    return FooterRowGroup(num_rows, tuple(cols), tuple(recs), tuple(sizes))
