"""The differential SQL fuzzer (``mlskip selfcheck --sql``, mlskip/testing/sqlfuzz/): its oracle,
the default-CI slice and a longer campaign (seeds are fixed, so runs are repeatable)."""

from __future__ import annotations

import math
from decimal import Decimal

import duckdb
import pytest

from mlskip.testing import sqlfuzz
from mlskip.testing.sqlfuzz import Query, check_query, replay, run_campaign, same_rows

SLICE_TRIALS, SLICE_QUERIES = 50, 5  # 250 queries, about 40 s on 2 cores


class DropsARow:
    """A connection that loses the last row of every result (a planner bug, simulated)."""

    def __init__(self, con) -> None:
        self.con = con
        self.rows: list = []

    def sql(self, query: str):
        self.rows = self.con.sql(query).fetchall()[:-1]
        return self

    def execute(self, query: str, params=None):
        self.rows = self.con.execute(query, params).fetchall()[:-1]
        return self

    def fetchall(self) -> list:
        return self.rows


class Fine(DropsARow):
    """A connection that answers every query with one row (never raises)."""

    def sql(self, query: str):
        self.rows = [(1.0,)]
        return self


class Unstable(DropsARow):
    """A baseline whose result changes from one run to the next (a nondeterministic query)."""

    def __init__(self, con) -> None:
        super().__init__(con)
        self.runs = 0

    def sql(self, query: str):
        self.runs += 1
        self.rows = self.con.sql(query).fetchall()[: 5 - self.runs]
        return self


def test_oracle_detects_a_lost_row():
    con = duckdb.connect()
    query = Query("SELECT range AS r, range / 2 AS h FROM range(5)")
    assert check_query(con, con, query).status == "passed"
    result = check_query(DropsARow(con), con, query)
    assert result.status == "mismatch"
    assert "only without" in result.detail and "(4, 2.0)" in result.detail
    assert result.skipping == "4 rows" and result.baseline == "5 rows"
    # the same through execute() with parameters
    with_params = Query("SELECT range FROM range(5) WHERE range >= ?", params=[0])
    assert check_query(DropsARow(con), con, with_params).status == "mismatch"


def test_oracle_errors_and_flaky_baselines():
    con = duckdb.connect()
    bad = Query("SELECT * FROM no_such_table")
    assert check_query(con, con, bad).status == "passed"  # the same error class on both sides
    result = check_query(con, con, Query("SELECT 1"))
    assert result.status == "passed"

    class Raises(DropsARow):
        def sql(self, query: str):
            raise ValueError("zip() argument 2 is shorter than argument 1")

    result = check_query(Raises(con), con, Query("SELECT 1"))
    assert result.status == "mismatch" and result.skipping.startswith("ValueError")
    # a baseline that does not repeat itself marks the query flaky, not a mismatch
    result = check_query(con, Unstable(con), Query("SELECT * FROM range(5)"))
    assert result.status == "flaky"
    # a row error (a string that does not convert) only as written: listed as error_order;
    # any other error only as written, or an error only with skipping, is a mismatch
    row_error = Query("SELECT CAST(x AS DOUBLE) FROM (VALUES ('1'), ('ab')) t(x)")
    assert check_query(con, con, row_error).status == "passed"
    assert check_query(DropsARow(con), con, Query("SELECT 1")).status == "mismatch"
    result = check_query(Fine(con), con, row_error)
    assert result.status == "error_order"
    assert check_query(con, Fine(con), row_error).status == "mismatch"
    assert check_query(Fine(con), con, Query("SELECT * FROM no_such_table")).status == "mismatch"


def test_row_comparison():
    nan = math.nan
    assert same_rows([(1, nan, None), (2, 0.1, "x")], [(2, 0.1 + 1e-17, "x"), (1, nan, None)])
    assert same_rows([(1.0,)], [(1.0 + 1e-12,)])  # within 1e-9 relative
    assert not same_rows([(1.0,)], [(1.0 + 1e-6,)])
    assert not same_rows([(1,)], [(1.0,)])  # a result type changed
    assert not same_rows([(None,)], [(nan,)])
    assert not same_rows([(1,), (1,)], [(1,)])  # multisets, not sets
    assert same_rows([((1.0, nan),)], [((1.0, nan),)])  # list values (classifier outputs)
    assert not same_rows([(Decimal("1.5"),)], [(1.5,)])
    assert same_rows([(Decimal("1.5"), None)], [(Decimal("1.50"), None)])


def test_cli_dispatches_to_the_fuzzer(monkeypatch):
    from typer.testing import CliRunner

    from mlskip.cli import app

    seen = {}

    def fake_main(trials, seed, workers=1):
        seen.update(trials=trials, seed=seed, workers=workers)
        return seen.get("ok", True)

    monkeypatch.setattr(sqlfuzz, "main", fake_main)
    args = ["selfcheck", "--sql", "--trials", "3", "--seed", "7", "--workers", "2"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert seen == {"trials": 3, "seed": 7, "workers": 2}
    seen["ok"] = False
    assert CliRunner().invoke(app, args).exit_code == 1


def _assert_clean(campaign) -> None:
    assert not campaign.errors, campaign.summary()  # the fuzzer itself must not fail
    assert not campaign.mismatches, campaign.summary()


def test_sqlfuzz_default_slice():
    """A few hundred generated queries: no mismatch, and a fair share is actually planned
    (a planner that plans nothing would pass the oracle trivially)."""
    campaign = run_campaign(SLICE_TRIALS, seed=0, queries_per_trial=SLICE_QUERIES)
    assert len(campaign.queries) >= 0.9 * SLICE_TRIALS * SLICE_QUERIES
    _assert_clean(campaign)
    assert campaign.share("planned") >= 0.2, campaign.summary()
    assert campaign.share("pruned") > 0, campaign.summary()


@pytest.mark.parametrize(("seed", "index"), [(20004310, 3)])
def test_campaign_mismatches_replay_equal(seed, index):
    """Queries on which a campaign found a mismatch, replayed: now the same rows."""
    result = replay(seed, index)
    assert result is not None and result.status == "passed", result


def test_duckdb_pushdown_dropping_nan_rows_is_listed_apart():
    """Seed 23400228: DuckDB's own Parquet min-max pruning drops a NaN row that its
    semantics keeps (NaN > 412; Parquet's max leaves NaN out), so the query as written
    returns fewer rows than the rewrite. The oracle reruns the baseline with DuckDB's
    pushdowns off: equal to the rewrite, so listed as ``pushdown``, not as a mismatch."""
    result = replay(23400228, 0)
    assert result is not None and result.status == "pushdown", result


@pytest.mark.slow
def test_sqlfuzz_long_campaign():
    campaign = run_campaign(600, seed=100_000, workers=2, queries_per_trial=5)
    _assert_clean(campaign)
    assert campaign.share("planned") >= 0.2, campaign.summary()
