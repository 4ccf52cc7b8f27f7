"""mlskip on Dask: ``mlskip.dask.read_parquet(paths, model, "> 0.9")`` is a Dask
DataFrame of the qualifying rows, planned on the workers, reading only the row groups
that can match; ``mlskip.dask.plan`` is that plan, for inspection
(``mlskip.udf.dask_scan``)."""

from __future__ import annotations

from mlskip.udf.dask_scan import plan, read_parquet

__all__ = ["plan", "read_parquet"]
