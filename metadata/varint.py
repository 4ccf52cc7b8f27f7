"""Unsigned LEB128 varints, as the footer and its layout digest write them (FORMAT.md)."""

from __future__ import annotations


def encode_varint(u: int) -> bytes:
    """``u >= 0`` in 7-bit groups, least significant first, high bit = more follows."""
    if u < 0:
        raise ValueError(f"varints are unsigned, got {u}")
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)
