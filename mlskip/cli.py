"""The ``mlskip`` command line: one entry point, one subcommand per job.

Heavy modules are imported inside the commands so ``mlskip --help`` is fast.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

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
bench_app = typer.Typer(help="Benchmarks that print measured figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
zoo_app = typer.Typer(help="Filter models and their compressed variants.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
index_app = typer.Typer(
    help="Skip indexes: summaries of Parquet files mlskip did not write, kept apart.",
    no_args_is_help=True,
)
app.add_typer(index_app, name="index")

console = Console()


def report_json(report: Any) -> dict[str, Any]:
    """A skipping report as plain JSON data (totals, files, reasons, the SQL run)."""
    data = dataclasses.asdict(report)
    data.pop("identities", None)  # internal: file identities for the post-run check
    data.update(
        row_groups=report.row_groups,
        pruned=report.pruned,
        all_match=report.all_match,
        evaluated=report.evaluated,
        bytes_skipped=report.bytes_skipped,
    )
    return data


def _scripted(run: Any, as_json: bool) -> Any:
    """Run a benchmark; with ``--json`` its tables go to stderr and its figures, as one
    JSON document, to stdout (for scripts)."""
    import contextlib

    if not as_json:
        return run()
    with contextlib.redirect_stdout(sys.stderr):
        figures = run()
    print(json.dumps(figures, default=_jsonable, indent=2))
    return figures


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, paths and other values as JSON can hold them."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows as CSV with a header line, on stdout."""
    import csv

    writer = csv.DictWriter(
        sys.stdout, fieldnames=columns, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value))
    return value


def _fail(error: BaseException) -> None:
    """Print ``error`` as one ``error:`` line on stderr and exit with code 2."""
    from rich.markup import escape

    message = " ".join(str(error).split()) or type(error).__name__
    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}", highlight=False
    )
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

    from mlskip.tables import fitted_table

    rows = []
    for name, path in paths.items():
        meta = pq.ParquetFile(path).metadata
        rows.append((name, f"{meta.num_rows:,}", str(meta.num_row_groups), str(path)))
    title = f"{suite} sf={sf:g}, row groups of {row_group_size:,}"
    console.print(fitted_table(("table", "rows", "row groups", "path"), rows, console.width,
                               title=title, left=("table", "path")))  # fmt: skip
    console.print(f"done in {time.perf_counter() - start:.1f} s")


@app.command()
def demo(
    sf: float = typer.Option(0.1, help="TPC-H scale factor of the demo data"),
    row_group_size: int = typer.Option(10_000, help="rows per row group of the demo file"),
    out: Path | None = typer.Option(
        None, help="where to put the demo's files (default: a temp dir)"
    ),
) -> None:
    """Skipping on TPC-H lineitem: three ML-predicate queries with and without skipping."""
    from mlskip.tpch.demo import run_demo

    rows = run_demo(sf=sf, row_group_size=row_group_size, out_dir=out, console=console)
    if not all(r.identical for r in rows):
        console.print("[bold red]results with skipping differ from results without it[/]")
        raise typer.Exit(1)


def _connection(models: list[str], models_dir: Path | None, index: str | None = None):
    import mlskip

    con = mlskip.connect(models_dir=models_dir, index=index)
    for item in models:
        name, sep, path = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--model takes NAME=PATH, got {item!r}")
        con.register_model(name, path)
    return con


_MODEL_OPTION = typer.Option([], "--model", "-m", help="NAME=PATH of an ONNX model (repeatable)")
_SUMMARY_MODEL_OPTION = typer.Option(
    [], "--model", "-m",
    help="NAME=PATH of an ONNX model whose outputs to summarize per row group (repeatable)",
)  # fmt: skip
_MODEL_BYTES_OPTION = typer.Option(32, help="bytes per row group and summarized model")


def _summary_hooks(items: list[str], model_bytes: int, skip_missing: bool = False) -> Any:
    """The footer hooks of --model NAME=PATH options (None without any; ``skip_missing``:
    files lacking a model's columns get no summary of it, for index builds)."""
    from mlskip.udf.summarize_models import model_hooks

    models = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--model takes NAME=PATH, got {item!r}")
        models[name] = path
    return model_hooks(models, model_bytes, skip_missing)


