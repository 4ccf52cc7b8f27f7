"""Reading skipping metadata back as regions: boxes, hulls and halfspaces per row group.

Never raises for bad metadata and never returns a hull that could exclude a row:
anything unknown, stale or corrupt is reported with SkippingFallbackWarning and
the file falls back to boxes from Parquet's own statistics.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from mlskip.errors import MetadataError, SkippingFallbackWarning

from .encoding import is_numeric
from .footer import KEY_PREFIX, KEYS, Footer, decode_footer
from .grid import QMAX
from .integrity import key_id, layout_digest, resolve_key, row_group_sizes, schema_entries
from .model_summary import KEY as MODELS_KEY
from .model_summary import ModelSummary, RowGroupOutputs, decode_models
from .parquet_stats import stats_box, stats_null_count
from .polygon_codec import decode_many, decode_vertices, halfspaces_many

_UNBOUNDED = (-math.inf, math.inf)
_EMPTY: MappingProxyType = MappingProxyType({})


@dataclass(frozen=True)
class RowGroupSummary:
    """One row group's region: box per numeric column, pair polygons, counts."""

    index: int
    num_rows: int
    box: MappingProxyType  # {column: (lo, hi)} float64, (-inf, inf) where unknown
    null_counts: MappingProxyType  # {column: int | None}
    hulls: MappingProxyType = field(
        default_factory=lambda: _EMPTY
    )  # {(a, b): (k, 2) float64 CCW vertices}
    hull_bytes: MappingProxyType = field(
        default_factory=lambda: _EMPTY
    )  # {(a, b): bytes the stored polygon took}
    halfspaces: MappingProxyType = field(
        default_factory=lambda: _EMPTY
    )  # {(a, b): (A (m, 2), b (m,))}, A @ x <= b
    may_have_nan: frozenset[str] = frozenset()  # float columns that may hold NaN here
    outputs: tuple = ()  # model_summary.RowGroupOutputs: registered models' outputs here


@dataclass(frozen=True)
class FileSkipMetadata:
    """Everything the skipper needs from one Parquet file, plus identity for plan caching."""

    path: str | None
    size: int | None
    mtime: float | None
    footer_hash: str
    num_rows: int
    columns: tuple[str, ...]  # numeric columns (those with a box entry)
    pairs: tuple[tuple[str, str], ...]  # pairs with polygons (empty when status != "ok")
    hull_budget: int | None  # hull_bytes the writer was given
    row_groups: tuple[RowGroupSummary, ...]
    status: str  # "ok", "boxes-only" (footer rejected), "no-summaries" (plain Parquet)
    warnings: tuple[str, ...] = field(default=())
    key_id: str = ""  # which footer key the footer was checked against ("" = none)
    models: tuple = ()  # model_summary.ModelSummary per summarized model (MODELS.md)


def _footer_hash(source: Any, filesystem: Any) -> tuple[str, int | None, float | None]:
    """blake2b of the Parquet footer bytes, the file size and mtime (when known)."""
    size = mtime = None
    if isinstance(source, (str, os.PathLike)) and filesystem is None:
        st = os.stat(source)
        size, mtime = st.st_size, st.st_mtime
        with open(source, "rb") as f:
            return footer_hash_of(f, size), size, mtime
    if isinstance(source, (str, os.PathLike)):
        info = filesystem.get_file_info(os.fspath(source))
        size = info.size
        mtime = info.mtime.timestamp() if info.mtime is not None else None
        with filesystem.open_input_file(os.fspath(source)) as f:
            return footer_hash_of(f, size), size, mtime
    pos = source.tell()
    try:
        source.seek(0, 2)
        size = source.tell()
        return footer_hash_of(source, size), size, None
    finally:
        source.seek(pos)


def footer_hash(path: str | os.PathLike) -> str:
    """blake2b of a local Parquet file's footer bytes: what a cached summary of the file
    was read from (a file rewritten in place with the same size and mtime changes it)."""
    return _footer_hash(path, None)[0]


