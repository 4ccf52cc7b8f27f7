"""Plots of the paper benchmark (matplotlib, Agg): effectiveness per bin, and row groups drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlskip.tpch import summary as S
from mlskip.tpch.filters import BINS
from mlskip.tpch.paper import SETTINGS as ALL_SETTINGS

EFFECTIVENESS_PNG = "effectiveness.png"
ROW_GROUPS_PNG = "row_groups.png"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_effectiveness(path: Path, records: list[dict[str, Any]]) -> None:
    """Bars: cascade effectiveness per selectivity bin and setting; ticks: the exact limit."""
    plt = _plt()
    blocks = sorted({r["block_rows"] for r in records})
    present = {r["setting"] for r in records}
    settings = [s for s in ALL_SETTINGS if s in present]
    fig, axes = plt.subplots(1, len(blocks), figsize=(7 * len(blocks), 4.5), squeeze=False)
    width = 0.8 / len(settings)
    for ax, block in zip(axes[0], blocks, strict=True):
        recs = S.select(records, block_rows=block)
        for k, setting in enumerate(settings):
            xs, cas, exa = [], [], []
            for b, (name, _, _) in enumerate(BINS):
                sub = S.select(recs, setting=setting, bin=name)
                xs.append(b + (k - len(settings) / 2 + 0.5) * width)
                cas.append(S.mean_of(sub, S.eff))
                exa.append(S.mean_of(sub, S.eff_exact))
            ax.bar(xs, np.nan_to_num(cas), width, label=setting)
            ax.scatter(xs, exa, marker="_", color="black", s=80, zorder=3)
        ax.set_xticks(range(len(BINS)), [b[0] for b in BINS])
        ax.set_ylim(0, 1.02)
        ax.set_title(f"row groups of {block:,} rows")
        ax.set_xlabel("selectivity")
        ax.set_ylabel("pruned / skippable (bars: cascade, -: exact)")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_row_groups(
    path: Path,
    panels: Sequence[tuple[str, Any, np.ndarray]],
    predict,
    inputs: Sequence[str],
    pair: tuple[int, int],
    lo: float,
    hi: float,
) -> None:
    """Row groups in the plane of two inputs: rows, min-max box, stored hull, and where the
    model's output lies in [lo, hi] (other inputs fixed at the block's medians: a slice)."""
    plt = _plt()
    i, j = pair
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.2), squeeze=False)
    for ax, (title, group, rows) in zip(axes[0], panels, strict=True):
        a, b = inputs[i], inputs[j]
        (x0, x1), (y0, y1) = group.box[a], group.box[b]
        px, py = (x1 - x0) * 0.15 + 1e-9, (y1 - y0) * 0.15 + 1e-9
        gx, gy = np.meshgrid(np.linspace(x0 - px, x1 + px, 160), np.linspace(y0 - py, y1 + py, 160))
        pts = np.tile(np.median(rows, axis=0), (gx.size, 1))
        pts[:, i], pts[:, j] = gx.ravel(), gy.ravel()
        z = predict(pts).reshape(gx.shape)
        inside = ((z >= lo) & (z <= hi)).astype(float)
        ax.contourf(gx, gy, inside, levels=[0.5, 1.5], colors=["#f4a261"], alpha=0.6)
        ax.contour(gx, gy, z, levels=sorted({lo, hi}), colors="#e76f51", linewidths=0.8)
        ax.scatter(rows[:, i], rows[:, j], s=2, color="#264653", alpha=0.4)
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#2a9d8f", lw=1.5))
        hull = group.hulls.get((a, b))
        if hull is not None and len(hull):
            h = np.vstack([hull, hull[:1]])
            ax.plot(h[:, 0], h[:, 1], color="#9b2226", lw=1.5)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
    fig.suptitle(
        "rows (dots), min-max box (green), 45-byte hull (red), model in [lo, hi] (orange; slice)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(out: Path, results: dict[str, Any]) -> list[str]:
    """Effectiveness plot (row-group drawing is made during the run); names of the PNGs present."""
    plot_effectiveness(out / EFFECTIVENESS_PNG, results["records"])
    return [n for n in (EFFECTIVENESS_PNG, ROW_GROUPS_PNG) if (out / n).exists()]
