"""Benchmarks of the metadata stage (figures for FORMAT.md / HULLS.md; not tests).

- ``writer_overhead``: write_parquet vs a plain pyarrow.parquet.write_table of the
  same in-memory table and row-group size (TPC-H lineitem, 2 and 6 pairs);
- ``clustering``: average box and polygon area per row group relative to the
  global box, natural order vs cluster_by;
- ``constructions``: area added over the exact hull and bytes, per polygon
  construction (outward k-gon at several lattice widths, adaptive, MLSkip-style
  lattice-only hull, k-DOP with fixed directions), at the record budget format
  v2 leaves a pair alone (hull_bytes minus its two columns' anchors) or at the
  whole hull_bytes (v1's record budget);
- ``footer_bytes``: footer bytes per row group and pair, format v1 vs v2
  (TPC-H lineitem from mlskip.tpch's cache, 2 and 6 pairs).

Each function returns plain dicts and prints a rich table. Run
``python -m mlskip.tpch.bench_metadata --sf 0.1``.
"""

from __future__ import annotations

import argparse
import base64
import glob
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from mlskip.metadata import hull as _hull
from mlskip.metadata.encoding import to_numeric
from mlskip.metadata.footer import (
    Footer,
    FooterRowGroup,
    account,
    decode_footer,
    encode_footer,
    pair_shares,
)
from mlskip.metadata.grid import FINE_BITS
from mlskip.metadata.layout import cluster_order
from mlskip.metadata.polygon import (
    DEFAULT_BITS_CHOICES,
    cells,
    fine_hull,
    lattice_candidates,
    polygon_from_hull,
    summarize_column,
)
from mlskip.metadata.polygon_codec import decode_vertices, max_vertices, record_size
from mlskip.metadata.writer import select_pairs, summarize_row_group, write_parquet

RG = 122_880
PAIRS6 = [
    ("l_shipdate", "l_receiptdate"),
    ("l_shipdate", "l_commitdate"),
    ("l_commitdate", "l_receiptdate"),
    ("l_quantity", "l_extendedprice"),
    ("l_extendedprice", "l_discount"),
    ("l_extendedprice", "l_tax"),
]


def overhead_rows(best: dict[str, tuple[float, float]]) -> list[dict]:
    """Rows of (wall, CPU) seconds and overheads relative to ``pq.write_table``."""
    pw, pc = best["pq.write_table"]
    return [
        {
            "config": k,
            "wall_s": w,
            "wall_overhead_%": 100 * (w / pw - 1),
            "cpu_s": c,
            "cpu_overhead_%": 100 * (c / pc - 1),
        }
        for k, (w, c) in best.items()
    ]


def _print(title: str, rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for k in rows[0]:
        t.add_column(k)
    for r in rows:
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()])
    Console(width=160).print(t)


def lineitem(sf: float, cache_dir: str | None = None) -> pa.Table:
    """TPC-H lineitem at scale factor ``sf`` (mlskip.tpch if present, else DuckDB dbgen)."""
    cache = (
        Path(cache_dir or os.path.join(tempfile.gettempdir(), "mlskip_bench"))
        / f"lineitem_sf{sf}.parquet"
    )
    if cache.exists():
        return pq.read_table(cache)
    import duckdb

    ext = glob.glob(
        os.path.join(
            os.path.dirname(duckdb.__file__),
            "..",
            "duckdb_extension_tpch",
            "extensions",
            "*",
            "tpch.duckdb_extension",
        )
    )
    con = duckdb.connect()
    con.execute(f"INSTALL '{ext[0]}'; LOAD tpch; CALL dbgen(sf={sf})")
    tbl = con.sql("SELECT * FROM lineitem").to_arrow_table()
    cache.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(tbl, cache, row_group_size=RG, compression="zstd")
    return tbl


