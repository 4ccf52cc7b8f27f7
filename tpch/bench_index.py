"""``mlskip bench index``: what a skip index saves in planning, and end to end.

**planning** (``--part planning``): planning time, in total and per row group, over lakes
of 1k, 10k, 100k and 1M row groups (``--row-groups``) of Parquet files written by plain
pyarrow (10 row groups of 50 rows a file; four int32 columns: integers, so that Parquet's
own min-max is usable from footers, where float columns without NaN counts are not). The
lake is clustered across files: file ``i`` of ``n`` holds the values ``[i/n, (i+1)/n)`` of
the model's first input (and sorted ones within it), so whole files can be pruned. Models:
random ReLU MLPs 4-32-1 and 4-32-32-1 whose first input weighs ``LEAD`` times the others;
one predicate ``model(x0, x1, x2, x3) > t`` of 1% selectivity. Each planner plans the same
files for the same predicate (``Planner.plan_files``):

- footers: ``Planner()``, every file's footer read in this process;
- index: ``Planner(index=...)`` on an index built with polygons (``hulls="auto"``, the
  default), and "index boxes" on one built without (``hulls=None``: min-max boxes, as in
  the footers), which separates what the index's I/O and file-level pruning save from
  what verifying polygons costs (``--hulls`` picks the indexes);
- on Dask: ``mlskip.dask.plan`` with each index on a ``distributed.LocalCluster`` of two
  single-threaded workers (``--no-dask`` leaves it out);
- S3: ``--s3-files`` objects (10k: 100k row groups, copies of the files of the largest
  real lake) on a moto server (a child process, loopback): footers (HEAD, ranged GET and
  HEAD per object) vs each index (one GET of the index, one LIST per 1,000 objects);
  goal: the index at least 10x faster.

Cold (the headline) is a new planner: the median of ``--repeats`` (one above 100k row
groups); on Dask a new index path each time, so a new planner in each worker. Warm is the
same planner again: planners here keep every file's facts and plans (``cache_size`` is
the number of files); Dask workers keep their default 512 files each and a chunk of files
may be planned by the other worker, so warm on Dask is only partly warm (not measured
above 100k row groups). The operating system's file cache is warm throughout. Next to
the cost: files and row groups left after file-level pruning (footers have no file-level
summary: every file is left) and row groups pruned, since the cost follows what is left.
Lakes above ``--real-row-groups`` (10k) row groups are synthetic: copies of the files
of the real lake of that size, with indexes made from its index by replacing the paths
(``metadata/index_table.py``: the index is a Parquet table with a ``path`` column). A
planner whose cost per row group on a smaller lake predicts more than ``--budget``
seconds is skipped (the table says so, with the estimate).

**e2e** (``--part e2e``): TPC-H lineitem and TPC-DS store_sales at ``--sf`` (1), each
split into ``--files`` (100) files by plain pyarrow, in natural order and clustered
(sorted by the model's first input), each layout indexed by ``build_index`` (build time
and index bytes per row group reported). A random 4-32-32-1 MLP over four numeric columns
(standardized inside the model) with a threshold of 0.5% selectivity. Timed on one
two-worker ``LocalCluster``: ``mlskip.dask.read_parquet(..., index=...).compute()`` vs
``dask.dataframe.read_parquet(files).map_partitions(<the model in ONNX Runtime, rows
filtered>)``, and, in this process, ``mlskip.connect(index=...)`` running ``SELECT
count(*) ... WHERE m(...) > t``. The three row counts must be equal. Cold: the first run
(after a warm-up of the workers on two files; a new connection for SQL); warm: the median
of ``--repeats`` runs after it.

Run: ``mlskip bench index`` (everything at full size; alone on the machine: it takes
long), or smaller: ``mlskip bench index --part planning --row-groups 1000,10000
--s3-files 1000 --no-dask``, ``mlskip bench index --part e2e --sf 0.1 --files 20``;
``--json`` prints the figures as JSON, ``--work DIR`` keeps the files.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INPUTS = ("x0", "x1", "x2", "x3")
SPAN = 1_000_000  # planning lakes: int32 values in [0, SPAN)
MODELS = {"4-32-1": (4, 32, 1), "4-32-32-1": (4, 32, 32, 1)}
LEAD = 20.0  # the first input's weight over the others': the model follows the clustering
MODEL_SEED = 3
PLANNING_SELECTIVITY = 0.01
E2E_SELECTIVITY = 0.005
E2E_TABLES = {  # suite -> table, the model's inputs (the first one is the clustering key)
    "tpch": ("lineitem", ("l_extendedprice", "l_quantity", "l_discount", "l_tax")),
    "tpcds": (
        "store_sales",
        ("ss_sales_price", "ss_list_price", "ss_wholesale_cost", "ss_quantity"),
    ),
}
HULLS = {"auto": "index", "none": "index boxes"}  # build_index hulls -> method label
REPEAT_ALL_UP_TO = 100_000  # row groups: larger lakes are planned cold once


@dataclass(frozen=True)
class PlanningConfig:
    """What the planning part measures (``mlskip bench index --help`` says each)."""

    row_groups: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)
    models: tuple[str, ...] = tuple(MODELS)
    hulls: tuple[str, ...] = tuple(HULLS)
    groups_per_file: int = 10
    rows_per_group: int = 50
    real_row_groups: int = 10_000  # larger lakes are copies of this one's files
    dask: bool = True
    s3_files: int = 10_000  # 0: no S3
    budget: float = 300.0  # seconds: a planner estimated to take longer is skipped
    repeats: int = 3
    seed: int = 0


@dataclass(frozen=True)
class E2eConfig:
    """What the e2e part measures."""

    sf: float = 1.0
    files: int = 100
    row_group_size: int = 10_000
    model: str = "4-32-32-1"
    repeats: int = 3
    suites: tuple[str, ...] = tuple(E2E_TABLES)


# ---------------------------------------------------------------- models


def random_mlp(
    sizes: Sequence[int],
    seed: int,
    inputs: Sequence[str],
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> Any:
    """A ReLU MLP with He-scaled weights whose first input weighs ``LEAD`` times the
    others, reading ``(x - mean) / scale`` (the standardization folded into layer one)."""
    from mlskip.verifier import Network

    rng = np.random.default_rng(seed)
    layers = [
        (rng.normal(size=(o, i)) * np.sqrt(2.0 / i), rng.normal(size=o) * 0.1)
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    w, b = layers[0]
    w = w.copy()
    w[:, 0] *= LEAD
    mean = np.zeros(len(inputs)) if mean is None else mean
    scale = np.ones(len(inputs)) if scale is None else scale
    layers[0] = (w / scale, b - (w / scale) @ mean)
    return Network.mlp(layers, input_names=tuple(inputs))


def onnx_model(network: Any) -> bytes:
    from mlskip.verifier.onnx_loader import to_onnx

    return to_onnx(network)


@functools.lru_cache(maxsize=4)
def _session(onnx: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])


def model_outputs(onnx: bytes, x: np.ndarray) -> np.ndarray:
    """The model's first output on float32 rows ``x``, as ONNX Runtime computes it."""
    session = _session(onnx)
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0][:, 0]


