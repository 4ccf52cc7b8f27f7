"""A skip index: the summaries of many Parquet files in one Parquet object.

``build_index`` reads each file once (only its footer when it carries mlskip
summaries; otherwise its row groups one at a time, only the columns the summaries
need) and writes the index (``metadata/index_table.py``). ``refresh_index`` keeps
entries whose files did not change, re-indexes changed and new ones and drops
removed ones. Both replace the index atomically (a rename; one PUT on S3), so a
query running meanwhile reads either the old index or the new one.

Planning from an index (``SkipIndex.facts``) never opens an indexed file: each
entry is checked against the file's identity (local: size, modification time and
the hash of its Parquet footer; S3: size and ETag, listed a folder at a time), and
an entry that no longer matches is never used: that file is planned from its own
footer, and ``explain_skipping`` says so.
"""

from __future__ import annotations

import functools
import io
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlskip.errors import MlskipError, SkippingFallbackWarning
from mlskip.metadata import footer_hash, key_id, resolve_key
from mlskip.metadata.file_index import FileSchema, IndexedFile, index_file
from mlskip.metadata.index_table import FileIdentity, IndexTable, to_table
from mlskip.metadata.reader import footer_hash_of, skip_metadata_from
from mlskip.skipper.binder import has_glob
from mlskip.skipper.identity import local_identity
from mlskip.skipper.paths import expand_paths, glob_regex
from mlskip.skipper.remote import (
    S3Options,
    default_filesystem,
    is_s3,
    list_identities,
    read_remote_tail,
    remote_identity,
    s3_key,
)


def index_key(path: str) -> str:
    """How an index names a file: the absolute path, or the ``s3://`` URL as given."""
    return path if is_s3(path) else os.path.abspath(path)


@dataclass(frozen=True)
class IndexReport:
    """What a build or refresh did."""

    index: str
    files: int
    row_groups: int
    indexed: int  # files read this time (all of them for a build)
    kept: int  # unchanged entries carried over (refresh)
    dropped: int  # entries of files that no longer exist (refresh)
    from_footers: int  # files indexed from their own mlskip footer, no row read
    seconds: float
    index_bytes: int
    failed: tuple[str, ...] = ()  # files that could not be read (left out, with why)


@dataclass(frozen=True)
class IndexCoverage:
    """What an index covers (``mlskip index show``)."""

    index: str
    files: int
    row_groups: int
    rows: int
    bytes: int
    from_footers: int
    pairs: dict[str, int] = field(default_factory=dict)  # "a|b" -> files with polygons
    sources: tuple[str, ...] = ()
    built: str = ""
    models: dict[str, int] = field(default_factory=dict)  # model name -> files summarized


class _Filesystem:
    """The pyarrow filesystem for ``s3://`` paths, made on first use."""

    def __init__(self, s3: S3Options | None, filesystem: Any = None) -> None:
        self.s3 = s3
        self._fs = filesystem
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if self._fs is None:
                self._fs = self.s3.filesystem() if self.s3 is not None else default_filesystem()
            return self._fs


@functools.lru_cache(maxsize=8)
def _s3_filesystem(s3: S3Options | None) -> Any:
    """One S3 filesystem per options and process, for the files an index build reads."""
    return _Filesystem(s3)()


def _read_one(
    path: str, options: dict, s3: S3Options | None
) -> tuple[str, FileIdentity, IndexedFile]:
    """Index one file: identity, then its summaries, read while that identity held."""
    key = resolve_key(options.get("footer_key"))
    kwargs = {
        "hulls": options["hulls"], "hull_bytes": options["hull_bytes"], "footer_key": key,
        "footer_hooks": options.get("footer_hooks"),
    }  # fmt: skip
    if is_s3(path):
        fs = _s3_filesystem(s3)
        tail, identity = read_remote_tail(fs, path)
        fhash = footer_hash_of(tail, identity[1])
        tail.seek(0)
        try:
            entry = index_file(tail, path, fhash, **kwargs)  # a footer is all it needs
        except OSError:  # plain Parquet: its row groups are read
            with fs.open_input_file(s3_key(path)) as whole:
                entry = index_file(whole, path, fhash, **kwargs)
            if remote_identity(fs, path) != identity:
                raise OSError(f"{path} changed while it was indexed") from None
        return index_key(path), FileIdentity(identity[1], None, identity[2]), entry
    with open(path, "rb") as handle:
        st = os.fstat(handle.fileno())
        fhash = footer_hash_of(handle, st.st_size)
        handle.seek(0)
        entry = index_file(handle, path, fhash, **kwargs)
    return index_key(path), local_file_identity(st), entry


