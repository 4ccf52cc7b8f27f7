"""The planner stage: from a query and the files' footers to a plan of row groups to
skip, read as they are, or evaluate (``mlskip.skipper``).

``query`` parses and rewrites SQL, ``binder`` ties model calls to columns,
``row_group_regions`` turns footer summaries into verifier regions, ``planner`` runs the
verifier per file and row group, ``plan`` and ``explain`` hold and explain the
result; ``rules/`` holds the query-shape rules one per module.
"""