def footer_hash_of(f: Any, size: int) -> str:
    """blake2b of the Parquet footer of an open file of ``size`` bytes."""
    if size < 12:
        raise MetadataError("file too small to be Parquet")
    f.seek(size - 8)
    tail = f.read(8)
    n = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1" or n + 8 > size:
        raise MetadataError("no Parquet footer")
    f.seek(size - 8 - n)
    return hashlib.blake2b(f.read(n), digest_size=16).hexdigest()


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class ParquetFacts:
    """What the reader takes from a Parquet footer besides mlskip's own value: enough to
    check and decode that value. A skip index stores these per file, so that planning
    from the index never opens the file."""

    numeric: tuple[str, ...]  # top-level numeric columns (those with a box)
    floats: frozenset[str]  # floating-point ones among them (may hold NaN)
    boxes: tuple[dict, ...]  # per row group {column: (lo, hi)}, (-inf, inf) unknown
    nulls: tuple[dict, ...]  # per row group {column: NULL count | None}, every leaf
    row_counts: tuple[int, ...]
    sizes: tuple[int, ...]  # compressed bytes per row group (integrity.row_group_sizes)
    schema: tuple[str, ...]  # integrity.schema_entries of the Arrow schema

    @property
    def num_rows(self) -> int:
        return sum(self.row_counts)


def parquet_facts(pf: pq.ParquetFile) -> ParquetFacts:
    """Boxes, NULL counts, row counts, sizes and schema entries of an open Parquet file."""
    meta = pf.metadata
    schema = pf.schema_arrow
    pschema = pf.schema
    names: list[str] = []
    leaf: dict[str, int] = {}
    for i in range(meta.num_columns):
        path = pschema.column(i).path
        if "." not in path:
            leaf[path] = i
    floats = set()
    for f in schema:
        if f.name in leaf and is_numeric(f.type):
            names.append(f.name)
            if str(f.type).startswith(("float", "double", "halffloat")):
                floats.add(f.name)
    boxes, nulls = [], []
    for r in range(meta.num_row_groups):
        rg = meta.row_group(r)
        box, nc = {}, {}
        for name in names:
            chunk = rg.column(leaf[name])
            b = stats_box(chunk, pschema.column(leaf[name]).logical_type)
            box[name] = b if b is not None else _UNBOUNDED
        for name, i in leaf.items():
            nc[name] = stats_null_count(rg.column(i))
        boxes.append(box)
        nulls.append(nc)
    return ParquetFacts(
        tuple(names),
        frozenset(floats),
        tuple(boxes),
        tuple(nulls),
        tuple(meta.row_group(r).num_rows for r in range(meta.num_row_groups)),
        tuple(row_group_sizes(meta)),
        tuple(schema_entries(schema)),
    )


def _check_footer(fp: Footer, facts: ParquetFacts) -> None:
    """Row-group count, row counts and column names (all versions); v3 also the
    row groups' byte sizes; v1 its stored NULL counts and ranges against Parquet's
    statistics."""
    names, boxes, nulls = facts.numeric, facts.boxes, facts.nulls
    if len(fp.row_groups) != len(facts.row_counts):
        raise MetadataError(
            f"footer describes {len(fp.row_groups)} row groups, file has {len(facts.row_counts)} (stale or foreign metadata)"
        )
    for r, rg in enumerate(fp.row_groups):
        if rg.num_rows != facts.row_counts[r]:
            raise MetadataError(
                f"row group {r}: footer says {rg.num_rows} rows, file has {facts.row_counts[r]} (stale or foreign metadata)"
            )
    # files written before the digest covered column names carry the sizes-only digest
    if fp.layout is not None and fp.layout not in (
        layout_digest(facts.sizes, facts.schema),
        layout_digest(facts.sizes),
    ):
        raise MetadataError(
            "the file's row groups or columns are not those the footer was written for "
            "(row groups rewritten, columns renamed, reordered or retyped, or the footer "
            "comes from another file)"
        )
    for c in fp.columns:
        if c not in names:
            raise MetadataError(
                f"footer names column {c!r}, which is not a numeric column of the file"
            )
    if fp.version != 1:
        return
    for r, rg in enumerate(fp.row_groups):
        for c, s in zip(fp.columns, rg.columns, strict=True):
            pn = nulls[r].get(c)
            if pn is not None and pn != s.null_count:
                raise MetadataError(
                    f"row group {r}, column {c!r}: footer says {s.null_count} NULLs, statistics say {pn} (stale metadata)"
                )
            lo, hi = boxes[r][c]
            if s.lo <= s.hi and math.isfinite(lo) and math.isfinite(hi):
                tol = 1e-9 * max(abs(lo), abs(hi), abs(s.lo), abs(s.hi), 1e-300)
                if abs(s.lo - lo) > tol or abs(s.hi - hi) > tol:
                    raise MetadataError(
                        f"row group {r}, column {c!r}: footer range [{s.lo}, {s.hi}] disagrees with statistics [{lo}, {hi}] (stale metadata)"
                    )