def local_file_identity(st: os.stat_result) -> FileIdentity:
    """What an index stores of a local file's ``stat`` (see ``FileIdentity``)."""
    return FileIdentity(
        st.st_size, st.st_mtime_ns, None, st.st_ctime_ns, st.st_ino, st.st_dev
    )  # fmt: skip


def _index_many(
    paths: Sequence[str], options: dict, s3: S3Options | None, workers: int
) -> tuple[list[tuple[str, FileIdentity, IndexedFile]], list[str]]:
    """Index ``paths``, on ``workers`` Dask processes when more than one (or on the
    Dask client the caller has made current). Unreadable files are reported, not fatal."""

    results: list
    if workers > 1 and len(paths) > 1:
        import dask

        tasks = [dask.delayed(_safe_read)(p, options, s3) for p in paths]
        results = list(_compute(tasks, workers))
    else:
        results = [_safe_read(p, options, s3) for p in paths]
    done = [r for r in results if not isinstance(r, str)]
    failed = [r for r in results if isinstance(r, str)]
    return done, failed


def _safe_read(path: str, options: dict, s3: S3Options | None):
    """``_read_one``, or why it failed: a file that cannot be read is left out of the index
    (and plans from its own footer), not fatal to the build."""
    try:
        return _read_one(path, options, s3)
    except Exception as error:
        return f"{path}: {type(error).__name__}: {error}"


def _compute(tasks: list, workers: int) -> tuple:
    import dask

    try:
        from distributed import default_client

        default_client()
        return dask.compute(*tasks)  # the caller's cluster
    except (ImportError, ValueError):
        return dask.compute(*tasks, scheduler="processes", num_workers=workers)


def _expand(sources: Sequence[str], fs: _Filesystem) -> list[str]:
    files: list[str] = []
    for source in sources:
        files.extend(expand_paths(source, fs() if is_s3(source) else None))
    return list(dict.fromkeys(files))


def _options(
    hulls: Any, hull_bytes: int, footer_key: str | bytes | None, footer_hooks: Any = None
) -> dict:
    if isinstance(hulls, str) and hulls != "auto":
        raise MlskipError(f"hulls must be 'auto', None or column pairs, got {hulls!r}")
    pairs = hulls if hulls in ("auto", None) else [tuple(p) for p in hulls]
    return {
        "hulls": pairs, "hull_bytes": int(hull_bytes), "footer_key": footer_key,
        "footer_hooks": footer_hooks,
    }  # fmt: skip


def build_index(
    sources: str | Sequence[str],
    index: str,
    *,
    hulls: str | Sequence[tuple[str, str]] | None = "auto",
    hull_bytes: int = 45,
    workers: int = 1,
    s3: S3Options | dict | None = None,
    footer_key: str | bytes | None = None,
    footer_hooks: Any = None,
) -> IndexReport:
    """Index every Parquet file ``sources`` name (paths, globs, ``s3://`` URLs) into the
    Parquet object ``index`` (local or ``s3://``), replacing it atomically.
    ``footer_hooks`` (picklable, as ``write_parquet``'s) compute summaries of each file's
    rows more (model summaries: ``mlskip.build_index(..., models=...)``)."""
    start = time.perf_counter()
    sources = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    # local sources as absolute paths: a refresh from another folder lists the same files
    sources = [s if is_s3(s) else os.path.abspath(s) for s in map(os.fspath, sources)]
    options = S3Options.coerce(s3)
    fs = _Filesystem(options)
    _check_apart(index, sources)
    files = _expand(sources, fs)
    if not files:
        raise MlskipError(f"no Parquet file matches {sources}")
    opts = _options(hulls, hull_bytes, footer_key, footer_hooks)
    done, failed = _index_many(files, opts, options, workers)
    meta = _meta(sources, opts, footer_key)
    size = _write(to_table(done, meta), index, fs)
    return IndexReport(
        index, len(done), sum(len(e.facts.row_counts) for _, _, e in done), len(done), 0, 0,
        sum(e.origin == "footer" for _, _, e in done), time.perf_counter() - start, size,
        tuple(failed),
    )  # fmt: skip


