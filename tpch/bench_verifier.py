"""Benchmark of the verifier (not a timed test): ``run_bench(quick=..., seed=...)``.

For MLPs with 2, 4 and 8 inputs and hidden layers of 32 and 2x32 ReLU units,
over random row-group-like boxes (10,000 per network; widths spread over
two orders of magnitude per column) and a selective threshold (0.1% of a
uniform sample qualifies): regions per second of IBP, CROWN, CROWN with an
8-gon per region on inputs (0, 1), and the full cascade; the fraction each
method decides and its share of the time; agreement of the cascade with the
complete MILP on a sample; Marabou against the cascade per region at equal
decisions (``_versus_marabou``); what the float margins cost. Then the methods
where they differ (``bench_verifier_methods.py``) and mlskip next to auto_LiRPA
(``bench_side_by_side``). Prints rich tables and returns the figures as a dict.

Honesty: no figure is fixed in the code. Rates are medians of interleaved
repeats (other jobs share the machine), wall time with CPU time next to it,
and the 1-minute load average is printed. The polygon rate builds a new
batch for every run, so enumerating the polygon vertices and tightening the
boxes count.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from mlskip.testing.networks import make_net, make_regions
from mlskip.verifier._blas import single_thread
from mlskip.verifier.cascade import Verifier
from mlskip.verifier.concretize import tighten_boxes
from mlskip.verifier.crown import crown_bounds
from mlskip.verifier.ibp import ibp_bounds
from mlskip.verifier.predicate import UNKNOWN, Predicate
from mlskip.verifier.regions import RegionBatch


def timed(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each function; the repeats are interleaved so
    that load from other jobs on the machine hits every function alike."""
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: (float(np.median(wall[k])), float(np.median(cpu[k]))) for k in fns}


def fresh_regions(R: RegionBatch) -> RegionBatch:
    """The same regions without cached polygon vertices (a new batch pays for them)."""
    return RegionBatch(R.lower, R.upper, R.pairs, R.halfspaces)


def net_and_rare_threshold(seed: int, sizes):
    """(rng, net, inputs, ``> q99.9%`` predicate): the shared set-up of the benchmarks,
    the rng left where the regions are drawn from next."""
    rng = np.random.default_rng(seed)
    net = make_net(rng, sizes)
    d = sizes[0]
    y = net.evaluate(rng.uniform(-1.2, 1.2, size=(200_000, d)))[:, 0]
    return rng, net, d, Predicate.gt(float(np.quantile(y, 0.999)))


