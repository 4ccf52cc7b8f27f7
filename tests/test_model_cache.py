"""A fresh process registers a known model from the disk cache without importing onnx,
and gets exactly what preparing it gives; anything that could change the result misses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mlskip.verifier import Network
from mlskip.verifier.onnx_loader import to_onnx

SCRIPT = """
import json, sys
import numpy as np
import mlskip
con = mlskip.connect()
con.register_model("m", sys.argv[1], inputs=["a", "b"])
x = np.array([[0.5, 1.0], [2.0, -3.0], [10.0, 4.0]])
rows = con.sql("SELECT m(a, b) FROM (VALUES (0.5, 1.0), (2.0, -3.0), (10.0, 4.0)) t(a, b)")
prepared = con.models["m"]
print(json.dumps({
    "onnx_imported": "onnx" in sys.modules,
    "digest": prepared.digest,
    "names": list(prepared.input_names),
    "network": prepared.network.evaluate(x).tolist(),
    "sql": [r[0] for r in rows.fetchall()],
}))
"""


def net(seed: int) -> Network:
    rng = np.random.default_rng(seed)
    return Network.mlp([(rng.normal(size=(8, 2)), rng.normal(size=8)),
                        (rng.normal(size=(1, 8)), rng.normal(size=1))])  # fmt: skip


def register_in_fresh_process(path, cache, enabled: str = "1") -> dict:
    env = dict(os.environ, MLSKIP_CACHE_DIR=str(cache), MLSKIP_MODEL_CACHE=enabled)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_uses_the_cache_and_gets_the_same_model(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(to_onnx(net(1)))
    first = register_in_fresh_process(model, tmp_path / "cache")
    second = register_in_fresh_process(model, tmp_path / "cache")
    assert first["onnx_imported"] and not second["onnx_imported"]
    assert {k: v for k, v in first.items() if k != "onnx_imported"} == {
        k: v for k, v in second.items() if k != "onnx_imported"
    }
    assert len(list((tmp_path / "cache" / "models").glob("*.pkl"))) == 1


def test_changed_bytes_miss_and_bad_entries_are_ignored(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(to_onnx(net(1)))
    register_in_fresh_process(model, tmp_path / "cache")
    model.write_bytes(to_onnx(net(2)))  # same path, other model
    other = register_in_fresh_process(model, tmp_path / "cache")
    assert other["onnx_imported"]
    want = net(2).evaluate(np.array([[0.5, 1.0], [2.0, -3.0], [10.0, 4.0]]))
    assert np.allclose(other["network"], want, rtol=1e-6)  # the new model (float32 weights)
    for entry in (tmp_path / "cache" / "models").glob("*.pkl"):
        entry.write_bytes(b"mlskip-model-cache-1 truncated")
    again = register_in_fresh_process(model, tmp_path / "cache")
    assert again["onnx_imported"] and again["digest"] == other["digest"]


def test_cache_can_be_turned_off(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(to_onnx(net(1)))
    register_in_fresh_process(model, tmp_path / "cache", enabled="0")
    assert not (tmp_path / "cache" / "models").exists()


def test_models_with_external_data_are_not_cached(tmp_path, monkeypatch):
    import onnx

    import mlskip
    from mlskip.udf import model_cache

    monkeypatch.setenv("MLSKIP_MODEL_CACHE", "1")
    monkeypatch.setenv("MLSKIP_CACHE_DIR", str(tmp_path / "cache"))
    proto = onnx.load_model_from_string(to_onnx(net(3)))
    path = tmp_path / "ext.onnx"
    onnx.save(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)  # fmt: skip
    con = mlskip.connect()
    con.register_model("m", path, inputs=["a", "b"])
    assert not list(model_cache.folder().glob("*.pkl"))
    # a self-contained model in the same process is kept
    con.register_model("n", to_onnx(net(3)), inputs=["a", "b"])
    assert len(list(model_cache.folder().glob("*.pkl"))) == 1


@pytest.mark.parametrize("inputs", [None, ("p", "q")])
def test_input_names_are_part_of_the_key(inputs):
    from mlskip.udf import model_cache

    raw = to_onnx(net(1))
    assert model_cache.key(raw, inputs) != model_cache.key(raw, ("a", "b"))
