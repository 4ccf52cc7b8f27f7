"""Benchmark of the verifier (not a timed test): ``run_bench(quick=..., seed=...)``.

For MLPs with 2, 4 and 8 inputs and hidden layers of 32 and 2x32 ReLU units,
over random row-group-like boxes (10,000 per network; widths spread over
two orders of magnitude per column) and a selective threshold (0.1% of a
uniform sample qualifies): regions per second of IBP, CROWN, CROWN with an
8-gon per region on inputs (0, 1), and the full cascade; the fraction each
method decides; agreement of the cascade with the complete MILP on a
sample; Marabou seconds per region on a sample; what the float margins
cost. Prints a rich table and returns the figures as a dict.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._blas import single_thread
from .cascade import Verifier
from .concretize import tighten_boxes
from .crown import crown_bounds
from .ibp import ibp_bounds
from .network import Network
from .predicate import UNKNOWN, Predicate
from .regions import RegionBatch


def make_net(rng: np.random.Generator, sizes: tuple[int, ...]) -> Network:
    ws = [
        (rng.normal(size=(o, i)) * np.sqrt(2.0 / i), rng.normal(size=o) * 0.1)
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return Network.mlp(ws)


def make_regions(rng: np.random.Generator, n: int, d: int, polygons: bool) -> RegionBatch:
    c = rng.uniform(-1, 1, size=(n, d))
    r = 10 ** rng.uniform(-2.0, -0.3, size=(n, d))
    lo, hi = c - r, c + r
    if not polygons:
        return RegionBatch(lo, hi)
    # an 8-gon circumscribing an ellipse inside the (0, 1) face, like a hull summary
    ang = np.arange(8) * (np.pi / 4) + rng.uniform(0, np.pi / 4, size=(n, 1))
    A = np.stack([np.cos(ang), np.sin(ang)], -1)
    b = np.einsum("nmt,nt->nm", A, c[:, :2]) + 0.7 * np.einsum("nmt,nt->nm", np.abs(A), r[:, :2])
    return RegionBatch(lo, hi, pairs=((0, 1),), halfspaces=((A, b),))


def _rate(fn, n: int, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def bench_one(
    sizes: tuple[int, ...], n: int, seed: int, milp_sample: int, marabou_sample: int
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    net = make_net(rng, sizes)
    d = sizes[0]
    y = net.evaluate(rng.uniform(-1.2, 1.2, size=(200_000, d)))[:, 0]
    pred = Predicate.gt(float(np.quantile(y, 0.999)))
    R = make_regions(rng, n, d, polygons=False)
    RP = make_regions(np.random.default_rng(seed), n, d, polygons=True)
    out: dict[str, Any] = {"net": "-".join(map(str, sizes)), "regions": n}
    spec = pred.compile(net)
    snet = spec.spec_net
    with single_thread():
        out["ibp_per_s"] = _rate(lambda: ibp_bounds(snet, R), n)
        out["crown_per_s"] = _rate(lambda: crown_bounds(snet, R), n)
        out["crown_poly_per_s"] = _rate(lambda: crown_bounds(snet, tighten_boxes(RP)), n)
    cascade = Verifier(
        methods=("ibp", "crown", "bab", "milp"), time_budget=60.0, milp_time_per_region=2.0
    )
    t0 = time.perf_counter()
    res = cascade.verify(net, R, pred)
    out["cascade_per_s"] = n / (time.perf_counter() - t0)
    out["decided_by"] = {k: v / n for k, v in res.decided_by().items()}
    out["verdicts"] = {k: v / n for k, v in res.counts().items()}
    out["cascade_seconds"] = dict(res.seconds)
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
    # Marabou on a sample
    try:
        from .adapters.marabou import available, marabou_verdicts

        if marabou_sample and available():
            jdx = idx[:marabou_sample]
            mg = cascade.row_margins(net, spec, R.subset(jdx))
            t0 = time.perf_counter()
            mv = marabou_verdicts(spec, net, R.subset(jdx), mg, "float32", timeout=10.0)
            out["marabou_s_per_region"] = (time.perf_counter() - t0) / len(jdx)
            out["marabou_agree"] = float((mv == res.verdicts[jdx]).mean())
    except Exception as exc:  # pragma: no cover - the oracle is optional
        out["marabou_error"] = repr(exc)
    out["cascade_s_per_region"] = 1.0 / out["cascade_per_s"]
    if "marabou_s_per_region" in out:
        out["speedup_vs_marabou"] = out["marabou_s_per_region"] / out["cascade_s_per_region"]
    try:
        from .adapters.auto_lirpa import auto_lirpa_bounds
        from .adapters.auto_lirpa import available as lirpa_ok

        if lirpa_ok():
            out["auto_lirpa_crown_per_s"] = _rate(lambda: auto_lirpa_bounds(snet, R), n, repeat=1)
    except Exception as exc:  # pragma: no cover
        out["auto_lirpa_error"] = repr(exc)
    return out


def run_bench(quick: bool = False, seed: int = 0, n_regions: int | None = None) -> dict[str, Any]:
    """Run the verifier benchmark, print a rich table, return ``{net: figures}``."""
    from rich.console import Console
    from rich.table import Table

    archs = (
        [(4, 32, 1), (4, 32, 32, 1)]
        if quick
        else [(2, 32, 1), (2, 32, 32, 1), (4, 32, 1), (4, 32, 32, 1), (8, 32, 1), (8, 32, 32, 1)]
    )
    n = n_regions or (2_000 if quick else 10_000)
    results = {}
    console = Console()
    for k, sizes in enumerate(archs):
        r = bench_one(
            sizes, n, seed + k, milp_sample=40 if quick else 200, marabou_sample=5 if quick else 20
        )
        results[r["net"]] = r
    t = Table(title=f"mlskip verifier: {n:,} boxes per network, threshold at the 99.9% quantile")
    t.add_column("figure")
    for name in results:
        t.add_column(name, justify="right")

    def row(label: str, fmt) -> None:
        t.add_row(label, *[fmt(r) for r in results.values()])

    row("IBP regions/s", lambda r: f"{r['ibp_per_s']:,.0f}")
    row("CROWN regions/s", lambda r: f"{r['crown_per_s']:,.0f}")
    row("CROWN + 8-gon regions/s", lambda r: f"{r['crown_poly_per_s']:,.0f}")
    row("cascade regions/s", lambda r: f"{r['cascade_per_s']:,.0f}")
    for m in ("ibp", "crown", "bab", "milp", "sampling", "undecided"):
        row(f"  decided by {m}", lambda r, m=m: f"{r['decided_by'].get(m, 0.0):.4f}")
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
    row("Marabou s/region", lambda r: f"{r.get('marabou_s_per_region', float('nan')):.4f}")
    row("cascade s/region", lambda r: f"{r['cascade_s_per_region']:.6f}")
    row("speed-up vs Marabou", lambda r: f"{r.get('speedup_vs_marabou', float('nan')):,.0f}x")
    row("Marabou = cascade (sample)", lambda r: f"{r.get('marabou_agree', float('nan')):.3f}")
    row("regions changed by fp margins", lambda r: str(r["margin_cost_regions"]))
    if any("auto_lirpa_crown_per_s" in r for r in results.values()):
        row(
            "auto_LiRPA CROWN regions/s",
            lambda r: f"{r.get('auto_lirpa_crown_per_s', float('nan')):,.0f}",
        )
    console.print(t)
    return results


if __name__ == "__main__":  # pragma: no cover
    import sys

    run_bench(quick="--quick" in sys.argv)
