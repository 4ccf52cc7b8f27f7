"""Skipping over s3:// files served by a real S3-compatible server (moto) on loopback.

The server runs in-process behind a small WSGI wrapper that counts the bytes
it serves and can inject faults (HTTP 500s, dropped connections, a credential
check). DuckDB reads through httpfs (loaded from its wheel), the planner
through pyarrow's S3 filesystem.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import mlskip
from mlskip.errors import SkippingFallbackWarning
from mlskip.skipper.remote import TAIL_BYTES, S3Options
from mlskip.verifier import Network, ReLU

# loopback only: the AWS SDKs must never ask an instance-metadata service for credentials
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
from moto import server as moto_server  # noqa: E402  (the dev extra's moto[server])
from werkzeug.serving import make_server  # noqa: E402  (moto[server] brings werkzeug)

N_ROWS = 200_000
KEY = "test-key"
SECRET = "test-secret"


@dataclass
class Server:
    """Counts GET body bytes per object and injects faults on demand."""

    port: int
    get_bytes: int = 0
    gets: int = 0
    heads: int = 0
    fail_gets: bool = False  # 500 on every GET of a data object
    fail_after: int | None = None  # 500 on data GETs after this many succeeded
    fail_times: int | None = None  # ... but only this many times (a transient fault)
    drop_gets: bool = False  # send part of the body, then close the connection
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self.lock:
            self.get_bytes = self.gets = self.heads = 0
        self.fail_gets = self.drop_gets = False
        self.fail_after = self.fail_times = None

    def should_fail(self) -> bool:
        with self.lock:
            if self.fail_gets:
                return True
            if self.fail_after is None:
                return False
            if self.fail_after > 0:
                self.fail_after -= 1
                return False
            if self.fail_times is None:
                return True
            self.fail_times -= 1
            return self.fail_times >= 0


def _wrap(app, state: dict):
    def wrapped(environ, start_response) -> Iterator[bytes]:
        server: Server = state["server"]
        method = environ["REQUEST_METHOD"]
        auth = environ.get("HTTP_AUTHORIZATION", "")
        # the bucket-level calls the fixture makes carry credentials too
        if f"Credential={KEY}/" not in auth:
            start_response("403 Forbidden", [("Content-Type", "application/xml")])
            yield (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InvalidAccessKeyId</Code>"
                b"<Message>The AWS Access Key Id you provided does not exist.</Message></Error>"
            )
            return
        data_get = method == "GET" and environ.get("PATH_INFO", "").endswith(".parquet")
        if data_get and server.should_fail():
            start_response("500 Internal Server Error", [("Content-Type", "application/xml")])
            yield b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
            return
        if method == "HEAD":
            with server.lock:
                server.heads += 1
        body = app(environ, start_response)
        try:
            sent = 0
            for chunk in body:
                if data_get:
                    with server.lock:
                        server.get_bytes += len(chunk)
                        server.gets += 1 if sent == 0 else 0
                    if server.drop_gets and sent + len(chunk) > 1024:
                        yield chunk[: 1024 - sent]
                        raise ConnectionAbortedError("injected: connection dropped")
                sent += len(chunk)
                yield chunk
        finally:
            if hasattr(body, "close"):
                body.close()

    return wrapped


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    state: dict = {}
    app = moto_server.DomainDispatcherApplication(moto_server.create_backend_app)
    httpd = make_server("127.0.0.1", 0, _wrap(app, state), threaded=True)
    state["server"] = srv = Server(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        httpd.shutdown()
        thread.join(10)


def make_table(seed: int, n: int = N_ROWS) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 100, n)
    b = 2 * a + rng.normal(0, 8, n)
    return pa.table({"id": np.arange(n), "a": a, "b": b, "s": [f"row{i:07d}" for i in range(n)]})


NET = Network.mlp(
    [(np.array([[0.02, 0.01]]), np.array([0.0])), (np.array([[1.0]]), np.array([0.0]))], ReLU()
)


@pytest.fixture(scope="module")
def store(server, tmp_path_factory):
    """Local files and the same bytes in bucket ``data`` (x.parquet, parts/p{0,1}.parquet)."""
    root = tmp_path_factory.mktemp("s3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlskip.write_parquet(
            make_table(1), root / "x.parquet", row_group_size=10_000, hulls=[("a", "b")],
            cluster_by=["a"],
        )  # fmt: skip
        for i in range(2):
            mlskip.write_parquet(
                make_table(10 + i, 40_000), root / f"p{i}.parquet", row_group_size=4_000,
                hulls=None, cluster_by=["b"],
            )  # fmt: skip
    opts = S3Options(access_key=KEY, secret_key=SECRET, endpoint=server.endpoint)
    from pyarrow import fs as pafs

    fs = pafs.S3FileSystem(
        access_key=KEY, secret_key=SECRET, endpoint_override=f"127.0.0.1:{server.port}",
        scheme="http", region="us-east-1", allow_bucket_creation=True,
    )  # fmt: skip
    fs.create_dir("data")

    def upload(local, key: str) -> None:
        with open(local, "rb") as src, fs.open_output_stream(f"data/{key}") as dst:
            shutil.copyfileobj(src, dst)

    upload(root / "x.parquet", "x.parquet")
    for i in range(2):
        upload(root / f"p{i}.parquet", f"parts/p{i}.parquet")
    return root, opts, fs, upload


@pytest.fixture(scope="module")
def cons(store):
    _, opts, _, _ = store
    on = mlskip.connect(s3=opts)
    off = mlskip.connect(s3=opts, skipping=False)
    local = mlskip.connect(skipping=False)
    for con in (on, off, local):
        con.register_model("f", NET)
    return on, off, local


def rows(con, sql: str) -> list:
    return sorted(con.sql(sql).fetchall())


QUERIES = [
    "SELECT id, s FROM {x} WHERE f(a, b) > 4.0",
    "SELECT id FROM {x} WHERE f(a, b) < 0.3 AND b > 1",
    "SELECT count(*), min(id), max(id) FROM {x} WHERE f(a, b) BETWEEN 2.0 AND 2.05",
    "SELECT id, a FROM {parts} WHERE f(a, b) > 4.0",
    "SELECT count(*) FROM {list} WHERE f(a, b) >= 0.2 AND f(a, b) <= 0.25",
]


def _sources(root, remote: bool) -> dict[str, str]:
    if remote:
        return {
            "x": "'s3://data/x.parquet'",
            "parts": "read_parquet('s3://data/parts/*.parquet')",
            "list": "read_parquet(['s3://data/parts/p0.parquet', 's3://data/parts/p1.parquet'])",
        }
    return {
        "x": f"'{root}/x.parquet'",
        "parts": f"read_parquet('{root}/p*.parquet')",
        "list": f"read_parquet(['{root}/p0.parquet', '{root}/p1.parquet'])",
    }


@pytest.mark.parametrize("query", QUERIES)
def test_results_equal_without_skipping_and_local(store, cons, server, query):
    root, _, _, _ = store
    on, off, local = cons
    remote_sql = query.format(**_sources(root, True))
    report = on.explain_skipping(remote_sql)
    assert report.rewritten and report.pruned > 0, report.reasons
    assert all("s3://" in f.path for f in report.files)
    assert "s3://" in on.rewrite(remote_sql)
    want = rows(local, query.format(**_sources(root, False)))
    assert rows(off, remote_sql) == want
    assert rows(on, remote_sql) == want


def test_skipping_reads_fewer_bytes(store, cons, server):
    on, off, _ = cons
    for con in (on, off):  # DuckDB would serve repeated reads from its cache
        con.execute("SET enable_external_file_cache = false")
    sql = "SELECT id, s FROM 's3://data/x.parquet' WHERE f(a, b) > 4.0"
    on.explain_skipping(sql)  # footer cached: count only the query's reads
    server.reset()
    got = rows(on, sql)
    with_skipping = server.get_bytes
    server.reset()
    assert rows(off, sql) == got and got
    without = server.get_bytes
    print(f"\nbytes served: {with_skipping} with skipping, {without} without")
    assert with_skipping < 0.25 * without


def test_planning_reads_only_footers(store, server):
    root, opts, _, _ = store
    con = mlskip.connect(s3=opts)
    con.register_model("f", NET)
    size = (root / "x.parquet").stat().st_size
    server.reset()
    report = con.explain_skipping("SELECT id FROM 's3://data/x.parquet' WHERE f(a, b) > 4.0")
    first = server.get_bytes
    assert report.pruned > 0
    print(f"\nplanning: {first} bytes in {server.gets} GET(s) of a {size}-byte file")
    # the planner's tail read, and DuckDB's own footer read when it binds the query
    assert 0 < first <= 2 * TAIL_BYTES and first < size / 25
    server.reset()
    con.explain_skipping("SELECT id FROM 's3://data/x.parquet' WHERE f(a, b) > 4.0")
    assert server.get_bytes == 0 and server.heads >= 1  # cached: identity by HEAD only


def test_replaced_object_is_planned_again(store, server):
    root, opts, fs, upload = store
    con = mlskip.connect(s3=opts)
    off = mlskip.connect(s3=opts, skipping=False)
    for c in (con, off):
        c.register_model("f", NET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlskip.write_parquet(make_table(5), root / "y1.parquet", row_group_size=10_000)
        mlskip.write_parquet(
            make_table(6), root / "y2.parquet", row_group_size=20_000, cluster_by=["a"]
        )
    sql = "SELECT id FROM 's3://data/y.parquet' WHERE f(a, b) > 4.0"
    upload(root / "y1.parquet", "y.parquet")
    first = con.explain_skipping(sql)
    assert rows(con, sql) == rows(off, sql)
    upload(root / "y2.parquet", "y.parquet")
    second = con.explain_skipping(sql)
    assert first.row_groups == 20 and second.row_groups == 10
    assert rows(con, sql) == rows(off, sql)


def test_server_errors_mid_read_are_errors(store, cons, server):
    on, _, _ = cons
    sql = "SELECT id, s FROM 's3://data/x.parquet' WHERE f(a, b) > 4.0"
    on.explain_skipping(sql)  # planned: only the scan meets the fault
    cursor = on.cursor()
    cursor.execute("SET http_retries = 1")
    cursor.execute("SET http_retry_wait_ms = 10")
    try:
        server.fail_gets = True
        with pytest.raises(duckdb.Error, match="data/x.parquet"):
            cursor.sql(sql).fetchall()
        server.fail_gets, server.drop_gets = False, True
        with pytest.raises(duckdb.Error, match="x.parquet"):
            cursor.sql(sql).fetchall()
    finally:
        server.reset()
    assert rows(on, sql) == rows(cons[1], sql)  # and all is well afterwards


def test_500s_after_some_reads_fail_the_query_and_transient_ones_are_retried(store, cons, server):
    on, off, _ = cons
    sql = "SELECT id, s FROM 's3://data/x.parquet' WHERE f(a, b) BETWEEN 1.0 AND 3.0"
    want = rows(off, sql)
    on.explain_skipping(sql)
    cursor = on.cursor()
    cursor.execute("SET enable_external_file_cache = false")
    cursor.execute("SET http_retries = 2")
    cursor.execute("SET http_retry_wait_ms = 10")
    try:
        server.fail_after = 3  # the first reads succeed, every later one fails
        with pytest.raises(duckdb.Error, match="data/x.parquet"):
            cursor.sql(sql).fetchall()  # an error, never part of the rows
        server.reset()
        server.fail_after, server.fail_times = 3, 1  # one failure: DuckDB retries
        assert rows(cursor, sql) == want
    finally:
        server.reset()


def test_planning_failure_falls_back_to_a_full_read(store, server):
    _, opts, _, _ = store
    con = mlskip.connect(s3=opts)
    con.register_model("f", NET)
    con.execute("SET http_retries = 1")
    sql = "SELECT count(*) FROM 's3://data/parts/p0.parquet' WHERE f(a, b) > 4.0"
    server.fail_gets = True
    try:
        report = con.explain_skipping(sql)
    finally:
        server.reset()
    # DuckDB cannot bind the query either: it runs as written and DuckDB reports the error
    assert not report.rewritten and any(
        "cannot read its footer" in r or "does not bind" in r for r in report.reasons
    )


def test_missing_bucket_and_bad_credentials_are_clear_errors(store, server):
    _, opts, _, _ = store
    con = mlskip.connect(s3=opts)
    con.register_model("f", NET)
    sql = "SELECT count(*) FROM 's3://no-such-bucket/x.parquet' WHERE f(a, b) > 4.0"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippingFallbackWarning)
        with pytest.raises(duckdb.Error, match="no-such-bucket/x.parquet"):
            con.sql(sql).fetchall()
    sql = "SELECT count(*) FROM 's3://data/x.parquet' WHERE f(a, b) > 4.0"
    for wrong in (
        S3Options(access_key="nobody", secret_key="x", endpoint=opts.endpoint),
        S3Options(endpoint=opts.endpoint),  # no credentials at all (none in the environment)
    ):
        bad = mlskip.connect(s3=wrong)
        bad.register_model("f", NET)
        report = bad.explain_skipping(sql)
        assert not report.rewritten
        assert any("cannot read its footer" in r or "does not bind" in r for r in report.reasons), (
            report.reasons
        )
        with pytest.raises(duckdb.Error, match=r"data/x\.parquet.*403"):
            bad.sql(sql).fetchall()


def test_arrow_scan_over_s3(store, server):
    root, opts, _, _ = store
    local = mlskip.scan(root / "x.parquet", NET, "> 4.0", inputs=["a", "b"])
    server.reset()
    remote = mlskip.scan("s3://data/x.parquet", NET, "> 4.0", inputs=["a", "b"], s3=opts)
    assert remote.num_rows > 0 and remote.sort_by("id").equals(local.sort_by("id"))
    size = (root / "x.parquet").stat().st_size
    assert server.get_bytes < 0.5 * size
    glob = mlskip.scan("s3://data/parts/*.parquet", NET, "> 4.0", inputs=["a", "b"], s3=opts)
    want = mlskip.scan([root / "p0.parquet", root / "p1.parquet"], NET, "> 4.0", inputs=["a", "b"])
    assert glob.num_rows == want.num_rows > 0
    dataset = mlskip.scan_dataset("s3://data/x.parquet", NET, "> 4.0", inputs=["a", "b"], s3=opts)
    kept = dataset.to_table(columns=["id"]).num_rows
    assert 0 < kept < N_ROWS and dataset.count_rows() == kept


@pytest.fixture(scope="module")
def plain_lake(store, tmp_path_factory):
    """Plain pyarrow-written objects (no mlskip footers) under s3://data/plain/."""
    import pyarrow.parquet as pq

    _, opts, fs, upload = store
    root = tmp_path_factory.mktemp("plain")
    for i in range(4):
        table = make_table(40 + i, 20_000).sort_by("a")
        pq.write_table(table, root / f"q{i}.parquet", row_group_size=2_000)
        upload(root / f"q{i}.parquet", f"plain/q{i}.parquet")
    return root, opts, fs, upload


