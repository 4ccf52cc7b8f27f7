"""Footer format v3: the layout digest, footer keys and the data audit (``mlskip verify``).

What footer-only checks can and cannot see: rewritten row groups that change a
byte size are refused; a rewrite that keeps every size, count and statistic is
not (only reading the data can tell, which ``audit_file`` does); a footer key
makes every footer forged without it untrusted.
"""

from __future__ import annotations

import base64
import json
import struct
import warnings
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import mlskip
from mlskip.cli import app
from mlskip.errors import SkippingFallbackWarning
from mlskip.metadata import audit_file, read_skip_metadata, write_parquet
from mlskip.metadata.footer import KEY, KEY_V2, decode_footer
from mlskip.metadata.integrity import layout_digest, row_group_sizes, schema_entries
from mlskip.skipper.planner import Planner
from mlskip.verifier import Network

ROWS, GROUP = 2000, 200


def _table(seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 10, ROWS)
    return pa.table({"a": a, "b": 2 * a + rng.normal(0, 1, ROWS), "rid": np.arange(ROWS)})


def _write(path, table=None, **options):
    table = table if table is not None else _table()
    write_parquet(table, path, row_group_size=GROUP, hulls=[("a", "b")], **options)
    return path


def _value(path) -> bytes:
    return pq.ParquetFile(path).metadata.metadata[KEY.encode()]


def _groups(path) -> list[pa.Table]:
    pf = pq.ParquetFile(path)
    return [pf.read_row_group(i).replace_schema_metadata(None) for i in range(pf.num_row_groups)]


def _rewrite(path, groups, kv, compression="zstd"):
    """Row groups ``groups`` under key-value metadata ``kv`` (as write_parquet encodes)."""
    with pq.ParquetWriter(path, groups[0].schema, compression=compression) as w:
        for g in groups:
            w.write_table(g, row_group_size=g.num_rows)
        w.add_key_value_metadata(kv)
    return path


