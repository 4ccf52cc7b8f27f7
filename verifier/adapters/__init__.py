"""Optional backends: Marabou (complete, SMT-based) and auto_LiRPA (bounds), if importable."""
