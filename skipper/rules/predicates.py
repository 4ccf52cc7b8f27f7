"""Find ML predicates and ordinary column bounds among a WHERE clause's conjuncts.

Only top-level conjuncts (``A AND B AND ...``) are used: a conjunct that must
hold for every result row may prune row groups; anything under OR or NOT may
not, and is reported instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from mlskip.skipper.rules.roundtrip import duckdb_days
from mlskip.skipper.rules.scans import ParquetScan


@dataclass(frozen=True)
class AffineArg:
    """A model argument ``sum(coef * column) + const``, columns as written in SQL.

    ``expr`` is the expression as DuckDB evaluates it, step by step (see
    ``mlskip.skipper.row_group_regions.expression_interval``): nested tuples ``("col", type,
    name)``, ``("num", type, value)``, ``("neg" | "cast", type, x)`` and
    ``("add" | "sub" | "mul" | "div", type, x, y)``, where ``type`` is the
    DuckDB type of that step's result (as SQL text until the planner asks
    DuckDB for it). None for a plain column given by name (the Arrow scans).
    """

    coeffs: tuple[tuple[str, float], ...]
    const: float
    expr: tuple | None = None

    @property
    def plain_column(self) -> str | None:
        """The column when the argument is just that column's value, else None."""
        if len(self.coeffs) != 1 or self.coeffs[0][1] != 1.0 or self.const != 0.0:
            return None
        node = self.expr
        while node is not None and node[0] == "cast":
            node = node[2]
        if node is None or node[0] == "col":
            return self.coeffs[0][0]
        return None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.coeffs)


@dataclass(frozen=True)
class MLPredicate:
    """One ML conjunct: ``function(args) <kind> values``.

    ``kind`` is one of ``gt ge lt le between argmax``; ``args`` holds None for
    an argument that is not affine in the scan's columns (then no region can
    be built and the predicate only runs as written).
    """

    node: exp.Expression
    function: str
    args: tuple[AffineArg | None, ...]
    kind: str
    values: tuple[float, ...]
    value_sql: tuple[str, ...] = ()  # the constants as written (DuckDB may read them differently)

    @property
    def sql(self) -> str:
        return self.node.sql(dialect="duckdb")


@dataclass(frozen=True)
class ConjunctAnalysis:
    """What a scan's WHERE clause offers: ML predicates, column bounds, and why
    other ML calls were left alone."""

    predicates: tuple[MLPredicate, ...]
    bounds: Mapping[str, tuple[float, float]]
    ignored: tuple[str, ...]


_FLIP = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_COMPARISONS = {exp.GT: "gt", exp.GTE: "ge", exp.LT: "lt", exp.LTE: "le", exp.EQ: "eq"}


def conjuncts(where: exp.Expression | None) -> list[exp.Expression]:
    """The top-level AND-ed terms of a WHERE condition (parentheses removed)."""
    if where is None:
        return []
    node = where.this if isinstance(where, exp.Where) else where
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return [term for part in node.flatten() for term in conjuncts(part)]
    return [node]


def number(node: exp.Expression) -> float | None:
    """The value of a numeric literal (signs and DOUBLE casts allowed), else None."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Neg):
        value = number(node.this)
        return None if value is None else -value
    if isinstance(node, exp.Cast) and node.to.this in (
        exp.DataType.Type.DOUBLE,
        exp.DataType.Type.FLOAT,
    ):
        return number(node.this) if node.to.this == exp.DataType.Type.DOUBLE else None
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            value = float(node.this)
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    return None


def _scan_column(node: exp.Column, scan: ParquetScan, columns: frozenset[str] | None) -> str | None:
    """The column's name when it certainly belongs to ``scan``, else None."""
    if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
        return None
    qualifier = node.table
    if qualifier:
        return node.name if scan.alias and qualifier.lower() == scan.alias.lower() else None
    if columns is None:
        return node.name if scan.only_table else None
    return node.name if node.name.lower() in columns else None


