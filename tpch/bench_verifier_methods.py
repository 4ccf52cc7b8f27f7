"""Benchmark of the verifier's methods where they differ (``run_methods_bench``, part of
``mlskip bench verifier``): regions whose polygons share inputs, CROWN with the greedy
disjoint subset vs the certified LP, and alpha-CROWN with the last layer's / the final
pass's / all layers' slopes free. Prints rich tables and returns the figures as a dict.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from mlskip.testing.networks import make_net, make_regions
from mlskip.verifier._blas import single_thread
from mlskip.verifier.cascade import Verifier
from mlskip.verifier.concretize import tighten_boxes
from mlskip.verifier.crown import crown_bounds
from mlskip.verifier.predicate import UNKNOWN, Predicate
from mlskip.verifier.regions import RegionBatch

from .bench_verifier import fresh_regions, net_and_rare_threshold, timed, wide_console


def make_overlap_regions(
    rng: np.random.Generator,
    n: int,
    d: int,
    pairs: tuple[tuple[int, int], ...],
    strip: bool = False,
) -> RegionBatch:
    """Row-group-like boxes with an 8-gon on every pair of ``pairs`` (pairs share inputs).

    Each 8-gon circumscribes the ellipse of 0.7 x the box's half-widths on its pair's face,
    so every polygon cuts the box's corners and their intersection cuts more. ``strip``:
    correlated columns instead (every column near a common value per row group, like
    price and its discounted price): the boxes have similar widths and each polygon
    also holds the diagonal strip ``|(x_i - c_i) - (x_j - c_j)| <= 0.1 r``.
    """
    c = rng.uniform(-1, 1, size=(n, d))
    r = 10 ** rng.uniform(-2.0, -0.3, size=(n, d))
    if strip:
        r = r[:, :1] * rng.uniform(0.8, 1.2, size=(n, d))
    hs = []
    for i, j in pairs:
        ang = np.arange(8) * (np.pi / 4) + rng.uniform(0, np.pi / 4, size=(n, 1))
        A = np.stack([np.cos(ang), np.sin(ang)], -1)
        b = np.einsum("nmt,nt->nm", A, c[:, [i, j]]) + 0.7 * np.einsum(
            "nmt,nt->nm", np.abs(A), r[:, [i, j]]
        )
        if strip:
            diag = np.broadcast_to(np.array([[1.0, -1.0], [-1.0, 1.0]]), (n, 2, 2))
            off = c[:, i] - c[:, j]
            w = 0.1 * np.minimum(r[:, i], r[:, j])
            A = np.concatenate([A, diag], axis=1)
            b = np.concatenate([b, np.stack([off + w, -off + w], axis=1)], axis=1)
        hs.append((A, b))
    return RegionBatch(c - r, c + r, pairs=pairs, halfspaces=tuple(hs))


def bench_overlap(
    sizes: tuple[int, ...],
    n: int,
    seed: int,
    q: float = 0.999,
    strip: bool = False,
    milp_sample: int = 100,
    repeat: int = 3,
) -> dict[str, Any]:
    """CROWN over regions whose polygons share inputs: greedy disjoint subset vs certified LP.

    Pairs form a chain and one chord ((0,1), (1,2), ..., (0,2)); the threshold is
    the ``q`` quantile of the output on a uniform sample. Decided shares are over
    all regions; rates are whole-batch ``Verifier(ibp, crown)`` wall rates (the LP
    runs only on regions the greedy pass left open) and the LP step alone on those
    open regions (``crown_bounds(..., overlap_lp=True)``), medians of interleaved runs.
    """
    rng = np.random.default_rng(seed)
    net = make_net(rng, sizes)
    d = sizes[0]
    pairs = tuple((k, k + 1) for k in range(d - 1)) + ((0, 2),)
    y = net.evaluate(rng.uniform(-1.2, 1.2, size=(200_000, d)))[:, 0]
    pred = Predicate.gt(float(np.quantile(y, q)))
    snet = pred.compile(net).spec_net
    R = make_overlap_regions(rng, n, d, pairs, strip)
    greedy = Verifier(methods=("ibp", "crown"), overlap_lp=False)
    lp = Verifier(methods=("ibp", "crown"), overlap_lp=True)
    res: dict[str, Any] = {}
    vg = greedy.verify(net, fresh_regions(R), pred).verdicts  # also compiles the kernels
    open_ = tighten_boxes(fresh_regions(R)).subset(np.flatnonzero(vg == UNKNOWN))
    fns: dict[str, Callable[[], Any]] = {
        "greedy": lambda: res.__setitem__("greedy", greedy.verify(net, fresh_regions(R), pred)),
        "lp": lambda: res.__setitem__("lp", lp.verify(net, fresh_regions(R), pred)),
    }
    if open_.n:
        fns["lp_step"] = lambda: crown_bounds(snet, fresh_regions(open_), overlap_lp=True)
    times = timed(fns, repeat)
    vg, vl = res["greedy"].verdicts, res["lp"].verdicts
    extra: dict[str, Any] = {"width_cut": float("nan"), "milp_open_decided": float("nan")}
    if open_.n:
        lg, ug = crown_bounds(snet, open_)
        ll, ul = crown_bounds(snet, open_, overlap_lp=True)
        extra["width_cut"] = float(1.0 - np.mean(ul - ll) / np.mean(ug - lg))
        # the ceiling: how many open regions the complete MILP (all polygons) decides
        pick = np.random.default_rng(seed + 5).permutation(open_.n)[:milp_sample]
        ex = Verifier(methods=("milp",), sample_points=0, milp_time_per_region=1.0).verify(
            net, open_.subset(pick), pred
        )
        extra["milp_open_decided"] = float((ex.verdicts != UNKNOWN).mean())
    return {
        **extra,
        "net": "-".join(map(str, sizes)),
        "q": q,
        "shape": "strip" if strip else "8-gon",
        "pairs": len(pairs),
        "regions": n,
        "decided_greedy": float((vg != UNKNOWN).mean()),
        "decided_lp": float((vl != UNKNOWN).mean()),
        "lp_newly_decided": int(((vg == UNKNOWN) & (vl != UNKNOWN)).sum()),
        "open_after_greedy": open_.n,
        "greedy_per_s": n / times["greedy"][0],
        "lp_per_s": n / times["lp"][0],
        "lp_open_regions_per_s": open_.n / times["lp_step"][0] if open_.n else float("nan"),
        "disagree": int(((vg != UNKNOWN) & (vg != vl)).sum()),
    }


def bench_alpha(sizes: tuple[int, ...], n: int, seed: int, sample: int) -> dict[str, Any]:
    """alpha-CROWN modes on the regions CROWN leaves open (where the cascade runs it).

    Same nets, boxes and 99.9%-quantile threshold as ``bench_one``; up to ``sample``
    CROWN-open regions; decided share among them and seconds per region per mode
    (torch import excluded by a warm-up run).
    """
    rng, net, d, pred = net_and_rare_threshold(seed, sizes)
    R = make_regions(rng, n, d, polygons=False)
    v = Verifier(methods=("ibp", "crown")).verify(net, R, pred).verdicts
    idx = np.flatnonzero(v == UNKNOWN)
    idx = np.random.default_rng(seed + 3).permutation(idx)[:sample]
    sub = R.subset(idx)
    out: dict[str, Any] = {"net": "-".join(map(str, sizes)), "crown_open": len(idx)}
    Verifier(methods=("alpha_crown",), sample_points=0).verify(net, sub.subset([0]), pred)
    for mode in ("last", "final", "full"):
        ver = Verifier(methods=("alpha_crown",), sample_points=0, alpha_mode=mode)
        r = ver.verify(net, sub, pred)
        out[f"{mode}_decided"] = float((r.verdicts != UNKNOWN).mean()) if len(idx) else 0.0
        out[f"{mode}_s_per_region"] = r.seconds.get("alpha_crown", 0.0) / max(len(idx), 1)
    return out


def run_methods_bench(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Overlapping polygon pairs (greedy vs LP) and alpha-CROWN modes; prints two tables."""
    from rich.table import Table

    console = wide_console()
    n = 2_000 if quick else 10_000
    load0 = os.getloadavg()[0]
    from mlskip.progress import stage

    with single_thread():
        with stage(console, "overlapping polygons: greedy subset vs certified LP (8 settings)"):
            ov = [
                bench_overlap(s, n, seed + k, q, strip, 30 if quick else 100)
                for strip in (False, True)
                for q in (0.999, 0.9)
                for k, s in enumerate([(4, 32, 1), (4, 32, 32, 1)])
            ]
        with stage(console, "alpha-CROWN: last / final / full slopes (2 networks)"):
            al = [
                bench_alpha(s, n, seed + k, 100 if quick else 400)
                for k, s in enumerate([(4, 32, 32, 1), (8, 32, 32, 1)])
            ]
    load1 = os.getloadavg()[0]
    cap = f"1-min load average {load0:.1f} at start, {load1:.1f} at end on {os.cpu_count()} cores"
    t = Table(
        title=f"overlapping polygon pairs: CROWN with greedy disjoint subset vs certified LP "
        f"({n:,} regions, threshold at the q quantile)",
        caption="rates: wall, median of interleaved runs; " + cap,
    )
    for col in (
        "net (pairs), polygons, q",
        "decided greedy",
        "decided LP",
        "newly decided",
        "open after greedy",
    ):
        t.add_column(col, justify="right")
    for col in (
        "open: width cut by LP",
        "open: MILP decides (sample)",
        "regions/s greedy",
        "regions/s LP",
        "LP open regions/s",
        "disagreements",
    ):
        t.add_column(col, justify="right")
    for r in ov:
        t.add_row(
            f"{r['net']} ({r['pairs']}), {r['shape']}, {r['q']}",
            f"{r['decided_greedy']:.4f}",
            f"{r['decided_lp']:.4f}",
            str(r["lp_newly_decided"]),
            str(r["open_after_greedy"]),
            f"{r['width_cut']:.1%}",
            f"{r['milp_open_decided']:.3f}",
            f"{r['greedy_per_s']:,.0f}",
            f"{r['lp_per_s']:,.0f}",
            f"{r['lp_open_regions_per_s']:,.0f}",
            str(r["disagree"]),
        )
    console.print(t)
    t2 = Table(
        title="alpha-CROWN on the regions CROWN leaves open: slopes of the last layer / of "
        "the final pass / all layers with re-bounded intermediate layers",
        caption=cap,
    )
    t2.add_column("net (CROWN-open regions)")
    for mode in ("last", "final", "full"):
        t2.add_column(f"{mode}: decided", justify="right")
        t2.add_column(f"{mode}: ms/region", justify="right")
    for r in al:
        cells = [f"{r['net']} ({r['crown_open']})"]
        for mode in ("last", "final", "full"):
            cells += [f"{r[mode + '_decided']:.3f}", f"{1e3 * r[mode + '_s_per_region']:.2f}"]
        t2.add_row(*cells)
    console.print(t2)
    return {"overlap": ov, "alpha": al}
