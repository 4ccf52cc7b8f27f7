"""What ``mlskip bench paper`` runs: its settings, layouts, protocols and configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlskip.tpch import bench_models, filters

SETTINGS = (
    "minmax",
    "hull",
    "hull+sql",
    "layout-minmax",
    "layout-hull",
    "hilbert-minmax",
    "hilbert-hull",
    "pred-minmax",
    "pred-hull",
)
LAYOUTS = ("natural", "layout", "hilbert", "pred")  # setting prefix of each writer layout
# end-to-end files: the layouts, and natural order with the model's output summaries
E2E_LAYOUTS = (*LAYOUTS, "summary")
PROTOCOLS = ("sweep", "reference")


def layout_of(setting: str) -> str:
    """The writer layout a setting uses (``natural`` for minmax, hull, hull+sql)."""
    head = setting.split("-", 1)[0]
    return head if head in LAYOUTS else "natural"


@dataclass
class PaperConfig:
    """What one run covers; ``quick()`` and ``full()`` are the two presets."""

    sf: float = 1.0
    models: tuple[str, ...] = ()  # spec names; empty = every regressor
    hidden: tuple[tuple[int, ...], ...] = ((32,), (32, 32))
    block_sizes: tuple[int, ...] = (1000, 10_000, 122_880)
    max_blocks: int = 400
    starts: tuple[float, ...] = filters.FULL_STARTS
    widths: tuple[float, ...] = filters.FULL_WIDTHS
    exact_cap: int = 4
    milp_seconds: float = 0.5
    train_sf: float = 0.1
    epochs: int = 150
    e2e: bool = True
    e2e_repeats: int = 3
    e2e_queries_per_table: int = 2
    seed: int = 0
    quick: bool = False
    pairs: tuple = ()  # (spec, hidden) pairs to run instead of every spec x depth
    protocol: str = "sweep"
    settings: tuple[str, ...] = SETTINGS
    max_selectivity: float = 1.0  # filters selecting more are dropped (reference: 1%)
    e2e_layouts: tuple[str, ...] = LAYOUTS  # natural, layout, hilbert, pred
    e2e_row_group: int = 122_880
    work_budgets: bool = (
        False  # True: deterministic cascade (work_budget_verifier), not the planner's
    )
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def reference_preset(cls, sf: float = 1.0) -> PaperConfig:
        """Our reading of the MLSkip protocol: the first 100 blocks of 1,000 rows of each
        table (natural order; layouts reorder those 100,000 rows), 2- to 4-input regressors
        with one hidden layer of 32, 20 filter start points evenly spaced over the output's
        [min, max] on those rows, widths 0.1%/1%/5% of that range, filters above 1%
        selectivity dropped; no e2e (100,000 rows are no table to time)."""
        return cls(
            sf=sf,
            models=bench_models.REFERENCE_MODELS,
            hidden=((32,),),
            block_sizes=(1000,),
            max_blocks=100,
            starts=filters.REFERENCE_STARTS,
            widths=filters.REFERENCE_WIDTHS,
            max_selectivity=filters.REFERENCE_MAX_SELECTIVITY,
            exact_cap=6,
            e2e=False,
            protocol="reference",
        )

    @classmethod
    def quick_preset(cls, sf: float = 0.1) -> PaperConfig:
        return cls(
            sf=sf,
            models=("lineitem_disc_price", "store_sales_net_profit"),
            hidden=((32,), (32, 32)),
            pairs=(("lineitem_disc_price", (32,)), ("store_sales_net_profit", (32, 32))),
            block_sizes=(1000, 10_000),
            max_blocks=40,
            epochs=40,
            starts=filters.QUICK_STARTS,
            widths=filters.QUICK_WIDTHS,
            exact_cap=2,
            milp_seconds=0.3,
            e2e_repeats=2,
            e2e_queries_per_table=1,
            quick=True,
            settings=(
                "minmax",
                "hull",
                "layout-minmax",
                "layout-hull",
                "hilbert-hull",
                "pred-hull",
            ),
            e2e_layouts=("natural", "pred"),
            work_budgets=True,
        )
