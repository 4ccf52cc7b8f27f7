"""The ``mlskip`` command line: one entry point, one subcommand per job.

Heavy modules are imported inside the commands so ``mlskip --help`` is fast.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mlskip._version import __version__
from mlskip.errors import MlskipError

app = typer.Typer(
    name="mlskip",
    help="Skip Parquet row groups that an ML predicate provably cannot select.",
    no_args_is_help=True,
    add_completion=False,
)
tpch_app = typer.Typer(help="TPC-H / TPC-DS data generation (offline).", no_args_is_help=True)
app.add_typer(tpch_app, name="tpch")

console = Console()


def _fail(error: Exception) -> None:
    console.print(f"[bold red]error:[/] {error}")
    raise typer.Exit(2)


@app.command()
def version() -> None:
    """Print the mlskip version and the versions of the engines it uses."""
    import duckdb
    import pyarrow

    console.print(
        f"mlskip {__version__} (duckdb {duckdb.__version__}, pyarrow {pyarrow.__version__})"
    )


@tpch_app.command("generate")
def tpch_generate(
    suite: str = typer.Option("tpch", help="tpch or tpcds"),
    sf: float = typer.Option(0.1, help="scale factor"),
    out: Path | None = typer.Option(None, help="output directory (default: the cache)"),
    row_group_size: int = typer.Option(122_880, help="rows per Parquet row group"),
    tables: list[str] | None = typer.Option(None, "--tables", help="tables to write (default all)"),
) -> None:
    """Generate a TPC suite and write one Parquet file per table."""
    from mlskip.tpch.generate import generate_tpc

    start = time.perf_counter()
    try:
        paths = generate_tpc(
            suite, sf, out, row_group_size=row_group_size, tables=tables, progress=True
        )
    except MlskipError as error:
        _fail(error)
    import pyarrow.parquet as pq

    table = Table(title=f"{suite} sf={sf:g}, row groups of {row_group_size}")
    for column in ("table", "rows", "row groups", "path"):
        table.add_column(column)
    for name, path in paths.items():
        meta = pq.ParquetFile(path).metadata
        table.add_row(name, f"{meta.num_rows:,}", str(meta.num_row_groups), str(path))
    console.print(table)
    console.print(f"done in {time.perf_counter() - start:.1f} s")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
