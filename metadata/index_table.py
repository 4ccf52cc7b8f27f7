"""The skip index as a Parquet table: one row per file, then one per row group of it.

Columns (INDEX.md in this folder holds the full description):

* ``path``, ``row_group`` (NULL on a file's own row), ``num_rows``, ``total_bytes``
  (uncompressed, Parquet's), ``compressed_bytes`` (per row group);
* on file rows: its identity (``size``, ``mtime_ns`` for a local file, ``etag`` for an
  object), ``footer_hash``, ``schema`` (JSON) and ``schema_hash``, ``origin``
  ("footer": the file's own mlskip footer; "rows": computed from its rows),
  ``status`` (how that value decoded when indexed), ``mlskip_key`` and
  ``mlskip_footer`` (the value, checked again whenever it is used);
* per numeric column ``c``: ``min:c``, ``max:c`` (float64, rounded outward, Parquet's
  statistics in the numeric encoding), ``nulls:c``; per float column ``nan:c``
  (may hold NaN). On a file row these are the union over its row groups, which is
  what prunes whole files.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pyarrow as pa

from .file_index import FileSchema, IndexedFile
from .reader import ParquetFacts, RowGroupSummary

FORMAT = "mlskip.index.v1"
_FIXED = {
    "path": pa.string(),
    "row_group": pa.int32(),
    "num_rows": pa.int64(),
    "total_bytes": pa.int64(),
    "compressed_bytes": pa.int64(),
    "size": pa.int64(),
    "mtime_ns": pa.int64(),
    "ctime_ns": pa.int64(),
    "inode": pa.int64(),
    "device": pa.int64(),
    "etag": pa.string(),
    "footer_hash": pa.string(),
    "schema": pa.string(),
    "schema_hash": pa.string(),
    "origin": pa.string(),
    "status": pa.string(),
    "mlskip_key": pa.string(),
    "mlskip_footer": pa.string(),
}
_OPTIONAL = {"mlskip_models": pa.string()}  # indexes built before model summaries lack it


@dataclass(frozen=True)
class FileIdentity:
    """What says a file is still the one indexed. Local: size, modification and change
    times, inode and device (every write changes the change time, which no tool can set
    back; a rename swap changes the inode), the footer hash checked too. Object storage:
    size and ETag (a hash of the content)."""

    size: int
    mtime_ns: int | None = None
    etag: str | None = None
    ctime_ns: int | None = None
    inode: int | None = None
    device: int | None = None


def _facts_json(facts: ParquetFacts, schema: FileSchema) -> str:
    data = json.loads(schema.to_json())
    data.update(
        numeric_stats=list(facts.numeric),
        floats=sorted(facts.floats),
        null_columns=list(facts.nulls[0]) if facts.nulls else [],
        entries=list(facts.schema),
    )
    return json.dumps(data, separators=(",", ":"))


def to_table(files: Sequence[tuple[str, FileIdentity, IndexedFile]], meta: dict) -> pa.Table:
    """The index table of ``files`` (path, identity, what was indexed), with ``meta``
    (build options) in the table's key-value metadata."""
    columns: dict[str, list] = {name: [] for name in (*_FIXED, *_OPTIONAL)}
    stats: dict[str, list] = {}
    n = 0

    def put(row: dict) -> None:
        nonlocal n
        for name in columns:
            columns[name].append(row.get(name))
        for name, value in row.items():
            if name in columns:
                continue
            if name not in stats:
                stats[name] = [None] * n
            stats[name].append(value)
        n += 1
        for values in stats.values():
            if len(values) < n:
                values.append(None)

    for path, identity, entry in sorted(files, key=lambda f: f[0]):
        facts = entry.facts
        whole: dict = {}
        for c in facts.numeric:
            los = [b[c][0] for b in facts.boxes]
            his = [b[c][1] for b in facts.boxes]
            whole[f"min:{c}"] = min(los) if los else math.inf
            whole[f"max:{c}"] = max(his) if his else -math.inf
        for c in facts.nulls[0] if facts.nulls else ():
            counts = [nc.get(c) for nc in facts.nulls]
            whole[f"nulls:{c}"] = None if None in counts else int(sum(counts))
        for c in facts.floats:
            whole[f"nan:{c}"] = any(c in nan for nan in entry.may_have_nan)
        put(
            {
                "path": path,
                "num_rows": facts.num_rows,
                "total_bytes": int(sum(entry.row_group_bytes)),
                "compressed_bytes": int(sum(facts.sizes)),
                "size": identity.size,
                "mtime_ns": identity.mtime_ns,
                "ctime_ns": identity.ctime_ns,
                "inode": identity.inode,
                "device": identity.device,
                "etag": identity.etag,
                "footer_hash": entry.footer_hash,
                "schema": _facts_json(facts, entry.schema),
                "schema_hash": entry.schema.digest,
                "origin": entry.origin,
                "status": entry.status,
                "mlskip_key": entry.key,
                "mlskip_footer": entry.footer,
                "mlskip_models": entry.models,
                **whole,
            }
        )
        for r, rows in enumerate(facts.row_counts):
            row = {
                "path": path,
                "row_group": r,
                "num_rows": rows,
                "total_bytes": entry.row_group_bytes[r],
                "compressed_bytes": facts.sizes[r],
            }
            for c in facts.numeric:
                row[f"min:{c}"], row[f"max:{c}"] = facts.boxes[r][c]
            for c, count in facts.nulls[r].items():
                row[f"nulls:{c}"] = count
            for c in facts.floats:
                row[f"nan:{c}"] = c in entry.may_have_nan[r]
            put(row)
    fixed = {**_FIXED, **_OPTIONAL}
    arrays = [pa.array(columns[name], type) for name, type in fixed.items()]
    names = list(fixed)
    for name in sorted(stats):
        kind = name.split(":", 1)[0]
        type_ = {"min": pa.float64(), "max": pa.float64(), "nulls": pa.int64()}.get(
            kind, pa.bool_()
        )
        arrays.append(pa.array(stats[name], type_))
        names.append(name)
    table = pa.table(arrays, names=names)
    return table.replace_schema_metadata({"mlskip.index": json.dumps({"format": FORMAT, **meta})})


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> dict:
    return json.loads(text)