def _check_apart(index: str, sources: Sequence[str]) -> None:
    """Refuse an index that its own sources name: a query over them would read it as
    data (and a refresh would index it)."""
    key = index_key(os.fspath(index))
    for source in sources:
        if source == key or (has_glob(source) and glob_regex(source).match(key)):
            raise MlskipError(
                f"the index {index} is among the files {source} names: a query over them "
                "would read it as data; write the index elsewhere"
            )


def _meta(sources: list[str], opts: dict, footer_key: Any) -> dict:
    hulls = opts["hulls"]
    return {
        "sources": sources,
        "hulls": hulls if hulls in ("auto", None) else [list(p) for p in hulls],
        "hull_bytes": opts["hull_bytes"],
        "key_id": key_id(resolve_key(footer_key)),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "models": list(getattr(opts.get("footer_hooks"), "describe", list)()),
    }


def refresh_index(
    index: str,
    *,
    workers: int = 1,
    s3: S3Options | dict | None = None,
    footer_key: str | bytes | None = None,
    footer_hooks: Any = None,
) -> IndexReport:
    """Bring ``index`` up to date with its sources: keep the entries of unchanged files,
    re-index changed and new files, drop removed ones; replace it atomically. Files
    re-indexed get model summaries only from ``footer_hooks`` (or their own footers)."""
    start = time.perf_counter()
    options = S3Options.coerce(s3)
    fs = _Filesystem(options)
    loaded = _load(index, fs)
    meta = loaded.meta
    if meta.get("key_id", "") != key_id(resolve_key(footer_key)):
        raise MlskipError(
            f"{index} was built with another footer key than the one given now; "
            "build it again with `mlskip index build`"
        )
    files = _expand(meta["sources"], fs)
    current = [index_key(p) for p in files]
    valid = _valid_entries(loaded, current, options, fs)
    kept = [(p, loaded.identity(p), _entry_of(loaded, p)) for p in current if p in valid]
    todo = [f for f, p in zip(files, current, strict=True) if p not in valid]
    opts = _options(meta["hulls"], meta["hull_bytes"], footer_key, footer_hooks)
    if todo and meta.get("models") and footer_hooks is None:
        warnings.warn(
            f"{index}: built with model summaries ({[m.get('name') for m in meta['models']]}) "
            "but refreshed without models: the re-indexed files get none (pass the same "
            "models to refresh)",
            SkippingFallbackWarning,
            stacklevel=2,
        )
    done, failed = _index_many(todo, opts, options, workers)
    entries = kept + done
    meta = {**meta, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if footer_hooks is not None:
        meta["models"] = list(getattr(footer_hooks, "describe", list)())
    size = _write(to_table(entries, meta), index, fs)
    dropped = len(set(loaded.paths) - set(current))
    return IndexReport(
        index, len(entries), sum(len(e.facts.row_counts) for _, _, e in entries), len(done),
        len(kept), dropped, sum(e.origin == "footer" for _, _, e in done),
        time.perf_counter() - start, size, tuple(failed),
    )  # fmt: skip


def _entry_of(table: IndexTable, path: str) -> IndexedFile:
    """An entry carried over by a refresh, rebuilt from its stored columns."""
    nan = _stored_nan_flags(table, path, table.schema_info(path)["floats"])
    return IndexedFile(
        facts=table.parquet_facts(path),
        schema=FileSchema(*table.planner_schema(path)),
        row_group_bytes=tuple(table.row_group_bytes(path).tolist()),
        footer=table.value(path, "mlskip_footer"),
        key=table.value(path, "mlskip_key"),
        origin=table.value(path, "origin"),
        footer_hash=table.value(path, "footer_hash"),
        status=table.value(path, "status"),
        may_have_nan=nan,
        models=table.value(path, "mlskip_models"),
    )


def _stored_nan_flags(table: IndexTable, path: str, floats: list[str]) -> tuple:
    start, end = table.rows(path)
    flags = {c: table.table.column(f"nan:{c}").slice(start + 1, end - start - 1).to_pylist()
             for c in floats}  # fmt: skip
    return tuple(
        frozenset(c for c in floats if flags[c][k] is not False) for k in range(end - start - 1)
    )


def _write(table: pa.Table, index: str, fs: _Filesystem) -> int:
    """Write the index in one atomic step: a rename beside it, or one PUT."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=1 << 16)
    data = buffer.getvalue()
    if is_s3(index):
        with fs().open_output_stream(s3_key(index)) as out:
            out.write(data)
        return len(data)
    folder, name = os.path.split(os.path.abspath(index))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "wb") as out:
        out.write(data)
    os.replace(temporary, index)
    return len(data)


def _load(index: str, fs: _Filesystem) -> IndexTable:
    try:
        if is_s3(index):
            with fs().open_input_file(s3_key(index)) as source:
                table = pq.read_table(source)
        else:
            table = pq.read_table(index)
        return IndexTable(table)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException) as error:
        raise MlskipError(f"cannot read skip index {index}: {error}") from error


def _valid_entries(
    table: IndexTable, paths: Sequence[str], s3: S3Options | None, fs: _Filesystem
) -> dict[str, tuple]:
    """Of ``paths``, those whose index entry still describes the file, each with the
    file's current planner identity (``Planner.identity``'s form)."""
    listed = [p for p in paths if p in table]
    out: dict[str, tuple] = {}
    remote = [p for p in listed if is_s3(p)]
    if remote:
        found = list_identities(s3, remote) if len(remote) > 1 else {}
        for path in remote:
            now = found.get(path)
            if now is None:
                try:
                    now = remote_identity(fs(), path)
                except OSError:
                    continue
            try:
                stored = table.identity(path)
            except ValueError:  # a damaged entry: never used
                continue
            if now[2] and (now[1], now[2]) == (stored.size, stored.etag):
                out[path] = now
    for path in listed:
        if is_s3(path):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        try:
            if local_file_identity(st) != table.identity(path):
                continue
        except ValueError:  # a damaged entry: never used
            continue
        try:
            if footer_hash(path) != table.value(path, "footer_hash"):
                continue
        except (OSError, MlskipError):
            continue
        out[path] = local_identity(path, st)
    return out


def show_index(index: str, s3: S3Options | dict | None = None) -> IndexCoverage:
    """What ``index`` covers: files, row groups, rows, bytes, pairs with polygons."""
    table = _load(index, _Filesystem(S3Options.coerce(s3)))
    pairs: dict[str, int] = {}
    origins = table.table.column("origin").to_pylist()
    models: dict[str, int] = {}
    for path in table.paths:
        footer, summaries = table.value(path, "mlskip_footer"), table.value(path, "mlskip_models")
        if footer is None and summaries is None:
            continue
        facts = table.parquet_facts(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = skip_metadata_from(facts, footer, table.value(path, "mlskip_key"),
                                      label=path, footer_key=None, models_raw=summaries)  # fmt: skip
        for a, b in meta.pairs:
            pairs[f"{a}|{b}"] = pairs.get(f"{a}|{b}", 0) + 1
        for m in meta.models:
            models[m.header.name] = models.get(m.header.name, 0) + 1
    files = table.table.filter(table.table.column("row_group").is_null())
    return IndexCoverage(
        index=index,
        files=len(table.paths),
        row_groups=table.num_row_groups,
        rows=int(np.sum(files.column("num_rows").to_numpy())),
        bytes=int(np.sum(files.column("size").to_numpy())),
        from_footers=sum(o == "footer" for o in origins),
        pairs=pairs,
        sources=tuple(table.meta.get("sources", ())),
        built=table.meta.get("built", ""),
        models=models,
    )


SLICES_KEPT = 64  # index slices a planner keeps (at 65,536 rows a slice: 4M index rows)


class SkipIndex:
    """An index used for planning, reloaded when the index object changes.

    A lookup reads only the index's row groups (Parquet's, 65,536 index rows each) whose
    paths can hold the files asked for: the index is sorted by path, so a planner given
    a slice of a lake (a Dask planning task) reads about that slice of the index.
    """

    def __init__(self, location: str, filesystem: Callable[[], Any], s3: S3Options | None):
        self.location = location
        self._filesystem = filesystem  # the planner's, made on first use
        self.s3 = s3
        self._tables: OrderedDict[tuple, IndexTable] = OrderedDict()  # (identity, span)
        self._spans: dict[tuple, list] = {}  # identity -> each row group's path range
        self._lock = threading.Lock()

    def _identity(self) -> tuple:
        if is_s3(self.location):
            return remote_identity(self._filesystem(), self.location)
        st = os.stat(self.location)
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def _open(self) -> Any:
        if is_s3(self.location):
            return self._filesystem().open_input_file(s3_key(self.location))
        return open(self.location, "rb")

    def table(self, keys: Sequence[str] | None = None) -> IndexTable:
        """The index rows that can hold ``keys`` (all of them for None), read again if the
        index object changed (one HEAD or ``stat`` when nothing needs reading)."""
        now = self._identity()
        try:
            with self._lock:
                ranges = self._spans.get(now)
            if ranges is not None:
                with self._lock:
                    hit = self._tables.get((now, _span(ranges, keys)))
                if hit is not None:
                    return hit
            with self._open() as source:
                parquet = pq.ParquetFile(source)
                ranges = _path_ranges(parquet)
                span = _span(ranges, keys)
                whole = span == (0, len(ranges))
                table = parquet.read() if whole else parquet.read_row_groups(range(*span))
                loaded = IndexTable(table)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException) as e:
            raise MlskipError(f"cannot read skip index {self.location}: {e}") from e
        with self._lock:
            self._spans[now] = ranges
            self._tables[(now, span)] = loaded
            while len(self._tables) > SLICES_KEPT:
                self._tables.popitem(last=False)
        return loaded

    def lookup(self, paths: Sequence[str]) -> tuple[IndexTable, dict[str, tuple], dict[str, str]]:
        """The index, the planner identity of every path whose entry is valid, and for the
        others why the index was not used (not indexed, or changed since)."""
        keys = [index_key(p) for p in paths]
        table = self.table(keys)
        valid = _valid_entries(table, keys, self.s3, _Filesystem(self.s3, self._filesystem()))
        notes = {}
        for path, key in zip(paths, keys, strict=True):
            if key not in valid:
                notes[path] = (
                    "skip index entry stale (the file changed since it was indexed): "
                    "planned from its own footer"
                    if key in table
                    else "not in the skip index: planned from its own footer"
                )
        return table, {p: valid[k] for p, k in zip(paths, keys, strict=True) if k in valid}, notes


def _path_ranges(parquet: pq.ParquetFile) -> list[tuple[str, str] | None]:
    """Each index row group's (first path, last path), None where not known."""
    meta = parquet.metadata
    column = parquet.schema_arrow.get_field_index("path")
    ranges: list[tuple[str, str] | None] = []
    for r in range(meta.num_row_groups):
        stats = meta.row_group(r).column(column).statistics
        known = stats is not None and stats.has_min_max
        ranges.append((stats.min, stats.max) if known else None)
    return ranges


def _span(ranges: list, keys: Sequence[str] | None) -> tuple[int, int]:
    """The index row groups [first, end) whose paths can hold ``keys``: every row group
    whose path range meets [min key, max key] (one without path statistics always does).
    The index is sorted by path, so a file's rows lie in that span."""
    if not keys or len(ranges) <= 1:
        return (0, len(ranges))
    low, high = min(keys), max(keys)
    meets = [r for r, got in enumerate(ranges) if got is None or (got[0] <= high and got[1] >= low)]
    return (meets[0], meets[-1] + 1) if meets else (0, 0)


def warn_failed(report: IndexReport) -> None:
    """One warning per file an index build could not read."""
    for failure in report.failed:
        warnings.warn(f"not indexed: {failure}", SkippingFallbackWarning, stacklevel=3)
