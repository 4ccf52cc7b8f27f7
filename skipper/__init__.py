"""The planner stage: from a query and the files' footers to a plan of row groups to
skip, read as they are, or evaluate (``mlskip.skipper``).

- ``query``: plans a query (DuckDB's parser, one rewrite per planned scan);
- ``scan_checks``: whether a scan's files can be planned as DuckDB reads them;
- ``binder``: asks DuckDB how names, globs and calls bind;
- ``models``: what planner and executor share (model bindings, evaluation tasks);
- ``model_args``: a model call's arguments as DuckDB computes them;
- ``row_group_regions``: footer summaries and SQL bounds as verifier regions;
- ``planner``: runs the verifier per file and row group; ``plan`` holds the result;
- ``explain``: what skipping did, printable; ``paths``: globs listed as DuckDB does;
- ``remote``: S3; ``rules/``: the query-shape rules, one per module.
"""
