"""Every snippet of the README runs as written: the Python blocks are executed in order
in a fresh folder (the S3 block against a local S3 server at the endpoint it names), and
every `mlskip ...` command line is parsed by the CLI (cheap ones are also run)."""

from __future__ import annotations

import os
import re
import shlex
import socket
from pathlib import Path

import pytest
import typer
from typer._click import ClickException  # typer 0.29 vendors click
from typer.testing import CliRunner

from mlskip.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == language]


def command_lines() -> list[list[str]]:
    lines = []
    for body in blocks("bash"):
        for line in body.splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part)
                if words and words[0] == "mlskip":
                    lines.append(words[1:])
    return lines


def parse(args: list[str]) -> None:
    """Parse ``mlskip ARGS`` as the CLI would, without running it (click raises on an
    unknown command or option, a missing argument, or a value of the wrong type)."""
    command, parent, name, rest = typer.main.get_command(app), None, "mlskip", list(args)
    while hasattr(command, "list_commands") and rest and not rest[0].startswith("-"):
        ctx = command.make_context(name, [], parent=parent, resilient_parsing=True)
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            raise ClickException(f"no command {rest[0]!r}")
        parent, name, command, rest = ctx, rest[0], sub, rest[1:]
    try:
        command.make_context(name, rest, parent=parent)
    except typer.Exit:  # --help
        pass


@pytest.mark.parametrize("args", command_lines(), ids=" ".join)
def test_every_command_line_parses(args):
    """Subcommands and options exist as the README writes them."""
    parse(args)


def test_the_parser_check_can_fail():
    for bad in (["write", "a", "b", "--nope"], ["bench", "paperx"], ["query"]):
        with pytest.raises(ClickException):
            parse(bad)


@pytest.mark.parametrize("args", [["--help"], ["version"]])
def test_cheap_commands_run(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _block(marker: str) -> str:
    """The README's Python block that holds ``marker``."""
    found = [body for body in blocks("python") if marker in body]
    assert len(found) == 1, f"one README block with {marker!r}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def first_block(tmp_path_factory):
    """The namespace and folder after the README's first Python block."""
    folder = tmp_path_factory.mktemp("readme")
    before = os.getcwd()
    os.chdir(folder)
    try:
        namespace: dict = {"__name__": "readme"}
        exec(compile(blocks("python")[0], "README.md (Python)", "exec"), namespace)  # noqa: S102
        yield namespace, folder
    finally:
        os.chdir(before)


def test_python_snippets_run_as_written(first_block, monkeypatch):
    namespace, folder = dict(first_block[0]), first_block[1]
    monkeypatch.chdir(folder)
    python = [blocks("python")[0], _block("S3Options")]
    con, sql = namespace["con"], namespace["sql"]
    rows = con.sql(sql).fetchall()
    assert rows[0][0] > 0 and con.explain_skipping(sql).pruned > 0
    assert (
        namespace["mlskip"]
        .scan_polars("lineitem.parquet", "price.onnx", "> 90000", inputs=namespace["inputs"])
        .collect()
        .height
        == rows[0][0]
    )

    # the S3 block, against a local S3-compatible server at the endpoint it names
    endpoint = re.search(r'endpoint="http://127\.0\.0\.1:(\d+)"', python[1])
    assert endpoint is not None
    port = int(endpoint.group(1))
    if not _port_free(port):
        pytest.skip(f"port {port} (the README's S3 endpoint) is in use")
    import boto3
    from moto import server as moto_server
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, moto_server.DomainDispatcherApplication(
        moto_server.create_backend_app), threaded=True)  # fmt: skip
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="...", aws_secret_access_key="...")  # fmt: skip
        s3.create_bucket(Bucket="bucket")
        s3.upload_file("lineitem.parquet", "bucket", "lineitem.parquet")
        s3.upload_file("lineitem.parquet", "bucket", "lineitem/part-0.parquet")
        exec(compile(python[1], "README.md (S3)", "exec"), namespace)  # noqa: S102
        remote = namespace["con"].sql(sql.replace("'lineitem.parquet'",
                                                  "'s3://bucket/lineitem/*.parquet'"))  # fmt: skip
        assert remote.fetchall() == rows
    finally:
        server.shutdown()


def test_tree_snippet_runs_and_skips(first_block, monkeypatch):
    """The tree-ensemble block: both models register, prune, and count as without skipping."""
    namespace, folder = dict(first_block[0]), first_block[1]
    monkeypatch.chdir(folder)
    exec(compile(_block("XGBRegressor"), "README.md (trees)", "exec"), namespace)  # noqa: S102
    con, sql = namespace["con"], namespace["tree_sql"]
    assert con.explain_skipping(sql).pruned > 0
    plain = namespace["mlskip"].connect(skipping=False)
    plain.register_model("net_price", namespace["net_price"])
    assert con.sql(sql).fetchall() == plain.sql(sql).fetchall()


def test_lake_snippet_runs(first_block, monkeypatch):
    namespace, folder = dict(first_block[0]), first_block[1]
    monkeypatch.chdir(folder)
    exec(compile(_block("build_index"), "README.md (lake)", "exec"), namespace)  # noqa: S102
    con, sql = namespace["con"], namespace["lake_sql"]
    assert con.sql(sql).fetchall()[0][0] == len(namespace["frame"].compute())