def affine(
    node: exp.Expression, scan: ParquetScan, columns: frozenset[str] | None = None
) -> AffineArg | None:
    """``node`` as an affine function of the scan's columns, or None.

    The result's ``expr`` records every step with its SQL text in the type slot."""
    while isinstance(node, exp.Paren):
        node = node.this
    text = node.sql(dialect="duckdb")
    value = number(node)
    if value is not None:
        return AffineArg((), value, ("num", text, text))
    if _is_date_constant(node):  # days since 1970, as DuckDB's date arithmetic reads it
        days = duckdb_days(text)
        return AffineArg((), float(days), ("num", text, text)) if days is not None else None
    if isinstance(node, exp.Column):
        name = _scan_column(node, scan, columns)
        return AffineArg(((name, 1.0),), 0.0, ("col", text, name)) if name else None
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.DOUBLE:
        inner = affine(node.this, scan, columns)
        return _step("cast", text, inner, inner) if inner else None
    if isinstance(node, exp.Neg):
        inner = affine(node.this, scan, columns)
        return _step("neg", text, _scale(inner, -1.0), inner) if inner else None
    if isinstance(node, (exp.Add, exp.Sub)):
        left, right = affine(node.this, scan, columns), affine(node.expression, scan, columns)
        if left is None or right is None:
            return None
        op = "sub" if isinstance(node, exp.Sub) else "add"
        total = _add(left, _scale(right, -1.0) if op == "sub" else right)
        return _step(op, text, total, left, right)
    if isinstance(node, exp.Mul):
        left, right = affine(node.this, scan, columns), affine(node.expression, scan, columns)
        if left is None or right is None:
            return None
        if not left.coeffs:
            return _step("mul", text, _scale(right, left.const), left, right)
        if not right.coeffs:
            return _step("mul", text, _scale(left, right.const), left, right)
        return None
    if isinstance(node, exp.Div):
        divisor = number(node.expression)
        if divisor is None or divisor == 0.0:
            return None
        left, right = affine(node.this, scan, columns), affine(node.expression, scan, columns)
        if left is None or right is None:
            return None
        return _step("div", text, _scale(left, 1.0 / divisor), left, right)
    return None


def _is_date_constant(node: exp.Expression) -> bool:
    """``DATE '...'`` (sqlglot reads it as a cast of a string to DATE)."""
    return (
        isinstance(node, exp.Cast)
        and node.to.this == exp.DataType.Type.DATE
        and isinstance(node.this, exp.Literal)
        and node.this.is_string
    )


def _step(op: str, text: str, value: AffineArg, *parts: AffineArg) -> AffineArg:
    """``value`` with its expression: ``op`` applied to the parts' expressions."""
    return AffineArg(value.coeffs, value.const, (op, text, *(p.expr for p in parts)))


def _scale(arg: AffineArg, factor: float) -> AffineArg:
    return AffineArg(tuple((c, w * factor) for c, w in arg.coeffs), arg.const * factor, arg.expr)


def _add(a: AffineArg, b: AffineArg) -> AffineArg:
    coeffs: dict[str, float] = dict(a.coeffs)
    for column, weight in b.coeffs:
        coeffs[column] = coeffs.get(column, 0.0) + weight
    return AffineArg(tuple(coeffs.items()), a.const + b.const, a.expr)


def _model_call(node: exp.Expression, functions: Mapping[str, str]) -> exp.Anonymous | None:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in functions:
        return node
    return None


def _ml_predicate(
    term: exp.Expression,
    functions: Mapping[str, str],
    scan: ParquetScan,
    columns: frozenset[str] | None,
) -> MLPredicate | str | None:
    """An MLPredicate, a reason string when the term calls a model in a form we
    cannot use, or None when the term calls no model."""
    if isinstance(term, exp.Between):
        call = _model_call(term.this, functions)
        if call is None:
            return None
        if functions[str(call.this).lower()] != "value":
            return f"{term.sql(dialect='duckdb')}: BETWEEN on a function that is not a number model"
        lo, hi = number(term.args["low"]), number(term.args["high"])
        if lo is None or hi is None:
            return f"{term.sql(dialect='duckdb')}: BETWEEN bounds are not numeric constants"
        return _build(
            term, call, "between", (lo, hi), (term.args["low"], term.args["high"]), scan, columns
        )
    op = _COMPARISONS.get(type(term))
    if op is None:
        if any(_model_call(n, functions) for n in term.walk() if isinstance(n, exp.Anonymous)):
            return f"{term.sql(dialect='duckdb')}: model call under OR, NOT or another operator"
        return None
    call, other = _model_call(term.this, functions), term.expression
    if call is None:
        call, other = _model_call(term.expression, functions), term.this
        op = _FLIP.get(op, op)
    if call is None:
        if any(_model_call(n, functions) for n in term.walk() if isinstance(n, exp.Anonymous)):
            return f"{term.sql(dialect='duckdb')}: model call inside an expression"
        return None
    value = number(other)
    if value is None:
        return f"{term.sql(dialect='duckdb')}: compared with something other than a constant"
    kind = functions[str(call.this).lower()]
    if kind not in ("value", "class"):
        return f"{term.sql(dialect='duckdb')}: {call.this}() returns a vector, not a number"
    if kind == "class":
        if op != "eq" or value != int(value):
            return f"{term.sql(dialect='duckdb')}: class functions support only '= <integer>'"
        return _build(term, call, "argmax", (value,), (other,), scan, columns)
    if op == "eq":
        return _build(term, call, "between", (value, value), (other, other), scan, columns)
    return _build(term, call, op, (value,), (other,), scan, columns)