def read_skip_metadata(
    path_or_file: Any, *, filesystem: Any = None, footer_key: str | bytes | None = None
) -> FileSkipMetadata:
    """Boxes, polygons and halfspaces of every row group of one Parquet file.

    ``path_or_file``: a path (optionally on a pyarrow ``filesystem``), or a
    seekable binary file / pyarrow NativeFile. ``footer_key`` (default
    ``$MLSKIP_FOOTER_KEY``): when set, only footers signed with it are trusted.
    Bad mlskip metadata degrades to boxes with a SkippingFallbackWarning; only an
    unreadable Parquet file raises.
    """
    trusted_key = resolve_key(footer_key)
    name = getattr(path_or_file, "name", None)  # an open file names its path
    label = (
        os.fspath(path_or_file)
        if isinstance(path_or_file, (str, os.PathLike))
        else name
        if isinstance(name, str)
        else repr(path_or_file)
    )
    source = path_or_file
    if filesystem is not None and isinstance(path_or_file, (str, os.PathLike)):
        source = filesystem.open_input_file(os.fspath(path_or_file))
    pf = pq.ParquetFile(source)
    try:
        fhash, size, mtime = _footer_hash(path_or_file, filesystem)
    except (MetadataError, OSError, AttributeError, ValueError):
        fhash, size, mtime = "", None, None
    kv = pf.metadata.metadata or {}
    found = next((k for k in KEYS if k.encode() in kv), None)
    others = tuple(k.decode("utf-8", "replace") for k in kv if k.startswith(KEY_PREFIX.encode()))
    result = skip_metadata_from(
        parquet_facts(pf),
        kv[found.encode()] if found is not None else None,
        found,
        label=label,
        footer_key=trusted_key,
        other_keys=others,
        models_raw=kv.get(MODELS_KEY.encode()),
    )
    for m in result.warnings:
        warnings.warn(m, SkippingFallbackWarning, stacklevel=2)
    path = label if isinstance(path_or_file, (str, os.PathLike)) else None
    return replace(result, path=path, size=size, mtime=mtime, footer_hash=fhash)


def skip_metadata_from(
    facts: ParquetFacts,
    raw: bytes | str | None,
    found: str | None,
    *,
    label: str,
    footer_key: bytes | None,
    other_keys: Sequence[str] = (),
    models_raw: bytes | str | None = None,
) -> FileSkipMetadata:
    """A file's summaries from its Parquet facts and its mlskip value ``raw`` (stored under
    key ``found``; None: the file has none) and model summaries ``models_raw`` (key
    ``mlskip.models.v1``), checked exactly as when read from the file (a skip index gives
    them without opening it). Warnings are returned, not issued."""
    problems: list[str] = []
    footer = None
    if raw is None:
        others = sorted(other_keys)
        if others:
            problems.append(
                f"unknown skipping metadata version(s) {others}; this reader knows {list(KEYS)}"
            )
    else:
        try:
            footer = decode_footer(raw, key=footer_key)
            if found != f"{KEY_PREFIX}{footer.version}":
                raise MetadataError(f"key {found!r} holds a format v{footer.version} value")
            _check_footer(footer, facts)
        except MetadataError as exc:
            problems.append(str(exc))
            footer = None
        except Exception as exc:  # never let corrupt metadata escape
            problems.append(f"unreadable skipping metadata ({type(exc).__name__}: {exc})")
            footer = None
    boxes, nulls = facts.boxes, facts.nulls
    nans = [facts.floats] * len(facts.row_counts)
    row_groups = []
    pairs: tuple[tuple[str, str], ...] = ()
    if footer is not None:
        build = _with_polygons if footer.version == 1 else _with_polygons_v2
        try:
            row_groups, pairs = build(footer, boxes, nulls, nans)
        except MetadataError as exc:  # v2 polygons that do not cover the statistics
            problems.append(str(exc))
            footer, row_groups, pairs = None, [], ()
        except Exception as exc:  # corrupt polygon data: boxes only
            problems.append(f"unreadable polygon data ({type(exc).__name__}: {exc})")
            footer, row_groups, pairs = None, [], ()
    if footer is None:
        row_groups = [
            RowGroupSummary(
                r,
                n,
                MappingProxyType(boxes[r]),
                MappingProxyType(nulls[r]),
                may_have_nan=nans[r],
            )
            for r, n in enumerate(facts.row_counts)
        ]
    models, model_problem = _model_summaries(models_raw, facts, footer_key)
    if models:
        row_groups = [
            replace(rg, outputs=tuple(RowGroupOutputs(m, r) for m in models))
            for r, rg in enumerate(row_groups)
        ]
    if footer is not None:
        status = "ok"
    elif raw is not None or problems:
        status = "boxes-only"
    else:
        status = "no-summaries"
    return FileSkipMetadata(
        path=label,
        size=None,
        mtime=None,
        footer_hash="",
        num_rows=facts.num_rows,
        columns=facts.numeric,
        pairs=pairs,
        hull_budget=footer.hull_bytes if footer is not None else None,
        row_groups=tuple(row_groups),
        status=status,
        warnings=tuple(f"{label}: {p}; using min-max boxes only" for p in problems)
        + ((f"{label}: {model_problem}; model summaries not used",) if model_problem else ()),
        key_id=key_id(footer_key),
        models=models,
    )