def threshold(outputs: np.ndarray, selectivity: float) -> float:
    """A threshold ``t`` with ``outputs > t`` for about ``selectivity`` of the rows, halfway
    between two distinct outputs (no row sits on it)."""
    finite = outputs[np.isfinite(outputs)].astype(np.float64)
    values = np.unique(finite)
    k = int(np.searchsorted(values, np.quantile(finite, 1 - selectivity), side="right"))
    if k >= len(values):
        return float(values[-1]) + 1.0
    return float((values[max(k - 1, 0)] + values[k]) / 2) if k else float(values[0]) - 1.0


def bound_predicate(onnx: bytes, t: float, inputs: Sequence[str]) -> Any:
    """The planner's form of ``model(inputs) > t``."""
    from mlskip.udf.arrow_scan import bind_predicate, prepare_predicate

    prepared, names, predicate, _ = prepare_predicate(onnx, f"> {t!r}", list(inputs))
    return bind_predicate(prepared, predicate, names)


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


_COPIES = itertools.count()  # index copies: a path a worker has never planned from


@contextlib.contextmanager
def dask_client(workers: int = 2) -> Iterator[Any]:
    """A ``distributed`` client on a local cluster of single-threaded worker processes."""
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=None, processes=True
        )
    try:
        with Client(cluster) as client:
            client.run(_quiet_worker)
            yield client
    finally:
        cluster.close()


def _quiet_worker() -> None:
    """Workers ignore mlskip's fallback warnings (plain Parquet has no mlskip footers)."""
    from mlskip.errors import SkippingFallbackWarning

    warnings.filterwarnings("ignore", category=SkippingFallbackWarning)


def run(
    part: str = "all",
    planning: PlanningConfig | None = None,
    e2e: E2eConfig | None = None,
    work: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Measure and print ``part`` (planning, e2e or all); returns the figures. Lakes and
    files go to ``work`` (kept), else to a temporary folder (removed)."""
    from mlskip.errors import SkippingFallbackWarning
    from mlskip.tpch.bench_index_e2e import print_e2e, run_e2e
    from mlskip.tpch.bench_index_planning import print_planning, run_planning
    from mlskip.tpch.bench_verifier import wide_console

    if part not in ("planning", "e2e", "all"):
        raise ValueError(f"part must be planning, e2e or all, got {part!r}")
    console = wide_console()

    def say(text: str) -> None:
        console.print(f"[dim]{text}[/]", highlight=False)

    figures: dict[str, Any] = {"load_start": os.getloadavg(), "cores": os.cpu_count()}
    with contextlib.ExitStack() as stack:
        if work is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-index-")))
        else:
            root = Path(work)
            root.mkdir(parents=True, exist_ok=True)
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", category=SkippingFallbackWarning)
        if part in ("planning", "all"):
            figures["planning"] = run_planning(planning or PlanningConfig(), root / "planning", say)
            print_planning(figures["planning"], console)
        if part in ("e2e", "all"):
            figures["e2e"] = run_e2e(e2e or E2eConfig(), root / "e2e", say)
            print_e2e(figures["e2e"], console)
    figures["load_end"] = os.getloadavg()
    console.print(
        f"load {figures['load_start'][0]:.1f} -> {figures['load_end'][0]:.1f} "
        f"on {figures['cores']} cores",
        highlight=False,
    )
    return figures