_MODELS_DIR_OPTION = typer.Option(None, help="register every *.onnx file here under its stem")
_INDEX_OPTION = typer.Option(
    None, "--index", help="a skip index (mlskip index build) to plan from instead of footers"
)


@app.command()
def explain(
    sql: str = typer.Argument(..., help="the query"),
    model: list[str] = _MODEL_OPTION,
    models_dir: Path | None = _MODELS_DIR_OPTION,
    show_sql: bool = typer.Option(False, help="also print the rewritten SQL"),
    index: str | None = _INDEX_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON (for scripts)"),
    as_csv: bool = typer.Option(False, "--csv", help="print one CSV line per file (for scripts)"),
) -> None:
    """Show which row groups a query would prune, read without the model, or evaluate."""
    import duckdb

    try:
        con = _connection(model, models_dir, index)
        report = con.explain_skipping(sql)
        # a query DuckDB rejects (a typo, a missing file or column) is an error, as
        # running it would be; binding it reads footers only
        con.duckdb.extract_statements(sql)  # DuckDB's parse error names the query as written
        con.duckdb.execute(f"DESCRIBE {sql}")
    except (MlskipError, duckdb.Error) as error:
        _fail(error)
    if as_json:
        print(json.dumps(report_json(report), indent=2))
        return
    if as_csv:
        columns = ["path", "row_groups", "pruned", "all_match", "evaluated", "bytes_skipped",
                   "reason", "limits"]  # fmt: skip
        _csv([dataclasses.asdict(f) for f in report.files], columns)
        return
    console.print(report)
    if show_sql:
        console.print(report.sql, markup=False, highlight=False)


@app.command()
def query(
    sql: str = typer.Argument(..., help="the query"),
    model: list[str] = _MODEL_OPTION,
    models_dir: Path | None = _MODELS_DIR_OPTION,
    skipping: bool = typer.Option(True, help="plan and skip (off: evaluate every row)"),
    index: str | None = _INDEX_OPTION,
    limit: int = typer.Option(50, help="rows to print"),
    as_json: bool = typer.Option(
        False, "--json", help="print the rows as JSON lines, one object per row (for scripts)"
    ),
    as_csv: bool = typer.Option(False, "--csv", help="print the rows as CSV (for scripts)"),
) -> None:
    """Run a query with skipping and print its result.

    Rows are shown as DuckDB's own shell shows them: at most LIMIT rows (first and
    last) and the columns that fit the terminal."""
    import duckdb

    try:
        con = _connection(model, models_dir, index)
        con.skipping = skipping
        start = time.perf_counter()
        relation = con.sql(sql)
        result = relation.to_arrow_table() if relation is not None else None
        seconds = time.perf_counter() - start
    except (MlskipError, duckdb.Error) as error:
        _fail(error)
    if result is None:
        console.print(f"statement run in {seconds * 1e3:.0f} ms")
        return
    if as_json:
        for row in result.slice(0, limit).to_pylist():
            print(json.dumps(row, default=str))
        return
    if as_csv:
        _csv(result.slice(0, limit).to_pylist(), result.column_names)
        return
    sys.stdout.flush()
    shown = duckdb.connect().from_arrow(result)
    shown.show(max_rows=max(limit, 1), max_width=console.width)
    console.print(f"{result.num_rows:,} row(s); query took {seconds * 1e3:.0f} ms")


