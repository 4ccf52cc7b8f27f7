"""Arrow and Polars scans follow the same plan and return exactly the qualifying rows."""

from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import mlskip
from mlskip.errors import PredicateError
from mlskip.udf.arrow_scan import parse_predicate
from mlskip.verifier import Predicate
from tests.test_skipping_e2e import make_net, make_table


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("scan")
    table = make_table(rng, 30_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlskip.write_parquet(
            table.slice(0, 15_000),
            root / "p1.parquet",
            row_group_size=1_000,
            hulls=[("a", "b")],
            cluster_by=["a"],
        )
        mlskip.write_parquet(
            table.slice(15_000),
            root / "p2.parquet",
            row_group_size=2_500,
            hulls=None,
            cluster_by=["b"],
        )
    return root, table


def brute_force(table, net, inputs, predicate):
    """Every row evaluated with the same runtime the scan uses (ONNX Runtime, float32)."""
    from mlskip.udf.model import prepare_model
    from mlskip.udf.runtime import make_runner

    x = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in inputs])
    y = make_runner(prepare_model(net))(x.astype(np.float32))
    return sorted(table.filter(predicate.holds(y)).column("s").to_pylist())


@pytest.mark.parametrize("q", [0.001, 0.3, 0.999])
@pytest.mark.parametrize("op", [">", "<", "between"])
def test_scan_equals_brute_force(files, q, op):
    root, table = files
    net = make_net(np.random.default_rng(5), 2)
    x = np.column_stack([table.column(c).to_numpy() for c in ("a", "b")])
    y = net.evaluate(x)[:, 0]
    t = float(np.quantile(y, q))
    text = f"between {t} and {t + abs(t) * 0.05 + 0.1}" if op == "between" else f"{op} {t}"
    result = mlskip.scan(str(root / "p*.parquet"), net, text, inputs=["a", "b"])
    expected = brute_force(table, net, ["a", "b"], parse_predicate(text, False))
    assert sorted(result.column("s").to_pylist()) == expected


def test_dataset_holds_only_unpruned_row_groups(files):
    root, table = files
    net = make_net(np.random.default_rng(5), 2)
    y = net.evaluate(np.column_stack([table.column(c).to_numpy() for c in ("a", "b")]))[:, 0]
    text = f"> {float(np.quantile(y, 0.999))}"
    plan = mlskip.plan_scan(str(root / "p*.parquet"), net, text, inputs=["a", "b"])
    kept_rows = sum(int(f.num_rows[~f.pruned].sum()) for f in plan.files)
    assert kept_rows < table.num_rows  # something was pruned
    dataset = mlskip.scan_dataset(str(root / "p*.parquet"), net, text, inputs=["a", "b"])
    assert dataset.to_table().num_rows == kept_rows
    expected = brute_force(table, net, ["a", "b"], parse_predicate(text, False))
    assert set(expected) <= set(dataset.to_table().column("s").to_pylist())
    # every way of counting or reading the dataset agrees (pyarrow's own count_rows on
    # row-group subsets returns whole files' counts)
    assert dataset.count_rows() == kept_rows
    assert sum(b.num_rows for b in dataset.to_batches(columns=["s"])) == kept_rows
    assert dataset.to_reader().read_all().num_rows == kept_rows
    assert dataset.head(10**9).num_rows == kept_rows
    some = pads.field("a") > float(np.median(table.column("a").to_numpy()))
    assert dataset.count_rows(filter=some) == dataset.to_table(filter=some).num_rows
    assert duckdb.sql("SELECT count(*) FROM dataset").fetchone()[0] == kept_rows
    assert f"{kept_rows:,} rows" in repr(dataset)


def test_polars_lazy_frame_matches(files):
    root, table = files
    net = make_net(np.random.default_rng(5), 2)
    lazy = mlskip.scan_polars(
        str(root / "p1.parquet"), net, "> 0.5", inputs=["a", "b"], columns=["s"]
    )
    expected = brute_force(pq.read_table(root / "p1.parquet"), net, ["a", "b"], Predicate.gt(0.5))
    assert sorted(lazy.collect()["s"].to_list()) == expected


