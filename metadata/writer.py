"""The writer hook: Parquet files whose footers carry per-row-group pair polygons.

Row-group boundaries are decided here (exactly ``row_group_size`` rows each,
the last one shorter); Parquet's own statistics stay on. While pyarrow encodes
and compresses row group i in a background thread (it releases the GIL), the
summaries of row group i are computed in the caller's thread.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlskip.errors import InputDataError

from . import hull as _hull
from . import native
from .encoding import is_numeric, to_numeric
from .footer import KEY, MIN_PAIR_BYTES, Footer, FooterRowGroup, account, encode_footer
from .grid import FINE_BITS
from .integrity import layout_digest, resolve_key, schema_entries
from .layout import cluster_order
from .partitioned import PartitionedWriteReport, write_partitioned
from .polygon import DEFAULT_BITS_CHOICES, cells, fine_hull, polygon_from_hull, summarize_column

DEFAULT_ROW_GROUP_SIZE = 122_880
DEFAULT_HULL_BYTES = 45
DEFAULT_MAX_AUTO_PAIRS = 6
AUTO_MAX_RATIO = 0.9  # "auto" keeps pairs whose hull covers less than this share of their box
AUTO_SAMPLE_ROWS = 32_768  # rows measured by "auto", over all sampled row groups
AUTO_MIN_SAMPLE_ROWS = 4_096  # per sampled row group
AUTO_SAMPLE_GROUPS = 8  # row groups "auto" measures, spread over an in-memory table


class FooterHook(Protocol):
    """Something more a footer stores about each row group (``write_parquet``'s
    ``footer_hooks``): it sees every row group's rows in order, then returns its key-value
    entries for a file of the given layout digest, signed with ``key`` when given."""

    def add(self, table: pa.Table) -> None: ...

    def finish(self, layout: int, key: bytes | None) -> dict[str, str]: ...


@dataclass(frozen=True)
class WriteReport:
    """What write_parquet wrote."""

    path: str
    num_rows: int
    num_row_groups: int
    pairs: tuple[tuple[str, str], ...]
    hull_bytes: int
    footer_bytes: int


def _batches(data: Any) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Schema and a batch iterator for every supported input (streams readers)."""
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatch):
        return data.schema, iter([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    mod = type(data).__module__ or ""
    if mod.startswith("polars"):
        import polars as pl

        if isinstance(data, pl.LazyFrame):
            frames = data.collect_batches()
            first = next(frames, None)
            if first is None:
                tbl = data.limit(0).collect().to_arrow()
                return tbl.schema, iter(())
            head = first.to_arrow()
            rest = (f.to_arrow() for f in frames)
            tables = itertools.chain([head], rest)
            return head.schema, (b for t in tables for b in t.cast(head.schema).to_batches())
        if isinstance(data, pl.DataFrame):
            tbl = data.to_arrow()
            return tbl.schema, iter(tbl.to_batches())
    if mod.startswith("duckdb"):
        reader = (
            data.to_arrow_reader(DEFAULT_ROW_GROUP_SIZE)
            if hasattr(data, "to_arrow_reader")
            else data.fetch_record_batch()
        )
        return reader.schema, iter(reader)
    if hasattr(data, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(data)
        return reader.schema, iter(reader)
    raise InputDataError(
        f"cannot write {type(data).__name__}: pass a pyarrow Table/RecordBatchReader, "
        "a Polars DataFrame/LazyFrame or a DuckDB relation"
    )


def exact_row_groups(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, size: int
) -> Iterator[pa.Table]:
    """Re-cut a stream of batches into tables of exactly ``size`` rows (the last may be
    shorter), holding at most one row group in memory."""
    pending: list[pa.RecordBatch] = []
    have = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - have, batch.num_rows)
            pending.append(batch.slice(0, take))
            have += take
            batch = batch.slice(take)
            if have == size:
                yield pa.Table.from_batches(pending, schema)
                pending, have = [], 0
    if have:
        yield pa.Table.from_batches(pending, schema)


def select_pairs(
    table: pa.Table,
    max_pairs: int = DEFAULT_MAX_AUTO_PAIRS,
    *,
    max_ratio: float = AUTO_MAX_RATIO,
    row_group_size: int | None = None,
) -> list[tuple[str, str]]:
    """Numeric column pairs whose exact hull is smallest relative to their box, best first.

    The ratio is measured per row group (``row_group_size`` rows; None: ``table`` is one)
    on up to ``AUTO_SAMPLE_GROUPS`` row groups spread evenly over ``table`` and averaged,
    a pair without a hull in a row group counting 1 there: a pair that pays only in
    later row groups is found too. Each row group is measured on an evenly strided
    sample of its rows; pairs with mean ratio >= ``max_ratio`` gain nothing over the box.
    """
    if max_pairs <= 0 or table.num_rows == 0:
        return []
    size = row_group_size or table.num_rows
    groups = -(-table.num_rows // size)
    picks = np.unique(np.linspace(0, groups - 1, min(groups, AUTO_SAMPLE_GROUPS)).round())
    rows = max(AUTO_MIN_SAMPLE_ROWS, AUTO_SAMPLE_ROWS // len(picks))
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    for g in picks.astype(int):
        for ratio, a, b in _scored_pairs(table.slice(int(g) * size, size), rows):
            sums[(a, b)] = sums.get((a, b), 0.0) + ratio
            counts[(a, b)] = counts.get((a, b), 0) + 1
    mean = {p: (sums[p] + len(picks) - counts[p]) / len(picks) for p in sums}
    ranked = sorted((ratio, a, b) for (a, b), ratio in mean.items() if ratio < max_ratio)
    return [(a, b) for _, a, b in ranked[:max_pairs]]


def _scored_pairs(part: pa.Table, rows: int) -> list[tuple[float, str, str]]:
    """(exact hull area / box, a, b) of the numeric pairs of one row group, on a strided
    sample of about ``rows`` rows."""
    step = max(1, part.num_rows // rows)
    sample = part.take(np.arange(0, part.num_rows, step)) if step > 1 else part
    if native.enabled():  # the same scores from the Rust kernel
        names = [f.name for f in sample.schema if is_numeric(f.type)]
        return native.hull_ratios(sample, names, 1.0 + 1e-9)
    return _hull_ratios(sample, 1.0 + 1e-9)


def _hull_ratios(sample: pa.Table, max_ratio: float) -> list[tuple[float, str, str]]:
    """Sorted (exact hull area / box, a, b) of the numeric pairs below ``max_ratio``."""
    cols = {}
    for name, field in zip(sample.column_names, sample.schema, strict=True):
        if not is_numeric(field.type):
            continue
        num = to_numeric(sample.column(name))
        s = summarize_column(num.values, num.valid, num.ulps)
        if s.grid is None or s.lo == s.hi:
            continue
        cols[name] = cells(num.values, num.valid, num.ulps, s.grid)
    scored = []
    names = list(cols)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            hx, hy, status = fine_hull(cols[a], cols[b])
            if status != 0 or len(hx) < 3:
                continue
            box = float(hx.max() - hx.min()) * float(hy.max() - hy.min())
            ratio = float(_hull.area2(hx, hy)) / 2.0 / box if box > 0 else 1.0
            if ratio < max_ratio:
                scored.append((ratio, a, b))
    scored.sort()
    return scored


def _check_pairs(schema: pa.Schema, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise InputDataError(f"hull pair {pair!r} must name two different columns")
        for name in pair:
            idx = schema.get_field_index(name)
            if idx < 0:
                raise InputDataError(f"hull pair {pair!r}: no column {name!r}; have {schema.names}")
            if not is_numeric(schema.field(idx).type):
                raise InputDataError(
                    f"hull pair {pair!r}: column {name!r} has type {schema.field(idx).type}, "
                    "not integer/float/decimal/date/timestamp"
                )
        out.append((pair[0], pair[1]))
    if len(set(out)) != len(out):
        raise InputDataError(f"duplicate hull pairs in {out}")
    return out


def summarize_row_group(
    table: pa.Table,
    columns: Sequence[str],
    pairs: Sequence[tuple[int, int]],
    hull_bytes: int,
    bits_choices: tuple[int, ...] = DEFAULT_BITS_CHOICES,
) -> FooterRowGroup:
    """Column summaries and pair polygon records of one row group (format v2).

    ``hull_bytes`` is the budget per pair for everything stored for it: the
    columns' grids and record budgets follow ``footer.account`` (a pair's record
    gets hull_bytes minus its share of its columns' anchors). Uses the Rust kernel
    (metadata/native.py) when it is built and enabled; its bytes are identical to
    this reference path's.
    """
    if native.enabled() and native.supports(bits_choices):
        sums, recs = native.row_group_native(table, columns, pairs, hull_bytes, bits_choices)
        return FooterRowGroup(table.num_rows, sums, recs)
    nums = [to_numeric(table.column(c)) for c in columns]
    sums, budgets = account(
        [summarize_column(n.values, n.valid, n.ulps) for n in nums], pairs, hull_bytes
    )
    cell_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def cell(i: int):
        if i not in cell_cache:
            n = nums[i]
            cell_cache[i] = cells(n.values, n.valid, n.ulps, sums[i].grid)
        return cell_cache[i]

    records: list[bytes | None] = []
    for (a, b), budget in zip(pairs, budgets, strict=True):
        if sums[a].grid is None or sums[b].grid is None:
            records.append(None)
            continue
        hx, hy, status = fine_hull(cell(a), cell(b))
        records.append(polygon_from_hull(hx, hy, budget, bits_choices) if status == 0 else None)
    return FooterRowGroup(table.num_rows, tuple(sums), tuple(records))


def write_parquet(
    data: Any,
    path: str | os.PathLike,
    *,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    hulls: str | Sequence[tuple[str, str]] | None = "auto",
    hull_bytes: int = DEFAULT_HULL_BYTES,
    max_auto_pairs: int = DEFAULT_MAX_AUTO_PAIRS,
    cluster_by: Sequence[str] | None = None,
    curve: str = "hilbert",
    compression: str | None = "zstd",
    bits_choices: tuple[int, ...] = DEFAULT_BITS_CHOICES,
    footer_key: str | bytes | None = None,
    partition_by: Sequence[str] | None = None,
    footer_hooks: Callable[[pa.Schema], Sequence[FooterHook]] | None = None,
    **parquet_options: Any,
) -> WriteReport | PartitionedWriteReport:
    """Write ``data`` as Parquet with skipping summaries in the footer (key ``mlskip.v3``).

    ``hulls``: "auto" (pairs picked on the first row group), explicit column
    pairs, or None (boxes only). ``hull_bytes``: footer bytes per row group and
    pair, polygon record and its share of the grid anchors included (FORMAT.md).
    ``cluster_by`` reorders the rows first (this materializes the input).
    ``footer_key`` (default ``$MLSKIP_FOOTER_KEY``) signs the footer. ``partition_by``
    writes a hive-partitioned folder at ``path`` instead, one file with its own summaries
    per partition (``metadata/partitioned.py``). ``footer_hooks`` makes, per file written,
    hooks that see every row group and add footer keys of their own (the model-aware
    summaries of ``mlskip.write_parquet(models=...)``). Other keyword options go to
    pyarrow's ParquetWriter.
    """
    _check_sizes(row_group_size, hull_bytes)
    schema, batches = _batches(data)
    if partition_by:
        options = dict(
            row_group_size=row_group_size, hulls=hulls, hull_bytes=hull_bytes,
            max_auto_pairs=max_auto_pairs, cluster_by=cluster_by, curve=curve,
            compression=compression, bits_choices=bits_choices, footer_key=footer_key,
            footer_hooks=footer_hooks, **parquet_options,
        )  # fmt: skip
        table = pa.Table.from_batches(list(batches), schema)
        return write_partitioned(
            table, path, partition_by, lambda part, target: write_parquet(part, target, **options)
        )
    whole = data if isinstance(data, pa.Table) else None  # in memory: "auto" samples it
    if cluster_by:
        whole = pa.Table.from_batches(list(batches), schema)
        whole = whole.take(cluster_order(whole, list(cluster_by), curve))
        batches = iter(whole.to_batches())
    groups = exact_row_groups(batches, schema, row_group_size)
    first = next(groups, None)
    pairs = _pick_pairs(hulls, schema, whole, first, max_auto_pairs, row_group_size)
    columns, pair_idx = _summary_columns(schema, pairs)
    parquet_options.setdefault("write_statistics", True)
    signing_key = resolve_key(footer_key)
    path = os.fspath(path)
    filesystem = parquet_options.pop("filesystem", None)
    hooks = list(footer_hooks(schema)) if footer_hooks is not None else []

    def summarize(tbl: pa.Table) -> FooterRowGroup:
        for hook in hooks:
            hook.add(tbl)
        return summarize_row_group(tbl, columns, pair_idx, hull_bytes, bits_choices)

    with (
        _atomic_target(path, filesystem) as target,
        _open_sink(target, filesystem) as sink,
        pq.ParquetWriter(sink, schema, compression=compression, **parquet_options) as writer,
    ):
        tables = itertools.chain([first] if first is not None else [], groups)
        summaries, sizes, num_rows = _write_row_groups(writer, sink, tables, summarize)
        footer = Footer(
            FINE_BITS,
            hull_bytes,
            tuple(columns),
            tuple(pair_idx),
            tuple(summaries),
            layout=layout_digest(sizes, schema_entries(writer.schema)),
        )
        value = encode_footer(footer, key=signing_key)
        extra: dict[str, str] = {}
        for hook in hooks:
            extra.update(hook.finish(footer.layout, signing_key))
        writer.add_key_value_metadata({KEY: value, **extra})
    return WriteReport(path, num_rows, len(summaries), tuple(pairs), hull_bytes, len(value))


def _check_sizes(row_group_size: int, hull_bytes: int) -> None:
    if row_group_size < 1:
        raise InputDataError(f"row_group_size must be positive, got {row_group_size}")
    if not MIN_PAIR_BYTES <= hull_bytes <= 255:
        raise InputDataError(
            f"hull_bytes must be within {MIN_PAIR_BYTES}..255 (a pair's smallest footprint "
            f"is {MIN_PAIR_BYTES} bytes), got {hull_bytes}"
        )


def _pick_pairs(
    hulls: Any,
    schema: pa.Schema,
    whole: pa.Table | None,
    first: pa.Table | None,
    max_auto_pairs: int,
    row_group_size: int,
) -> list[tuple[str, str]]:
    """The column pairs that get polygons: chosen on the data for "auto", else as given."""
    if hulls == "auto":
        if whole is not None:
            return select_pairs(whole, max_auto_pairs, row_group_size=row_group_size)
        # a stream: the first row group is all there is to measure
        return select_pairs(first, max_auto_pairs) if first is not None else []
    if hulls is None:
        return []
    if isinstance(hulls, str):
        raise InputDataError(f"hulls must be 'auto', None or a list of column pairs, got {hulls!r}")
    return _check_pairs(schema, hulls)


def _summary_columns(
    schema: pa.Schema, pairs: Sequence[tuple[str, str]]
) -> tuple[list[str], list[tuple[int, int]]]:
    """Columns the footer summarises, in schema order, and each pair as indices into them.

    Pair columns, plus every floating-point column: its NaN count lets the reader trust
    the column's box (Parquet statistics say nothing about NaN).
    """
    floats = {f.name for f in schema if pa.types.is_floating(f.type)}
    columns = sorted({c for p in pairs for c in p} | floats, key=schema.get_field_index)
    index = {c: i for i, c in enumerate(columns)}
    return columns, [(index[a], index[b]) for a, b in pairs]


def _write_row_groups(
    writer: pq.ParquetWriter,
    sink: Any,
    tables: Iterator[pa.Table],
    summarize: Callable[[pa.Table], FooterRowGroup],
) -> tuple[list[FooterRowGroup], list[int], int]:
    """Write each table as one row group while summarising the next one on this thread.

    Returns the summaries, each row group's byte size in the file, and the row count.
    """
    summaries: list[FooterRowGroup] = []
    ends: list[int] = []  # file offset after each row group
    num_rows = 0
    start = sink.tell()

    def write(tbl: pa.Table) -> None:
        writer.write_table(tbl, row_group_size=tbl.num_rows)
        ends.append(sink.tell())

    with ThreadPoolExecutor(1) as pool:
        pending: Future | None = None
        for tbl in tables:
            if pending is not None:
                pending.result()
            pending = pool.submit(write, tbl)
            summaries.append(summarize(tbl))
            num_rows += tbl.num_rows
        if pending is not None:
            pending.result()
    sizes = [b - a for a, b in zip([start, *ends][: len(ends)], ends, strict=True)]
    return summaries, sizes, num_rows


@contextlib.contextmanager
def _atomic_target(path: str, filesystem: Any) -> Iterator[str]:
    """The name to write to: for a local file a temporary one beside ``path`` (a dot-file
    not ending in .parquet, so no glob of the data picks it up), renamed over ``path``
    only once the file is complete: a failed write never destroys an existing target,
    and readers never see a half-written file. Object stores write whole objects."""
    if filesystem is not None:
        yield path
        return
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield temporary
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    os.replace(temporary, path)


def _open_sink(path: str, filesystem: Any) -> pa.NativeFile:
    """The output stream the writer writes to (its offsets give the row groups' sizes)."""
    if filesystem is not None:
        return filesystem.open_output_stream(path)
    return pa.OSFile(path, "wb")


def copy(con: Any, sql: str, path: str | os.PathLike, **kwargs: Any) -> WriteReport:
    """Stream the result of a DuckDB query through write_parquet (never materialized)."""
    rel = con.sql(sql)
    if rel is None:
        raise InputDataError(f"query returns no result set: {sql!r}")
    return write_parquet(rel, path, **kwargs)


def write_file(
    input_path: str | os.PathLike, output_path: str | os.PathLike, **kwargs: Any
) -> WriteReport | PartitionedWriteReport:
    """``mlskip write IN OUT``: rewrite a Parquet or CSV file with skipping summaries."""
    src = os.fspath(input_path)
    if src.lower().endswith((".csv", ".csv.gz", ".tsv")):
        import pyarrow.csv as pcsv

        reader = pcsv.open_csv(src)
    else:
        reader = pq.ParquetFile(src).iter_batches(batch_size=65_536)
        schema = pq.read_schema(src)
        reader = pa.RecordBatchReader.from_batches(schema, reader)
    return write_parquet(reader, output_path, **kwargs)