@app.command()
def write(
    source: Path = typer.Argument(..., help="input Parquet or CSV file"),
    target: Path = typer.Argument(..., help="output Parquet file with mlskip summaries"),
    row_group_size: int = typer.Option(122_880, help="rows per row group"),
    hull: list[str] = typer.Option(
        [], help="column pair A,B to summarise (repeatable; default auto)"
    ),
    hull_bytes: int = typer.Option(45, help="byte budget per row group and pair"),
    cluster_by: list[str] = typer.Option([], help="columns to cluster rows by (repeatable)"),
    partition_by: list[str] = typer.Option(
        [], help="write a hive-partitioned folder at TARGET by these columns (repeatable)"
    ),
    model: list[str] = _SUMMARY_MODEL_OPTION,
    model_bytes: int = _MODEL_BYTES_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print the write report as JSON"),
) -> None:
    """Rewrite a Parquet or CSV file with skipping summaries in its footer."""
    from mlskip.metadata import write_file

    pairs = [tuple(h.split(",", 1)) for h in hull] if hull else "auto"
    start = time.perf_counter()
    try:
        report = write_file(
            source, target, row_group_size=row_group_size, hulls=pairs,
            hull_bytes=hull_bytes, cluster_by=cluster_by or None,
            partition_by=partition_by or None,
            footer_hooks=_summary_hooks(model, model_bytes),
        )  # fmt: skip
    except _user_errors() as error:
        _fail(f"{source}: {error}" if str(source) not in str(error) else error)
    seconds = time.perf_counter() - start
    if as_json:
        print(json.dumps({**dataclasses.asdict(report), "seconds": seconds}, default=_jsonable))
    elif partition_by:
        console.print(
            f"{len(report.files)} partition file(s) under {report.root}: "
            f"{report.num_rows:,} rows, {report.num_row_groups:,} row groups, in {seconds:.1f} s",
            soft_wrap=True,
        )
    else:
        pairs = ", ".join(f"({a}, {b})" for a, b in report.pairs)
        hulls = f"polygons for {pairs}" if pairs else "boxes only (no column pair polygons)"
        console.print(
            f"wrote {report.path}: {report.num_rows:,} rows in {report.num_row_groups:,} row "
            f"group(s); {hulls}; footer {report.footer_bytes:,} bytes; "
            f"in {seconds:.1f} s",
            soft_wrap=True,
            highlight=False,
        )


def _index_report_line(report: Any) -> str:
    parts = [f"{report.files:,} file(s), {report.row_groups:,} row group(s)"]
    if report.kept or report.dropped:
        parts.append(
            f"{report.indexed:,} (re)indexed, {report.kept:,} unchanged, {report.dropped:,} dropped"
        )
    parts.append(f"{report.from_footers:,} from their own mlskip footers")
    parts.append(f"index {report.index_bytes:,} bytes")
    return f"{report.index}: " + "; ".join(parts) + f"; in {report.seconds:.1f} s"


@index_app.command("build")
def index_build(
    paths: list[str] = typer.Argument(..., help="Parquet files, globs or s3:// URLs to index"),
    index: str = typer.Option(..., "--index", help="the index to write (local or s3://)"),
    hulls: str = typer.Option(
        "auto", help="'auto', 'none', or column pairs a:b,c:d to summarize with polygons"
    ),
    hull_bytes: int = typer.Option(45, help="byte budget per row group and pair"),
    workers: int = typer.Option(1, help="processes that read files (Dask), 1: this one"),
    model: list[str] = _SUMMARY_MODEL_OPTION,
    model_bytes: int = _MODEL_BYTES_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print the build report as JSON"),
) -> None:
    """Index Parquet files that carry no mlskip summaries (any writer, any store)."""
    from mlskip.skipper.skip_index import build_index

    pairs = _hulls_option(hulls)
    _index_job(
        lambda: build_index(
            paths,
            index,
            hulls=pairs,
            hull_bytes=hull_bytes,
            workers=workers,
            footer_hooks=_summary_hooks(model, model_bytes, skip_missing=True),
        ),  # fmt: skip
        as_json,
    )


def _index_job(run: Any, as_json: bool) -> None:
    """Run an index build or refresh; print its report (a line, or JSON) and warn about
    the files it could not read."""
    from mlskip.skipper.skip_index import warn_failed

    try:
        report = run()
    except _user_errors() as error:
        _fail(error)
    warn_failed(report)
    if as_json:
        print(json.dumps(dataclasses.asdict(report), default=_jsonable))
    else:
        console.print(_index_report_line(report), soft_wrap=True, highlight=False)


def _hulls_option(text: str) -> Any:
    if text == "auto":
        return "auto"
    if text.lower() == "none":
        return None
    pairs = [tuple(p.split(":", 1)) for p in text.split(",") if p]
    if any(len(p) != 2 for p in pairs):
        raise typer.BadParameter(f"--hulls takes auto, none or a:b,c:d; got {text!r}")
    return pairs


