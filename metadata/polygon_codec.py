"""Byte encoding of one pair polygon and its decoding to vertices and halfspaces.

A polygon record is ``1 + ceil(2 * k * bits / 8)`` bytes:

* header byte: ``(code << 5) | k`` with ``bits = 16 - 2 * code`` (code 0..6) and
  ``k`` (1..31) vertices;
* then ``x_0, y_0, x_1, y_1, ...`` as unsigned ``bits``-bit integers, packed
  most significant bit first, the last byte zero-padded.

A coordinate ``c`` on the ``bits`` lattice is the fine grid coordinate
``c << (16 - bits)``, so the vertex is exactly ``(n0 + (c << s)) * 2**e`` in
float64 (see grid.py). Vertices are counter-clockwise, starting at the
lexicographically smallest (x, then y); k = 1 is a point, k = 2 a segment.
"""

from __future__ import annotations

import math

import numpy as np

from mlskip.errors import MetadataError

from .grid import FINE_BITS, Grid

MAX_VERTICES = 31
BITS_CHOICES = (16, 14, 12, 10, 8, 6, 4)
_U = 2.0**-53
_TINY = 8 * 2.0**-1074


def record_size(k: int, bits: int) -> int:
    """Bytes taken by a record of k vertices with ``bits``-bit coordinates."""
    return 1 + (2 * k * bits + 7) // 8


