"""Binding a footer to its file and, optionally, to its writer (FORMAT.md, "Integrity").

A CRC only catches accidental corruption. Two more checks, both footer-only:

* the layout digest: a CRC-32 over the compressed byte size of every row group,
  as Parquet's own footer states it, and over the column names in order. Rewritten row groups, appended ones and a
  footer pasted from another file almost always change some size; a rewrite that
  keeps every size, row count and statistic is invisible without reading the
  data (``mlskip verify`` reads it).
* the signature: an HMAC-SHA256 under a secret shared by writer and reader
  (``MLSKIP_FOOTER_KEY`` or an explicit key). Whoever lacks the key cannot forge a
  footer the reader accepts; without a key nothing is signed or required.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import zlib
from collections.abc import Sequence

import pyarrow as pa

from .varint import encode_varint

KEY_ENV = "MLSKIP_FOOTER_KEY"
MAC_BYTES = 16


def row_group_sizes(parquet_metadata) -> list[int]:
    """Compressed bytes of each row group (sum of its column chunks), from Parquet's footer."""
    out = []
    for r in range(parquet_metadata.num_row_groups):
        rg = parquet_metadata.row_group(r)
        out.append(sum(rg.column(c).total_compressed_size for c in range(rg.num_columns)))
    return out


def layout_digest(sizes: Sequence[int], columns: Sequence[str] | None = None) -> int:
    """CRC-32 of the row-group byte sizes (each as an unsigned LEB128 varint), then, when
    ``columns`` is given, of the file's columns in order (a zero byte, then each entry's
    UTF-8 length as a varint and its bytes; see ``schema_entries``): a copy with renamed,
    reordered or retyped columns no longer matches its footer."""
    data = b"".join(encode_varint(u) for u in sizes)
    if columns is not None:
        data += b"\x00" + b"".join(encode_varint(len(n.encode())) + n.encode() for n in columns)
    return zlib.crc32(data)


def schema_entries(schema) -> list[str]:
    """``name:kind`` of every top-level column of an Arrow schema, for ``layout_digest``:
    the kind is what decides how the footer reads a value as a number (integer, float,
    decimal with its scale, date, timestamp) and survives a Parquet round trip."""
    return [f"{field.name}:{_kind(field.type)}" for field in schema]


def _kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.scale})"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return "other"


def resolve_key(key: str | bytes | None = None) -> bytes | None:
    """The signing key: ``key`` if given, else ``$MLSKIP_FOOTER_KEY``, else None (unsigned)."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    if key is None:
        return None
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not raw:
        raise ValueError("an empty footer key signs nothing; pass None for unsigned footers")
    return raw


def key_id(key: bytes | None) -> str:
    """A short, non-secret name for a key (for caches keyed by what was trusted)."""
    if key is None:
        return ""
    return hashlib.blake2b(key, digest_size=8, person=b"mlskip-keyid").hexdigest()


def sign(key: bytes, message: bytes) -> bytes:
    """The footer's MAC: the first 16 bytes of HMAC-SHA256(key, message)."""
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def signature_matches(key: bytes, message: bytes, mac: bytes) -> bool:
    """Constant-time comparison of ``mac`` with the MAC of ``message`` under ``key``."""
    return hmac.compare_digest(sign(key, message), mac)
