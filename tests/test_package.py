"""The package: one import root, a fast import without torch, a working CLI."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

import mlskip
from mlskip.cli import app


def test_import_does_not_load_torch_or_claim_generic_names():
    code = (
        "import sys, mlskip; "
        "bad = [m for m in ('torch', 'metadata', 'udf', 'tpch', 'verifier', 'skipper') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_public_name_is_an_attribute_error():
    try:
        mlskip.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("expected AttributeError")


def test_cli_lists_subcommands_and_version():
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("version", "tpch"):
        assert command in result.output
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and mlskip.__version__ in result.output


def test_cli_unknown_suite_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(
        app, ["tpch", "generate", "--suite", "tpcx", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown suite 'tpcx'" in result.output


def test_cli_bench_paper_takes_the_benchmark_options():
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "paper", "--help"])
    assert result.exit_code == 0
    for option in ("--protocol", "--setting", "--e2e-only", "--report-only", "--out"):
        assert option in result.output
    result = runner.invoke(app, ["bench", "paper", "--protocol", "nope", "--out", "x"])
    assert result.exit_code == 2 and "invalid choice: 'nope'" in result.output