def bench_one(
    sizes: tuple[int, ...],
    n: int,
    seed: int,
    milp_sample: int,
    marabou_sample: int,
    repeat: int = 5,
    per_stratum: int = 5,
) -> dict[str, Any]:
    rng, net, d, pred = net_and_rare_threshold(seed, sizes)
    R = make_regions(rng, n, d, polygons=False)
    RP = make_regions(np.random.default_rng(seed), n, d, polygons=True)
    out: dict[str, Any] = {"net": "-".join(map(str, sizes)), "regions": n}
    spec = pred.compile(net)
    snet = spec.spec_net
    fns: dict[str, Callable[[], Any]] = {
        "ibp": lambda: ibp_bounds(snet, R),
        "crown": lambda: crown_bounds(snet, R),
        # polygons: a new batch each time, so vertex enumeration and box tightening count
        "crown_poly": lambda: crown_bounds(snet, tighten_boxes(fresh_regions(RP))),
    }
    try:
        from mlskip.verifier.adapters.auto_lirpa import auto_lirpa_bounds
        from mlskip.verifier.adapters.auto_lirpa import available as lirpa_ok

        if lirpa_ok():
            fns["auto_lirpa_crown"] = lambda: auto_lirpa_bounds(snet, R)
    except Exception as exc:  # pragma: no cover
        out["auto_lirpa_error"] = repr(exc)
    crown_bounds(snet, tighten_boxes(fresh_regions(RP)))  # compile the numba kernels once
    with single_thread():
        times = timed(fns, repeat)
    for k, (w, c) in times.items():
        out[f"{k}_per_s"] = n / w
        out[f"{k}_per_s_cpu"] = n / c
    cascade = Verifier(
        methods=("ibp", "crown", "bab", "milp"), time_budget=60.0, milp_time_per_region=2.0
    )
    runs: list = []
    ctimes = timed({"cascade": lambda: runs.append(cascade.verify(net, R, pred))}, 3)
    w, c = ctimes["cascade"]
    res = runs[int(np.argsort([r.total_seconds for r in runs])[len(runs) // 2])]  # median run
    out["cascade_per_s"], out["cascade_per_s_cpu"] = n / w, n / c
    out["decided_by"] = {k: v / n for k, v in res.decided_by().items()}
    out["verdicts"] = {k: v / n for k, v in res.counts().items()}
    out["cascade_seconds"] = dict(res.seconds)
    out["cascade_share"] = {k: v / res.total_seconds for k, v in res.seconds.items()}
    cost = res.region_seconds
    out["cascade_region_mean_s"] = float(cost.mean())
    out["cascade_region_median_s"] = float(np.median(cost))
    # margins: verdicts with and without the float32 evaluation margin (CROWN only)
    v32 = Verifier(methods=("ibp", "crown")).verify(net, R, pred).verdicts
    v0 = Verifier(methods=("ibp", "crown"), fp_margins=False).verify(net, R, pred).verdicts
    out["margin_cost_regions"] = int((v32 != v0).sum())
    # polygons: pruning with and without them
    vp = Verifier(methods=("ibp", "crown")).verify(net, RP, pred).verdicts
    vb = (
        Verifier(methods=("ibp", "crown"))
        .verify(net, RegionBatch(RP.lower, RP.upper), pred)
        .verdicts
    )
    out["crown_decided_box"] = float((vb != UNKNOWN).mean())
    out["crown_decided_poly"] = float((vp != UNKNOWN).mean())
    # agreement with the complete MILP on a sample
    idx = np.random.default_rng(seed + 1).choice(n, size=min(milp_sample, n), replace=False)
    sub = R.subset(idx)
    exact = Verifier(methods=("milp",), sample_points=0, milp_time_per_region=10.0).verify(
        net, sub, pred
    )
    ok = exact.verdicts != UNKNOWN
    ok |= exact.mixed
    agree = res.verdicts[idx][ok] == exact.verdicts[ok]
    out["milp_sample"] = int(ok.sum())
    out["agree_with_milp"] = float(agree.mean()) if ok.any() else float("nan")
    out["milp_s_per_region"] = exact.total_seconds / len(idx)
    try:
        out.update(_versus_marabou(net, spec, R, res, cascade, seed, marabou_sample, per_stratum))
    except Exception as exc:  # pragma: no cover - the oracle is optional
        out["marabou_error"] = repr(exc)
    out["cascade_s_per_region"] = 1.0 / out["cascade_per_s"]
    return out


MARABOU_TIMEOUT = 10.0


def _versus_marabou(net, spec, R, res, cascade, seed, sample, per_stratum) -> dict[str, Any]:
    """Marabou against the cascade, per region, at equal decisions.

    A random sample of regions, plus up to ``per_stratum`` regions of every
    stratum (the method that decided the region in the cascade) so that the
    rare hard regions are measured too. Marabou runs region by region (its
    query building included); a decision is "equal" when both give the same
    verdict (UNKNOWN counts only when Marabou did not time out). Figures:
    mean and median seconds per region of both on the random sample's equal
    decisions (the cascade's per region are its attributed seconds), and the
    whole-batch ratio: Marabou's time on the batch estimated per stratum
    (stratum size x its mean at equal decisions) over the cascade's total.
    """
    from mlskip.verifier.adapters.marabou import available, marabou_verdicts

    if not sample or not available():
        return {}
    n = R.n
    rng = np.random.default_rng(seed + 2)
    rand = rng.choice(n, size=min(sample, n), replace=False)
    extra = []
    for code in np.unique(res.method):
        members = np.flatnonzero(res.method == code)
        extra.append(rng.choice(members, size=min(per_stratum, len(members)), replace=False))
    todo = np.unique(np.concatenate([rand, *extra]))
    mg = cascade.row_margins(net, spec, R.subset(todo))
    wall = np.zeros(n)
    cpu = np.zeros(n)
    mv = np.full(n, -1, np.int8)
    for k, r in enumerate(todo):
        t0, c0 = time.perf_counter(), time.process_time()
        mv[r] = marabou_verdicts(
            spec, net, R.subset([r]), mg[k : k + 1], "float32", MARABOU_TIMEOUT
        )[0]
        wall[r] = time.perf_counter() - t0
        cpu[r] = time.process_time() - c0
    timed_out = wall >= 0.9 * MARABOU_TIMEOUT
    equal = (mv == res.verdicts) & ~(timed_out & (mv == UNKNOWN))
    eq_rand = rand[equal[rand]]
    cost = res.region_seconds
    out: dict[str, Any] = {
        "marabou_regions": len(todo),
        "marabou_agree": float(equal[todo].mean()),
        "marabou_timeouts": int(timed_out[todo].sum()),
        "marabou_s_per_region": float(wall[eq_rand].mean()) if len(eq_rand) else float("nan"),
        "marabou_median_s": float(np.median(wall[eq_rand])) if len(eq_rand) else float("nan"),
        "marabou_cpu_s_per_region": float(cpu[eq_rand].mean()) if len(eq_rand) else float("nan"),
        "cascade_equal_mean_s": float(cost[eq_rand].mean()) if len(eq_rand) else float("nan"),
        "cascade_equal_median_s": float(np.median(cost[eq_rand])) if len(eq_rand) else float("nan"),
    }
    est = 0.0
    for code in np.unique(res.method):
        members = res.method == code
        sampled = todo[members[todo]]
        eq = sampled[equal[sampled]]
        use = eq if len(eq) else sampled
        est += members.sum() * float(wall[use].mean())
    out["marabou_batch_s_est"] = est
    out["speedup_vs_marabou"] = est / res.total_seconds
    if len(eq_rand):
        out["speedup_median_vs_marabou"] = out["marabou_median_s"] / out["cascade_equal_median_s"]
    return out


def run_bench(quick: bool = False, seed: int = 0, n_regions: int | None = None) -> dict[str, Any]:
    """Run the verifier benchmark, print a rich table, return ``{net: figures}``."""
    from rich.table import Table

    archs = (
        [(4, 32, 1), (4, 32, 32, 1)]
        if quick
        else [(2, 32, 1), (2, 32, 32, 1), (4, 32, 1), (4, 32, 32, 1), (8, 32, 1), (8, 32, 32, 1)]
    )
    n = n_regions or (2_000 if quick else 10_000)
    results = {}
    console = wide_console()
    load0 = os.getloadavg()[0]
    from mlskip.progress import stage

    for k, sizes in enumerate(archs):
        net = "-".join(map(str, sizes))
        with stage(console, f"network {k + 1}/{len(archs)} ({net}): {n:,} boxes, every method"):
            r = bench_one(sizes, n, seed + k, milp_sample=40 if quick else 200,
                          marabou_sample=5 if quick else 20)  # fmt: skip
        results[r["net"]] = r
    load1 = os.getloadavg()[0]
    t = Table(
        title=f"mlskip verifier: {n:,} boxes per network, threshold at the 99.9% quantile",
        caption=(
            f"rates: median of interleaved runs, wall (CPU in brackets); "
            f"1-min load average {load0:.1f} at start, {load1:.1f} at end on {os.cpu_count()} cores"
        ),
    )
    t.add_column("figure")
    for name in results:
        t.add_column(name, justify="right")

    def row(label: str, fmt) -> None:
        t.add_row(label, *[fmt(r) for r in results.values()])

    def rate(key: str):
        return lambda r: f"{r[key]:,.0f} ({r[key + '_cpu']:,.0f})" if key in r else "-"

    nan = float("nan")
    row("IBP regions/s", rate("ibp_per_s"))
    row("CROWN regions/s", rate("crown_per_s"))
    row("CROWN + 8-gon regions/s (new batch)", rate("crown_poly_per_s"))
    if any("auto_lirpa_crown_per_s" in r for r in results.values()):
        row("auto_LiRPA CROWN regions/s", rate("auto_lirpa_crown_per_s"))
    row("cascade regions/s", rate("cascade_per_s"))
    for m in ("ibp", "crown", "bab", "milp", "sampling", "undecided"):
        row(f"  decided by {m}", lambda r, m=m: f"{r['decided_by'].get(m, 0.0):.4f}")
    for m in ("prepare", "ibp", "crown", "sampling", "bab", "milp"):
        row(f"  share of cascade time: {m}", lambda r, m=m: f"{r['cascade_share'].get(m, 0.0):.3f}")
    row(
        "verdicts none/all/unknown",
        lambda r: "/".join(f"{r['verdicts'][k]:.3f}" for k in ("none", "all", "unknown")),
    )
    row(
        "CROWN decided: box / box+8-gon",
        lambda r: f"{r['crown_decided_box']:.3f} / {r['crown_decided_poly']:.3f}",
    )
    row("cascade = MILP (sample)", lambda r: f"{r['agree_with_milp']:.3f} (n={r['milp_sample']})")
    row("MILP s/region", lambda r: f"{r['milp_s_per_region']:.4f}")
    row(
        "cascade s/region, all: mean / median",
        lambda r: f"{r['cascade_region_mean_s']:.2e} / {r['cascade_region_median_s']:.2e}",
    )
    row(
        "Marabou = cascade (regions, timeouts)",
        lambda r: (
            f"{r.get('marabou_agree', nan):.3f} ({r.get('marabou_regions', 0)}, "
            f"{r.get('marabou_timeouts', 0)})"
        ),
    )
    row(
        "Marabou s/region, equal decisions: mean / median",
        lambda r: (
            f"{r.get('marabou_s_per_region', nan):.2e} / {r.get('marabou_median_s', nan):.2e}"
        ),
    )
    row(
        "cascade s/region, same regions: mean / median",
        lambda r: (
            f"{r.get('cascade_equal_mean_s', nan):.2e} / {r.get('cascade_equal_median_s', nan):.2e}"
        ),
    )
    row(
        "speed-up vs Marabou: batch (stratified) / median",
        lambda r: (
            f"{r.get('speedup_vs_marabou', nan):,.0f}x / "
            f"{r.get('speedup_median_vs_marabou', nan):,.0f}x"
        ),
    )
    row("regions changed by fp margins", lambda r: str(r["margin_cost_regions"]))
    console.print(t)
    from .bench_verifier_methods import run_methods_bench

    results["methods"] = run_methods_bench(quick=quick, seed=seed)
    results["auto_lirpa"] = bench_side_by_side(quick=quick, seed=seed)
    return results


if __name__ == "__main__":  # pragma: no cover
    import sys

    if "--methods" in sys.argv:
        from .bench_verifier_methods import run_methods_bench

        run_methods_bench(quick="--quick" in sys.argv)
    else:
        run_bench(quick="--quick" in sys.argv)


def wide_console() -> Any:
    """The terminal's width, or ``$COLUMNS``; 160 columns in a pipe without it (rich's
    default of 80 would cut the tables)."""
    from rich.console import Console

    wide = Console().is_terminal or "COLUMNS" in os.environ
    return Console(width=None if wide else 160)


def bench_side_by_side(quick: bool = False, seed: int = 0) -> dict[str, Any] | None:
    """mlskip and auto_LiRPA on the same networks and boxes (adapters/side_by_side.py):
    boxes/s of each (one thread, median of interleaved runs) and how often and how much
    mlskip's bound is wider. None, with a note, when auto_LiRPA is not importable."""
    from rich.table import Table

    from mlskip.testing import side_by_side as sbs
    from mlskip.verifier.adapters.auto_lirpa import available

    console = wide_console()
    if not available():
        console.print(
            "auto_LiRPA is not importable: side-by-side skipped "
            "(`make auto-lirpa AUTO_LIRPA_SRC=...` installs it from a source checkout)"
        )
        return None
    import torch

    n = 50 if quick else 200
    shapes = sbs.SHAPES[::2] if quick else sbs.SHAPES
    results: dict[str, Any] = {}
    t = Table(
        title=f"mlskip vs auto_LiRPA: {n} boxes per network, one thread",
        caption="wider: boxes where mlskip's bound is more than 1e-9 (relative) wider; "
        "ratio: mean of mlskip's width over auto_LiRPA's",
    )
    for col in (
        "network",
        "method",
        "mlskip boxes/s",
        "auto_LiRPA boxes/s",
        "speed-up",
        "wider",
        "max excess",
        "ratio",
    ):
        t.add_column(col, justify="left" if col in ("network", "method") else "right")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for k, sizes in enumerate(shapes):
            for kind in ("random", "trained"):
                net = sbs.network(sizes, kind, seed + k)
                R = sbs.boxes(n, sizes[0], seed + 100 + k)
                name = f"{'-'.join(map(str, sizes))} {kind}"
                step = f"mlskip vs auto_LiRPA {2 * k + (kind == 'trained') + 1}/{2 * len(shapes)}"
                console.print(f"{step}: {name}", markup=False, highlight=False)
                for method in sbs.METHODS:
                    c = sbs.compare(net, R, method)  # also warms both sides up
                    with single_thread():
                        times = timed(
                            {
                                "ours": partial(sbs.ours, net, R, method),
                                "theirs": partial(sbs.theirs, net, R, method),
                            },
                            repeat=1 if method == "alpha-CROWN" else 3,
                        )
                    ours_s, theirs_s = times["ours"][0], times["theirs"][0]
                    results[f"{name} {method}"] = {
                        "ours_per_s": n / ours_s,
                        "theirs_per_s": n / theirs_s,
                        "wider": c.wider(),
                        "max_excess": float(c.excess.max()),
                        "mean_ratio": c.mean_ratio,
                    }
                    t.add_row(
                        name,
                        method,
                        f"{n / ours_s:,.0f}",
                        f"{n / theirs_s:,.0f}",
                        f"{theirs_s / ours_s:.1f}x",
                        f"{c.wider()}/{n}",
                        f"{c.excess.max():+.1e}",
                        f"{c.mean_ratio:.5f}",
                    )
    finally:
        torch.set_num_threads(threads)
    console.print(t)
    return results