def _read(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = read_skip_metadata(path, **kw)
    notes = [str(w.message) for w in caught if issubclass(w.category, SkippingFallbackWarning)]
    return meta, " | ".join(notes)


def _with_column(t: pa.Table, name: str, values) -> pa.Table:
    return t.set_column(t.schema.get_field_index(name), name, pa.array(values))


def test_copy_with_swapped_column_names_is_refused(tmp_path):
    """Same bytes per row group, same footer, columns a and b renamed to each other: the
    footer's boxes and polygons would describe the wrong columns."""
    path = _write(tmp_path / "f.parquet")
    source = pq.ParquetFile(path)
    table = source.read()
    names = ["b" if n == "a" else "a" if n == "b" else n for n in table.column_names]
    swapped = tmp_path / "swapped.parquet"
    with pq.ParquetWriter(swapped, table.rename_columns(names).schema) as writer:
        for r in range(source.num_row_groups):
            writer.write_table(source.read_row_group(r).rename_columns(names))
        writer.add_key_value_metadata({KEY: source.metadata.metadata[KEY.encode()]})
    meta, notes = _read(swapped)
    assert meta.status == "boxes-only" and "columns renamed" in notes, notes


def test_fresh_file_is_v3_bound_to_its_row_group_sizes(tmp_path):
    path = _write(tmp_path / "f.parquet")
    kv = pq.ParquetFile(path).metadata.metadata
    assert KEY.encode() in kv and KEY_V2.encode() not in kv
    fp = decode_footer(kv[KEY.encode()])
    assert fp.version == 3 and not fp.signed
    parquet = pq.ParquetFile(path)
    sizes = row_group_sizes(parquet.metadata)
    assert fp.layout == layout_digest(sizes, schema_entries(parquet.schema_arrow))
    meta, notes = _read(path)
    assert meta.status == "ok" and not notes and meta.pairs == (("a", "b"),)
    # the same rows re-encoded byte for byte keep the digest (the check is not spurious)
    same = _rewrite(tmp_path / "same.parquet", _groups(path), {KEY: _value(path)})
    assert _read(same)[0].status == "ok"


def test_rewritten_row_groups_are_refused(tmp_path):
    """Same row counts and Parquet statistics, different bytes: the footer is refused."""
    path = _write(tmp_path / "f.parquet")
    kv = {KEY: _value(path)}
    groups = _groups(path)
    # 1. the same rows re-encoded with another codec
    snappy = _rewrite(tmp_path / "snappy.parquet", groups, kv, compression="snappy")
    # 2. one value of b replaced by another value of its row group (min and max unchanged)
    b = groups[0].column("b").to_numpy().copy()
    inner = np.argsort(b)[GROUP // 2 : GROUP // 2 + 2]
    b[inner[0]] = b[inner[1]]
    edited = _rewrite(
        tmp_path / "edited.parquet", [_with_column(groups[0], "b", b), *groups[1:]], kv
    )
    assert [
        pq.ParquetFile(p).metadata.row_group(0).column(1).statistics.min for p in (path, edited)
    ] == [pq.ParquetFile(path).metadata.row_group(0).column(1).statistics.min] * 2
    # 3. the footer of a file with other data and the same row counts
    other = _write(
        tmp_path / "other.parquet", _with_column(_table(7), "a", np.round(_table(7)["a"], 1))
    )
    pasted = _rewrite(tmp_path / "pasted.parquet", _groups(other), kv)
    for p in (snappy, edited, pasted):
        meta, notes = _read(p)
        assert meta.status == "boxes-only" and not meta.pairs, p
        assert "not those the footer was written for" in notes, notes


def test_a_same_size_rewrite_is_invisible_to_the_reader_but_not_to_verify(tmp_path):
    """Values shuffled within row groups keep every size, count and statistic: only
    reading the data (``audit_file``, ``mlskip verify``) shows the footer is stale."""
    path = _write(tmp_path / "f.parquet")
    groups = _groups(path)
    rng = np.random.default_rng(3)
    shuffled = [
        _with_column(g, "b", g.column("b").to_numpy()[rng.permutation(g.num_rows)]) for g in groups
    ]
    # keep the shuffle only in row groups where it leaves the compressed size as it was
    trial = _rewrite(tmp_path / "trial.parquet", shuffled, {KEY: _value(path)})
    before = row_group_sizes(pq.ParquetFile(path).metadata)
    after = row_group_sizes(pq.ParquetFile(trial).metadata)
    kept = [s if x == y else g for g, s, x, y in zip(groups, shuffled, before, after, strict=True)]
    assert sum(x == y for x, y in zip(before, after, strict=True)) >= 3
    stale = _rewrite(tmp_path / "stale.parquet", kept, {KEY: _value(path)})
    assert row_group_sizes(pq.ParquetFile(stale).metadata) == before
    assert _read(stale)[0].status == "ok"  # the documented limit of footer-only checks
    report = audit_file(stale)
    assert not report.ok and "outside the polygon of ('a', 'b')" in report.violations[0]
    good = audit_file(path)
    assert good.ok and good.status == "ok" and good.rows == ROWS
    runner = CliRunner()
    assert runner.invoke(app, ["verify", str(path)]).exit_code == 0
    res = runner.invoke(app, ["verify", str(path), str(stale)])
    assert res.exit_code == 1 and "outside the polygon" in " ".join(res.output.split())
    # for scripts: one JSON object per file, the same verdicts and exit code
    res = runner.invoke(app, ["verify", str(path), str(stale), "--json"])
    lines = [json.loads(line) for line in res.output.splitlines()]
    assert res.exit_code == 1 and [x["passed"] for x in lines] == [True, False]
    assert lines[0]["rows"] == ROWS and "outside the polygon" in lines[1]["violations"][0]


def test_verify_names_untrusted_footers(tmp_path):
    path = _write(tmp_path / "f.parquet")
    snappy = _rewrite(tmp_path / "s.parquet", _groups(path), {KEY: _value(path)}, "snappy")
    res = CliRunner().invoke(app, ["verify", str(snappy)])
    output = " ".join(res.output.split())
    assert res.exit_code == 1 and "footer not trusted" in output
    assert "not those the footer was written for" in output


def test_footer_keys(tmp_path):
    signed = _write(tmp_path / "signed.parquet", footer_key="s3cret")
    plain = _write(tmp_path / "plain.parquet")
    assert decode_footer(_value(signed)).signed and not decode_footer(_value(plain)).signed
    assert _read(signed)[0].status == "ok"  # no key: the signature is not checked
    assert _read(signed, footer_key="s3cret")[0].status == "ok"
    assert _read(signed, footer_key=b"s3cret")[0].status == "ok"
    for path, key, why in [
        (signed, "other", "signature does not match"),
        (plain, "s3cret", "not signed"),
    ]:
        meta, notes = _read(path, footer_key=key)
        assert meta.status == "boxes-only" and why in notes, notes
    # a v2 value (no signature possible) under a key
    blob = base64.b64decode(_value(plain))
    v2 = tmp_path / "v2.parquet"
    body = blob[13 + 5 :]
    head = struct.pack("<4sBII", b"MLSK", 2, zlib.crc32(body), len(body))
    _rewrite(v2, _groups(plain), {KEY_V2: base64.b64encode(head + body)})
    assert _read(v2)[0].status == "ok"
    meta, notes = _read(v2, footer_key="s3cret")
    assert meta.status == "boxes-only" and "unsigned" in notes
    with pytest.raises(ValueError, match="empty footer key"):
        read_skip_metadata(plain, footer_key=b"")


def test_key_from_the_environment_and_plan_cache(tmp_path, monkeypatch):
    """``$MLSKIP_FOOTER_KEY`` signs on write and is required on read; a planner re-reads
    a cached footer when the key changes."""
    monkeypatch.setenv("MLSKIP_FOOTER_KEY", "env-key")
    path = _write(tmp_path / "env.parquet")
    assert decode_footer(_value(path)).signed
    planner = Planner()
    assert planner.file_facts(str(path)).metadata.status == "ok"
    monkeypatch.setenv("MLSKIP_FOOTER_KEY", "rotated")
    with pytest.warns(SkippingFallbackWarning, match="signature"):
        assert planner.file_facts(str(path)).metadata.status == "boxes-only"
    monkeypatch.delenv("MLSKIP_FOOTER_KEY")
    assert planner.file_facts(str(path)).metadata.status == "ok"


def test_queries_under_a_wrong_key_lose_nothing(tmp_path):
    """A connection whose key does not match plans with boxes only: same rows."""
    path = _write(tmp_path / "k.parquet", footer_key="writer-key")
    t = _table()
    net = Network.mlp([(np.array([[1.0, -0.5]]), np.array([0.0]))])
    v = t.column("a").to_numpy() - 0.5 * t.column("b").to_numpy()
    thr = float(np.quantile(v, 0.99))
    sql = f"SELECT rid FROM '{path}' WHERE f(a, b) > {thr!r} ORDER BY rid"
    expected = sorted(np.flatnonzero(v > thr).tolist())
    for key in ("writer-key", "wrong-key"):
        con = mlskip.connect(footer_key=key)
        con.register_model("f", net)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippingFallbackWarning)
            rows = [r[0] for r in con.sql(sql).fetchall()]
            status = con.planner.file_facts(str(path)).metadata.status
        assert rows == expected, key
        assert status == ("ok" if key == "writer-key" else "boxes-only")
        con.close()


def test_fallback_warning_names_the_file_not_a_file_object(tmp_path):
    """A footer the key does not verify reaches the user as one warning naming the path."""
    import mlskip

    path = tmp_path / "k.parquet"
    mlskip.write_parquet(pa.table({"a": np.arange(100.0)}), path, footer_key="right")
    with open(path, "rb") as handle, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_skip_metadata(handle, footer_key="wrong")
    (warning,) = [w for w in caught if issubclass(w.category, SkippingFallbackWarning)]
    assert str(warning.message).startswith(f"{path}: ") and "BufferedReader" not in str(
        warning.message
    )


def test_verify_a_plain_parquet_file_has_nothing_to_check(tmp_path):
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": np.arange(100.0)}), path)
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 0 and "no mlskip summaries to check" in " ".join(
        result.output.split()
    )