@index_app.command("refresh")
def index_refresh(
    index: str = typer.Option(..., "--index", help="the index to bring up to date"),
    workers: int = typer.Option(1, help="processes that read files (Dask), 1: this one"),
    model: list[str] = _SUMMARY_MODEL_OPTION,
    model_bytes: int = _MODEL_BYTES_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print the refresh report as JSON"),
) -> None:
    """Re-index changed and new files of an index's sources and drop removed ones."""
    from mlskip.skipper.skip_index import refresh_index

    hooks = _summary_hooks(model, model_bytes, skip_missing=True)
    _index_job(lambda: refresh_index(index, workers=workers, footer_hooks=hooks), as_json)


@index_app.command("show")
def index_show(
    index: str = typer.Option(..., "--index", help="the index to describe"),
    as_json: bool = typer.Option(False, "--json", help="print the coverage as JSON"),
) -> None:
    """What an index covers: files, row groups, rows, bytes and polygon pairs."""
    from mlskip.skipper.skip_index import show_index

    try:
        coverage = show_index(index)
    except _user_errors() as error:
        _fail(error)
    if as_json:
        print(json.dumps(dataclasses.asdict(coverage), default=_jsonable))
        return
    console.print(
        f"{coverage.index}: {coverage.files:,} file(s), {coverage.row_groups:,} row group(s), "
        f"{coverage.rows:,} rows, {coverage.bytes:,} bytes; {coverage.from_footers:,} "
        f"indexed from their own footers; built {coverage.built}",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"sources: {', '.join(coverage.sources)}", soft_wrap=True, highlight=False)
    for pair, files in sorted(coverage.pairs.items(), key=lambda kv: -kv[1]):
        console.print(f"  polygons for ({pair.replace('|', ', ')}) in {files:,} file(s)")
    if not coverage.pairs:
        console.print("  no polygons (boxes and NaN flags only)")
    for name, files in sorted(coverage.models.items()):
        console.print(f"  outputs of model {name} summarized in {files:,} file(s)")


@app.command()
def verify(
    files: list[Path] = typer.Argument(..., help="Parquet files written by mlskip"),
    footer_key: str | None = typer.Option(
        None, help="key the footers were signed with (default $MLSKIP_FOOTER_KEY)"
    ),
    as_json: bool = typer.Option(
        False, "--json", help="print one JSON object per file (for scripts)"
    ),
    as_csv: bool = typer.Option(False, "--csv", help="print one CSV line per file (for scripts)"),
) -> None:
    """Read each file's data and check that every row lies in its footer's regions.

    Catches stale footers the footer-only checks cannot see (a rewrite that keeps
    every row count, statistic and row-group size). Exit code 1 if any row lies
    outside, or a footer is not trusted.
    """
    from rich.markup import escape

    from mlskip.metadata import audit_file

    failed = False
    rows: list[dict[str, Any]] = []
    for path in files:
        try:
            report = audit_file(path, footer_key=footer_key)
        except _user_errors() as error:
            _fail(f"{path}: {error}" if str(path) not in str(error) else error)
        passed = report.ok and report.status in ("ok", "no-summaries")
        failed |= not passed
        if as_csv:
            rows.append({**dataclasses.asdict(report), "path": str(path), "passed": passed})
            continue
        if as_json:
            print(json.dumps({**dataclasses.asdict(report), "passed": passed}))
            continue
        for note in report.warnings:
            console.print(f"[yellow]warning:[/] {escape(note)}")
        for line in report.violations:
            console.print(f"{path}: {line}", markup=False, highlight=False)
        if report.status == "no-summaries" and not report.violations:
            console.print(
                f"{escape(str(path))}: no mlskip summaries to check (plain Parquet: its "
                "min-max statistics are Parquet's own)"
            )
        elif report.ok and report.status == "ok":
            console.print(
                f"{path}: ok ({report.rows:,} rows in {report.row_groups} row groups "
                "inside their regions)"
            )
        else:
            why = "rows outside their regions" if report.violations else "footer not trusted"
            console.print(f"[bold red]{escape(str(path))}: {why}[/] (status {report.status})")
    if as_csv:
        _csv(rows, ["path", "passed", "status", "row_groups", "rows", "violations", "warnings"])
    if failed:
        raise typer.Exit(1)