def writer_overhead(
    table: pa.Table, pair_counts=(2, 6), repeats: int = 3, out_dir: str | None = None
) -> list[dict]:
    """Wall and CPU time (best of ``repeats``, configurations interleaved) vs pq.write_table.

    CPU time (all threads of this process) is reported too because wall time on
    a shared 2-core machine swings with other load.
    """
    out = Path(out_dir or tempfile.mkdtemp(prefix="mlskip_bench_"))
    configs = {
        "pq.write_table": lambda: pq.write_table(
            table, out / "plain.parquet", row_group_size=RG, compression="zstd"
        )
    }
    for n in pair_counts:
        configs[f"write_parquet {n} pairs"] = lambda n=n: write_parquet(
            table, out / f"ml{n}.parquet", row_group_size=RG, hulls=PAIRS6[:n]
        )
    configs["write_parquet hulls=None"] = lambda: write_parquet(
        table, out / "none.parquet", row_group_size=RG, hulls=None
    )
    configs["write_parquet auto (6)"] = lambda: write_parquet(
        table, out / "auto.parquet", row_group_size=RG, hulls="auto"
    )
    rows = overhead_rows(best_times(configs, repeats))
    _print(
        f"writer overhead ({table.num_rows} rows, row groups of {RG}, load {os.getloadavg()[0]:.1f})",
        rows,
    )
    return rows


def _timed(f) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - t, time.process_time() - c


