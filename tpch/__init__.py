"""TPC-H / TPC-DS data generation (offline) and the benchmark suite."""

from mlskip.tpch.generate import TABLES, generate_tpc

__all__ = ["TABLES", "generate_tpc"]