@app.command()
def selfcheck(
    trials: int = typer.Option(200, help="random end-to-end cases to run"),
    seed: int = typer.Option(0, help="first seed (trials use seed, seed+1, ...)"),
    oracle: str = typer.Option(
        "none", help="'marabou': also check a sample of each trial's verdicts with Marabou"
    ),
    workers: int = typer.Option(1, help="processes running trials side by side"),
    sql: bool = typer.Option(
        False,
        "--sql",
        help="differential SQL fuzzer instead (mlskip/testing/sqlfuzz/): random "
        "files, models and queries, with skipping vs skipping=False",
    ),
    margin: bool = typer.Option(
        False,
        "--margin",
        help="the verifier's float32 bounds against ONNX Runtime instead (tpch/marginfuzz.py): "
        "random ONNX models, boxes up to float32 overflow, points evaluated by the runtime",
    ),
) -> None:
    """Randomized soundness campaign: results with skipping equal results without."""
    if margin:
        from mlskip.testing.marginfuzz import main as run_marginfuzz

        if not run_marginfuzz(trials, seed, workers=workers):
            raise typer.Exit(1)
        return
    if sql:
        from mlskip.testing.sqlfuzz import main as run_sqlfuzz

        if not run_sqlfuzz(trials, seed, workers=workers):
            raise typer.Exit(1)
        return
    from mlskip.testing.selfcheck import main as run_selfcheck

    oracle_name = None if oracle == "none" else oracle
    if not run_selfcheck(trials, seed, oracle=oracle_name, workers=workers):
        raise typer.Exit(1)


@bench_app.command("verifier")
def bench_verifier(
    quick: bool = typer.Option(False, help="fewer regions and networks"),
    seed: int = typer.Option(0),
    auto_lirpa_only: bool = typer.Option(
        False, help="only mlskip next to auto_LiRPA (needs `make auto-lirpa`)"
    ),
    as_json: bool = typer.Option(
        False, "--json", help="tables on stderr, the figures as JSON on stdout (for scripts)"
    ),
) -> None:
    """Regions per second and decisions per method on random MLPs and boxes; mlskip next
    to auto_LiRPA (bounds and speed) when it is importable."""
    if auto_lirpa_only:
        from mlskip.tpch.bench_verifier import bench_side_by_side

        if _scripted(lambda: bench_side_by_side(quick=quick, seed=seed), as_json) is None:
            raise typer.Exit(1)
        return
    from mlskip.tpch.bench_verifier import run_bench

    _scripted(lambda: run_bench(quick=quick, seed=seed), as_json)


@bench_app.command("small-files")
def bench_small_files(
    run: Path = typer.Option(
        ..., help="output folder of `mlskip bench paper --protocol reference --out DIR`"
    ),
    queries: int = typer.Option(3, help="filters per model, spread over selectivity"),
    repeats: int = typer.Option(7, help="interleaved repetitions (medians reported)"),
    as_json: bool = typer.Option(
        False, "--json", help="tables on stderr, the figures as JSON on stdout (for scripts)"
    ),
) -> None:
    """Planning plus query vs the query without skipping on MLSkip-sized files (100 row
    groups of 1,000 rows): cold (new connection) and warm."""
    from mlskip.tpch.small_files import run as run_small_files

    _scripted(lambda: run_small_files(run, per_model=queries, repeats=repeats), as_json)


@bench_app.command("first-query")
def bench_first_query(
    repeats: int = typer.Option(5, help="fresh processes of each kind (interleaved)"),
    byte_compile: bool = typer.Option(
        True,
        help="byte-compile mlskip's modules first, as pip does for an installed package "
        "(an editable install under PYTHONDONTWRITEBYTECODE compiles them in every process)",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="tables on stderr, the figures as JSON on stdout (for scripts)"
    ),
) -> None:
    """The first query of a fresh process: plain DuckDB + ONNX Runtime vs mlskip."""
    from mlskip.tpch.first_query import run

    _scripted(lambda: run(repeats=repeats, byte_compile=byte_compile), as_json)


