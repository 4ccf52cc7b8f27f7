"""mlskip.dask: the Dask DataFrame of the qualifying rows equals Dask's own read with the
model applied and ``mlskip.scan``; pruned row groups are never read; planning and reading
run as Dask tasks (threaded scheduler, and a distributed cluster of two processes)."""

from __future__ import annotations

import functools
import shutil
import warnings

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mlskip
import mlskip.dask
from mlskip.errors import MlskipError, ModelInputError, PredicateError
from mlskip.udf import arrow_scan, dask_scan
from mlskip.udf.model import prepare_model
from mlskip.udf.runtime import make_runner
from mlskip.verifier import Network
from tests.test_skipping_e2e import make_net, make_table

INPUTS = ["a", "b"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two files with mlskip footers (1,000- and 2,500-row row groups) and a plain one."""
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("dask")
    table = make_table(rng, 30_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlskip.write_parquet(
            table.slice(0, 15_000),
            root / "m1.parquet",
            row_group_size=1_000,
            hulls=[("a", "b")],
            cluster_by=["a"],
        )
        mlskip.write_parquet(
            table.slice(15_000, 10_000), root / "m2.parquet", row_group_size=2_500, cluster_by=["b"]
        )
    pq.write_table(table.slice(25_000), root / "plain.parquet", row_group_size=1_000)
    return root, table


@pytest.fixture(scope="module")
def net():
    return make_net(np.random.default_rng(5), 2)


@pytest.fixture(autouse=True)
def threaded(request):
    """The threaded scheduler, except for the test that brings a distributed client."""
    if "client" in request.fixturenames:
        yield
        return
    with dask.config.set(scheduler="threads"):
        yield


def threshold(table, net, q: float) -> float:
    y = net.evaluate(np.column_stack([table.column(c).to_numpy() for c in INPUTS]))[:, 0]
    return float(np.quantile(y, q))


@functools.lru_cache(maxsize=4)
def runner_of(onnx: bytes):
    return make_runner(prepare_model(onnx))


def evaluate(frame: pd.DataFrame, onnx: bytes, inputs: list[str], classifier: bool):
    """``frame`` with the model's output ``y`` (its argmax for a classifier)."""
    x = frame[inputs].to_numpy(dtype=np.float32)  # a NULL reads NaN: never holds
    y = runner_of(onnx)(x) if len(frame) else np.zeros((0, 3 if classifier else 1), np.float32)
    return frame.assign(y=y.argmax(axis=1) if classifier else y[:, 0].astype(np.float64))


def dask_reference(paths, net, inputs, query: str, classifier: bool = False) -> pd.DataFrame:
    """Dask's own read, the model evaluated on every row (ONNX Runtime, float32), filtered
    by ``query`` on its output ``y``."""
    onnx = prepare_model(net).onnx_bytes
    frame = dd.read_parquet(paths).map_partitions(evaluate, onnx, list(inputs), classifier)
    return frame.query(query).drop(columns="y").compute()


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("s").reset_index(drop=True)


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(tidy(got), tidy(want))


def scan_frame(*args, **kwargs) -> pd.DataFrame:
    return tidy(mlskip.scan(*args, **kwargs).to_pandas())


@pytest.mark.parametrize(
    "op, q, inputs",
    [
        (">", 0.999, INPUTS),
        ("<", 0.3, INPUTS),
        ("between", 0.5, INPUTS),
        (">", 0.5, ["a_null", "b"]),
    ],
)
def test_rows_equal_dask_and_scan(files, net, op, q, inputs):
    root, table = files
    t = threshold(table, net, q)
    hi = t + abs(t) * 0.05 + 0.1
    text = f"between {t!r} and {hi!r}" if op == "between" else f"{op} {t!r}"
    query = f"y >= {t!r} and y <= {hi!r}" if op == "between" else f"y {op} {t!r}"
    frame = mlskip.dask.read_parquet(str(root / "*.parquet"), net, text, inputs=inputs)
    got = frame.compute()
    assert list(got.columns) == table.column_names
    assert len(got) > 0 and len(got) < table.num_rows
    assert_same_rows(got, dask_reference(str(root / "*.parquet"), net, inputs, query))
    scanned = scan_frame(str(root / "*.parquet"), net, text, inputs=inputs)
    pd.testing.assert_frame_equal(tidy(got), scanned, check_dtype=False)
    # meta (no partition computed) and partitions agree on the schema
    pd.testing.assert_series_equal(frame.dtypes, got.dtypes)


def test_dtypes_follow_dask_read_parquet(tmp_path, net):
    """Strings, dates, decimals, timestamps and nullable integers come out as
    ``dask.dataframe.read_parquet`` gives them."""
    import datetime as dt
    import decimal

    n = 50
    table = pa.table(
        {
            "a": np.linspace(0, 100, n),
            "b": np.linspace(0, 200, n),
            "s": [f"r{i}" if i % 7 else None for i in range(n)],
            "day": [dt.date(2024, 1, 1 + i % 28) for i in range(n)],
            "at": [dt.datetime(2024, 1, 1, i % 24) for i in range(n)],
            "price": pa.array([decimal.Decimal(i) / 4 for i in range(n)], pa.decimal128(12, 2)),
            "k": pa.array([i if i % 5 else None for i in range(n)], pa.int32()),
            "flag": [i % 2 == 0 for i in range(n)],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=10)
    path = str(tmp_path / "t.parquet")
    frame = mlskip.dask.read_parquet(path, net, "> -1e9", inputs=INPUTS)
    want = dd.read_parquet(path)
    pd.testing.assert_series_equal(frame.dtypes, want.dtypes)
    pd.testing.assert_frame_equal(tidy(frame.compute()), tidy(want.compute()))


def test_pruned_row_groups_are_never_read(files, net, monkeypatch):
    """Each partition reads kept row groups of one file (at most partition_rows rows);
    the model runs only on row groups that are not all-match."""
    root, table = files
    text = f"> {threshold(table, net, 0.5)!r}"
    plan = mlskip.dask.plan(str(root / "*.parquet"), net, text, inputs=INPUTS)
    pruned = sum(int(f.pruned.sum()) for f in plan.files)
    all_match = sum(int(f.all_match(0).sum()) for f in plan.files)
    assert pruned > 0 and all_match > 0  # the case is worth testing
    reads, evaluated = [], []
    read_groups, holds = arrow_scan._read_groups, arrow_scan._holds

    def recording_read(file, groups, wanted, planner):
        reads.append((file.path, None if groups is None else groups.tolist()))
        return read_groups(file, groups, wanted, planner)

    def counting_holds(plan, runner, rows):
        evaluated.append(rows.num_rows)
        return holds(plan, runner, rows)

    monkeypatch.setattr(arrow_scan, "_read_groups", recording_read)
    monkeypatch.setattr(arrow_scan, "_holds", counting_holds)
    frame = mlskip.dask.read_parquet(
        str(root / "*.parquet"), net, text, inputs=INPUTS, partition_rows=2_000
    )
    kept = {f.path: np.flatnonzero(~f.pruned).tolist() for f in plan.files}
    expected_parts = sum(
        len(arrow_scan._chunks(np.flatnonzero(~f.pruned), f.num_rows, 2_000)) for f in plan.files
    )
    assert frame.npartitions == expected_parts
    got = frame.compute()
    assert len(reads) == expected_parts
    read = {path: sorted(g for p, groups in reads if p == path for g in groups) for path in kept}
    assert read == kept  # every kept row group once, no pruned one
    for path, groups in reads:
        file = next(f for f in plan.files if f.path == path)
        assert sum(int(file.num_rows[g]) for g in groups) <= 2_000 or len(groups) == 1
    assert sum(evaluated) == sum(int(f.num_rows[f.evaluated].sum()) for f in plan.files)
    want = scan_frame(str(root / "*.parquet"), net, text, inputs=INPUTS)
    pd.testing.assert_frame_equal(tidy(got), want, check_dtype=False)


def test_a_file_not_planned_is_read_whole(files, net, monkeypatch):
    """A file whose footer cannot be read at planning time is one partition, every row
    evaluated: the rows are still exactly the qualifying ones."""
    root, table = files
    broken = str(root / "m1.parquet")
    original = mlskip.skipper.planner.Planner.file_facts

    def failing(self, path):
        if path == broken:
            raise OSError("footer gone")
        return original(self, path)

    monkeypatch.setattr(mlskip.skipper.planner.Planner, "file_facts", failing)
    text = f"> {threshold(table, net, 0.5)!r}"
    with pytest.warns(mlskip.SkippingFallbackWarning, match="footer gone"):
        plan = mlskip.dask.plan(str(root / "*.parquet"), net, text, inputs=INPUTS)
    assert [f.reason is not None for f in plan.files] == [True, False, False]
    with pytest.warns(mlskip.SkippingFallbackWarning):
        frame = mlskip.dask.read_parquet(str(root / "*.parquet"), net, text, inputs=INPUTS)
    query = f"y {text}"
    assert_same_rows(frame.compute(), dask_reference(str(root / "*.parquet"), net, INPUTS, query))


def test_columns_and_projection(files, net):
    root, table = files
    text = f"< {threshold(table, net, 0.2)!r}"
    frame = mlskip.dask.read_parquet(
        str(root / "*.parquet"), net, text, inputs=INPUTS, columns=["s", "c"]
    )
    got = frame.compute()
    assert list(got.columns) == ["s", "c"]  # the model's inputs are read, not returned
    want = scan_frame(str(root / "*.parquet"), net, text, inputs=INPUTS, columns=["s", "c"])
    pd.testing.assert_frame_equal(tidy(got), want, check_dtype=False)
    assert sorted(frame["s"].compute()) == sorted(want["s"])  # a projection Dask pushes down
    with pytest.raises(ModelInputError, match="'nope' is not in the files"):
        mlskip.dask.read_parquet(
            str(root / "*.parquet"), net, text, inputs=INPUTS, columns=["s", "nope"]
        )


def test_glob_and_list_agree(files, net):
    root, table = files
    text = f"> {threshold(table, net, 0.8)!r}"
    names = [str(root / n) for n in ("m1.parquet", "m2.parquet", "plain.parquet")]
    by_glob = mlskip.dask.read_parquet(str(root / "*.parquet"), net, text, inputs=INPUTS)
    by_list = mlskip.dask.read_parquet(names, net, text, inputs=INPUTS)
    one = mlskip.dask.read_parquet(root / "m2.parquet", net, text, inputs=INPUTS)
    assert_same_rows(by_glob.compute(), by_list.compute())
    want = scan_frame(root / "m2.parquet", net, text, inputs=INPUTS)
    pd.testing.assert_frame_equal(tidy(one.compute()), want, check_dtype=False)


def test_empty_result_has_the_columns(files, net):
    root, table = files
    frame = mlskip.dask.read_parquet(
        str(root / "m*.parquet"), net, "> 1e9", inputs=INPUTS, columns=["s", "a"]
    )
    plan = mlskip.dask.plan(str(root / "m*.parquet"), net, "> 1e9", inputs=INPUTS)
    assert all(f.pruned.all() for f in plan.files)
    assert frame.npartitions == 1
    got = frame.compute()
    assert len(got) == 0 and list(got.columns) == ["s", "a"]
    pd.testing.assert_series_equal(
        got.dtypes, dd.read_parquet(str(root / "m1.parquet"))[["s", "a"]].dtypes
    )


def test_classifier_class_predicate(files):
    root, table = files
    # scores 0.02 a, 0.01 b, 1 - 0.01 a: each class wins about a third of the rows
    classifier = Network.mlp(
        [(np.array([[0.02, 0.0], [0.0, 0.01], [-0.01, 0.0]]), np.array([0.0, 0.0, 1.0]))]
    )
    frame = mlskip.dask.read_parquet(str(root / "*.parquet"), classifier, "= 2", inputs=INPUTS)
    got = frame.compute()
    assert 0 < len(got) < table.num_rows
    want = dask_reference(str(root / "*.parquet"), classifier, INPUTS, "y == 2", classifier=True)
    assert_same_rows(got, want)


def test_a_file_replaced_after_planning_is_an_error(files, net, tmp_path):
    root, table = files
    path = tmp_path / "m1.parquet"
    shutil.copy(root / "m1.parquet", path)
    frame = mlskip.dask.read_parquet(str(path), net, "> -1e9", inputs=INPUTS)
    assert len(frame.compute()) == 15_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlskip.write_parquet(
            table.slice(15_000, 15_000), tmp_path / "new.parquet", row_group_size=1_000
        )
    (tmp_path / "new.parquet").replace(path)
    with pytest.raises(MlskipError, match="changed after mlskip.dask planned"):
        frame.compute()


def test_clear_errors(files, net):
    root, _ = files
    with pytest.raises(PredicateError, match="cannot read predicate"):
        mlskip.dask.read_parquet(str(root / "*.parquet"), net, "~ 3", inputs=INPUTS)
    with pytest.raises(ModelInputError, match=r"'price' is not a column of .*m1\.parquet"):
        mlskip.dask.read_parquet(str(root / "*.parquet"), net, "> 0", inputs=["price", "b"])
    with pytest.raises(ModelInputError, match="no Parquet file matches"):
        mlskip.dask.read_parquet(str(root / "none*.parquet"), net, "> 0", inputs=INPUTS)


def test_model_travels_once_per_process(net):
    """A task's model is unpickled once per process and shares one runner."""
    model = prepare_model(net)
    ref = dask_scan._ModelRef.of(model, "test")
    assert ref.get() is model  # the client process already holds it
    dask_scan._MODELS._items.clear()
    copy = dask_scan._ModelRef(ref.key, ref.payload)
    first = copy.get()
    assert first is not model and first.digest == model.digest
    assert copy.get() is first and dask_scan._runner(first) is dask_scan._runner(first)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def cached_models() -> tuple[list[str], int]:
    """The models and runners a worker process holds (run there by ``client.run``)."""
    return sorted(dask_scan._MODELS._items), len(dask_scan._RUNNERS._items)


def test_distributed_client(files, net, client):
    """With a distributed client as the default scheduler, planning and reading are tasks
    on its worker processes, each of which unpickles the model and makes its ONNX Runtime
    session once; the rows are the qualifying ones."""
    from distributed import get_task_stream

    root, table = files
    text = f"> {threshold(table, net, 0.5)!r}"
    with get_task_stream(client) as stream:
        frame = mlskip.dask.read_parquet(
            str(root / "*.parquet"), net, text, inputs=INPUTS, partition_rows=1_000
        )
        got = frame.compute()
    names = [str(t["key"]) for t in stream.data]
    assert sum("mlskip-plan-" in n for n in names) == 3  # 3 files, 2 threads: a file a task
    reads = [t for t in stream.data if "mlskip-read-parquet" in str(t["key"])]
    assert len(reads) >= frame.npartitions > 3
    held = client.run(cached_models)
    for worker in {t["worker"] for t in reads}:
        models, runners = held[worker]
        assert sum(key.startswith("run:") for key in models) == 1 and runners == 1
    assert_same_rows(got, dask_reference(str(root / "*.parquet"), net, INPUTS, f"y {text}"))


@pytest.fixture(scope="module")
def index(files, tmp_path_factory):
    from mlskip.skipper.skip_index import build_index

    root, _ = files
    path = tmp_path_factory.mktemp("dask-index") / "files.index"
    build_index(str(root / "*.parquet"), str(path))
    return str(path)


def test_index_planned_scan_equals_dask_and_prunes_the_plain_file(files, net, index):
    """Planned from a skip index, the rows are Dask's own; the plain file, which its
    footer cannot summarize (no NaN counts), is pruned from the index."""
    root, table = files
    t = threshold(table, net, 0.999)
    glob = str(root / "*.parquet")
    got = mlskip.dask.read_parquet(glob, net, f"> {t!r}", inputs=INPUTS, index=index).compute()
    assert_same_rows(got, dask_reference(glob, net, INPUTS, f"y > {t!r}"))
    by_index = mlskip.dask.plan(glob, net, f"> {t!r}", inputs=INPUTS, index=index)
    by_footers = mlskip.dask.plan(glob, net, f"> {t!r}", inputs=INPUTS)
    plain = [f for f in by_index.files if f.path.endswith("plain.parquet")]
    assert plain and plain[0].pruned.sum() > 0
    assert sum(f.pruned.sum() for f in by_index.files) > sum(
        f.pruned.sum() for f in by_footers.files
    )


def test_index_planned_on_the_cluster(files, net, index, client):
    root, table = files
    text = f"> {threshold(table, net, 0.99)!r}"
    glob = str(root / "*.parquet")
    got = mlskip.dask.read_parquet(glob, net, text, inputs=INPUTS, index=index).compute()
    assert_same_rows(got, dask_reference(glob, net, INPUTS, f"y {text}"))
