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


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """The real command, as a user runs it (``python -m mlskip`` is the same program)."""
    return subprocess.run(
        [sys.executable, "-m", "mlskip", *args], capture_output=True, text=True, cwd=cwd
    )


def test_cli_input_errors_are_one_line_and_exit_non_zero(tmp_path):
    not_parquet = tmp_path / "bad.parquet"
    not_parquet.write_text("a,b\n")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n3,x,4\n")
    cases = [
        (["write", str(tmp_path / "missing.parquet"), str(tmp_path / "o.parquet")], "missing"),
        (["write", str(bad_csv), str(tmp_path / "o.parquet")], "bad.csv"),
        (["verify", str(not_parquet)], "bad.parquet"),
        (["explain", "SELEC 1"], "syntax error"),
        (["explain", f"SELECT count(*) FROM '{tmp_path / 'missing.parquet'}'"], "No files"),
    ]
    for args, named in cases:
        out = _cli(*args)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0], lines
        assert "Traceback" not in out.stdout + out.stderr
    assert not (tmp_path / "o.parquet").exists()  # a failed write leaves no target


def test_python_dash_m_runs_the_cli():
    out = _cli("version")
    assert out.returncode == 0 and mlskip.__version__ in out.stdout


def test_public_names_resolve_and_editors_see_the_same_ones():
    """Every public name resolves at run time, and the TYPE_CHECKING imports (what an
    editor or type checker sees) name exactly the lazy map's objects."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(mlskip.__file__).read_text())
    seen = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                for alias in imp.names:
                    seen[alias.name] = imp.module
    assert set(seen) == set(mlskip._LAZY)
    import importlib

    for name, module in seen.items():
        assert getattr(importlib.import_module(module), name) is getattr(mlskip, name), name
    for name in mlskip.__all__:
        assert getattr(mlskip, name) is not None
    # the public results of public calls are importable from the package
    from mlskip import FilePlan, ScanPlan, SkippingReport  # noqa: F401