@bench_app.command("sql")
def bench_sql(
    sf: float = typer.Option(1.0, help="TPC-H scale factor"),
    row_group_size: int = typer.Option(122_880, help="rows per row group"),
    repeats: int = typer.Option(3, help="interleaved repetitions (medians reported)"),
    quick: bool = typer.Option(False, help="SF 0.1, 2 repetitions"),
    as_json: bool = typer.Option(
        False, "--json", help="tables on stderr, the figures as JSON on stdout (for scripts)"
    ),
) -> None:
    """Model rows/s inside DuckDB (torch vs ONNX UDF) and end-to-end skipping speedups."""
    from mlskip.tpch.bench_udf import run_sql_bench

    _scripted(
        lambda: run_sql_bench(sf=sf, row_group_size=row_group_size, repeats=repeats, quick=quick),
        as_json,
    )


@bench_app.command("summaries")
def bench_summaries(
    out: Path = typer.Option(Path("out/summaries"), help="folder for REPORT.md and results"),
    sf: float = typer.Option(1.0, help="TPC scale factor of the tables"),
    model: list[str] = typer.Option([], help="reference model spec names (default: all 10)"),
    budget: list[int] = typer.Option([], help="bytes per row group and model (default 8 16 32)"),
    quick: bool = typer.Option(False, help="two models, the zoo's quick variants, fewer epochs"),
    variants: bool = typer.Option(True, help="also measure the zoo variants of each model"),
    zoo_quick: bool = typer.Option(False, help="the zoo's quick list of variants"),
    epochs: int = typer.Option(0, help="training epochs (default 150, quick 60)"),
    cost: bool = typer.Option(True, help="also time writing and planning with summaries"),
    pieces: list[int] = typer.Option(
        [],
        help="larger budgets for the variants' summary path (pieces per row group; default 1024)",
    ),
    e2e: bool = typer.Option(
        False, help="also time queries end to end on lineitem with and without summaries"
    ),
    e2e_only: bool = typer.Option(False, help="only the end-to-end stage (run it alone)"),
) -> None:
    """Model-aware summaries on MLSkip's protocol: pruned share of skippable blocks per
    byte budget, alone and with hulls, for each model and its zoo variants; their cost."""
    from mlskip.tpch.bench_summaries import SummaryBenchConfig, run

    cfg = SummaryBenchConfig(sf=sf, variants=variants, quick=quick or zoo_quick)
    if quick:
        cfg.models, cfg.epochs = ("lineitem_disc_price_2in", "store_sales_net_profit_3in"), 60
    if epochs:
        cfg.epochs = epochs
    if model:
        cfg.models = tuple(model)
    if budget:
        cfg.budgets = tuple(budget)
    if pieces:
        cfg.pieces = tuple(pieces)
    if e2e_only:
        cfg.models, cost, e2e = (), False, True
    try:
        path = run(cfg, out, cost=cost, e2e=e2e)
    except _user_errors() as error:
        _fail(error)
    console.print(path.read_text(), soft_wrap=True, highlight=False)


