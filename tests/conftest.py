"""Shared fixtures and test settings.

Property tests are derandomized by default so that CI runs the same examples
every time; ``HYPOTHESIS_PROFILE=explore`` searches new examples locally.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("default", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# every test prepares its models afresh (tests that monkeypatch the loader must not get
# a cached result); tests/test_model_cache.py turns the cache on where it is the subject
os.environ["MLSKIP_MODEL_CACHE"] = "0"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
