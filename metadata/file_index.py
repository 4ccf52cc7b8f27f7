"""One Parquet file as a skip index holds it: its Parquet facts plus an mlskip footer value.

A file that carries an mlskip footer is indexed from its footer alone (no row is
read). A plain file (written by Spark, DuckDB, Polars, pyarrow ...) gets the very
value ``write_parquet`` would have stored in it: its row groups are read one at a
time, only the columns the summaries need, and summarized with the writer's code
under the same byte budget and codec, bound to the file's own layout digest. The
reader later checks that value against the stored facts exactly as it checks a
footer against its file (``reader.skip_metadata_from``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .encoding import is_numeric
from .footer import KEY, KEY_PREFIX, KEYS, Footer, encode_footer
from .grid import FINE_BITS
from .integrity import layout_digest
from .model_summary import KEY as MODELS_KEY
from .reader import ParquetFacts, parquet_facts, skip_metadata_from


@dataclass(frozen=True)
class FileSchema:
    """The schema facts the planner checks a scan against (names, numeric columns, and
    every leaf's path, physical and logical type and levels), from Parquet's footer."""

    column_names: tuple[str, ...]
    numeric_columns: frozenset[str]
    leaves: tuple[tuple, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "names": list(self.column_names),
                "numeric": sorted(self.numeric_columns),
                "leaves": [list(leaf) for leaf in self.leaves],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> FileSchema:
        data = json.loads(text)
        return cls(
            tuple(data["names"]),
            frozenset(data["numeric"]),
            tuple(tuple(leaf) for leaf in data["leaves"]),
        )

    @property
    def digest(self) -> str:
        return hashlib.blake2b(self.to_json().encode(), digest_size=8).hexdigest()


def file_schema(parquet: pq.FileMetaData) -> FileSchema:
    """The planner's schema facts of one file, from its Parquet metadata."""
    schema = parquet.schema.to_arrow_schema()
    numeric = frozenset(
        f.name
        for f in schema
        if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
        or pa.types.is_decimal(f.type)
    )  # fmt: skip
    leaves = tuple(
        (c.path, c.physical_type, str(c.logical_type), c.max_definition_level,
         c.max_repetition_level)
        for c in parquet.schema
    )  # fmt: skip
    return FileSchema(tuple(schema.names), numeric, leaves)


@dataclass(frozen=True)
class IndexedFile:
    """What a skip index stores of one file (identity aside).

    ``footer`` is an mlskip footer value under key ``key`` (the file's own when
    ``origin`` is "footer", computed from its rows when "rows"); ``status`` and
    ``may_have_nan`` (per row group) are what that value gave when decoded and checked
    against ``facts`` under the key the index was built with.
    """

    facts: ParquetFacts
    schema: FileSchema
    row_group_bytes: tuple[int, ...]  # uncompressed bytes per row group (Parquet's)
    footer: str | None
    key: str | None
    origin: str
    footer_hash: str
    status: str
    may_have_nan: tuple[frozenset[str], ...]
    models: str | None = None  # the model summaries' value (key mlskip.models.v1), if any


def index_file(
    source: Any,
    label: str,
    footer_hash: str,
    *,
    hulls: str | Sequence[tuple[str, str]] | None = "auto",
    hull_bytes: int = 45,
    footer_key: bytes | None = None,
    footer_hooks: Callable[[pa.Schema], Sequence[Any]] | None = None,
) -> IndexedFile:
    """Index one open Parquet file (``label`` names it in messages).

    ``hulls``: "auto" (pairs chosen on the first row group, as the streaming writer
    does), explicit pairs (those whose columns this file lacks are left out), or
    None. The computed value is signed with ``footer_key`` when given. ``footer_hooks``
    (as ``write_parquet``'s) compute model summaries from the file's rows; without them a
    file's own model summaries are carried over.
    """
    from .writer import _summary_columns, summarize_row_group

    pf = pq.ParquetFile(source)
    meta = pf.metadata
    facts = parquet_facts(pf)
    kv = meta.metadata or {}
    found = next((k for k in KEYS if k.encode() in kv), None)
    if found is not None:
        footer, origin = kv[found.encode()].decode("ascii", "replace"), "footer"
    else:
        schema = pf.schema_arrow
        groups = meta.num_row_groups
        pairs = _pairs_for(hulls, schema, pf if groups else None)
        columns, pair_idx = _summary_columns(schema, pairs)
        summaries = [
            summarize_row_group(
                pf.read_row_group(r, columns=columns), columns, pair_idx, hull_bytes
            )
            for r in range(groups)
        ]
        value = Footer(
            FINE_BITS,
            hull_bytes,
            tuple(columns),
            tuple(pair_idx),
            tuple(summaries),
            layout=layout_digest(facts.sizes, facts.schema),
        )
        footer, found, origin = encode_footer(value, key=footer_key), KEY, "rows"
    others = tuple(k.decode("utf-8", "replace") for k in kv if k.startswith(KEY_PREFIX.encode()))
    decoded = skip_metadata_from(
        facts, footer, found, label=label, footer_key=footer_key, other_keys=others
    )
    if footer_hooks is not None:
        models = _hooked_value(pf, facts, footer_hooks, footer_key).get(MODELS_KEY)
    else:
        stored = kv.get(MODELS_KEY.encode())
        models = stored.decode("ascii", "replace") if stored is not None else None
    return IndexedFile(
        facts=facts,
        schema=file_schema(meta),
        row_group_bytes=tuple(
            meta.row_group(r).total_byte_size for r in range(meta.num_row_groups)
        ),
        footer=footer,
        key=found,
        origin=origin,
        footer_hash=footer_hash,
        status=decoded.status,
        may_have_nan=tuple(g.may_have_nan for g in decoded.row_groups),
        models=models,
    )


def _hooked_value(
    pf: pq.ParquetFile, facts: ParquetFacts, footer_hooks: Callable, key: bytes | None
) -> dict[str, str]:
    """The key-value entries footer hooks compute from a file's row groups, read one at a
    time (only the columns the hooks name, when they do)."""
    hooks = list(footer_hooks(pf.schema_arrow))
    wanted = [c for h in hooks for c in getattr(h, "columns", ())]
    columns = list(dict.fromkeys(wanted)) if all(hasattr(h, "columns") for h in hooks) else None
    for r in range(pf.metadata.num_row_groups):
        table = pf.read_row_group(r, columns=columns)
        for hook in hooks:
            hook.add(table)
    out: dict[str, str] = {}
    layout = layout_digest(facts.sizes, facts.schema)
    for hook in hooks:
        out.update(hook.finish(layout, key))
    return out


def _pairs_for(
    hulls: str | Sequence[tuple[str, str]] | None, schema: pa.Schema, pf: pq.ParquetFile | None
) -> list[tuple[str, str]]:
    """The pairs one file gets: chosen on its first row group, or the given ones it has."""
    from .writer import select_pairs

    if hulls is None or pf is None:
        return []
    # INT96 timestamps: pyarrow reads nanoseconds, DuckDB truncates them to microseconds;
    # a polygon over pyarrow's values could exclude DuckDB's, so they get none
    int96 = {c.path for c in pf.schema if c.physical_type == "INT96"}
    numeric = [f.name for f in schema if is_numeric(f.type) and f.name not in int96]
    if hulls == "auto":
        return select_pairs(pf.read_row_group(0, columns=numeric)) if len(numeric) > 1 else []
    return [(a, b) for a, b in hulls if a in numeric and b in numeric and a != b]