def best_times(configs: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Best (wall, cpu) seconds per configuration, configurations interleaved."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeats):
        for name, f in configs.items():
            w, c = _timed(f)
            bw, bc = best.get(name, (math.inf, math.inf))
            best[name] = (min(bw, w), min(bc, c))
    return best


def clustering(
    table: pa.Table, layouts: dict[str, list[str] | None] | None = None, pairs=PAIRS6[:4]
) -> list[dict]:
    """Mean per-row-group box and stored-polygon area relative to the global pair box."""
    layouts = layouts or {
        "natural": None,
        "sort l_shipdate": ["l_shipdate"],
        "sort l_extendedprice": ["l_extendedprice"],
        "hilbert quantity,extendedprice": ["l_quantity", "l_extendedprice"],
        "hilbert shipdate,extendedprice,quantity": ["l_shipdate", "l_extendedprice", "l_quantity"],
    }
    cols = sorted({c for p in pairs for c in p}, key=table.column_names.index)
    idx = {c: i for i, c in enumerate(cols)}
    gl = {c: summarize_column(*to_numeric(table.column(c))) for c in cols}
    rows = []
    for name, by in layouts.items():
        t = table if by is None else table.take(cluster_order(table, by))
        stats = {p: ([], []) for p in pairs}
        for start in range(0, t.num_rows, RG):
            rg = summarize_row_group(
                t.slice(start, RG), cols, [(idx[a], idx[b]) for a, b in pairs], 45
            )
            for (a, b), rec in zip(pairs, rg.records, strict=True):
                sa, sb = rg.columns[idx[a]], rg.columns[idx[b]]
                gbox = (gl[a].hi - gl[a].lo) * (gl[b].hi - gl[b].lo)
                stats[(a, b)][0].append((sa.hi - sa.lo) * (sb.hi - sb.lo) / gbox)
                if rec is not None:
                    v = decode_vertices(rec, sa.grid, sb.grid)
                    stats[(a, b)][1].append(shapely.Polygon(v).area / gbox if len(v) >= 3 else 0.0)
        for (a, b), (boxes, polys) in stats.items():
            rows.append(
                {
                    "layout": name,
                    "pair": f"{a},{b}",
                    "box/global": float(np.mean(boxes)),
                    "polygon/global": float(np.mean(polys)),
                }
            )
    _print(f"clustering ({table.num_rows} rows)", rows)
    return rows


def _kdop_area(hx, hy, k: int) -> float:
    """Area (fine units) of the k-DOP of the fine hull, 16-bit offsets rounded outward."""
    ang = np.arange(k) * 2 * np.pi / k
    dirs = np.column_stack([np.cos(ang), np.sin(ang)])
    off = np.ceil((dirs @ np.vstack([hx, hy])).max(axis=1) + 1e-9)
    big = 1e7
    poly = shapely.box(-big, -big, big, big)
    for d, o in zip(dirs, off, strict=True):
        # halfplane d . p <= o as a large polygon
        c = d * o
        t = np.array([-d[1], d[0]])
        hp = shapely.Polygon(
            [
                c + t * 3 * big,
                c + t * 3 * big - d * 3 * big,
                c - t * 3 * big - d * 3 * big,
                c - t * 3 * big,
            ]
        )
        poly = poly.intersection(hp)
    return poly.area


def _lattice_only(hx, hy, hull_bytes: int):
    """MLSkip-style: coarsen the lattice until the plain hull fits (no vertex reduction)."""
    for bits in (16, 14, 12, 10, 8, 6, 4):
        shift = FINE_BITS - bits
        lx, ly = _hull.coarsen(hx, hy, shift) if shift else (hx, hy)
        if len(lx) <= max_vertices(hull_bytes, bits):
            return record_size(len(lx), bits), int(_hull.area2(lx, ly)) / 2 * 4.0**shift
    return None


def _synthetic(n: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    u = rng.uniform(-1, 1, size=(2, n))
    r = np.sqrt(rng.uniform(size=n))
    th = rng.uniform(0, 2 * np.pi, n)
    return {
        "gauss rho=0.9": (x, 0.9 * x + math.sqrt(1 - 0.81) * rng.normal(size=n)),
        "gauss rho=0.999": (x, 0.999 * x + math.sqrt(1 - 0.998) * rng.normal(size=n)),
        "uniform square": (u[0], u[1]),
        "uniform disk": (r * np.cos(th), r * np.sin(th)),
        "parabola": (u[0], u[0] ** 2 + 0.05 * u[1]),
    }


def constructions(
    table: pa.Table | None = None, hull_bytes: int = 45, n_synth: int = 4, v2: bool = True
) -> list[dict]:
    """Mean area added over the exact hull (share of hull and of box) and bytes per construction.

    ``v2``: each polygon gets the record budget format v2 leaves a pair alone
    (``hull_bytes`` minus its two columns' anchor bytes, footer.account); else the
    whole ``hull_bytes`` (format v1, anchors not counted). DOPs keep their sizes.
    """
    sets: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    if table is not None:
        for a, b in PAIRS6[:5]:
            xs, ys = to_numeric(table.column(a)).values, to_numeric(table.column(b)).values
            sets[f"tpch {a},{b}"] = [
                (xs[s : s + RG], ys[s : s + RG]) for s in range(0, len(xs), RG)
            ]
    for i in range(n_synth):
        for name, xy in _synthetic(RG, seed=i).items():
            sets.setdefault(name, []).append(xy)
    methods = {
        "kgon16": (16,),
        "kgon12": (12,),
        "kgon10": (10,),
        "kgon8": (8,),
        "adaptive(16..8)": DEFAULT_BITS_CHOICES,
    }
    acc: dict[str, dict[str, list[float]]] = {}
    budgets: list[int] = []
    for _, groups in sets.items():
        for x, y in groups:
            sx, sy = summarize_column(x, None), summarize_column(y, None)
            budget = account([sx, sy], [(0, 1)], hull_bytes)[1][0] if v2 else hull_bytes
            budgets.append(budget)
            hx, hy, _ = fine_hull(cells(x, None, 0, sx.grid), cells(y, None, 0, sy.grid))
            exact = shapely.MultiPoint(np.column_stack([x, y])).convex_hull.area
            cell = math.ldexp(1.0, sx.grid.e + sy.grid.e)  # fine cell area in data units
            box = (sx.hi - sx.lo) * (sy.hi - sy.lo)
            if exact <= 0 or box <= 0:
                continue
            res: dict[str, tuple[int, float]] = {}
            for m, bits in methods.items():
                rec = polygon_from_hull(hx, hy, budget, bits)
                v = decode_vertices(rec, sx.grid, sy.grid)
                res[m] = (len(rec), shapely.Polygon(v).area if len(v) >= 3 else 0.0)
            lat = _lattice_only(hx, hy, budget)
            if lat is not None:
                res["lattice-only (MLSkip-like)"] = (lat[0], lat[1] * cell)
            res["8-DOP"] = (1 + 2 * 8, _kdop_area(hx, hy, 8) * cell)
            res["16-DOP"] = (1 + 2 * 16, _kdop_area(hx, hy, 16) * cell)
            res["exact fine-cell hull"] = (
                record_size(len(hx), 16),
                int(_hull.area2(hx, hy)) / 2 * cell,
            )
            for m, (nb, area) in res.items():
                d = acc.setdefault(m, {"hull": [], "box": [], "bytes": []})
                d["hull"].append((area - exact) / exact)
                d["box"].append((area - exact) / box)
                d["bytes"].append(nb)
    rows = [
        {
            "construction": m,
            "added/hull %": 100 * float(np.mean(d["hull"])),
            "median added/hull %": 100 * float(np.median(d["hull"])),
            "added/box %": 100 * float(np.mean(d["box"])),
            "max added/box %": 100 * float(np.max(d["box"])),
            "mean bytes": float(np.mean(d["bytes"])),
        }
        for m, d in acc.items()
    ]
    what = (
        f"record budget hull_bytes {hull_bytes} minus anchors (v2): mean {np.mean(budgets):.1f}, "
        f"min {min(budgets)}, max {max(budgets)}"
        if v2
        else f"record budget {hull_bytes} bytes (v1)"
    )
    _print(f"polygon constructions, {what}, {len(budgets)} polygons", rows)
    _ = candidates_used(sets, hull_bytes, v2)
    return rows


def candidates_used(sets, hull_bytes: int, v2: bool = True) -> dict[int, int]:
    """How often the adaptive default picks each lattice width."""
    counts: dict[int, int] = {}
    for groups in sets.values():
        for x, y in groups:
            sx, sy = summarize_column(x, None), summarize_column(y, None)
            budget = account([sx, sy], [(0, 1)], hull_bytes)[1][0] if v2 else hull_bytes
            hx, hy, _ = fine_hull(cells(x, None, 0, sx.grid), cells(y, None, 0, sy.grid))
            best = min(lattice_candidates(hx, hy, budget), key=lambda c: c[3], default=None)
            if best is not None:
                counts[best[0]] = counts.get(best[0], 0) + 1
    print("adaptive picks (bits: count):", dict(sorted(counts.items())))
    return counts


def _v1_row_group(
    table: pa.Table, columns: list[str], pairs: list[tuple[int, int]], hull_bytes: int
) -> FooterRowGroup:
    """One row group as the v1 writer stored it (full summaries, records of hull_bytes)."""
    nums = [to_numeric(table.column(c)) for c in columns]
    sums = [summarize_column(n.values, n.valid, n.ulps) for n in nums]
    cs = {}
    for i in {i for p in pairs for i in p}:
        if sums[i].grid is not None:
            cs[i] = cells(nums[i].values, nums[i].valid, nums[i].ulps, sums[i].grid)
    recs: list[bytes | None] = []
    for a, b in pairs:
        if a not in cs or b not in cs:
            recs.append(None)
            continue
        hx, hy, status = fine_hull(cs[a], cs[b])
        recs.append(polygon_from_hull(hx, hy, hull_bytes) if status == 0 else None)
    return FooterRowGroup(table.num_rows, tuple(sums), tuple(recs))


def footer_bytes(
    table: pa.Table, pair_counts=(2, 6), hull_bytes: int = 45, rg: int = RG
) -> list[dict]:
    """Footer bytes per row group and pair, v1 vs v2, and the worst pair's record + share.

    Row-group bytes exclude the file-level header (column names, pair list); the
    base64 text stored in Parquet is 4/3 of the blob.
    """
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    rows = []
    for n in pair_counts:
        names = PAIRS6[:n]
        cols = sorted({c for p in names for c in p} | set(floats), key=table.column_names.index)
        idx = {c: i for i, c in enumerate(cols)}
        pairs = [(idx[a], idx[b]) for a, b in names]
        in_pair = {i for p in pairs for i in p}
        v1, v2 = [], []
        for start in range(0, table.num_rows, rg):
            part = table.slice(start, rg)
            v1.append(_v1_row_group(part, cols, pairs, hull_bytes))
            v2.append(summarize_row_group(part, cols, pairs, hull_bytes))
        for version, groups in ((1, v1), (2, v2)):
            empty = Footer(FINE_BITS, hull_bytes, tuple(cols), tuple(pairs), (), version=version)
            head = len(base64.b64decode(encode_footer(empty)))
            full = Footer(FINE_BITS, hull_bytes, tuple(cols), tuple(pairs), tuple(groups), version)
            value = encode_footer(full)
            per_rg = (len(base64.b64decode(value)) - head) / len(groups)
            fp = decode_footer(value)
            if version == 1:  # column bytes: flags, lo, hi, 3 counts, [e, n0]
                sizes = [[29 + 10 * (c.grid is not None) for c in g.columns] for g in fp.row_groups]
                rec = [[1 + (len(r) if r else 0) for r in g.records] for g in fp.row_groups]
                count = 8
            else:
                sizes = [list(g.entry_bytes) for g in fp.row_groups]
                rec = [[len(r) if r else 1 for r in g.records] for g in fp.row_groups]
                count = 0  # v2: rows per group and in the last, once in the header
            anchors = [sum(s[i] for i in in_pair) for s in sizes]
            worst = max(
                r + sh
                for s, rr in zip(sizes, rec, strict=True)
                for r, sh in zip(rr, pair_shares(s, pairs), strict=True)
            )
            rows.append(
                {
                    "pairs": n,
                    "format": f"v{version}",
                    "bytes/rg/pair": per_rg / n,
                    "records/rg/pair": float(np.mean([sum(r) for r in rec])) / n,
                    "anchors/rg/pair": float(np.mean(anchors)) / n,
                    "row count/rg": count,
                    "max record+share": worst,
                    "base64 value": len(value),
                }
            )
    _print(
        f"footer bytes per row group and pair ({table.num_rows} rows, {len(v1)} row groups, "
        f"hull_bytes {hull_bytes})",
        rows,
    )
    return rows


def tpch_lineitem(sf: float) -> pa.Table:
    """TPC-H lineitem from mlskip.tpch's cache (generated once)."""
    from mlskip.tpch.generate import generate_tpc

    return pq.read_table(generate_tpc("tpch", sf, tables=["lineitem"])["lineitem"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sf", type=float, default=0.1)
    ap.add_argument(
        "--only",
        choices=["overhead", "clustering", "constructions", "auto", "footer"],
        default=None,
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--v1-budget",
        action="store_true",
        help="constructions at the whole hull_bytes (v1) instead of v2's record budget",
    )
    args = ap.parse_args(argv)
    if args.only == "footer":
        footer_bytes(tpch_lineitem(args.sf))
        return
    table = lineitem(args.sf)
    if args.only in (None, "auto"):
        print("auto pairs:", select_pairs(table.slice(0, RG), 6))
    if args.only in (None, "constructions"):
        constructions(table, v2=not args.v1_budget)
    if args.only in (None, "overhead"):
        writer_overhead(table, repeats=args.repeats)
    if args.only in (None, "clustering"):
        clustering(table)


if __name__ == "__main__":
    main()
