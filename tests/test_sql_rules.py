"""SQL rules on strings: scans found, ML predicates and bounds extracted, scans rewritten."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from mlskip.skipper.row_group_regions import expression_interval
from mlskip.skipper.rules.predicates import AffineArg, analyse_where
from mlskip.skipper.rules.rewrite import (
    FileScan,
    ranges_condition,
    rewrite_scan,
    spliced_sql,
    sql_string,
)
from mlskip.skipper.rules.scans import find_parquet_scans

FUNCTIONS = {"risk": "value", "kind_class": "class", "vec": "vector"}


def scans_of(sql: str):
    tree = sqlglot.parse_one(sql, dialect="duckdb")
    return tree, find_parquet_scans(tree)


@pytest.mark.parametrize(
    "sql, paths, options, alias",
    [
        ("SELECT * FROM 'x.parquet'", ("x.parquet",), (), None),
        ("SELECT * FROM read_parquet('d/*.parquet', hive_partitioning = true) t", ("d/*.parquet",),
         (("hive_partitioning", "TRUE"),), "t"),
        ("SELECT * FROM read_parquet(['a.parquet', 'b.parquet']) AS u", ("a.parquet", "b.parquet"), (), "u"),
        ("SELECT * FROM parquet_scan('p.parquet')", ("p.parquet",), (), None),
    ],
)  # fmt: skip
def test_parquet_scans_are_found(sql, paths, options, alias):
    _, scans = scans_of(sql)
    assert len(scans) == 1
    assert (scans[0].paths, scans[0].options, scans[0].alias) == (paths, options, alias)


def test_non_parquet_tables_and_computed_paths_are_ignored():
    _, scans = scans_of("SELECT * FROM t, read_parquet(concat('a', '.parquet')), 'data.csv'")
    assert scans == []


def test_outer_join_marks_the_nullable_side():
    _, scans = scans_of("SELECT * FROM 'a.parquet' x LEFT JOIN 'b.parquet' y ON x.k = y.k")
    assert [s.nullable_side for s in scans] == [False, True]
    _, scans = scans_of("SELECT * FROM 'a.parquet' x RIGHT JOIN 'b.parquet' y ON x.k = y.k")
    assert scans[0].nullable_side


def test_ml_predicates_of_every_kind_are_extracted():
    _, (scan,) = scans_of(
        "SELECT * FROM 'x.parquet' WHERE risk(a, b) > 0.9 AND 0.2 >= risk(a, b) "
        "AND risk(a, -b) BETWEEN -1 AND 2 AND kind_class(a, b, c) = 2 AND risk(a, b) = 3"
    )
    found = analyse_where(scan, FUNCTIONS).predicates
    assert [(p.kind, p.values) for p in found] == [
        ("gt", (0.9,)),
        ("le", (0.2,)),
        ("between", (-1.0, 2.0)),
        ("argmax", (2.0,)),
        ("between", (3.0, 3.0)),
    ]
    assert (found[2].args[1].coeffs, found[2].args[1].const) == ((("b", -1.0),), 0.0)
    assert found[2].args[1].expr == ("neg", "-b", ("col", "b", "b"))  # DuckDB's steps


def test_affine_arguments_are_linearised():
    _, (scan,) = scans_of(
        "SELECT * FROM 'x.parquet' t WHERE risk(2 * t.a + 1, (b - a) / 4, CAST(c AS DOUBLE)) > 0"
    )
    (pred,) = analyse_where(scan, FUNCTIONS).predicates
    assert (pred.args[0].coeffs, pred.args[0].const) == ((("a", 2.0),), 1.0)
    assert dict(pred.args[1].coeffs) == {"b": 0.25, "a": -0.25}
    assert pred.args[2].plain_column == "c"


def test_argument_intervals_follow_duckdb_rounding_and_nan():
    """(a + 1e17) - 1e17 is a in exact arithmetic, but DuckDB rounds to multiples of 16
    (110 becomes 112);
    0 * a is NaN where a is infinite."""
    box = {"a": (0.0, 110.0)}
    rounded = ("sub", "DOUBLE", ("add", "DOUBLE", ("col", "DOUBLE", "a"), ("num", "DOUBLE", 1e17)),
               ("num", "DOUBLE", 1e17))  # fmt: skip
    lo, hi, nan = expression_interval(rounded, box)
    computed = (np.linspace(0.0, 110.0, 110_001) + 1e17) - 1e17  # float64, as DuckDB does
    assert computed.max() > 110.0  # rounding leaves the box of a
    assert lo <= computed.min() and hi >= computed.max() and not nan
    zero = ("mul", "DOUBLE", ("num", "INTEGER", 0.0), ("col", "DOUBLE", "a"))
    assert expression_interval(zero, box)[2] is False
    assert expression_interval(zero, {"a": (0.0, float("inf"))})[2] is True
    # float32 steps round to float32 and overflow to infinity
    f32 = ("add", "FLOAT", ("col", "FLOAT", "a"), ("col", "FLOAT", "a"))
    assert expression_interval(f32, {"a": (0.0, 3e38)})[1] == float("inf")


def test_non_affine_arguments_give_none():
    _, (scan,) = scans_of("SELECT * FROM 'x.parquet' WHERE risk(a * b, abs(c)) > 0")
    (pred,) = analyse_where(scan, FUNCTIONS).predicates
    assert pred.args == (None, None)


@pytest.mark.parametrize(
    "where, reason",
    [
        ("risk(a, b) > 0.9 OR a > 1", "under OR"),
        ("NOT risk(a, b) > 0.9", "under OR, NOT"),
        ("risk(a, b) > c", "something other than a constant"),
        ("risk(a, b) + 1 > 2", "inside an expression"),
        ("kind_class(a, b, c) > 1", "only '= <integer>'"),
        ("vec(a, b) > 1", "returns a vector"),
    ],
)
def test_unusable_ml_conjuncts_are_reported(where, reason):
    _, (scan,) = scans_of(f"SELECT * FROM 'x.parquet' WHERE {where}")
    analysis = analyse_where(scan, FUNCTIONS)
    assert analysis.predicates == ()
    assert len(analysis.ignored) == 1 and reason in analysis.ignored[0]


def test_column_bounds_from_ordinary_conjuncts():
    _, (scan,) = scans_of(
        "SELECT * FROM 'x.parquet' WHERE a < 10 AND a >= -2.5 AND 3 < b AND c BETWEEN 1 AND 5 "
        "AND d IN (4, 9, 7) AND e = 3 AND (f < 1 OR f > 2) AND g <> 1"
    )
    bounds = analyse_where(scan, FUNCTIONS).bounds
    expected = {
        "a": (-2.5, 10.0),
        "b": (3.0, math.inf),
        "c": (1.0, 5.0),
        "d": (4.0, 9.0),
        "e": (3.0, 3.0),
    }
    assert bounds.keys() == expected.keys()
    for column, (lo, hi) in expected.items():
        got_lo, got_hi = bounds[column]
        # widened outward past float32 rounding (DuckDB compares FLOAT columns in FLOAT)
        assert got_lo < lo and got_lo >= lo - 1e-6 * abs(lo) - 1e-40
        if hi == math.inf:
            assert got_hi == math.inf
        else:
            assert hi < got_hi <= hi + 1e-6 * abs(hi) + 1e-40


def test_joined_columns_are_attributed_by_qualifier_or_schema():
    _, scans = scans_of(
        "SELECT * FROM 'x.parquet' x JOIN 'y.parquet' y ON x.k = y.k "
        "WHERE risk(x.a, b) > 1 AND risk(y.a, z) > 2"
    )
    x_preds = analyse_where(scans[0], FUNCTIONS, frozenset({"a", "b", "k"})).predicates
    assert [p.args[0] is not None and p.args[1] is not None for p in x_preds] == [True, False]


def test_rewrite_reads_ranges_and_moves_predicates_inside():
    tree, (scan,) = scans_of(
        "SELECT t.a, count(*) FROM read_parquet('d/*.parquet', hive_partitioning = true) t "
        "WHERE risk(t.a, t.b) > 0.9 AND t.a < 10 GROUP BY 1"
    )
    moved = analyse_where(scan, FUNCTIONS).predicates
    placeholder, body = rewrite_scan(
        scan,
        [
            FileScan("d/x'1.parquet", ((0, 9), (20, 29)), (((20, 29),),)),
            FileScan("d/2.parquet", None, ((),)),
        ],
        moved,
    )
    out = spliced_sql(tree, {placeholder: body}).upper()
    assert "READ_PARQUET('D/X''1.PARQUET', HIVE_PARTITIONING = TRUE, FILE_ROW_NUMBER = TRUE)" in out
    assert "(FILE_ROW_NUMBER BETWEEN 0 AND 9 OR FILE_ROW_NUMBER BETWEEN 20 AND 29)" in out
    assert "(FILE_ROW_NUMBER BETWEEN 20 AND 29 OR RISK(A, B) > 0.9)" in out
    assert " UNION ALL " in out and ') AS "T" WHERE T.A < 10 GROUP BY 1' in out
    assert out.count("RISK(") == 2  # once per file, no longer in the outer WHERE


def test_sql_string_and_ranges_render_safely():
    assert sql_string("a'; DROP TABLE x; --") == "'a''; DROP TABLE x; --'"
    assert ranges_condition(()) == "FALSE"
    assert ranges_condition(((5, 5),)) == "file_row_number = 5"


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from([1, 3, 256, 1000, 4096]),
    picks=st.lists(st.booleans(), min_size=1, max_size=40),
    tail=st.integers(0, 4095),
    single=st.lists(st.tuples(st.integers(0, 50_000), st.integers(0, 300)), max_size=12),
)
def test_ranges_condition_selects_exactly_the_ranges(size, picks, tail, single):
    """Whichever form it takes (BETWEENs, buckets of row groups), DuckDB keeps exactly the
    rows of the ranges: row-group-aligned ranges, a last row group cut short, and
    arbitrary ranges."""
    import duckdb

    aligned = []
    for i, keep in enumerate(picks):
        lo, hi = i * size, (i + 1) * size - 1
        if keep and aligned and aligned[-1][1] + 1 == lo:
            aligned[-1] = (aligned[-1][0], hi)
        elif keep:
            aligned.append((lo, hi))
    if aligned and picks[-1]:  # the file's last row group may hold fewer rows
        aligned[-1] = (aligned[-1][0], aligned[-1][0] + min(tail, aligned[-1][1] - aligned[-1][0]))
    loose: list[tuple[int, int]] = []
    for lo, n in sorted(single):
        if not loose or lo > loose[-1][1] + 1:
            loose.append((lo, lo + n))
        else:
            loose[-1] = (loose[-1][0], max(loose[-1][1], lo + n))
    con = duckdb.connect()
    for ranges in (tuple(aligned), tuple(loose)):
        last = max([hi for _, hi in ranges], default=0) + 2 * size + 10
        got = con.sql(
            f"SELECT range AS file_row_number FROM range({last}) "
            f"WHERE {ranges_condition(ranges)} ORDER BY 1"
        ).fetchnumpy()["file_row_number"]
        want = [r for lo, hi in ranges for r in range(lo, hi + 1)]
        assert got.tolist() == want, ranges_condition(ranges)


def test_many_row_group_ranges_are_tested_by_bucket():
    every_other = tuple((i * 1000, i * 1000 + 999) for i in range(0, 40, 2))
    assert "file_row_number // 1000 IN (0, 2, 4," in ranges_condition(every_other)
    odd = tuple((i * 1000 + 1, i * 1000 + 999) for i in range(0, 40, 2))
    assert "//" not in ranges_condition(odd)  # not aligned: BETWEENs


def test_constants_are_read_as_duckdb_reads_them():
    from mlskip.skipper.rules.roundtrip import duckdb_double

    # DuckDB parses this literal as DECIMAL(17, 17); its DOUBLE is one ulp from Python's float()
    assert duckdb_double("-0.38814571499824524") == -0.3881457149982453
    assert duckdb_double("'abc'") is None


def test_round_trip_check_accepts_faithful_sql_and_rejects_changes():
    from mlskip.skipper.rules.roundtrip import faithful

    sql = "SELECT a, count(*) FROM 'x.parquet' t WHERE risk(t.a, 2*b) > 0.9 GROUP BY ALL"
    assert faithful(sql, sqlglot.parse_one(sql, dialect="duckdb").sql(dialect="duckdb"))
    assert not faithful(sql, sql.replace("0.9", "0.8"))
    assert not faithful("CREATE TABLE t AS SELECT 1", "CREATE TABLE t AS SELECT 1")  # not a SELECT


@pytest.mark.parametrize(
    "bound, empty",
    [
        ((-9.0, math.inf), False),  # x >= -9: a NaN row passes (DuckDB orders NaN last)
        ((-math.inf, -20.0), True),  # x <= -20: NaN fails, the box proves the group empty
        ((-9.0, 5.0), True),  # BETWEEN: NaN fails
    ],
)
def test_sql_bounds_empty_a_row_group_only_when_nan_rows_fail_them(bound, empty):
    from types import SimpleNamespace

    from mlskip.skipper.row_group_regions import build_regions

    def group(nan: bool):
        return SimpleNamespace(
            num_rows=10,
            box={"x": (-14.0, -14.0)},
            null_counts={"x": 0},
            may_have_nan=frozenset({"x"} if nan else ()),
            halfspaces={},
        )

    x = AffineArg((("x", 1.0),), 0.0)
    regions = build_regions([group(True), group(False)], [x], {"x": bound})
    assert regions.empty.tolist() == [empty, True]


def _regions_one_group_at_a_time(groups, args, bounds):
    """build_regions' definition, one row group at a time (the vectorised planner code
    must agree with it on every flag and bit)."""
    from mlskip.skipper.row_group_regions import _interval

    n, d = len(groups), len(args)
    lower, upper = np.full((n, d), -np.inf), np.full((n, d), np.inf)
    flags = np.zeros((4, n), bool)  # empty, all_null, untrusted, has_nulls
    columns = sorted({c for a in args for c in a.columns})
    for g, group in enumerate(groups):
        box = {}
        for column in columns:
            lo, hi = group.box.get(column, (-math.inf, math.inf))
            b_lo, b_hi = bounds.get(column, (-math.inf, math.inf))
            lo, hi = max(lo, b_lo), min(hi, b_hi)
            if lo > hi and not (column in group.may_have_nan and b_hi == math.inf):
                flags[0, g] = True
            box[column] = (lo, hi)
            nulls = group.null_counts.get(column)
            flags[3, g] |= nulls is None or nulls > 0
            flags[1, g] |= nulls is not None and group.num_rows > 0 and nulls >= group.num_rows
            flags[2, g] |= column in group.may_have_nan or column not in group.box
        if flags[0, g]:
            continue
        for k, arg in enumerate(args):
            lower[g, k], upper[g, k], nan = _interval(arg, box)
            flags[2, g] |= nan or not (math.isfinite(lower[g, k]) and math.isfinite(upper[g, k]))
    return lower, upper, flags


def test_vectorised_regions_equal_the_per_row_group_definition():
    from types import SimpleNamespace

    from mlskip.skipper.row_group_regions import build_regions

    rng = np.random.default_rng(3)
    cols = ["a", "b", "c"]
    args = [
        AffineArg((("a", 1.0),), 0.0),  # a column (Arrow scans)
        AffineArg((("b", 1.0),), 0.0, ("col", "DOUBLE", "b")),
        AffineArg((("c", 1.0),), 0.0, ("cast", "FLOAT", ("cast", "DOUBLE", ("col", "DECIMAL(9,2)", "c")))),
        AffineArg((("a", 2.5), ("b", -1e-3), ("c", 0.0)), 7.0),  # linear
        AffineArg((("a", 1.0),), 1e17, ("sub", "DOUBLE", ("add", "DOUBLE", ("col", "DOUBLE", "a"), ("num", "DOUBLE", 1e17)), ("num", "DOUBLE", 1e17))),
        AffineArg((("d", 1.0),), 0.0),  # a column no row group has
    ]  # fmt: skip
    groups = []
    for _ in range(300):
        box, nulls = {}, {}
        for c in cols:
            if rng.uniform() < 0.9:
                lo = float(
                    rng.choice([rng.normal() * 10.0 ** rng.integers(-3, 40), -math.inf, 3e38])
                )
                hi = lo + float(rng.choice([0.0, abs(rng.normal()) * 100, math.inf]))
                box[c] = (lo, math.inf if math.isnan(hi) else hi)  # -inf + inf
            if rng.uniform() < 0.9:
                nulls[c] = int(rng.choice([0, 0, 3, 10]))
        nan = frozenset(c for c in cols if rng.uniform() < 0.2)
        groups.append(SimpleNamespace(num_rows=int(rng.choice([0, 10])), box=box,
                                      null_counts=nulls, may_have_nan=nan, halfspaces={}))  # fmt: skip
    for bounds in ({}, {"a": (-5.0, math.inf)}, {"b": (-math.inf, 1.0), "c": (0.0, 0.0)}):
        got = build_regions(groups, args, bounds)
        lower, upper, flags = _regions_one_group_at_a_time(groups, args, bounds)
        assert np.array_equal(got.lower, lower, equal_nan=True)
        assert np.array_equal(got.upper, upper, equal_nan=True)
        for name, want in zip(("empty", "all_null", "untrusted", "has_nulls"), flags, strict=True):
            assert np.array_equal(getattr(got, name), want), name