@functools.lru_cache(maxsize=1024)
def _planner_schema(text: str) -> tuple[tuple[str, ...], frozenset[str], tuple]:
    info = _parsed(text)
    return tuple(info["names"]), frozenset(info["numeric"]), tuple(map(tuple, info["leaves"]))


class IndexTable:
    """A loaded index: per file, its row and the range of its row-group rows, with the
    columns held as arrays (a file's summaries are built only when it is planned)."""

    def __init__(self, table: pa.Table) -> None:
        raw = (table.schema.metadata or {}).get(b"mlskip.index")
        info = json.loads(raw) if raw else {}
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            found = info.get("format") if isinstance(info, dict) else info
            raise ValueError(f"not an mlskip skip index (format {found!r})")
        missing = [c for c, t in _FIXED.items() if table.schema.field(c).type != t] if all(
            c in table.column_names for c in _FIXED
        ) else [c for c in _FIXED if c not in table.column_names]  # fmt: skip
        if missing:
            raise ValueError(f"skip index columns missing or mistyped: {missing}")
        self.meta = info
        self.table = table
        self.num_row_groups = table.num_rows - table.column("row_group").null_count
        paths = table.column("path").to_pylist()
        is_file = table.column("row_group").is_null().to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(is_file)
        ends = np.append(starts[1:], len(paths))[: len(starts)]
        self._rows = {paths[s]: (int(s), int(e)) for s, e in zip(starts, ends, strict=True)}
        self._columns: dict[str, np.ndarray] = {}
        self._lists: dict[str, list] = {}
        self._schemas_checked: set[int] = set()  # distinct schemas whose columns are present
        self._whole: dict[int, tuple] = {}  # distinct schema -> the columns it reads
        self._parsed: dict[int, dict] = {}
        # each row's schema as an index into its distinct texts (files share schemas)
        encoded = table.column("schema").combine_chunks().dictionary_encode()
        self._schema_of = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        self._schema_texts = encoded.dictionary.to_pylist()

    @property
    def paths(self) -> list[str]:
        return list(self._rows)

    def __contains__(self, path: str) -> bool:
        return path in self._rows

    def _numbers(self, name: str) -> np.ndarray:
        """A numeric column as float64 (NULL as NaN), converted once."""
        got = self._columns.get(name)
        if got is None:
            column = self.table.column(name)
            got = column.to_numpy(zero_copy_only=False).astype(np.float64)
            if column.null_count:
                got[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
            self._columns[name] = got
        return got

    def _values(self, name: str) -> list:
        got = self._lists.get(name)
        if got is None:
            got = self._lists[name] = self.table.column(name).to_pylist()
        return got

    def rows(self, path: str) -> tuple[int, int]:
        """The file's own row and the end of its row-group rows."""
        return self._rows[path]

    def value(self, path: str, name: str):
        """One column's value on a file's own row (None for an optional column this
        index lacks)."""
        if name in _OPTIONAL and name not in self.table.column_names:
            return None
        return self._values(name)[self._rows[path][0]]

    def identity(self, path: str) -> FileIdentity:
        row = self._rows[path][0]
        value = {name: self._values(name)[row] for name in
                 ("size", "mtime_ns", "etag", "ctime_ns", "inode", "device")}  # fmt: skip
        if value["size"] is None:
            raise ValueError(f"skip index entry of {path} has no size")
        return FileIdentity(**value)

    def check_entry(self, path: str) -> None:
        """Raise ``ValueError`` naming what is wrong if the file's entry cannot be read
        (a damaged index: every column its summaries need, of the right kind)."""
        which = int(self._schema_of[self._rows[path][0]])
        text = self._schema_texts[which] if which >= 0 else None
        if which not in self._schemas_checked:  # once per distinct schema
            info = _parsed(text) if isinstance(text, str) else None
            lists = ("names", "numeric", "leaves", "numeric_stats", "floats", "null_columns",
                     "entries")  # fmt: skip
            if not isinstance(info, dict) or any(not isinstance(info.get(k), list) for k in lists):
                raise ValueError(f"skip index entry of {path}: schema facts incomplete")
            names = set(self.table.column_names)
            needed = [f"{kind}:{c}" for c in info["numeric_stats"] for kind in ("min", "max")]
            needed += [f"nulls:{c}" for c in info["null_columns"]]
            needed += [f"nan:{c}" for c in info["floats"]]
            absent = [n for n in needed if n not in names]
            if absent:
                raise ValueError(f"skip index entry of {path}: columns {absent[:3]} missing")
            self._schemas_checked.add(which)
        for value in (self.value(path, "mlskip_footer"), self.value(path, "mlskip_key")):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"skip index entry of {path}: footer value not text")

    def _schema_text(self, path: str) -> str:
        which = int(self._schema_of[self._rows[path][0]])
        if which < 0:
            raise ValueError(f"skip index entry of {path}: no schema facts")
        return self._schema_texts[which]

    def schema_info(self, path: str) -> dict:
        """The file's schema facts (parsed once per distinct schema: read-only)."""
        which = int(self._schema_of[self._rows[path][0]])
        got = self._parsed.get(which)
        if got is None:
            got = self._parsed[which] = _parsed(self._schema_text(path))
        return got

    def planner_schema(self, path: str) -> tuple[tuple[str, ...], frozenset[str], tuple]:
        """Column names, numeric columns and Parquet leaves, as the planner holds them."""
        return _planner_schema(self._schema_text(path))

    def row_counts(self, path: str) -> np.ndarray:
        start, end = self._rows[path]
        return self._numbers("num_rows")[start + 1 : end].astype(np.int64)

    def row_group_bytes(self, path: str) -> np.ndarray:
        start, end = self._rows[path]
        return self._numbers("total_bytes")[start + 1 : end].astype(np.int64)

    def parquet_facts(self, path: str) -> ParquetFacts:
        """The file's Parquet facts as indexed."""
        info = self.schema_info(path)
        start, end = self._rows[path]
        rows = range(start + 1, end)
        boxes = [{} for _ in rows]
        for c in info["numeric_stats"]:
            lo, hi = self._numbers(f"min:{c}"), self._numbers(f"max:{c}")
            for k, r in enumerate(rows):
                boxes[k][c] = (float(lo[r]), float(hi[r]))
        nulls = [{} for _ in rows]
        for c in info["null_columns"]:
            counts = self._numbers(f"nulls:{c}")
            for k, r in enumerate(rows):
                v = counts[r]
                nulls[k][c] = None if math.isnan(v) else int(v)
        sizes = self._numbers("compressed_bytes")[start + 1 : end].astype(np.int64)
        return ParquetFacts(
            tuple(info["numeric_stats"]),
            frozenset(info["floats"]),
            tuple(boxes),
            tuple(nulls),
            tuple(self.row_counts(path).tolist()),
            tuple(sizes.tolist()),
            tuple(info["entries"]),
        )

    def _whole_columns(self, path: str) -> tuple[list, list, list]:
        """The columns a file's summaries read, per distinct schema: (name, min, max),
        (name, NULL counts), (name, NaN flags)."""
        which = int(self._schema_of[self._rows[path][0]])
        got = self._whole.get(which)
        if got is None:
            info = self.schema_info(path)
            got = self._whole[which] = (
                [(c, self._numbers(f"min:{c}"), self._numbers(f"max:{c}"))
                 for c in info["numeric_stats"]],
                [(c, self._numbers(f"nulls:{c}")) for c in info["null_columns"]],
                [(c, self._values(f"nan:{c}")) for c in info["floats"]],
            )  # fmt: skip
        return got

    def whole_file(self, path: str, trust_nan_flags: bool) -> RowGroupSummary:
        """The file's own row as one summary: the union of its row groups (polygons
        aside). NaN flags are used only when ``trust_nan_flags`` (the stored value was
        checked under the key planning trusts)."""
        boxes, counts, flags = self._whole_columns(path)
        row = self._rows[path][0]
        box = {c: (float(lo[row]), float(hi[row])) for c, lo, hi in boxes}
        nulls = {c: None if math.isnan(v[row]) else int(v[row]) for c, v in counts}
        nan = {c for c, v in flags if not trust_nan_flags or v[row] is not False}
        return RowGroupSummary(
            -1,
            int(self._numbers("num_rows")[row]),
            MappingProxyType(box),
            MappingProxyType(nulls),
            may_have_nan=frozenset(nan),
        )