def _build(term, call, kind, values, value_nodes, scan, columns) -> MLPredicate:
    args = tuple(affine(a, scan, columns) for a in call.expressions)
    value_sql = tuple(v.sql(dialect="duckdb") for v in value_nodes)
    return MLPredicate(term, str(call.this).lower(), args, kind, values, value_sql)


def _column_bound(
    term: exp.Expression, scan: ParquetScan, columns: frozenset[str] | None
) -> tuple[str, float, float] | None:
    """``(column, lo, hi)`` implied by an ordinary conjunct, closed and conservative."""
    if isinstance(term, exp.Between):
        column = (
            _scan_column(term.this, scan, columns) if isinstance(term.this, exp.Column) else None
        )
        lo, hi = number(term.args["low"]), number(term.args["high"])
        return (column, lo, hi) if column and lo is not None and hi is not None else None
    if isinstance(term, exp.In) and isinstance(term.this, exp.Column):
        column = _scan_column(term.this, scan, columns)
        values = [number(v) for v in term.expressions]
        if column and values and all(v is not None for v in values):
            return column, min(values), max(values)
        return None
    op = _COMPARISONS.get(type(term))
    if op is None:
        return None
    left, right = term.this, term.expression
    if not isinstance(left, exp.Column):
        left, right, op = right, left, _FLIP.get(op, op)
    if not isinstance(left, exp.Column):
        return None
    column, value = _scan_column(left, scan, columns), number(right)
    if column is None or value is None:
        return None
    return {
        "gt": (column, value, math.inf),
        "ge": (column, value, math.inf),
        "lt": (column, -math.inf, value),
        "le": (column, -math.inf, value),
        "eq": (column, value, value),
    }[op]


# DuckDB compares a FLOAT column with a constant in FLOAT: the constant is rounded to
# float32 (up to half a float32 ulp away, 2^-24 relative); DECIMAL literals are converted
# to DOUBLE by DuckDB itself (a few double ulps). Bounds are widened by more than both.
_RELATIVE_SLACK = 2.0**-21
_ABSOLUTE_SLACK = 1e-44  # above float32's smallest subnormal spacing


def _outward(column: str, lo: float, hi: float) -> tuple[str, float, float]:
    """A literal bound widened outward past every rounding DuckDB may apply to it."""

    def shift(v: float, direction: float) -> float:
        if not math.isfinite(v):
            return v
        return v + direction * (abs(v) * _RELATIVE_SLACK + _ABSOLUTE_SLACK)

    return column, shift(lo, -1.0), shift(hi, 1.0)


def analyse_where(
    scan: ParquetScan, functions: Mapping[str, str], columns: frozenset[str] | None = None
) -> ConjunctAnalysis:
    """ML predicates and column bounds usable for ``scan``.

    ``functions`` maps registered SQL function names (lower case) to
    ``"value"`` or ``"class"``; ``columns`` (lower case) is the scan's schema,
    needed to attribute unqualified columns when the SELECT joins tables.
    """
    predicates: list[MLPredicate] = []
    ignored: list[str] = []
    bounds: dict[str, tuple[float, float]] = {}
    for term in conjuncts(scan.select.args.get("where")):
        found = _ml_predicate(term, functions, scan, columns)
        if isinstance(found, MLPredicate):
            predicates.append(found)
            continue
        if isinstance(found, str):
            ignored.append(found)
            continue
        bound = _column_bound(term, scan, columns)
        if bound is not None:
            column, lo, hi = _outward(*bound)
            old_lo, old_hi = bounds.get(column, (-math.inf, math.inf))
            bounds[column] = (max(old_lo, lo), min(old_hi, hi))
    return ConjunctAnalysis(tuple(predicates), bounds, tuple(ignored))


_LOCAL_NODES = (
    exp.Column, exp.Identifier, exp.Literal, exp.Neg, exp.Paren, exp.Boolean, exp.Null,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between, exp.In,
    exp.And, exp.Or, exp.Not, exp.Is, exp.Cast, exp.DataType, exp.Tuple,
)  # fmt: skip


def local_conjuncts(
    scan: ParquetScan, functions: Mapping[str, str], columns: frozenset[str] | None = None
) -> list[exp.Expression]:
    """Conjuncts that only compare this scan's columns with constants (arithmetic,
    comparisons, BETWEEN, IN lists, AND/OR/NOT, casts): cheap, deterministic,
    and safe to also apply inside the scan."""
    local: list[exp.Expression] = []
    for term in conjuncts(scan.select.args.get("where")):
        nodes = list(term.walk())
        if not all(isinstance(n, _LOCAL_NODES) for n in nodes):
            continue
        cols = [n for n in nodes if isinstance(n, exp.Column)]
        if cols and all(_scan_column(c, scan, columns) for c in cols):
            local.append(term)
    return local
