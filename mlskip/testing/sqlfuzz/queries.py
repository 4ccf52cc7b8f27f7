"""Drawing whole queries: the query forms over the pieces of expressions.py."""

from __future__ import annotations

import re

from .datasets import Col, Model
from .expressions import ExpressionGen, Rel
from .oracle import Query

SETTINGS = (  # (statement before the query, statement after it)
    ("SET integer_division = true", "RESET integer_division"),
    ("SET default_null_order = 'nulls_first'", "RESET default_null_order"),
    ("SET default_order = 'desc'", "RESET default_order"),
    ("SET ieee_floating_point_ops = false", "RESET ieee_floating_point_ops"),
    ("SET preserve_identifier_case = false", "RESET preserve_identifier_case"),
    # user macros that replace an arithmetic operator for the query
    ('CREATE TEMP MACRO "+"(x, y) AS x - y', 'DROP MACRO "+"'),
    ('CREATE TEMP MACRO "*"(x, y) AS x + y', 'DROP MACRO "*"'),
    ('CREATE TEMP MACRO "-"(x) AS x', 'DROP MACRO "-"'),
)


class QueryGen(ExpressionGen):
    """Draws whole queries over a dataset's sources and the registered models."""

    def projection(self, scope: list[Rel], star: bool = True) -> tuple[str, list[Col]]:
        if star and len(scope) == 1 and self.chance(0.35):
            return "*", [Col(c.name, c.type, c.values) for c in scope[0].cols]
        items, out = [], []
        picks = [(r, c) for r in scope for c in r.cols]
        chosen = self.rnd.sample(picks, min(len(picks), self.rnd.randint(1, 4)))
        numeric = [(r, c) for r, c in picks if c.numeric]
        if numeric and not any(c.numeric for _, c in chosen):
            chosen.append(self.rnd.choice(numeric))
        for i, (r, c) in enumerate(chosen):
            items.append(f"{self.ref(r, c)} AS c{i}")
            out.append(Col(f"c{i}", c.type, c.values))
        if self.chance(0.3):
            items.append(f"{self.ml_value(scope)} AS ml0")
            out.append(Col("ml0", "DOUBLE"))
        if self.chance(0.15):
            items.append(f"CASE WHEN {self.ml_atom(scope)} THEN 1 ELSE 0 END AS flag")
            out.append(Col("flag", "INTEGER", (0.0, 1.0)))
        if self.chance(0.05):
            items.append(f"({self.ml_atom(scope)}) AS b0")
            out.append(Col("b0", "BOOLEAN"))
        return ", ".join(items), out

    # -- query forms
    def core(self, depth: int = 0) -> tuple[str, list[Col]]:
        """The shape skipping is for: ML predicates as top-level WHERE conjuncts of a scan."""
        rel = self.source_rel(need_alias=False, plain=True)
        proj, out = self.projection([rel])
        atoms = [
            self.ml_atom([rel], basic=self.chance(0.7)) for _ in range(self.rnd.choice([1, 1, 2]))
        ]
        atoms += [self.plain_atom([rel]) for _ in range(self.rnd.choice([0, 0, 1]))]
        self.rnd.shuffle(atoms)
        sql = f"SELECT {proj} FROM {rel.text} WHERE {' AND '.join(atoms)}"
        if self.chance(0.1):
            sql += f" ORDER BY ALL LIMIT {self.rnd.randint(1, 20)}"
        return sql, out

    def simple(self, depth: int = 0, rel: Rel | None = None) -> tuple[str, list[Col]]:
        rel = rel or self.rel(depth, need_alias=False)
        proj, out = self.projection([rel])
        distinct = "DISTINCT " if self.chance(0.08) else ""
        sql = f"SELECT {distinct}{proj} FROM {rel.text}"
        if self.chance(0.92):
            sql += f" WHERE {self.condition([rel], ml=self.rnd.choice([1, 1, 1, 2]), depth=depth)}"
        if self.chance(0.05):
            sql += (
                f" USING SAMPLE {self.rnd.choice([20, 50])}% (bernoulli, {self.rnd.randint(0, 99)})"
            )
        if self.chance(0.1):
            sql += f" ORDER BY ALL LIMIT {self.rnd.randint(1, 20)}"
            if self.chance(0.3):
                sql += f" OFFSET {self.rnd.randint(1, 5)}"
        return sql, out

    def aggregate(self, depth: int = 0) -> tuple[str, list[Col]]:
        rel = self.rel(depth, need_alias=False)
        groups = [c for c in rel.cols if c.integer or c.string]
        items, out, group = [], [], None
        if groups and self.chance(0.8):
            g = self.rnd.choice(groups)
            group = self.ref(rel, g)
            items.append(f"{group} AS g")
            out.append(Col("g", g.type, g.values))
        elif self.chance(0.3):
            model = self.rnd.choice(self.models)
            group = (
                f"{self.fname(model, '_class')}({self.call([rel], model)[1]})"
                if model.classes > 1
                else f"{self.fname(model)}({self.call([rel], model)[1]}) > 0"
            )
            items.append(f"{group} AS g")
            out.append(Col("g", "BIGINT"))
        items.append("count(*) AS n")
        out.append(Col("n", "BIGINT"))
        numeric = [c for c in rel.cols if c.numeric]
        for i in range(self.rnd.randint(0, 2)):
            c = self.rnd.choice(numeric)
            fn = self.rnd.choice(["sum", "min", "max", "avg", "count"])
            items.append(f"{fn}({self.ref(rel, c)}) AS a{i}")
            out.append(Col(f"a{i}", "DOUBLE"))
        if self.chance(0.3):
            items.append(f"count(*) FILTER (WHERE {self.ml_atom([rel])}) AS nf")
            out.append(Col("nf", "BIGINT"))
        if self.chance(0.2):
            items.append(f"max({self.ml_value([rel])}) AS mx")
            out.append(Col("mx", "DOUBLE"))
        sql = f"SELECT {', '.join(items)} FROM {rel.text}"
        if self.chance(0.85):
            sql += f" WHERE {self.condition([rel], depth=depth)}"
        if group is not None:
            sql += f" GROUP BY {group}"
            if self.chance(0.35):
                having = (
                    self.ml_atom([rel], group=group)
                    if self.chance(0.6)
                    else f"count(*) > {self.rnd.randint(0, 3)}"
                )
                sql += f" HAVING {having}"
        return sql, out

    def join(self, depth: int = 0) -> tuple[str, list[Col]]:
        a, b = self.rel(depth, derived=0.15), self.rel(depth, derived=0.15)
        kind = self.rnd.choice(self.JOINS)
        ka = [c for c in a.cols if c.numeric]
        kb = [c for c in b.cols if c.numeric]
        x = self.rnd.choice(ka)
        y = next((c for c in kb if c.name.lower() == x.name.lower()), self.rnd.choice(kb))
        eq = f"{self.ref(a, x)} = {self.ref(b, y)}"
        where_scope = [a]
        out_scope = [a, b]
        on = ""
        if kind in ("INNER", "LEFT", "RIGHT", "FULL"):
            extra = (
                f" AND {self.ml_atom(self.rnd.choice([[a], [b], [a, b]]), cross=True)}"
                if self.chance(0.5)
                else ""
            )
            using = x.name.lower() == y.name.lower() and not extra and self.chance(0.3)
            on = f" USING ({self.ident(x.name)})" if using else f" ON {eq}{extra}"
            sep = f" {kind} JOIN "
            if kind != "INNER":
                where_scope = self.rnd.choice([[a], [b], [a, b]])
            if using:
                out_scope = [a]
        elif kind in ("SEMI", "ANTI"):
            extra = f" AND {self.ml_atom([b])}" if self.chance(0.6) else ""
            on = f" ON {eq}{extra}"
            sep = f" {kind} JOIN "
            out_scope = [a]
        elif kind == "ASOF":
            ineq = self.rnd.choice([c for c in kb if c is not y] or [y])
            ax = self.rnd.choice(ka)
            op = self.rnd.choice([">=", ">", "<=", "<"])
            on = f" ON {eq} AND {self.ref(a, ax)} {op} {self.ref(b, ineq)}"
            sep = " ASOF LEFT JOIN " if self.chance(0.3) else " ASOF JOIN "
            # which of several tied right rows pairs up is not defined: show only the keys
            b = Rel(b.text, b.alias, [y, ineq] if ineq is not y else [y], b.body)
            out_scope = [a, b]
        elif kind == "CROSS":
            sep = " CROSS JOIN "
            where_scope = [a, b]
        elif kind == "COMMA":
            sep = ", "
            where_scope = [a, b]
        elif kind == "POSITIONAL":
            sep = " POSITIONAL JOIN "
            where_scope = self.rnd.choice([[a], [b], [a, b]])
        elif kind == "NATURAL":
            sep = self.rnd.choice([" NATURAL JOIN ", " NATURAL LEFT JOIN "])
            out_scope = [a]
        else:  # LATERAL
            inner = self.source_rel(sample=False)
            ik = next(
                (c for c in inner.cols if c.numeric and c.name.lower() == x.name.lower()), None
            )
            ik = ik or self.rnd.choice([c for c in inner.cols if c.numeric])
            proj = [c for c in inner.cols if c.numeric][:2]
            alias = self.alias("l")
            items = ", ".join(
                f"{self.ref(inner, c)} AS {self.ident(f'l{i}')}" for i, c in enumerate(proj)
            )
            if self.chance(0.5):
                lateral = (
                    f"(SELECT {items} FROM {inner.text} WHERE {self.ref(inner, ik)} = {self.ref(a, x)} "
                    f"AND {self.ml_atom([inner])} ORDER BY ALL LIMIT {self.rnd.randint(1, 3)})"
                )
            else:
                lateral = f"(SELECT {self.ref(a, x)} * 2 AS l0, {self.ml_value([a])} AS l1)"
                proj = [x, x]
            b = Rel(f"LATERAL {lateral} AS {alias}", alias,
                    [Col(f"l{i}", "DOUBLE") for i in range(len(proj))], "")  # fmt: skip
            sep = self.rnd.choice([", ", " CROSS JOIN ", " LEFT JOIN "])
            on = " ON true" if sep == " LEFT JOIN " else ""
            out_scope, where_scope = [a, b], [a]
        proj, out = self.projection(out_scope, star=False)
        sql = f"SELECT {proj} FROM {a.text}{sep}{b.text}{on}"
        conds = []
        if kind in ("CROSS", "COMMA") and self.chance(0.8):
            conds.append(eq)
        if self.chance(0.85):
            conds.append(
                self.condition(where_scope, cross=len(where_scope) > 1 and self.chance(0.3))
            )
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        if kind == "CROSS" and not conds:
            sql = f"SELECT count(*) AS n, count({out[0].name}) AS m FROM ({sql}) AS j"
            out = [Col("n", "BIGINT"), Col("m", "BIGINT")]
        return sql, out

    def set_operation(self, depth: int = 0) -> tuple[str, list[Col]]:
        k = self.rnd.randint(1, 3)
        sides = []
        for _ in range(2):
            rel = self.rel(depth + 1, need_alias=False)
            numeric = [c for c in rel.cols if c.numeric]
            names = [f"c{i}" for i in range(k)]
            items = [
                f"CAST({self.ref(rel, self.rnd.choice(numeric))} AS DOUBLE) AS {n}" for n in names
            ]
            sql = f"SELECT {', '.join(items)} FROM {rel.text} WHERE {self.condition([rel], depth=depth + 1)}"
            sides.append(f"({sql})" if self.chance(0.5) else sql)
        op = self.rnd.choice(
            ["UNION", "UNION ALL", "INTERSECT", "INTERSECT ALL", "EXCEPT", "EXCEPT ALL",
             "UNION BY NAME", "UNION ALL BY NAME"]
        )  # fmt: skip
        sql = f"{sides[0]} {op} {sides[1]}"
        if self.chance(0.1):
            sql = f"SELECT * FROM ({sql}) AS u ORDER BY ALL LIMIT {self.rnd.randint(1, 10)}"
        return sql, [Col(f"c{i}", "DOUBLE") for i in range(k)]

    def with_ctes(self, depth: int = 0) -> tuple[str, list[Col]]:
        """WITH ... SELECT: CTE names that clash with aliases, a model, a table function,
        column lists, MATERIALIZED, and sometimes a name defined again inside (shadowing)."""
        saved = self.ctes
        self.ctes = []
        names = self.rnd.sample(
            ["x", "y", "t1", "cte", "m", "read_parquet"], self.rnd.randint(1, 2)
        )
        for name in names:
            body, cols = self.simple(depth + 1)
            header = name
            if self.chance(0.2) and cols:
                new = [f"w{i}" for i in range(len(cols))]
                for c, n in zip(cols, new, strict=True):
                    c.name = n
                header = f"{name}({', '.join(new)})"
            materialized = self.rnd.choice(["", "", "MATERIALIZED ", "NOT MATERIALIZED "])
            self.ctes.append((name, f"{header} AS {materialized}({body})", cols))
        prefix = self.with_prefix()
        rel = self.rel(depth, need_alias=False) if self.chance(0.7) else self.source_rel(False)
        main, out = self.simple(depth + 1, rel=rel)
        if self.chance(0.2):  # the first name defined again inside, shadowing the outer one
            outer, self.ctes = self.ctes, []
            inner_body, _ = self.simple(depth + 1)
            self.ctes = outer
            shadow = outer[0][0]
            main = (
                f"SELECT * FROM ({main}) AS z WHERE EXISTS "
                f"(WITH {shadow} AS ({inner_body}) SELECT 1 FROM {shadow})"
            )
        self.ctes = saved
        return prefix + main, out

    def window(self, depth: int = 0) -> tuple[str, list[Col]]:
        rel = self.rel(depth, need_alias=False)
        picks = self.rnd.sample(rel.cols, min(len(rel.cols), self.rnd.randint(1, 3)))
        refs = [self.ref(rel, c) for c in picks]
        order = ", ".join(refs)
        part = self.rnd.choice(refs)
        numeric = [r for r, c in zip(refs, picks, strict=True) if c.numeric]
        items = [f"{r} AS c{i}" for i, r in enumerate(refs)]
        items.append(f"row_number() OVER (PARTITION BY {part} ORDER BY {order}) AS rn")
        if numeric and self.chance(0.6):
            items.append(
                f"sum({self.rnd.choice(numeric)}) OVER (ORDER BY {order} ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS w1"
            )
        if self.chance(0.5):
            items.append(f"lag({self.rnd.choice(refs)}) OVER (ORDER BY {order}) AS w2")
        if self.chance(0.5):
            items.append(
                f"count(*) FILTER (WHERE {self.ml_atom([rel])}) OVER (PARTITION BY {part}) AS w3"
            )
        if self.chance(0.3):
            items.append(f"max({self.ml_value([rel])}) OVER (PARTITION BY {part}) AS w4")
        sql = (
            f"SELECT {', '.join(items)} FROM {rel.text} WHERE {self.condition([rel], depth=depth)}"
        )
        if self.chance(0.3):
            sql += f" QUALIFY rn <= {self.rnd.randint(1, 3)}"
        return sql, []

    def pivot(self, depth: int = 0) -> tuple[str, list[Col]]:
        rel = self.rel(depth, need_alias=False)
        numeric = [c for c in rel.cols if c.numeric]
        keys = [c for c in rel.cols if c.string or c.integer] or numeric
        if self.chance(0.6):
            on, g = self.rnd.choice(keys), self.rnd.choice(keys)
            v = self.rnd.choice(numeric)
            inner = (
                f"SELECT {self.ref(rel, on)} AS pc, {self.ref(rel, g)} AS g, {self.ref(rel, v)} AS v "
                f"FROM {rel.text} WHERE {self.condition([rel], depth=depth)}"
            )
            values = sorted(set(on.values))[:3]
            in_list = (
                " IN (" + ", ".join(self.const(Col("c", on.type, (x,))) for x in values) + ")"
                if values and self.chance(0.4)
                else ""
            )
            agg = self.rnd.choice(["count(*)", "sum(v)", "min(v)", "max(v)"])
            sql = f"PIVOT ({inner}) ON pc{in_list} USING {agg} GROUP BY g"
        else:
            picks = self.rnd.sample(numeric, min(len(numeric), 2))
            key = self.rnd.choice(rel.cols)
            items = [f"{self.ref(rel, key)} AS key"] + [
                f"CAST({self.ref(rel, c)} AS DOUBLE) AS u{i}" for i, c in enumerate(picks)
            ]
            inner = f"SELECT {', '.join(items)} FROM {rel.text} WHERE {self.condition([rel], depth=depth)}"
            cols = ", ".join(f"u{i}" for i in range(len(picks)))
            nulls = " INCLUDE NULLS" if self.chance(0.3) else ""
            if self.chance(0.5):
                sql = f"UNPIVOT{nulls} ({inner}) ON {cols} INTO NAME name VALUE val"
            else:
                sql = f"SELECT * FROM ({inner}) AS up UNPIVOT{nulls} (val FOR name IN ({cols}))"
        if self.chance(0.3):
            sql = f"SELECT * FROM ({sql}) AS pv"
        return sql, []

    FORMS = (
        ("core", 25), ("simple", 35), ("aggregate", 10), ("join", 20), ("set_operation", 6), ("with_ctes", 10),
        ("window", 6), ("pivot", 5), ("ordered", 8),
    )  # fmt: skip

    def ordered(self, depth: int = 0) -> tuple[str, list[Col]]:
        """Rows of one file scan in DuckDB's insertion order (filters and a LIMIT without
        ORDER BY keep it): the result is a list, compared as one."""
        rel = self.source_rel(need_alias=False, sample=False)  # a sample is not a list
        proj, out = self.projection([rel])
        sql = f"SELECT {proj} FROM {rel.text} WHERE {self.condition([rel], ml=1, depth=depth)}"
        # a LIMIT over a subquery condition (a join) keeps rows DuckDB does not define
        if self.chance(0.7) and sql.upper().count("SELECT") == 1:
            sql += f" LIMIT {self.rnd.randint(1, 30)}"
            if self.chance(0.3):
                sql += f" OFFSET {self.rnd.randint(1, 10)}"
        return sql, out

    def _model_macro(self, model: Model) -> tuple[str, str]:
        """A user macro named like a model's SQL function (it replaces the model there)."""
        name = f"{model.name}_class" if model.classes > 1 and self.chance(0.7) else model.name
        args = ", ".join(f"x{i}" for i in range(model.inputs))
        body = "1" if name.endswith("_class") else self.rnd.choice(["x0 + 1", "0.5", "-x0"])
        if model.classes > 1 and not name.endswith("_class"):
            body = f"[{body}, 0.0]"
        return f"CREATE TEMP MACRO {name}({args}) AS {body}", f"DROP MACRO {name}"

    def query(self) -> Query:
        self.params = {}
        self.ctes = []
        forms, weights = zip(*self.forms, strict=True)
        form = self.rnd.choices(forms, weights)[0]
        sql, _ = getattr(self, form)(0)
        setting = self.rnd.choice(SETTINGS) if self.chance(0.15) else None
        if setting is None and self.models and self.chance(0.03):
            setting = self._model_macro(self.rnd.choice(self.models))
        api = "execute" if self.chance(0.3) else "sql"
        params: list | dict | None = None
        tokens = re.findall(r"__P\d+__", sql)
        if tokens:
            if self.chance(0.7):
                params = [self.params[t] for t in tokens]
                sql = re.sub(r"__P\d+__", "?", sql)
            else:
                order = list(dict.fromkeys(tokens))
                params = [self.params[t] for t in order]
                for i, t in enumerate(order, start=1):
                    sql = sql.replace(t, f"${i}")
        # DuckDB defines the order of a filtered scan, not of a join: an IN / EXISTS
        # subquery in the condition is a join whose sides the optimizer may swap
        ordered = form == "ordered" and sql.upper().count("SELECT") == 1
        return Query(sql, params, setting, api, form, ordered=ordered)