def _model_summaries(
    raw: bytes | str | None, facts: ParquetFacts, key: bytes | None
) -> tuple[tuple[ModelSummary, ...], str | None]:
    """The file's model summaries, or none and why they cannot be trusted."""
    if raw is None:
        return (), None
    try:
        layout = layout_digest(facts.sizes, facts.schema)
        return decode_models(raw, layout=layout, num_rows=facts.row_counts, key=key), None
    except MetadataError as exc:
        return (), str(exc)
    except Exception as exc:  # never let corrupt metadata escape
        return (), f"unreadable model summaries ({type(exc).__name__}: {exc})"


V1_MIN_TRUSTED_BYTES = 17


def _v1_vertices(v: np.ndarray) -> np.ndarray:
    """A v1 record's vertices, made safe against the v1 writer's box-fallback bug.

    The v1 writer's fallback (no lattice width fit) coarsened only two corners of
    the hull's bounding box, giving its diagonal; with hull_bytes >= 17 that
    happens on the 16-bit lattice, so the record is a segment (k = 2). A segment
    is replaced by its bounding box: the fallback's intended polygon, and a
    superset of any genuine segment. (Budgets below 17 bytes are not trusted.)
    """
    if len(v) != 2 or v[0, 0] == v[1, 0] or v[0, 1] == v[1, 1]:
        return v
    (x0, x1), (y0, y1) = sorted(v[:, 0]), sorted(v[:, 1])
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _with_polygons(fp: Footer, boxes, nulls, nans):
    if fp.pairs and fp.hull_bytes < V1_MIN_TRUSTED_BYTES:
        raise MetadataError(
            f"v1 footer with hull_bytes {fp.hull_bytes} < {V1_MIN_TRUSTED_BYTES}: its polygons "
            "may come from the v1 writer's unsound box fallback"
        )
    pairs = tuple((fp.columns[a], fp.columns[b]) for a, b in fp.pairs)
    out = []
    for r, rg in enumerate(fp.row_groups):
        box = dict(boxes[r])
        nc = dict(nulls[r])
        nan = set(nans[r])
        for c, s in zip(fp.columns, rg.columns, strict=True):
            lo, hi = box[c]
            if s.lo <= s.hi:
                box[c] = (max(lo, s.lo), min(hi, s.hi))
            nc[c] = s.null_count
            if s.nan_count == 0:
                nan.discard(c)
        polygons = [
            (name, _v1_vertices(decode_vertices(rec, gx, gy)), len(rec))
            for _, _, rec, name, gx, gy in _pair_records(fp, rg, pairs, r)
        ]
        out.append((r, rg.num_rows, box, nc, polygons, nan))
    return _summaries(out), pairs


def _summaries(pending: list[tuple]) -> list[RowGroupSummary]:
    """Row-group summaries from (index, rows, box, NULL counts, polygons, NaN columns);
    the halfspaces of every polygon of the file are computed in one batch."""
    hs = iter(halfspaces_many([v for *_, polygons, _ in pending for _, v, _ in polygons]))
    return [_summary(*args, hs) for args in pending]