def test_index_on_s3_plans_from_one_object_and_listing(plain_lake, server):
    """An index of plain objects, itself an object: planning reads it and lists the folder
    (no footer GET, no HEAD per file); results equal those without skipping; a replaced
    object's entry is not used."""
    import pyarrow.parquet as pq

    from mlskip.skipper.skip_index import build_index

    root, opts, _, upload = plain_lake
    index = "s3://data/indexes/plain.idx"
    report = build_index("s3://data/plain/*.parquet", index, s3=opts)
    assert report.files == 4 and not report.failed
    on = mlskip.connect(s3=opts, index=index)
    off = mlskip.connect(s3=opts, skipping=False)
    footers = mlskip.connect(s3=opts)
    for con in (on, off, footers):
        con.register_model("f", NET)
    sql = "SELECT id, a FROM read_parquet('s3://data/plain/*.parquet') WHERE f(a, b) > 4.0"
    want = rows(off, sql)
    assert rows(on, sql) == want and rows(footers, sql) == want
    planner = on.planner
    paths = [f"s3://data/plain/q{i}.parquet" for i in range(4)]
    planner.files_facts(paths)  # the index object is loaded once
    server.reset()
    facts = planner.files_facts(paths)
    assert all(f.whole is not None for f in facts)
    assert server.get_bytes == 0 and server.heads <= 1  # one LIST (and the index's HEAD)
    report = on.explain_skipping(sql)
    server.reset()
    assert on.changed_files(report) == [] and server.heads == 0  # after a query: one LIST
    assert on.explain_skipping(sql).pruned > footers.explain_skipping(sql).pruned
    # q1 replaced by other rows: its entry is stale, results still equal
    changed = make_table(99, 20_000).sort_by("b")
    pq.write_table(changed, root / "q1.parquet", row_group_size=2_000)
    upload(root / "q1.parquet", "plain/q1.parquet")
    want = rows(off, sql)
    assert rows(on, sql) == want
    stale = [f.path for f in on.explain_skipping(sql).files if any("stale" in x for x in f.limits)]
    assert stale == ["s3://data/plain/q1.parquet"]
    # the same lake through Dask (planned from the index on the workers, read from S3)
    import dask

    from mlskip.udf.dask_scan import read_parquet as dask_read_parquet

    with dask.config.set(scheduler="threads"):
        frame = dask_read_parquet(
            "s3://data/plain/*.parquet", NET, "> 4.0", inputs=["a", "b"], columns=["id", "a"],
            index=index, s3=opts,
        )  # fmt: skip
        got = sorted(frame.compute().itertuples(index=False, name=None))
    assert got == want
