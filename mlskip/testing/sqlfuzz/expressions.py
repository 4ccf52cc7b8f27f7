"""Drawing the pieces of a query: relations, constants, model calls, conditions."""

from __future__ import annotations

import math
import random
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .datasets import Col, Dataset, Model


# ----------------------------------------------------------------------------- queries
@dataclass
class Rel:
    """A FROM item of a query being built: its text, alias, columns, and a
    self-contained query giving its rows (to draw thresholds from)."""

    text: str
    alias: str | None
    cols: list[Col]
    body: str


_TEMPORAL_CONSTANTS = {"DATE": "DATE '1997-05-19'", "TIMESTAMP": "TIMESTAMP '1997-05-19 10:00:00'"}


def _lit(v: float) -> str:
    if math.isnan(v):
        return "'NaN'::DOUBLE"
    if math.isinf(v):
        return "'inf'::DOUBLE" if v > 0 else "'-inf'::DOUBLE"
    return repr(float(v))


class ExpressionGen:
    """The pieces of queries (relations, constants, model calls, conditions) drawn over a dataset's sources and the registered models.

    ``probe`` (the baseline connection, models registered) computes model outputs
    on the data, to put thresholds where they select something."""

    JOINS = (
        "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "POSITIONAL", "ASOF", "NATURAL",
        "LATERAL", "SEMI", "ANTI", "COMMA",
    )  # fmt: skip

    def __init__(
        self,
        rnd: random.Random,
        data: Dataset,
        models: list[Model],
        probe: Any,
        forms: Sequence[str] | None = None,
    ) -> None:
        self.rnd, self.data, self.models, self.probe = rnd, data, models, probe
        self.forms = [(f, w) for f, w in self.FORMS if forms is None or f in forms]
        if not self.forms:
            raise ValueError(
                f"no query form among {forms}; choose from {[f for f, _ in self.FORMS]}"
            )
        self.params: dict[str, Any] = {}
        self.aliases = 0
        self.low = False  # set by threshold()
        self.ctes: list[tuple[str, str, list[Col]]] = []  # (name, 'name AS (...)', columns)

    # -- small helpers
    def chance(self, p: float) -> bool:
        return self.rnd.random() < p

    def alias(self, prefix: str = "t") -> str:
        self.aliases += 1
        return f"{prefix}{self.aliases}"

    def ident(self, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return '"' + name.replace('"', '""') + '"'
        u = self.rnd.random()
        if u < 0.1:
            return name.upper()
        if u < 0.18:
            return f'"{name}"'
        return name

    def ref(self, rel: Rel, col: Col) -> str:
        name = self.ident(col.name)
        return f"{rel.alias}.{name}" if rel.alias else name

    def param(self, value: Any) -> str:
        token = f"__P{len(self.params)}__"
        self.params[token] = value
        return token

    def expand(self, sql: str) -> str:
        """``sql`` with parameter tokens replaced by their values (for probing)."""
        for token, value in self.params.items():
            sql = sql.replace(token, _lit(value) if isinstance(value, float) else repr(value))
        return sql

    def with_prefix(self) -> str:
        if not self.ctes:
            return ""
        return "WITH " + ", ".join(definition for _, definition, _ in self.ctes) + " "

    # -- FROM items
    def source_rel(self, need_alias: bool = True, sample: bool = True, plain: bool = False) -> Rel:
        """A Parquet source as a FROM item (``plain``: no column alias list, no sample)."""
        src = self.rnd.choice(self.data.sources)
        cols = [Col(c.name, c.type, c.values) for c in src.cols]
        alias = self.alias() if need_alias or self.chance(0.85) else None
        text = src.sql
        sample = sample and not plain
        if alias:
            text += f" AS {alias}"
            if not plain and self.chance(0.15):
                m = self.rnd.randint(1, len(cols))
                if self.chance(0.6):
                    new = self.rnd.sample([c.name for c in cols[:m]], m)
                else:
                    new = [f"v{i}" for i in range(m)]
                for c, n in zip(cols[:m], new, strict=True):
                    c.name = n
                text += "(" + ", ".join(self.ident(n) for n in new) + ")"
        body = f"SELECT * FROM {text}"
        if sample and self.chance(0.08):
            seed = self.rnd.randint(0, 99)
            text += self.rnd.choice(
                [
                    f" TABLESAMPLE reservoir({self.rnd.randint(1, 60)} ROWS) REPEATABLE ({seed})",
                    f" TABLESAMPLE bernoulli({self.rnd.choice([10, 50])}%) REPEATABLE ({seed})",
                    f" TABLESAMPLE system({self.rnd.choice([10, 50])}%) REPEATABLE ({seed})",
                ]
            )
        return Rel(text, alias, cols, body)

    def rel(self, depth: int, need_alias: bool = True, derived: float = 0.35) -> Rel:
        """A FROM item: a CTE (when defined), a subquery (share ``derived``) or a source."""
        u = self.rnd.random()
        if self.ctes and u < 0.2:
            name, _, cols = self.rnd.choice(self.ctes)
            alias = self.alias() if self.chance(0.5) or need_alias else None
            text = f"{name} AS {alias}" if alias else name
            return Rel(text, alias or name, [Col(c.name, c.type, c.values) for c in cols],
                       f"{self.with_prefix()}SELECT * FROM {name}")  # fmt: skip
        if depth < 2 and u < derived:
            inner, cols = self.simple(depth + 1)
            alias = self.alias("sq")
            return Rel(f"({inner}) AS {alias}", alias, cols, inner)
        return self.source_rel(need_alias)

    # -- model outputs and thresholds
    def outputs(self, expr: str, rels: list[Rel], group: str | None = None) -> list[float]:
        if len(rels) == 1:
            alias = rels[0].alias or "__r"
            frm = f"({rels[0].body}) AS {alias}"
        else:
            frm = ", ".join(
                f"(SELECT * FROM ({r.body}) AS {r.alias} LIMIT 60) AS {r.alias}" for r in rels
            )
        sql = self.expand(f"SELECT {expr} FROM {frm}" + (f" GROUP BY {group}" if group else ""))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows = self.probe.execute(sql).fetchall()
        except Exception:
            return []
        out = []
        for (v,) in rows:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(float(v))
        return out

    def threshold(self, values: list[float]) -> float:
        """A threshold among (or just beyond) ``values``; ``self.low`` says whether it lies
        in their lower half (so that a comparison can keep the larger side)."""
        finite = sorted(v for v in values if math.isfinite(v))
        self.low = self.chance(0.5)
        if not finite:
            return self.rnd.choice([-1.0, 0.0, 0.5, 1.0])
        u = self.rnd.random()
        if u < 0.05:
            return finite[0] - 1.0 - abs(finite[0])  # full / empty
        if u < 0.1:
            return finite[-1] + 1.0 + abs(finite[-1])
        if u < 0.13:
            return self.rnd.choice([math.nan, math.inf, -math.inf])
        q = self.rnd.choice([0.0, 0.001, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98, 0.999, 1.0])
        self.low = q < 0.5
        t = finite[min(len(finite) - 1, int(q * len(finite)))]
        if self.chance(0.15):
            t = float(np.nextafter(t, self.rnd.choice([-np.inf, np.inf])))
        return t

    def const(self, col: Col) -> str:
        if col.string:
            pool = list(col.values) or ["x"]
            return "'" + self.rnd.choice([*pool, "zz"]).replace("'", "''") + "'"
        v = self.rnd.choice(col.values) if col.values else float(self.rnd.randint(-5, 5))
        if col.integer:
            return str(int(v))
        return _lit(v)

    # -- ML expressions
    def affine(self, rel: Rel, col: Col, scope: list[Rel]) -> str:
        c = self.ref(rel, col)
        u = self.rnd.random()
        if u < 0.6:
            return c
        w = self.rnd.choice(["2", "0.5", "-1", "3.25", "1e-3", "10"])
        b = self.rnd.choice(["1", "-7.5", "100", "0.1"])
        other = [(r, x) for r in scope for x in r.cols if x.numeric]
        forms = [
            f"{w} * {c}", f"{c} + {b}", f"{w} * {c} + {b}", f"-{c}", f"({c})",
            f"({c} + 1e17) - 1e17", f"0 * {c}", f"{c} / 2", f"CAST({c} AS FLOAT)",
            f"{c}::DOUBLE", "1.5", f"{c} - {self.ref(*self.rnd.choice(other))}",
            f"{c} * {self.param(float(w))}",
        ]  # fmt: skip
        return self.rnd.choice(forms)

    def call(
        self,
        scope: list[Rel],
        model: Model | None = None,
        cross: bool = False,
        aggregate: bool = False,
    ) -> tuple[Model, str, list[Rel]]:
        """A model call on columns of ``scope`` (of one relation unless ``cross``; each
        argument aggregated when ``aggregate``); returns (model, arguments, relations used)."""
        model = model or self.rnd.choice(self.models)
        usable = [r for r in scope if any(c.numeric for c in r.cols)]
        if not usable:  # no numeric column in reach: constant arguments
            constants = [
                _TEMPORAL_CONSTANTS.get(model.type_of(i), "1.5") for i in range(model.inputs)
            ]
            return model, ", ".join(constants), scope[:1]
        rels = usable if cross else [self.rnd.choice(usable)]
        picks = [(r, c) for r in rels for c in r.cols if c.numeric]
        used: list[Rel] = []
        args = []
        for i in range(model.inputs):
            if model.type_of(i) != "DOUBLE":
                r, arg = self.temporal_arg(rels, model.type_of(i))
                used += [r] if r is not None and all(r is not u for u in used) else []
                if aggregate:
                    arg = f"{self.rnd.choice(['min', 'max'])}({arg})"
                args.append(arg)
                continue
            dates = [(r, c) for r in rels for c in r.cols if c.type == "DATE"]
            if dates and self.chance(0.15):  # a day count: DATE - DATE is a BIGINT
                r, c = self.rnd.choice(dates)
                arg = self.day_count(r, c, dates)
            else:
                r, c = self.rnd.choice(picks)
                arg = self.affine(r, c, [r])
            used += [r] if all(r is not u for u in used) else []
            if aggregate:
                arg = f"{self.rnd.choice(['avg', 'min', 'max', 'sum'])}({arg})"
            args.append(arg)
        return model, ", ".join(args), used or rels[:1]

    def temporal_arg(self, rels: list[Rel], kind: str) -> tuple[Rel | None, str]:
        """A DATE or TIMESTAMP argument: mostly a bare column of that type, sometimes date
        arithmetic or a cast (run as written), else a constant."""
        picks = [(r, c) for r in rels for c in r.cols if c.temporal]
        same = [(r, c) for r, c in picks if c.type == kind]
        if not picks:
            return None, _TEMPORAL_CONSTANTS[kind]
        if same and self.chance(0.85):
            r, c = self.rnd.choice(same)
            return r, self.ref(r, c)
        r, c = self.rnd.choice(picks)
        col = self.ref(r, c)
        forms = {
            "DATE": [
                f"{col} + 1",
                f"{col} - 30",
                f"CAST({col} AS DATE)",
                _TEMPORAL_CONSTANTS["DATE"],
            ],
            "TIMESTAMP": [f"{col} + INTERVAL 1 HOUR", f"CAST({col} AS TIMESTAMP)", col],
        }[kind]
        return r, self.rnd.choice(forms)

    def day_count(self, rel: Rel, col: Col, dates: list[tuple[Rel, Col]]) -> str:
        """Days between a DATE column and a date (DuckDB: DATE - DATE is BIGINT days)."""
        c = self.ref(rel, col)
        other = self.ref(*self.rnd.choice([(r, x) for r, x in dates if r is rel]))
        return self.rnd.choice([
            f"{c} - DATE '1970-01-01'", f"DATE '2000-01-01' - {c}", f"({c} + 7) - {other}",
            f"{c} - {other}", f"2 * ({c} - DATE '1997-05-19') + 0.5",
            f"{c} - DATE 'infinity'",
        ])  # fmt: skip

    def fname(self, model: Model, suffix: str = "") -> str:
        name = model.name + suffix
        u = self.rnd.random()
        return name.upper() if u < 0.1 else name.lower() if u < 0.55 else name

    def ml_value(self, scope: list[Rel]) -> str:
        """A numeric ML expression (for SELECT)."""
        model, args, _ = self.call(scope)
        if model.classes > 1:
            if self.chance(0.5):
                return f"{self.fname(model, '_class')}({args})"
            return f"{self.fname(model)}({args})[{self.rnd.randint(1, model.classes)}]"
        return f"{self.fname(model)}({args})"

    def ml_atom(
        self, scope: list[Rel], cross: bool = False, group: str | None = None, basic: bool = False
    ) -> str:
        """An ML predicate over ``scope`` (``basic``: only comparisons with constants,
        BETWEEN and ``class = k``)."""
        model, args, rels = self.call(scope, cross=cross, aggregate=group is not None)
        if model.classes > 1 and self.chance(0.75):
            fn = f"{self.fname(model, '_class')}({args})"
            seen = [int(v) for v in self.outputs(fn, rels, group)]  # classes the data gets
            if seen and self.chance(0.8):
                k = self.rnd.choice(seen)
            else:
                k = self.rnd.randrange(model.classes)
            if basic:
                return f"{fn} = {k}"
            k = k if self.chance(0.93) else model.classes + 1
            forms = [
                f"{fn} = {k}", f"{fn} = {k}", f"{fn} <> {k}", f"{fn} IN ({k}, {(k + 1) % model.classes})",
                f"{fn} BETWEEN 1 AND 2", f"{fn} >= {k}", f"{k} = {fn}",
            ]  # fmt: skip
            return self.rnd.choice(forms)
        fn = f"{self.fname(model)}({args})"
        if model.classes > 1:
            fn = f"{fn}[{self.rnd.randint(1, model.classes)}]"
        values = self.outputs(fn, rels, group)
        t = self.threshold(values)
        lit = self.param(t) if self.chance(0.06) else _lit(t)
        # mostly keep the larger side: several selective conjuncts would leave nothing
        above = self.low if self.chance(0.75) else not self.low
        op = self.rnd.choice([">", ">=", ">"] if above else ["<", "<=", "<"])
        u = self.rnd.random() * (0.8 if basic else 1.0)
        if u < 0.55:
            return f"{fn} {op} {lit}"
        if u < 0.63:
            flipped = {">": "<", ">=": "<=", "<": ">", "<=": ">="}[op]
            return f"{lit} {flipped} {fn}"
        if u < 0.8:
            t2 = self.threshold(values)
            lo, hi = (t, t2) if t <= t2 or self.chance(0.1) else (t2, t)
            neg = "NOT " if self.chance(0.15) else ""
            return f"{fn} {neg}BETWEEN {_lit(lo)} AND {_lit(hi)}"
        forms = [
            f"{fn} = {_lit(self.rnd.choice(values) if values else t)}",
            f"{fn} <> {lit}",
            f"-{fn} {op} {_lit(-t)}",
            f"{fn} + 0 {op} {lit}",
            f"{fn} IS NULL",
            f"isnan({fn})",
            f"{fn} > {lit} IS NOT TRUE",
        ]
        return self.rnd.choice(forms)

    def plain_atom(self, scope: list[Rel]) -> str:
        rel = self.rnd.choice(scope)
        col = self.rnd.choice(rel.cols)
        c = self.ref(rel, col)
        if col.string:
            return self.rnd.choice(
                [
                    f"{c} = {self.const(col)}",
                    f"{c} LIKE 'x%'",
                    f"{c} IS NOT NULL",
                    f"{c} <> {self.const(col)}",
                ]
            )
        if col.temporal:  # bounds written as DuckDB users write them: a literal or a string
            day = f"DATE '{1994 + self.rnd.randrange(6)}-0{1 + self.rnd.randrange(9)}-15'"
            value = self.rnd.choice([day, day.replace("DATE ", ""), f"{day} + 30"])
            op = self.rnd.choice(["<", "<=", ">", ">=", "=", "<>"])
            return self.rnd.choice([f"{c} {op} {value}", f"{c} BETWEEN {day} AND {day} + 400",
                                    f"{c} IS NULL"])  # fmt: skip
        if not col.numeric:
            return f"{c} IS NOT NULL"
        op = self.rnd.choice(["<", "<=", ">", ">="])
        u = self.rnd.random()
        if u < 0.55:
            return f"{c} {op} {self.const(col)}"
        if u < 0.6:
            return f"{c} {op} {self.param(self.rnd.choice(col.values) if col.values else 0.0)}"
        lo, hi = sorted([self.const(col), self.const(col)], key=float)
        forms = [
            f"{c} IS NULL", f"{c} IS NOT NULL", f"{c} BETWEEN {lo} AND {hi}", f"{c} <> {self.const(col)}",
            f"{c} IN ({self.const(col)}, {self.const(col)})", f"{c} = {self.const(col)}",
        ]  # fmt: skip
        if col.type in ("DOUBLE", "FLOAT"):
            forms.append(f"NOT isnan({c})")
        return self.rnd.choice(forms)

    def condition(self, scope: list[Rel], ml: int = 1, cross: bool = False, depth: int = 0) -> str:
        """A WHERE / ON condition with ``ml`` ML predicates, sometimes under OR / NOT / CASE."""
        atoms = [self.ml_atom(scope, cross=cross) for _ in range(ml)]
        atoms += [self.plain_atom(scope) for _ in range(self.rnd.choice([0, 0, 0, 1, 1, 2]))]
        if depth < 2 and self.chance(0.1):
            atoms.append(self.subquery_atom(scope, depth))
        out = []
        for a in atoms:
            u = self.rnd.random()
            if u < 0.05:
                a = f"NOT ({a})"
            elif u < 0.11:
                a = f"({a} OR {self.plain_atom(scope)})"
            elif u < 0.15:
                a = f"CASE WHEN {a} THEN true ELSE {self.plain_atom(scope)} END"
            elif u < 0.18:
                a = f"coalesce({a}, false)"
            elif u < 0.2:
                a = f"({a}) = true"
            out.append(a)
        self.rnd.shuffle(out)
        return " AND ".join(out)

    def subquery_atom(self, scope: list[Rel], depth: int) -> str:
        outer = self.rnd.choice(scope)
        keys = [c for c in outer.cols if c.numeric] or outer.cols
        key = self.rnd.choice(keys)
        inner = self.source_rel(sample=False)
        ikeys = [c for c in inner.cols if c.numeric]
        ikey = next(
            (c for c in ikeys if c.name.lower() == key.name.lower()), self.rnd.choice(ikeys)
        )
        where = self.condition([inner], depth=depth + 1)
        kind = self.rnd.choice(["in", "not_in", "exists", "not_exists", "scalar", "correlated"])
        if kind in ("in", "not_in"):
            neg = "NOT " if kind == "not_in" else ""
            return f"{self.ref(outer, key)} {neg}IN (SELECT {self.ref(inner, ikey)} FROM {inner.text} WHERE {where})"
        if kind in ("exists", "not_exists"):
            neg = "NOT " if kind == "not_exists" else ""
            return (
                f"{neg}EXISTS (SELECT 1 FROM {inner.text} WHERE "
                f"{self.ref(inner, ikey)} = {self.ref(outer, key)} AND {where})"
            )
        agg = self.rnd.choice(["avg", "min", "max", "count"])
        if kind == "scalar":
            return f"{self.ref(outer, key)} > (SELECT {agg}({self.ref(inner, ikey)}) FROM {inner.text} WHERE {where})"
        return (
            f"(SELECT count(*) FROM {inner.text} WHERE {self.ref(inner, ikey)} = "
            f"{self.ref(outer, key)} AND {where}) > {self.rnd.randint(0, 2)}"
        )

    # -- SELECT lists
