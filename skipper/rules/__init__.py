"""Small pure rules over sqlglot expression trees.

Each rule takes parsed SQL and returns facts or a new tree; none touches files,
models or DuckDB, so each is tested on SQL strings in and SQL strings out.
"""