def test_polars_scan_is_lazy_and_agrees_with_scan(files, monkeypatch):
    """scan_polars plans when called and reads at collect time; projections, filters, head
    and counts give what the same operations on scan's rows give, in file order."""
    import polars as pl

    import mlskip.udf.arrow_scan as arrow_scan

    root, table = files
    net = make_net(np.random.default_rng(5), 2)
    y = net.evaluate(np.column_stack([table.column(c).to_numpy() for c in ("a", "b")]))[:, 0]
    text = f"> {float(np.quantile(y, 0.9))}"
    reads = []
    original = arrow_scan._read_groups
    monkeypatch.setattr(
        arrow_scan, "_read_groups", lambda *a, **k: reads.append(1) or original(*a, **k)
    )
    lazy = mlskip.scan_polars(str(root / "p*.parquet"), net, text, inputs=["a", "b"])
    assert reads == [] and "mlskip" in lazy.explain()
    want = pl.from_arrow(mlskip.scan(str(root / "p*.parquet"), net, text, inputs=["a", "b"]))
    in_files = pa.concat_tables([pq.read_table(root / f"p{i}.parquet") for i in (1, 2)])
    qualifying = set(brute_force(in_files, net, ["a", "b"], parse_predicate(text, False)))
    assert want["s"].to_list() == [v for v in in_files["s"].to_pylist() if v in qualifying]
    reads.clear()
    got = lazy.collect()
    assert reads and got.equals(want)
    assert lazy.select(pl.len()).collect().item() == want.height
    assert lazy.head(5).collect().equals(want.head(5))
    query = lazy.filter(pl.col("c") > 0).select("s", "a")
    assert query.collect().equals(want.filter(pl.col("c") > 0).select("s", "a"))
    narrowed = mlskip.scan_polars(str(root / "p1.parquet"), net, text, inputs=["a", "b"],
                                  columns=["s"])  # fmt: skip
    assert narrowed.collect_schema().names() == ["s"]


def test_classifier_scan(files):
    root, table = files
    net = make_net(np.random.default_rng(6), 2, outputs=3)
    result = mlskip.scan(str(root / "p1.parquet"), net, "= 2", inputs=["a", "b"])
    expected = brute_force(pq.read_table(root / "p1.parquet"), net, ["a", "b"], Predicate.argmax(2))
    assert sorted(result.column("s").to_pylist()) == expected


@pytest.mark.parametrize("bad", ["> abc", "~ 3", "between 1", ""])
def test_bad_predicate_text_is_a_clear_error(bad):
    with pytest.raises(PredicateError, match="cannot read predicate"):
        parse_predicate(bad, False)


def test_model_without_input_names_asks_for_inputs(tmp_path):
    """A model exported by plain torch.onnx.export stores no column names: the error says
    to pass inputs=, and with them the scan works."""
    import onnx

    from mlskip.verifier import Network
    from mlskip.verifier.onnx_loader import to_onnx

    net = Network.mlp([(np.array([[1.0, 0.5]]), np.zeros(1))])
    model = onnx.load_model_from_string(to_onnx(net))
    del model.metadata_props[:]
    path = tmp_path / "t.parquet"
    mlskip.write_parquet(pa.table({"a": np.arange(100.0), "b": np.arange(100.0)}), path)
    with pytest.raises(mlskip.MlskipError, match=r"'x0' is not a column .* inputs=\[\.\.\.\]"):
        mlskip.scan(path, model.SerializeToString(), "> 90")
    got = mlskip.scan(path, model.SerializeToString(), "> 90", inputs=["a", "b"])
    assert got.num_rows == 39


def test_a_one_column_model_binds_by_its_input_name(tmp_path):
    """A model exported by plain ``torch.onnx.export`` stores no mlskip metadata: a
    one-column input named like a column is bound to it; a wider one asks for inputs=."""
    import torch

    table = pa.table({"price": np.linspace(0, 100, 2000), "qty": np.linspace(5, 1, 2000)})
    path = tmp_path / "t.parquet"
    mlskip.write_parquet(table, path, row_group_size=200)
    one, two = torch.nn.Linear(1, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        one.weight.fill_(1.0), one.bias.zero_(), two.weight.fill_(1.0), two.bias.zero_()
    for module, name, width in ((one, "price", 1), (two, "x", 2)):
        torch.onnx.export(module, torch.zeros(1, width), tmp_path / f"{name}.onnx",
                          input_names=[name], output_names=["y"],
                          dynamic_axes={name: {0: "n"}}, dynamo=False)  # fmt: skip
    got = mlskip.scan(path, tmp_path / "price.onnx", "> 90")
    assert (
        got.num_rows
        == mlskip.scan(path, tmp_path / "price.onnx", "> 90", inputs=["price"]).num_rows
    )
    assert got.num_rows == int((table["price"].to_numpy() > 90).sum()) > 0
    with pytest.raises(mlskip.ModelInputError, match=r"inputs=\[\.\.\.\]"):
        mlskip.scan(path, tmp_path / "x.onnx", "> 90")
