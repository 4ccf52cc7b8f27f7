"""File lists of a path or glob as DuckDB's own ``glob()`` gives them, for the scans
that have no DuckDB connection of their own (Arrow, Polars), and for ``s3://`` globs
listed through pyarrow."""

from __future__ import annotations

import re
from typing import Any

import duckdb

from mlskip.skipper.binder import Binder, has_glob
from mlskip.skipper.remote import is_s3, s3_key


def expand_paths(pattern: str, filesystem: Any = None) -> list[str]:
    """Files a path or glob names, as DuckDB's own ``glob()`` lists them (dot-files
    included), for the Arrow and Polars scans that have no DuckDB connection of their own.

    An ``s3://`` glob is listed with ``filesystem`` (a pyarrow S3 filesystem);
    without one it raises ``OSError``.
    """
    if not has_glob(pattern):
        return [pattern]
    if is_s3(pattern):
        if filesystem is None:
            raise OSError("s3:// globs are listed only with an S3 filesystem")
        return _s3_glob(pattern, filesystem)
    con = duckdb.connect()
    try:
        return Binder(con).glob(pattern)
    finally:
        con.close()


def _s3_glob(pattern: str, filesystem: Any) -> list[str]:
    from pyarrow import fs as pafs

    scheme = pattern.split("://", 1)[0] + "://"
    key = s3_key(pattern)
    fixed = key[: min(key.index(c) for c in "*?[" if c in key)]
    base = fixed.rsplit("/", 1)[0]
    infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
    regex = glob_regex(key)
    return sorted(
        scheme + i.path for i in infos if i.type == pafs.FileType.File and regex.match(i.path)
    )


def glob_regex(pattern: str) -> re.Pattern:
    """DuckDB-style glob for object stores listed by pyarrow: ``**`` crosses folders,
    ``*`` and ``?`` do not."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")
