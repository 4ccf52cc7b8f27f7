"""Benchmark of the Rust kernel against the numba reference (issue 9; figures, not a test).

- ``hull_pass``: throughput (table rows per second) of the row groups' summaries
  (7 columns, 6 pairs: min/max/counts, grids, cells, fine hulls, 45-byte polygons)
  for the Rust kernel (reads Arrow buffers), the writer's numba path (to_numeric
  then kernels) and the numba kernels alone on pre-converted values. There is no
  plain-numpy implementation of the hull pass (numba is the reference), so no
  numpy row is reported;
- ``writer_overhead``: ``write_parquet`` (6 pairs and ``hulls="auto"``, each
  with Rust and with numba, and no pairs) against a plain
  ``pyarrow.parquet.write_table`` of the same table and row-group size (numba's
  one-off JIT-cache load is not in these figures: it is paid in the first round).

Configurations are interleaved and the best of ``repeats`` is kept, for wall
time and for CPU time (all threads of this process): the 2-core machines are
shared, so wall time alone mostly measures the other jobs. Run
``python -m mlskip.tpch.bench_native --sf 1``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlskip.metadata import native
from mlskip.metadata.encoding import NumericColumn, to_numeric
from mlskip.metadata.polygon import cells, fine_hull, polygon_from_hull, summarize_column
from mlskip.metadata.writer import summarize_row_group, write_parquet
from mlskip.tpch.bench_metadata import PAIRS6, RG, _print, best_times, overhead_rows


def lineitem(sf: float) -> pa.Table:
    """TPC-H lineitem from mlskip.tpch's cache (generated once, offline)."""
    from mlskip.tpch import generate_tpc

    path = generate_tpc("tpch", sf, tables=["lineitem"], row_group_size=RG)["lineitem"]
    return pq.read_table(path)


def _with_native(flag: bool, f: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        native.set_enabled(flag)
        try:
            return f()
        finally:
            native.set_enabled(None)

    return run


def _numba_kernels(nums: list[NumericColumn], pairs: list[tuple[int, int]]) -> list:
    """The reference kernels of summarize_row_group on values already converted."""
    sums = [summarize_column(n.values, n.valid, n.ulps) for n in nums]
    cache: dict[int, tuple] = {}
    out = []
    for a, b in pairs:
        if sums[a].grid is None or sums[b].grid is None:
            out.append(None)
            continue
        for i in (a, b):
            if i not in cache:
                cache[i] = cells(nums[i].values, nums[i].valid, nums[i].ulps, sums[i].grid)
        hx, hy, status = fine_hull(cache[a], cache[b])
        out.append(polygon_from_hull(hx, hy, 45) if status == 0 else None)
    return out


def hull_pass(table: pa.Table, pairs=PAIRS6, repeats: int = 5) -> list[dict]:
    """Rows/s of the per-row-group summaries, Rust vs numba (same bytes, checked)."""
    cols = sorted({c for p in pairs for c in p}, key=table.column_names.index)
    idx = {c: i for i, c in enumerate(cols)}
    pidx = [(idx[a], idx[b]) for a, b in pairs]
    groups = [
        table.slice(s, RG).select(cols).combine_chunks() for s in range(0, table.num_rows, RG)
    ]

    def run(flag: bool) -> Callable[[], object]:
        return _with_native(flag, lambda: [summarize_row_group(g, cols, pidx, 45) for g in groups])

    if not native.available():
        raise RuntimeError("the Rust library is not built: run `cargo build --release`")
    if run(True)() != run(False)():
        raise AssertionError("Rust and numba summaries differ")
    nums = [[to_numeric(g.column(c)) for c in cols] for g in groups]
    best = best_times(
        {
            "rust (Arrow buffers)": run(True),
            "numba (to_numeric + kernels, as the writer)": run(False),
            "numba kernels only (values pre-converted)": lambda: [
                _numba_kernels(n, pidx) for n in nums
            ],
        },
        repeats,
    )
    rows = [
        {
            "kernel": k,
            "wall_s": w,
            "rows/s (wall)": table.num_rows / w,
            "cpu_s": c,
            "rows/s (cpu)": table.num_rows / c,
            "ms/row group (cpu)": 1e3 * c / len(groups),
        }
        for k, (w, c) in best.items()
    ]
    rust, numba, kernels = (best[k][1] for k in best)
    _print(
        f"hull pass: {table.num_rows} rows, {len(groups)} row groups, {len(pairs)} pairs, "
        f"{len(cols)} columns; Rust speed-up (CPU) {numba / rust:.2f}x over the writer's "
        f"numba path, {kernels / rust:.2f}x over numba kernels alone; "
        f"load {os.getloadavg()[0]:.1f}",
        rows,
    )
    return rows


def writer_overhead(table: pa.Table, repeats: int = 3, out_dir: str | None = None) -> list[dict]:
    """Wall and CPU time of write_parquet (6 pairs, Rust or numba) over pq.write_table."""
    out = Path(out_dir or tempfile.mkdtemp(prefix="mlskip_bench_native_"))
    configs: dict[str, Callable[[], object]] = {
        "pq.write_table": lambda: pq.write_table(
            table, out / "plain.parquet", row_group_size=RG, compression="zstd"
        ),
        "write_parquet 6 pairs, rust": _with_native(
            True,
            lambda: write_parquet(table, out / "rust.parquet", row_group_size=RG, hulls=PAIRS6),
        ),
        "write_parquet 6 pairs, numba": _with_native(
            False,
            lambda: write_parquet(table, out / "numba.parquet", row_group_size=RG, hulls=PAIRS6),
        ),
        "write_parquet auto, rust": _with_native(
            True, lambda: write_parquet(table, out / "auto_rust.parquet", row_group_size=RG)
        ),
        "write_parquet auto, numba": _with_native(
            False, lambda: write_parquet(table, out / "auto_numba.parquet", row_group_size=RG)
        ),
        "write_parquet hulls=None": lambda: write_parquet(
            table, out / "none.parquet", row_group_size=RG, hulls=None
        ),
    }
    best = best_times(configs, repeats)
    same = all(
        (out / f"{a}.parquet").read_bytes() == (out / f"{b}.parquet").read_bytes()
        for a, b in (("rust", "numba"), ("auto_rust", "auto_numba"))
    )
    rows = overhead_rows(best)
    _print(
        f"writer overhead: {table.num_rows} rows, row groups of {RG}, zstd, best of {repeats}; "
        f"rust and numba files identical: {same}; load {os.getloadavg()[0]:.1f}",
        rows,
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sf", type=float, default=1)
    ap.add_argument("--only", choices=["hull", "overhead"], default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    table = lineitem(args.sf)
    if args.only in (None, "hull"):
        hull_pass(table, repeats=max(args.repeats, 3))
    if args.only in (None, "overhead"):
        writer_overhead(table, repeats=args.repeats)


if __name__ == "__main__":
    main()