def _summary(r: int, num_rows: int, box: dict, nulls: dict, polygons: list, nan: set, hs):
    """One row group's summary; ``polygons`` holds (pair, decoded vertices, record bytes),
    ``hs`` yields their halfspaces in order."""
    hulls, sizes, forms = {}, {}, {}
    for name, v, size in polygons:
        A, bb = next(hs)
        hulls[name] = _frozen(v)
        sizes[name] = size
        forms[name] = (_frozen(A), _frozen(bb))
    return RowGroupSummary(
        r,
        num_rows,
        MappingProxyType(box),
        MappingProxyType(nulls),
        MappingProxyType(hulls),
        MappingProxyType(sizes),
        MappingProxyType(forms),
        frozenset(nan),
    )


def _covers(lo: float, hi: float, stats: tuple[float, float], strong: bool) -> bool:
    """Whether the range [lo, hi] of a summary is consistent with statistics [slo, shi]:
    it meets them, and (``strong``: the summary holds every non-NULL value) covers
    their finite ends."""
    slo, shi = stats
    if lo > shi or hi < slo:
        return False
    return not strong or ((math.isinf(slo) or lo <= slo) and (math.isinf(shi) or hi >= shi))


def _with_polygons_v2(fp: Footer, boxes, nulls, nans):
    """Regions of a v2 footer. Boxes and NULL counts are Parquet's (boxes cut to each
    grid's range); every grid must cover its column's statistics and every polygon
    meet them (and cover them where the other column has no NULL), else the footer
    is stale or foreign (MetadataError)."""
    pairs = tuple((fp.columns[a], fp.columns[b]) for a, b in fp.pairs)
    out = []
    found: list[tuple] = []
    for r, rg in enumerate(fp.row_groups):
        box = dict(boxes[r])
        nan = set(nans[r])
        for c, ent in zip(fp.columns, rg.columns, strict=True):
            if not ent.may_have_nan:
                nan.discard(c)
            if ent.grid is None:
                continue
            glo, ghi = ent.grid.value(0), ent.grid.value(QMAX)
            if not _covers(glo, ghi, boxes[r][c], True):
                raise MetadataError(
                    f"row group {r}, column {c!r}: grid [{glo}, {ghi}] does not cover the "
                    f"statistics {boxes[r][c]} (stale or foreign metadata)"
                )
            box[c] = (max(box[c][0], glo), min(box[c][1], ghi))
        polygons: list = []
        for a, b, rec, name, gx, gy in _pair_records(fp, rg, pairs, r):
            found.append((r, a, b, rec, name, gx, gy, polygons))
        out.append((r, rg.num_rows, box, dict(nulls[r]), polygons, nan))
    if found:  # every polygon of the file decoded at once, then checked
        vs = decode_many([f[3] for f in found], [f[5] for f in found], [f[6] for f in found])
        ends = np.cumsum([len(v) for v in vs])
        allv = np.concatenate(vs)
        starts = ends - np.array([len(v) for v in vs])
        mins, maxs = np.minimum.reduceat(allv, starts), np.maximum.reduceat(allv, starts)
        for (r, a, b, rec, name, _, _, polygons), v, lo, hi in zip(
            found, vs, mins, maxs, strict=True
        ):
            ca, cb = fp.columns[a], fp.columns[b]
            x_ok = _covers(float(lo[0]), float(hi[0]), boxes[r][ca], nulls[r].get(cb) == 0)
            y_ok = _covers(float(lo[1]), float(hi[1]), boxes[r][cb], nulls[r].get(ca) == 0)
            if not (x_ok and y_ok):
                raise MetadataError(
                    f"row group {r}: polygon of {name} does not cover the statistics of "
                    f"{ca!r} {boxes[r][ca]} and {cb!r} {boxes[r][cb]} (stale or foreign metadata)"
                )
            polygons.append((name, v, len(rec)))
    return _summaries(out), pairs


def _pair_records(fp: Any, rg: Any, pairs: Sequence, r: int) -> Iterator[tuple]:
    """Each stored polygon record of row group ``r``: (column a, column b, record, pair name,
    grid of a, grid of b); a record without its columns' grids is corrupt."""
    for (a, b), rec, name in zip(fp.pairs, rg.records, pairs, strict=True):
        if rec is None:
            continue
        gx, gy = rg.columns[a].grid, rg.columns[b].grid
        if gx is None or gy is None:
            raise MetadataError(f"row group {r}: polygon for {name} without grids")
        yield a, b, rec, name, gx, gy
