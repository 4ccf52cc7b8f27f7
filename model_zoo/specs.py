"""The registry of filter models: which table, input columns and target each one learns.

Benchmarks and examples pick models by name (``get_spec("lineitem_disc_price")``).
A target is a DuckDB SQL expression over the table; for classifiers it yields a
label whose classes are listed in the spec (their order is the output order).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlskip.errors import ModelInputError

REGRESSION = "regression"
CLASSIFICATION = "classification"


@dataclass(frozen=True)
class ModelSpec:
    """What a zoo model computes: ``target`` of ``table`` from its ``inputs`` columns."""

    name: str
    suite: str  # "tpch" or "tpcds"
    table: str
    inputs: tuple[str, ...]
    target: str  # SQL expression (numeric for regression, label for classification)
    task: str = REGRESSION
    classes: tuple[str, ...] = ()
    description: str = ""

    @property
    def n_outputs(self) -> int:
        """Output width: 1 for a regressor, one logit per class for a classifier."""
        return len(self.classes) if self.task == CLASSIFICATION else 1


_LINEITEM_PRICE = ("l_quantity", "l_extendedprice", "l_discount", "l_tax")


def _sales(prefix: str, table: str) -> list[ModelSpec]:
    """Net profit and net paid of one TPC-DS sales channel.

    TPC-DS defines net_paid = quantity*sales_price - coupon_amt and
    net_profit = net_paid - quantity*wholesale_cost, so both are learnable
    (products of inputs, not linear) from these columns.
    """
    p = prefix
    return [
        ModelSpec(
            f"{table}_net_profit",
            "tpcds",
            table,
            (f"{p}_quantity", f"{p}_sales_price", f"{p}_wholesale_cost", f"{p}_coupon_amt"),
            f"{p}_net_profit",
            description=f"{table} net profit from quantity, sales price, wholesale cost, coupon",
        ),
        ModelSpec(
            f"{table}_net_paid",
            "tpcds",
            table,
            (f"{p}_quantity", f"{p}_sales_price", f"{p}_ext_discount_amt", f"{p}_coupon_amt"),
            f"{p}_net_paid",
            description=f"{table} net paid from quantity, sales price, discount, coupon",
        ),
    ]


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "lineitem_disc_price",
        "tpch",
        "lineitem",
        _LINEITEM_PRICE,
        "l_extendedprice * (1 - l_discount)",
        description="TPC-H Q1 discounted price",
    ),
    ModelSpec(
        "lineitem_charge",
        "tpch",
        "lineitem",
        _LINEITEM_PRICE,
        "l_extendedprice * (1 - l_discount) * (1 + l_tax)",
        description="TPC-H Q1 charge",
    ),
    *_sales("ss", "store_sales"),
    *_sales("cs", "catalog_sales"),
    *_sales("ws", "web_sales"),
    ModelSpec(
        "store_returns_net_loss",
        "tpcds",
        "store_returns",
        ("sr_return_quantity", "sr_return_tax", "sr_fee", "sr_return_ship_cost"),
        "sr_net_loss",
        description="store_returns net loss from quantity, tax, fee, shipping",
    ),
    ModelSpec(
        "store_returns_return_amt",
        "tpcds",
        "store_returns",
        ("sr_return_quantity", "sr_return_tax", "sr_fee", "sr_return_ship_cost"),
        "sr_return_amt",
        description="store_returns return amount from quantity, tax, fee, shipping",
    ),
    ModelSpec(
        "lineitem_returnflag",
        "tpch",
        "lineitem",
        ("l_shipdate", "l_receiptdate", "l_quantity", "l_discount"),
        "l_returnflag",
        CLASSIFICATION,
        ("A", "N", "R"),
        "return flag (N iff received after 1995-06-17; A vs R is random)",
    ),
    ModelSpec(
        "lineitem_linestatus",
        "tpch",
        "lineitem",
        ("l_shipdate", "l_commitdate"),
        "l_linestatus",
        CLASSIFICATION,
        ("F", "O"),
        "line status (O iff shipped after 1995-06-17)",
    ),
    ModelSpec(
        "lineitem_shipmode",
        "tpch",
        "lineitem",
        ("l_quantity", "l_extendedprice", "l_shipdate", "l_commitdate", "l_receiptdate"),
        "l_shipmode",
        CLASSIFICATION,
        ("AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK"),
        "ship mode (random in dbgen: a hard, near-chance filter)",
    ),
    ModelSpec(
        "store_sales_profitable",
        "tpcds",
        "store_sales",
        ("ss_quantity", "ss_sales_price", "ss_wholesale_cost", "ss_coupon_amt"),
        "CASE WHEN ss_net_profit > 0 THEN 'yes' ELSE 'no' END",
        CLASSIFICATION,
        ("no", "yes"),
        "whether a store sale made a profit",
    ),
)

REGISTRY: dict[str, ModelSpec] = {s.name: s for s in SPECS}

# the specs `build_zoo(quick=True)` uses: one TPC-H regressor, one TPC-DS regressor, one classifier
QUICK_SPECS: tuple[str, ...] = (
    "lineitem_disc_price",
    "store_sales_net_profit",
    "lineitem_linestatus",
)


def get_spec(name: str) -> ModelSpec:
    """The registered spec called ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelInputError(
            f"no zoo model named {name!r}; known models: {', '.join(REGISTRY)}"
        ) from None