@bench_app.command("index")
def bench_index(
    part: str = typer.Option("all", help="planning, e2e or all"),
    row_groups: str = typer.Option(
        "1000,10000,100000,1000000", help="planning: lake sizes in row groups"
    ),
    models: str = typer.Option("4-32-1,4-32-32-1", help="planning: random MLPs to plan"),
    hulls: str = typer.Option(
        "auto,none", help="planning: indexes built with polygons (auto), without (none)"
    ),
    real_row_groups: int = typer.Option(
        10_000, help="planning: larger lakes are copies of the files of this one"
    ),
    dask: bool = typer.Option(True, help="planning: the index on a 2-worker LocalCluster"),
    s3_files: int = typer.Option(10_000, help="planning: objects on moto S3 (0: no S3)"),
    budget: float = typer.Option(
        300.0,
        help="planning: skip a planner where its cost per row group on a smaller lake "
        "predicts more seconds than this",
    ),
    sf: float = typer.Option(1.0, help="e2e: TPC-H / TPC-DS scale factor"),
    files: int = typer.Option(100, help="e2e: files each table is split into"),
    row_group_size: int = typer.Option(10_000, help="e2e: rows per row group"),
    repeats: int = typer.Option(3, help="repetitions (planning: cold; e2e: warm runs)"),
    work: Path | None = typer.Option(None, help="keep lakes and files here (default: a temp dir)"),
    as_json: bool = typer.Option(
        False, "--json", help="tables on stderr, the figures as JSON on stdout (for scripts)"
    ),
) -> None:
    """Skip index: planning time over lakes of 1k-1M row groups (footers, index, Dask,
    S3) and end-to-end scans of TPC-H / TPC-DS with mlskip.dask, Dask and mlskip SQL."""
    from mlskip.tpch.bench_index import HULLS, MODELS, E2eConfig, PlanningConfig, run

    def names(text: str, known: Any = None) -> tuple[str, ...]:
        got = tuple(x.strip() for x in text.split(",") if x.strip())
        unknown = [x for x in got if known is not None and x not in known]
        if unknown:
            raise typer.BadParameter(f"{unknown[0]!r} is not one of {', '.join(known)}")
        return got

    if part not in ("planning", "e2e", "all"):
        raise typer.BadParameter(f"--part takes planning, e2e or all; got {part!r}")

    planning = PlanningConfig(
        row_groups=tuple(int(x) for x in names(row_groups)), models=names(models, MODELS),
        hulls=names(hulls, HULLS), real_row_groups=real_row_groups, dask=dask, s3_files=s3_files,
        budget=budget, repeats=repeats,
    )  # fmt: skip
    e2e = E2eConfig(sf=sf, files=files, row_group_size=row_group_size, repeats=repeats)
    _scripted(lambda: run(part, planning, e2e, work), as_json)


@bench_app.command(
    "paper",
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
def bench_paper(ctx: typer.Context) -> None:
    """The MLSkip paper's experiment and beyond (--protocol reference|sweep, --quick,
    --out DIR, ...; --help lists every option): effectiveness, exact limits, timings, e2e."""
    from mlskip.tpch.paper import main

    path = main(list(ctx.args), prog="mlskip bench paper")
    console.print(f"report {path}")


@zoo_app.command("build")
def zoo_build(
    out: Path = typer.Option(Path("zoo"), help="output directory"),
    quick: bool = typer.Option(False, help="3 models, fewer settings"),
    trees: bool = typer.Option(
        True,
        help="also XGBoost, LightGBM and random-forest models and their variants "
        "(needs mlskip[trees])",
    ),
    spec: list[str] = typer.Option([], help="only these models (repeatable)"),
) -> None:
    """Train the filter models and derive their compressed variants (ONNX)."""
    from mlskip.model_zoo.build import build_zoo

    path = build_zoo(out, quick=quick, progress=True, trees=trees, specs=spec or None)
    console.print(f"manifest: {path}")


@zoo_app.command("report")
def zoo_report(
    out: Path = typer.Option(Path("zoo"), help="zoo directory (built first if empty)"),
    quick: bool = typer.Option(False, help="build a quick zoo if none exists"),
) -> None:
    """Measure every variant: size, accuracy, speed, verification and pruning."""
    from mlskip.model_zoo.report import zoo_report as run_report

    path = run_report(out, quick=quick, progress=True)
    # Markdown as written: not re-wrapped to the terminal's width, no markup read in it
    console.print(path.read_text(), soft_wrap=True, markup=False, highlight=False)


# errors that come from what the user gave (a missing or unreadable file, a file that
# is not Parquet or CSV, a query DuckDB rejects): one "error:" line and exit code 2,
# never a traceback; anything else is a bug in mlskip and keeps its traceback
def _user_errors() -> tuple[type[BaseException], ...]:
    import duckdb
    import pyarrow as pa

    return (MlskipError, OSError, pa.ArrowException, duckdb.Error)


def main() -> None:
    """The ``mlskip`` command (also ``python -m mlskip``)."""
    import sys

    try:
        app()
    except _user_errors() as error:
        try:
            _fail(error)
        except typer.Exit as done:
            sys.exit(done.exit_code)


if __name__ == "__main__":
    main()