def max_vertices(hull_bytes: int, bits: int) -> int:
    """Most vertices a record of at most ``hull_bytes`` bytes can hold."""
    return max(0, min(MAX_VERTICES, ((hull_bytes - 1) * 8) // (2 * bits)))


def encode_record(cx: np.ndarray, cy: np.ndarray, bits: int) -> bytes:
    """Pack lattice vertices (ints in [0, 2**bits)) into a record."""
    k = len(cx)
    if bits not in BITS_CHOICES or not 1 <= k <= MAX_VERTICES:
        raise MetadataError(f"cannot encode a polygon of {k} vertices with {bits}-bit coordinates")
    code = (FINE_BITS - bits) // 2
    acc = 0
    for x, y in zip(cx.tolist(), cy.tolist(), strict=True):
        if not (0 <= x < 1 << bits and 0 <= y < 1 << bits):
            raise MetadataError(f"polygon coordinate ({x}, {y}) does not fit in {bits} bits")
        acc = (acc << (2 * bits)) | (x << bits) | y
    nbits = 2 * k * bits
    nbytes = (nbits + 7) // 8
    acc <<= nbytes * 8 - nbits
    return bytes([(code << 5) | k]) + acc.to_bytes(nbytes, "big")


def decode_record(record: bytes) -> tuple[int, np.ndarray, np.ndarray]:
    """(bits, cx, cy) of a record; raises MetadataError when malformed."""
    if len(record) < 1:
        raise MetadataError("empty polygon record")
    code, k = record[0] >> 5, record[0] & 31
    bits = FINE_BITS - 2 * code
    if bits not in BITS_CHOICES or k == 0 or len(record) != record_size(k, bits):
        raise MetadataError(
            f"malformed polygon record header {record[0]:#04x} ({len(record)} bytes)"
        )
    nbits = 2 * k * bits
    acc = int.from_bytes(record[1:], "big") >> (8 * (len(record) - 1) - nbits)
    mask = (1 << bits) - 1
    vals = [(acc >> (nbits - bits * (i + 1))) & mask for i in range(2 * k)]
    return bits, np.array(vals[0::2], np.int64), np.array(vals[1::2], np.int64)


def lattice_to_values(c: np.ndarray, bits: int, grid: Grid) -> np.ndarray:
    """Exact float64 values of lattice coordinates: (n0 + (c << s)) * 2**e."""
    fine = (c.astype(np.int64) << (FINE_BITS - bits)) + grid.n0
    return np.ldexp(fine.astype(np.float64), grid.e)


def decode_vertices(record: bytes, grid_x: Grid, grid_y: Grid) -> np.ndarray:
    """(k, 2) float64 CCW vertices of a record; exact (no rounding happens)."""
    bits, cx, cy = decode_record(record)
    return np.column_stack(
        [lattice_to_values(cx, bits, grid_x), lattice_to_values(cy, bits, grid_y)]
    )


def decode_many(records: list[bytes], grids_x: list[Grid], grids_y: list[Grid]) -> list[np.ndarray]:
    """``decode_vertices`` of each record (with its grids), equal to it bit for bit,
    decoded for all records of one length and header at once (a footer holds hundreds
    of small polygons; one at a time, decoding them was most of reading it)."""
    out: list = [None] * len(records)
    groups: dict[bytes, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(rec[:1] + len(rec).to_bytes(2, "big"), []).append(i)
    for idx in groups.values():
        bits, cx, _ = decode_record(records[idx[0]])  # validates the shared header
        k = len(cx)
        raw = np.frombuffer(b"".join(records[i] for i in idx), np.uint8)
        raw = raw.reshape(len(idx), -1)[:, 1:]
        flat = np.unpackbits(raw, axis=1)[:, : 2 * k * bits].reshape(len(idx), 2 * k, bits)
        weights = np.left_shift(np.int64(1), np.arange(bits - 1, -1, -1, dtype=np.int64))
        vals = flat.astype(np.int64) @ weights  # [G, 2k]
        coords = []
        for c, grids in ((vals[:, 0::2], grids_x), (vals[:, 1::2], grids_y)):
            n0 = np.array([grids[i].n0 for i in idx], np.int64)[:, None]
            e = np.array([grids[i].e for i in idx], np.int64)[:, None]
            fine = (c << (FINE_BITS - bits)) + n0
            coords.append(np.ldexp(fine.astype(np.float64), e))
        v = np.stack(coords, axis=-1)  # [G, k, 2]
        for j, i in enumerate(idx):
            out[i] = v[j]
    return out


def halfspaces(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) with A @ p <= b for every p in the polygon, also when evaluated in float64.

    Rows: one outward edge normal per edge (scaled by a power of two, so exact
    unless it underflows) plus the four axis rows. Each b is the largest
    float64 value of A_i . v over all vertices plus a margin covering the
    rounding of that evaluation and of any later float64 evaluation at a point
    of the polygon (|error| <= 2u (|a_x| max|x| + |a_y| max|y|) each), rounded up.
    Because b bounds every vertex, the form is sound even if a row of A is inexact.
    """
    v = np.asarray(vertices, np.float64)
    k = v.shape[0]
    rows = [np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])]
    if k >= 2:
        d = np.roll(v, -1, axis=0) - v
        normals = np.column_stack([d[:, 1], -d[:, 0]])
        if k == 2:
            normals = normals[:1]
            normals = np.vstack([normals, -normals])
        m = np.max(np.abs(normals), axis=1)
        keep = m > 0
        normals, m = normals[keep], m[keep]
        if len(m):
            _, ex = np.frexp(m)
            normals = np.ldexp(normals, -ex[:, None])
            rows.append(normals)
    a = np.vstack(rows)
    # (m, k): two products and a sum, written out (a BLAS product may fuse them, and
    # halfspaces_many must give the same bits)
    dots = a[:, 0, None] * v[None, :, 0] + a[:, 1, None] * v[None, :, 1]
    mx, my = np.max(np.abs(v), axis=0)
    margin = 8 * _U * (np.abs(a[:, 0]) * mx + np.abs(a[:, 1]) * my) + _TINY
    b = np.nextafter(np.max(dots, axis=1) + margin, np.inf)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        finite = np.all(np.isfinite(a), axis=1) & np.isfinite(b)
        a, b = a[finite], b[finite]
    return a, b


def halfspaces_many(polygons: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``halfspaces`` of each polygon, equal to it bit for bit, computed for all polygons
    with the same vertex count at once (a footer holds hundreds of small polygons, and
    numpy's per-call overhead dominated reading it)."""
    out: list = [None] * len(polygons)
    by_k: dict[int, list[int]] = {}
    for i, v in enumerate(polygons):
        by_k.setdefault(len(v), []).append(i)
    axis = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    for k, idx in by_k.items():
        if k < 3:  # rare (degenerate records): the one-polygon form
            for i in idx:
                out[i] = halfspaces(polygons[i])
            continue
        v = np.stack([np.asarray(polygons[i], np.float64) for i in idx])  # [P, k, 2]
        d = np.roll(v, -1, axis=1) - v
        normals = np.stack([d[..., 1], -d[..., 0]], axis=-1)  # [P, k, 2]
        m = np.max(np.abs(normals), axis=2)
        _, ex = np.frexp(m)
        normals = np.ldexp(normals, -ex[..., None])
        a = np.concatenate([np.broadcast_to(axis, (len(idx), 4, 2)), normals], axis=1)
        dots = a[..., 0, None] * v[:, None, :, 0] + a[..., 1, None] * v[:, None, :, 1]
        mx = np.max(np.abs(v[..., 0]), axis=1)[:, None]
        my = np.max(np.abs(v[..., 1]), axis=1)[:, None]
        margin = 8 * _U * (np.abs(a[..., 0]) * mx + np.abs(a[..., 1]) * my) + _TINY
        b = np.nextafter(np.max(dots, axis=2) + margin, np.inf)
        keep = np.concatenate([np.ones((len(idx), 4), bool), m > 0], axis=1)
        keep &= np.all(np.isfinite(a), axis=2) & np.isfinite(b)
        for j, i in enumerate(idx):
            if keep[j].all():
                out[i] = (a[j], b[j])
            else:
                out[i] = (a[j][keep[j]], b[j][keep[j]])
    return out


def polygon_area(vertices: np.ndarray) -> float:
    """Shoelace area of a CCW polygon (float64, for reporting only)."""
    v = np.asarray(vertices, np.float64)
    if len(v) < 3:
        return 0.0
    x, y = v[:, 0], v[:, 1]
    return 0.5 * math.fabs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))
