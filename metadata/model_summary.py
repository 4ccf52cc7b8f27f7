"""Model-aware summaries: per row group, where a registered model's outputs lie (MODELS.md).

For a model evaluated on every row of a row group (by the caller: this module knows no
models), the footer key ``mlskip.models.v1`` stores per model and row group either

- ``value`` models (one output): the outputs' range on a fine grid of 65,536 cells over
  the file's finite output range, and an occupancy bitmap of equal-width bins over that
  range, as many bins as the byte budget allows; or
- ``class`` models (several outputs): the set of classes whose score comes within a
  stored tolerance of the row's top score.

Row groups whose model outputs hold NaN or infinity are marked unusable; row groups
without an output (no rows, or every row NULL in some input) are marked empty. Decoded
intervals contain every output as computed, after the decoder's own rounding; the
runtime's error is the planner's concern. The value is bound to the file's layout (the
same digest as the ``mlskip.v3`` footer) and optionally signed with the footer key.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mlskip.errors import MetadataError

from .integrity import MAC_BYTES, sign, signature_matches

KEY = "mlskip.models.v1"
MAGIC = b"MLSM"
VERSION = 1
CELLS = 1 << 16  # fine cells over the file's output range
DEFAULT_BYTES = 32  # per row group and model
MIN_VALUE_BYTES = 5  # the range (4 bytes) and one byte of bitmap
_HEAD = struct.Struct("<4sBII")
_FLAGS_LAYOUT = struct.Struct("<BI")
_SIGNED = 1
_KINDS = ("value", "class")
_DTYPES = ("float32", "float64")
_EMPTY = (1, 0)  # (lo cell, hi cell) of a row group without outputs
_UNUSABLE = (2, 0)  # ... and of one with a NaN or infinite output
_CLASS_STATES = ("ok", "empty", "unusable")


@dataclass(frozen=True)
class ModelHeader:
    """What one model's summaries were computed from, and how to read them.

    ``digest``: sha256 (hex) of the model as run (udf.model.prepare_model's digest);
    ``inputs``: the file's columns the model read, in argument order, with the SQL
    ``input_types`` they had when evaluated; ``runtime``: what evaluated it (words);
    ``lo``/``hi``: the file's finite output range (value models); ``tolerance``: how close
    to the top score a class counts as possible (class models); ``budget``: bytes per
    row group.
    """

    name: str
    digest: str
    kind: str
    input_dtype: str
    inputs: tuple[str, ...]
    input_types: tuple[str, ...]
    runtime: str
    num_outputs: int
    lo: float
    hi: float
    tolerance: float
    budget: int

    @property
    def cell_width(self) -> float:
        return (self.hi - self.lo) / CELLS


@dataclass(frozen=True)
class OutputRecord:
    """One row group's summary of one model: ``state`` is ``ok``, ``empty`` (no output)
    or ``unusable`` (a NaN or infinite output); ``cells`` the (lo, hi) fine-cell range and
    ``bits`` the occupied bins over it (value models); ``classes`` the possible classes
    (class models)."""

    state: str
    cells: tuple[int, int] = (0, 0)
    bits: tuple[bool, ...] = ()
    classes: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ModelSummary:
    """One model's summaries over a file's row groups."""

    header: ModelHeader
    records: tuple[OutputRecord, ...]
    _intervals: dict = field(default_factory=dict, repr=False, compare=False)

    def intervals(self, r: int) -> np.ndarray:
        """float64 ``[m, 2]``: closed intervals holding every output of row group ``r`` as
        computed when summarized (value models, state ``ok``), rounding of the grid
        included."""
        if r not in self._intervals:
            self._intervals[r] = bin_intervals(self.header, self.records[r])
        return self._intervals[r]


# ---------------------------------------------------------------------- geometry
def _slack(header: ModelHeader) -> float:
    """What the float64 arithmetic of cell assignment and decoding may misplace an output
    by: a few rounding steps of the range's magnitude (2^-40 is thousands of ulps), plus
    2^-20 cells."""
    w = header.cell_width
    return 2.0**-40 * (abs(header.lo) + abs(header.hi)) + 2.0**-20 * w + 1e-300


def cells_of(y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The fine cell of each finite output ``y`` over the range ``[lo, hi]``."""
    if hi <= lo:
        return np.zeros(len(y), dtype=np.int64)
    scale = CELLS / (hi - lo)
    with np.errstate(over="ignore", invalid="ignore"):
        c = np.floor((np.asarray(y, dtype=np.float64) - lo) * scale)
    return np.clip(np.nan_to_num(c, nan=0.0), 0, CELLS - 1).astype(np.int64)


def bin_edges(c_lo: int, c_hi: int, nbits: int) -> np.ndarray:
    """Fine-cell edges of ``nbits`` equal bins over cells ``c_lo..c_hi`` (integers: bin j
    holds cells ``edges[j] .. edges[j + 1] - 1``)."""
    span = c_hi - c_lo + 1
    return c_lo + (np.arange(nbits + 1, dtype=np.int64) * span) // nbits


def value_bits(budget: int, c_lo: int, c_hi: int) -> int:
    """Bins of a row group whose outputs span cells ``c_lo..c_hi`` under ``budget`` bytes."""
    return int(min(8 * (budget - 4), c_hi - c_lo + 1))


def bin_intervals(header: ModelHeader, rec: OutputRecord) -> np.ndarray:
    """The value intervals of a record's occupied bins, widened by the grid's slack."""
    if rec.state != "ok" or header.kind != "value":
        return np.zeros((0, 2))
    c_lo, c_hi = rec.cells
    edges = bin_edges(c_lo, c_hi, len(rec.bits))
    on = np.flatnonzero(np.asarray(rec.bits, dtype=bool))
    # merge runs of occupied bins
    starts = on[np.r_[True, np.diff(on) > 1]] if len(on) else on
    ends = on[np.r_[np.diff(on) > 1, True]] if len(on) else on
    w, s = header.cell_width, _slack(header)
    if header.hi <= header.lo:  # a constant model: every output is lo
        return np.array([[header.lo - s, header.lo + s]])
    a = header.lo + edges[starts].astype(np.float64) * w - s
    b = header.lo + edges[ends + 1].astype(np.float64) * w + s
    return np.stack([a, b], axis=1)


# ---------------------------------------------------------------------- summarizing
def value_range(outputs: Sequence[np.ndarray]) -> tuple[float, float] | None:
    """The finite range of all row groups' outputs ((0, 0) when there is none; None when
    its width overflows float64)."""
    lo, hi = math.inf, -math.inf
    for y in outputs:
        y = np.asarray(y, dtype=np.float64).ravel()
        y = y[np.isfinite(y)]
        if len(y):
            lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
    if lo > hi:
        return 0.0, 0.0
    return (lo, hi) if math.isfinite(hi - lo) else None


def value_record(y: np.ndarray, lo: float, hi: float, budget: int) -> OutputRecord:
    """One row group's record from its outputs ``y`` (NULL rows left out)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    if not len(y):
        return OutputRecord("empty")
    if not np.isfinite(y).all():
        return OutputRecord("unusable")
    c = cells_of(y, lo, hi)
    c_lo, c_hi = int(c.min()), int(c.max())
    nbits = value_bits(budget, c_lo, c_hi)
    edges = bin_edges(c_lo, c_hi, nbits)
    occupied = np.zeros(nbits, dtype=bool)
    occupied[np.searchsorted(edges, c, side="right") - 1] = True
    return OutputRecord("ok", (c_lo, c_hi), tuple(bool(b) for b in occupied))


def class_record(scores: np.ndarray, tolerance: float) -> OutputRecord:
    """One row group's record from its class scores ``[n, k]`` (NULL rows left out)."""
    s = np.asarray(scores, dtype=np.float64)
    if not len(s):
        return OutputRecord("empty")
    if not np.isfinite(s).all():
        return OutputRecord("unusable")
    top = s.max(axis=1, keepdims=True)
    near = s >= top - tolerance - 2.0**-40 * (np.abs(top) + tolerance)  # rounding of the test
    return OutputRecord("ok", classes=frozenset(np.flatnonzero(near.any(axis=0)).tolist()))


# ---------------------------------------------------------------------- encoding
def _str(s: str) -> bytes:
    raw = s.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise MetadataError(f"name too long for the model summaries: {s[:40]!r}...")
    return struct.pack("<H", len(raw)) + raw


def _record_bytes(header: ModelHeader, rec: OutputRecord) -> bytes:
    if header.kind == "class":
        state = _CLASS_STATES.index(rec.state)
        mask = sum(1 << c for c in rec.classes)
        return bytes([state]) + mask.to_bytes((header.num_outputs + 7) // 8, "little")
    if rec.state == "empty":
        return struct.pack("<HH", *_EMPTY)
    if rec.state == "unusable":
        return struct.pack("<HH", *_UNUSABLE)
    c_lo, c_hi = rec.cells
    if len(rec.bits) != value_bits(header.budget, c_lo, c_hi):
        raise MetadataError("a value record's bitmap does not have its budget's width")
    bits = np.packbits(np.asarray(rec.bits, dtype=np.uint8), bitorder="little").tobytes()
    return struct.pack("<HH", c_lo, c_hi) + bits


def record_budget_ok(header: ModelHeader) -> bool:
    """Whether a record of this model fits its byte budget at all."""
    if header.kind == "class":
        return 1 + (header.num_outputs + 7) // 8 <= header.budget
    return header.budget >= MIN_VALUE_BYTES


def _header_bytes(h: ModelHeader) -> bytes:
    out = bytearray(_str(h.name))
    out += bytes.fromhex(h.digest)
    out += struct.pack("<BB", _KINDS.index(h.kind), _DTYPES.index(h.input_dtype))
    out += struct.pack("<H", len(h.inputs))
    for column, sql_type in zip(h.inputs, h.input_types, strict=True):
        out += _str(column) + _str(sql_type)
    out += _str(h.runtime)
    out += struct.pack("<HdddB", h.num_outputs, h.lo, h.hi, h.tolerance, h.budget)
    return bytes(out)


def _signed_message(head: bytes, body: bytes) -> bytes:
    return KEY.encode() + head + body


def encode_models(
    summaries: Sequence[ModelSummary], layout: int, *, key: bytes | None = None
) -> str:
    """The ``mlskip.models.v1`` value of ``summaries`` for a file of layout digest
    ``layout`` (``integrity.layout_digest``), signed when ``key`` is given."""
    body = bytearray(struct.pack("<H", len(summaries)))
    for s in summaries:
        h = s.header
        if len(h.digest) != 64:
            raise MetadataError(f"model {h.name!r}: the digest must be a sha256 hex string")
        if not record_budget_ok(h):
            raise MetadataError(f"model {h.name!r}: {h.budget} bytes cannot hold a record")
        body += _header_bytes(h) + struct.pack("<I", len(s.records))
        for rec in s.records:
            body += _record_bytes(h, rec)
    head = _FLAGS_LAYOUT.pack(_SIGNED if key is not None else 0, layout)
    mac = sign(key, _signed_message(head, bytes(body))) if key is not None else b""
    payload = head + mac + bytes(body)
    blob = _HEAD.pack(MAGIC, VERSION, zlib.crc32(payload), len(payload)) + payload
    return base64.b64encode(blob).decode("ascii")


# ---------------------------------------------------------------------- decoding
class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise MetadataError("model summaries truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def unpack(self, fmt: str) -> tuple:
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def text(self) -> str:
        (n,) = self.unpack("<H")
        return self.take(n).decode("utf-8")


def decode_models(
    value: str | bytes, *, layout: int, num_rows: Sequence[int], key: bytes | None = None
) -> tuple[ModelSummary, ...]:
    """The summaries of an ``mlskip.models.v1`` value, checked against the file: its
    layout digest, its row-group count and (when ``key`` is given) the signature."""
    try:
        blob = base64.b64decode(value, validate=True)
    except Exception as exc:
        raise MetadataError(f"model summaries are not base64 ({exc})") from None
    if len(blob) < _HEAD.size:
        raise MetadataError("model summaries truncated")
    magic, version, crc, length = _HEAD.unpack_from(blob)
    if magic != MAGIC or version != VERSION:
        raise MetadataError(f"model summaries of an unknown format ({magic!r} v{version})")
    payload = blob[_HEAD.size :]
    if len(payload) != length or zlib.crc32(payload) != crc:
        raise MetadataError("model summaries fail their checksum")
    cur = _Cursor(payload)
    flags, stored_layout = cur.unpack(_FLAGS_LAYOUT.format)
    head = payload[: _FLAGS_LAYOUT.size]
    mac = cur.take(MAC_BYTES) if flags & _SIGNED else b""
    if flags & ~_SIGNED:
        raise MetadataError(f"model summaries carry unknown flags {flags}")
    body = payload[cur.at :]
    if key is not None and not (mac and signature_matches(key, _signed_message(head, body), mac)):
        raise MetadataError("model summaries are not signed with the footer key")
    if stored_layout != layout:
        raise MetadataError(
            "model summaries were written for other row groups or columns (stale or foreign)"
        )
    (count,) = cur.unpack("<H")
    out = []
    for _ in range(count):
        h = _read_header(cur)
        (n,) = cur.unpack("<I")
        if n != len(num_rows):
            raise MetadataError(
                f"model {h.name!r}: summaries of {n} row groups, the file has {len(num_rows)}"
            )
        out.append(ModelSummary(h, tuple(_read_record(cur, h) for _ in range(n))))
    if cur.at != len(payload):
        raise MetadataError("model summaries have trailing bytes")
    return tuple(out)


def _read_header(cur: _Cursor) -> ModelHeader:
    name = cur.text()
    digest = cur.take(32).hex()
    kind, dtype = cur.unpack("<BB")
    if kind >= len(_KINDS) or dtype >= len(_DTYPES):
        raise MetadataError(f"model {name!r}: unknown kind or input type code")
    (n_inputs,) = cur.unpack("<H")
    pairs = [(cur.text(), cur.text()) for _ in range(n_inputs)]
    runtime = cur.text()
    k, lo, hi, tolerance, budget = cur.unpack("<HdddB")
    h = ModelHeader(
        name, digest, _KINDS[kind], _DTYPES[dtype], tuple(p[0] for p in pairs),
        tuple(p[1] for p in pairs), runtime, k, lo, hi, tolerance, budget,
    )  # fmt: skip
    if not (lo <= hi and math.isfinite(hi - lo)) or not record_budget_ok(h):
        raise MetadataError(f"model {name!r}: invalid output range or budget")
    if h.kind == "class" and not (k >= 2 and math.isfinite(tolerance) and tolerance >= 0):
        raise MetadataError(f"model {name!r}: invalid class summary header")
    if h.kind == "value" and k != 1:
        raise MetadataError(f"model {name!r}: a value summary needs one output, not {k}")
    return h


def _read_record(cur: _Cursor, h: ModelHeader) -> OutputRecord:
    if h.kind == "class":
        (state,) = cur.unpack("<B")
        raw = int.from_bytes(cur.take((h.num_outputs + 7) // 8), "little")
        if state >= len(_CLASS_STATES) or raw >> h.num_outputs:
            raise MetadataError(f"model {h.name!r}: invalid class record")
        classes = frozenset(c for c in range(h.num_outputs) if raw >> c & 1)
        if _CLASS_STATES[state] == "ok" and not classes:
            raise MetadataError(f"model {h.name!r}: a class record without a class")
        return OutputRecord(_CLASS_STATES[state], classes=classes)
    c_lo, c_hi = cur.unpack("<HH")
    if (c_lo, c_hi) == _EMPTY:
        return OutputRecord("empty")
    if (c_lo, c_hi) == _UNUSABLE:
        return OutputRecord("unusable")
    if c_lo > c_hi:
        raise MetadataError(f"model {h.name!r}: invalid value record")
    nbits = value_bits(h.budget, c_lo, c_hi)
    raw = np.frombuffer(cur.take((nbits + 7) // 8), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")
    if bits[nbits:].any() or not bits[:nbits].any():
        raise MetadataError(f"model {h.name!r}: invalid value bitmap")
    return OutputRecord("ok", (c_lo, c_hi), tuple(bool(b) for b in bits[:nbits]))


@dataclass(frozen=True)
class RowGroupOutputs:
    """One model's summary of one row group (what the planner reads per row group)."""

    summary: ModelSummary
    index: int

    @property
    def header(self) -> ModelHeader:
        return self.summary.header

    @property
    def record(self) -> OutputRecord:
        return self.summary.records[self.index]

    def intervals(self) -> np.ndarray:
        return self.summary.intervals(self.index)
