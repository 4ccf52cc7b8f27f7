"""Differential checks of mlskip against itself and against independent systems
(``mlskip.testing``, as ``polars.testing``): the self-check campaign
(``selfcheck``: with vs without skipping, on ``random_cases``; ``marabou_oracle``:
verdicts against a complete verifier), the
float-margin campaign against ONNX Runtime (``marginfuzz``), the SQL fuzzer
(``sqlfuzz``) and mlskip next to auto_LiRPA (``side_by_side``). Product code never
imports this package; ``mlskip selfcheck`` runs it.
"""
