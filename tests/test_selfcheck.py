"""The randomized soundness campaign: every trial must pass (seeds are fixed, so CI is repeatable)."""

from __future__ import annotations

import warnings

import pytest

from mlskip.tpch.selfcheck import run_campaign, summarize


def _campaign(trials: int, seed: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_campaign(trials, seed, progress=False)
    assert all(r.ok for r in results), summarize(results, 0.0)
    assert sum(r.pruned for r in results) > 0  # the campaign does exercise skipping


def test_campaign_default_run():
    _campaign(150, seed=0)


@pytest.mark.slow
def test_campaign_long():
    _campaign(2000, seed=10_000)
