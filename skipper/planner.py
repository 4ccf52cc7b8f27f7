"""Plan which row groups of which files to prune, read without the model, or evaluate.

The planner reads each file's footer summaries (cached by file identity),
builds one region per row group and ML predicate, asks the verifier for
verdicts (one batched call per predicate over all files of a scan) and
returns a ``FilePlan`` per file. Anything it cannot trust becomes UNKNOWN:
the row group is read and the model evaluated, so results never change.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from mlskip.errors import MlskipError, SkippingFallbackWarning
from mlskip.metadata import (
    FileSkipMetadata,
    RowGroupSummary,
    footer_hash,
    key_id,
    read_skip_metadata,
    resolve_key,
)
from mlskip.metadata.file_index import file_schema
from mlskip.metadata.index_table import IndexTable
from mlskip.metadata.reader import skip_metadata_from
from mlskip.skipper.identity import local_identity, stat_identity
from mlskip.skipper.plan import FilePlan
from mlskip.skipper.remote import (
    S3Options,
    default_filesystem,
    is_s3,
    list_identities,
    read_remote_tail,
    remote_identity,
)
from mlskip.skipper.row_group_regions import build_regions
from mlskip.skipper.rules.predicates import AffineArg, MLPredicate
from mlskip.skipper.skip_index import SkipIndex, index_key
from mlskip.skipper.summary_plan import summary_verdicts
from mlskip.verifier import UNKNOWN, Network, Predicate, RegionBatch
from mlskip.verifier.cascade import Verifier

# no alpha-CROWN by default: it needs torch, whose import costs seconds on a first query;
# no MILP by default: on the quick benchmark it decided no row group and took 55% of the
# verification time (min-max, 1,770 row groups: 2.05 of 3.72 s); at SF1 it decided 0-1.1%
PLANNER_METHODS = ("ibp", "crown", "bab", "lp")
# A branch-and-bound piece (one CROWN bound) costs ~2-5 us, what reading and evaluating
# 4-10 rows costs (measured on the reference protocol: 16 -> 256 pieces per 1,000-row
# row group added ~0.4 ms per row group). A row group's budget is a piece per 16 rows,
# at least 64: with 16 pieces, 1,000-row row groups of lineitem_disc_price were pruned
# 0.4% of the skippable ones with hulls, with 64 13.5%, with 256 18.3%.
ROWS_PER_PIECE = 16
PIECES_PER_REGION = (64, 1024)  # at least / at most, per row group
# The certified overlap LP (where polygons share an input) costs ~0.5 ms a row group, what
# reading and evaluating ~1,000 rows costs, and rarely decides what branch and bound left
# open: it runs only on row groups of at least LP_MIN_ROWS rows.
LP_MIN_ROWS = 16_384
# Gradient steps of the witness search before branch and bound: on the reference protocol
# (209 filters of 0.1% selectivity or less, polygons) 2, 4, 6 and 12 steps prove the
# same regions mixed and leave the same verdicts; 12 cost ~15% more verification time.
ATTACK_STEPS = 4


def work_budget(regions: int, rows: int) -> int:
    """Branch-and-bound pieces per row group, on average, for ``regions`` row groups of
    ``rows`` rows in all: what planning may spend is bounded by what it can save (reading
    and evaluating the rows), counted in work units so that the same query on the same
    files gives the same plan."""
    low, high = PIECES_PER_REGION
    return int(min(high, max(low, rows // max(regions, 1) // ROWS_PER_PIECE)))


def runs_lp(regions: int, rows: int) -> bool:
    """Whether the overlap LP is worth its cost on row groups of ``rows / regions`` rows."""
    return rows // max(regions, 1) >= LP_MIN_ROWS


@dataclass(frozen=True, eq=False)
class BoundPredicate:
    """An ML conjunct bound to its model, with arguments named as in the files.

    ``network`` is None for a model the verifier cannot bound: its row groups
    are all evaluated.
    """

    network: Network | None
    predicate: Predicate
    args: tuple[AffineArg, ...]
    digest: str
    sql: str
    sql_types: tuple[str, ...] = ()  # the SQL function's input types ((): all DOUBLE)
    # other models the connection knows, by digest: their summaries may serve this one
    references: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sql_types:
            object.__setattr__(self, "sql_types", ("DOUBLE",) * len(self.args))

    @property
    def key(self) -> tuple:
        return (self.digest, repr(self.predicate), self.args, tuple(sorted(self.references)))


def verifier_predicate(ml: MLPredicate) -> Predicate:
    """The verifier's predicate for an SQL ML conjunct."""
    return Predicate.comparison(ml.kind, ml.values)


@dataclass(frozen=True, eq=False)
class FileFacts:
    """A file's summaries plus compressed bytes per row group, for one identity
    (everything here was read from the file that identity names, or from a skip-index
    entry checked against it).

    ``metadata`` (the row groups' summaries) is built on first use: planning from an
    index builds it only for files that survive file-level pruning (``whole``, the
    union of the file's row groups, given by an index). ``notes`` say where the facts
    came from when that limits skipping (a stale index entry).
    """

    path: str
    identity: tuple
    row_group_bytes: np.ndarray
    column_names: tuple[str, ...]
    numeric_columns: frozenset[str]
    parquet_schema: tuple  # names, physical and logical types of every leaf column
    footer_hash: str
    key_id: str
    row_counts: np.ndarray
    load: Callable[[], FileSkipMetadata] = field(repr=False)
    whole: RowGroupSummary | None = None
    notes: tuple[str, ...] = ()

    @functools.cached_property
    def metadata(self) -> FileSkipMetadata:
        return self.load()

    @property
    def cache_key(self) -> tuple:
        """What a plan of this file depends on besides the query: the facts' content and
        where they came from (an index entry plans differently from the footer)."""
        return (self.footer_hash, self.key_id, self.identity, self.whole is not None, self.notes)


class Planner:
    """Plans scans; caches footers by file identity and plans by
    (footer hash, file identity, model digest, predicate, bounds).

    Thread-safe: one planner may serve many threads (its caches are guarded
    by a lock; two threads missing the cache at once both plan, same result).
    ``s3`` (or an explicit pyarrow ``filesystem``) is used to read the
    footers of ``s3://`` files; without either, pyarrow's default S3 chain.
    ``footer_key`` (default ``$MLSKIP_FOOTER_KEY``, read at each footer read):
    when set, only footers signed with it are trusted. ``index``: a skip index
    (``mlskip index build``) that files are planned from instead of their footers,
    wherever its entry still matches the file. ``pieces_per_row_group``: the branch-and-
    bound pieces each row group may be split into (default: ``work_budget``, what
    planning can save by the row group's rows; a given ``verifier`` keeps its own).
    """

    def __init__(
        self,
        verifier: Verifier | None = None,
        cache_size: int = 512,
        seconds_per_row_group: float = 0.05,
        safety_seconds: float = 5.0,
        *,
        s3: S3Options | Mapping | None = None,
        filesystem: object | None = None,
        footer_key: str | bytes | None = None,
        index: str | os.PathLike | None = None,
        pieces_per_row_group: int | None = None,
    ) -> None:
        # without an explicit verifier, the expensive methods get a work budget that
        # follows the rows at stake (planning must stay cheap next to the scan), and a
        # wall-clock safety cap of safety_seconds + seconds_per_row_group per row group
        self.verifier = verifier
        self.pieces_per_row_group = pieces_per_row_group
        self.seconds_per_row_group = seconds_per_row_group
        self.safety_seconds = safety_seconds
        self._files: OrderedDict[str, FileFacts] = OrderedDict()
        self._plans: OrderedDict[tuple, FilePlan] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.s3 = S3Options.coerce(s3)
        self._filesystem = filesystem
        self._footer_key = footer_key
        self.index = (
            SkipIndex(os.fspath(index), lambda: self.filesystem, self.s3)
            if index is not None
            else None
        )
        self._indexed: OrderedDict[tuple, FileFacts] = OrderedDict()

    @property
    def filesystem(self) -> object:
        """The pyarrow filesystem that reads ``s3://`` footers (made on first use)."""
        with self._lock:
            if self._filesystem is None:
                self._filesystem = (
                    self.s3.filesystem() if self.s3 is not None else default_filesystem()
                )
            return self._filesystem

    def identity(self, path: str) -> tuple:
        """The current identity of ``path``: (abspath, size, mtime, inode, device) for a
        local file, (path, size, ETag, Last-Modified) for an ``s3://`` object."""
        if is_s3(path):
            return remote_identity(self.filesystem, path)
        return stat_identity(path)

    def identities(self, paths: Sequence[str]) -> list[tuple | None]:
        """``identity`` of each path (None where it cannot be had): ``s3://`` objects from
        one LIST per folder rather than a HEAD each when there are several."""
        remote = [p for p in paths if is_s3(p)]
        listed = list_identities(self.s3, remote) if len(remote) > 1 else {}
        out: list[tuple | None] = []
        for path in paths:
            try:
                out.append(listed[path] if path in listed else self.identity(path))
            except (OSError, ValueError):
                out.append(None)
        return out

    def file_facts(self, path: str) -> FileFacts:
        """Footer summaries of ``path``, re-read whenever the file changed.

        Identity and footer come from one open file (a local file replaced by an
        atomic rename meanwhile is the old one throughout), or for ``s3://`` from
        one ranged read between two HEADs that agree.
        """
        key = path if is_s3(path) else os.path.abspath(path)
        trusted = resolve_key(self._footer_key)
        with self._lock:
            cached = self._files.get(key)
        if (
            cached is not None
            and cached.key_id == key_id(trusted)
            and cached.identity == self.identity(path)
            and (is_s3(path) or _same_footer(path, cached))
        ):
            return cached
        if is_s3(path):
            tail, identity = read_remote_tail(self.filesystem, path)
            facts = self._read_facts(path, identity, tail, trusted)
        else:
            with open(path, "rb") as handle:
                identity = local_identity(path, os.fstat(handle.fileno()))
                facts = self._read_facts(path, identity, handle, trusted)
        with self._lock:
            self._files[key] = facts
            self._files.move_to_end(key)
            self._trim(self._files)
        return facts

    def files_facts(self, paths: Sequence[str]) -> list[FileFacts | Exception]:
        """Facts of every path (an exception where a footer cannot be read): from the
        skip index where its entry matches the file, else from the file's footer."""
        out: list[FileFacts | Exception] = []
        found: dict[str, tuple] = {}
        notes: dict[str, str] = {}
        table = None
        if self.index is not None:
            try:
                table, found, notes = self.index.lookup(paths)
            except (OSError, MlskipError) as error:
                warnings.warn(
                    f"skip index {self.index.location} unusable ({error}); planning from footers",
                    SkippingFallbackWarning,
                    stacklevel=3,
                )
                notes = {p: f"skip index unusable: {error}" for p in paths}
        trusted = resolve_key(self._footer_key)
        trusted_id = key_id(trusted)
        for path in paths:
            try:
                if path in found:
                    try:
                        out.append(self._from_index(table, path, found[path], trusted, trusted_id))
                        continue
                    except (ValueError, KeyError, TypeError, AttributeError) as error:
                        notes[path] = (
                            f"skip index entry unreadable ({error}): planned from its own footer"
                        )
                facts = self.file_facts(path)
                if path in notes:
                    facts = replace(facts, notes=(notes[path],))
                out.append(facts)
            except (OSError, MlskipError, ValueError) as error:
                out.append(error)
        return out

    def _from_index(
        self, table: IndexTable, path: str, identity: tuple, trusted: bytes | None, trusted_id: str
    ) -> FileFacts:
        """A file's facts from its (checked) index entry; its row groups' summaries are
        decoded only if it is planned past file-level pruning."""
        key = index_key(path)
        cache_key = (key, identity, trusted_id, id(table))
        with self._lock:
            hit = self._indexed.get(cache_key)
        if hit is not None:
            return hit
        table.check_entry(key)
        names, numeric, leaves = table.planner_schema(key)
        fhash = table.value(key, "footer_hash")
        footer, found = table.value(key, "mlskip_footer"), table.value(key, "mlskip_key")
        models = table.value(key, "mlskip_models")

        def load() -> FileSkipMetadata:
            meta = skip_metadata_from(
                table.parquet_facts(key), footer, found, label=path, footer_key=trusted,
                models_raw=models,
            )  # fmt: skip
            for message in meta.warnings:
                warnings.warn(message, SkippingFallbackWarning, stacklevel=2)
            return replace(meta, path=path, footer_hash=fhash)

        trust_nan = (
            table.meta.get("key_id", "") == trusted_id and table.value(key, "status") == "ok"
        )
        facts = FileFacts(
            path, identity, table.row_group_bytes(key), names, numeric, leaves, fhash,
            trusted_id, table.row_counts(key), load, table.whole_file(key, trust_nan),
        )  # fmt: skip
        with self._lock:
            self._indexed[cache_key] = facts
            self._trim(self._indexed)
        return facts

    def _read_facts(
        self, path: str, identity: tuple, source: object, key: bytes | None
    ) -> FileFacts:
        meta = read_skip_metadata(source, footer_key=key)
        source.seek(0)  # type: ignore[attr-defined]
        parquet = pq.ParquetFile(source).metadata
        sizes = np.array(
            [parquet.row_group(i).total_byte_size for i in range(parquet.num_row_groups)],
            dtype=np.int64,
        )
        rows = np.array([g.num_rows for g in meta.row_groups], dtype=np.int64)
        names = file_schema(parquet)
        return FileFacts(
            path, identity, sizes, names.column_names, names.numeric_columns, names.leaves,
            meta.footer_hash, meta.key_id, rows, lambda: meta,
        )  # fmt: skip

    def verifier_for(self, regions: int, rows: int = 0) -> Verifier:
        """The verifier used for a batch of ``regions`` row groups holding ``rows`` rows
        (the given one, else the default cascade with work budgets that follow what
        planning can save; see ``work_budget``)."""
        if self.verifier is not None:
            return self.verifier
        lp = runs_lp(regions, rows)
        return Verifier(
            methods=PLANNER_METHODS if lp else tuple(m for m in PLANNER_METHODS if m != "lp"),
            time_budget=None,
            bab_time_budget=float("inf"),
            bab_pieces_per_region=self.pieces_per_row_group or work_budget(regions, rows),
            safety_seconds=self.safety_seconds + self.seconds_per_row_group * regions,
            overlap_lp=lp,
            attack_steps=ATTACK_STEPS,
        )

    def _trim(self, cache: OrderedDict) -> None:
        while len(cache) > self._cache_size:
            cache.popitem(last=False)

    def plan_files(
        self,
        paths: Sequence[str],
        predicates: Sequence[BoundPredicate],
        bounds: Mapping[str, tuple[float, float]],
        read: Sequence[FileFacts] | None = None,
    ) -> tuple[FilePlan, ...]:
        """One plan per file for the conjunction of ``predicates`` (bounds by column);
        ``read`` are the files' facts when the caller has just read them."""
        facts: list[FileFacts] = list(read) if read is not None else []
        plans: dict[int, FilePlan] = {}
        for i, (path, got) in enumerate(
            zip(paths, self.files_facts(paths), strict=True) if read is None else ()
        ):
            if isinstance(got, Exception):
                # unreadable here: DuckDB will read it (or report the error) as usual
                warnings.warn(
                    f"{path}: cannot read its footer ({got}); reading it in full",
                    SkippingFallbackWarning,
                    stacklevel=3,
                )
                facts.append(None)  # type: ignore[arg-type]
                plans[i] = _full_read(path, f"footer unreadable: {got}", len(predicates))
            else:
                facts.append(got)
        bounds_key = tuple(sorted(bounds.items()))
        pred_key = tuple(p.key for p in predicates)
        todo: list[int] = []
        for i, f in enumerate(facts):
            if f is None:
                continue
            key = (f.cache_key, pred_key, bounds_key)
            with self._lock:
                hit = self._plans.get(key)
            if hit is not None:
                plans[i] = hit
            else:
                todo.append(i)
        if todo:
            fresh = self._verify([facts[i] for i in todo], predicates, bounds)
            with self._lock:
                for i, plan in zip(todo, fresh, strict=True):
                    f = facts[i]
                    key = (f.cache_key, pred_key, bounds_key)
                    self._plans[key] = plan
                    plans[i] = plan
                self._trim(self._plans)
        return tuple(plans[i] for i in range(len(paths)))

    def _verify(
        self,
        files: Sequence[FileFacts],
        predicates: Sequence[BoundPredicate],
        bounds: Mapping[str, tuple[float, float]],
    ) -> list[FilePlan]:
        """Plans for ``files``: files an index summarizes whole are verified first, and
        the row groups of files decided whole (for a predicate) are not verified for it."""
        start = time.perf_counter()
        whole, whole_methods = self._verify_whole(files, predicates, bounds)
        pruned_whole = (whole == 0).any(axis=0)
        verdicts: list[list[np.ndarray]] = []
        methods: list[list[np.ndarray]] = []
        budgets: list[int] = []
        for p, bound in enumerate(predicates):
            open_files = {
                k for k, f in enumerate(files) if whole[p, k] == UNKNOWN and not pruned_whole[k]
            }
            groups = [g for k in sorted(open_files) for g in files[k].metadata.row_groups]
            verdict, method, budget = self._verify_one(groups, bound, bounds)
            if budget is not None:
                budgets.append(budget)
            per_v, per_m = [], []
            at = 0
            for k, f in enumerate(files):
                n = len(f.row_counts)
                if k in open_files:
                    per_v.append(verdict[at : at + n])
                    per_m.append(method[at : at + n])
                    at += n
                else:  # decided for the whole file (or pruned whole by another predicate)
                    label = whole_methods[p][k] if whole[p, k] != UNKNOWN else "file-pruned"
                    per_v.append(np.full(n, whole[p, k], dtype=np.int8))
                    per_m.append(np.full(n, label, dtype=object))
            verdicts.append(per_v)
            methods.append(per_m)
        seconds = time.perf_counter() - start
        total = max(sum(len(f.row_counts) for f in files), 1)
        # a file decided whole needs no row-group summaries, nor words on what limits them
        decided = pruned_whole | (whole != UNKNOWN).all(axis=0)
        return [
            FilePlan(
                path=f.path,
                num_rows=f.row_counts,
                row_group_bytes=f.row_group_bytes,
                verdicts=tuple(v[k] for v in verdicts),
                methods=tuple(tuple(m[k].tolist()) for m in methods),
                seconds=seconds * len(f.row_counts) / total,
                reason=None,
                identity=f.identity,
                limits=f.notes if decided[k] else file_limits(f, predicates),
                budget=max(budgets) if budgets else None,
                indexed=f.whole is not None,
            )
            for k, f in enumerate(files)
        ]

    def _verify_whole(
        self,
        files: Sequence[FileFacts],
        predicates: Sequence[BoundPredicate],
        bounds: Mapping[str, tuple[float, float]],
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Verdicts (predicate x file) for the files an index summarizes whole, UNKNOWN
        for the others, and what decided them ("file-level <method>")."""
        whole = np.full((len(predicates), len(files)), UNKNOWN, dtype=np.int8)
        labels = [np.full(len(files), "", dtype=object) for _ in predicates]
        summarized = [k for k, f in enumerate(files) if f.whole is not None and len(f.row_counts)]
        if not summarized:
            return whole, labels
        summaries = [files[k].whole for k in summarized]
        for p, bound in enumerate(predicates):
            verdict, method, _ = self._verify_one(summaries, bound, bounds)
            whole[p, summarized] = verdict
            labels[p][summarized] = ["file-level " + str(m) for m in method]
        return whole, labels

    def row_group_verdicts(
        self,
        groups: Sequence,
        bound: BoundPredicate,
        bounds: Mapping[str, tuple[float, float]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Verdicts and deciding methods for row-group summaries ``groups`` (of any files),
        exactly as plans decide them: what benchmarks measure."""
        verdicts, methods, _ = self._verify_one(groups, bound, bounds or {})
        return verdicts, methods

    def _verify_one(
        self,
        groups: Sequence,
        bound: BoundPredicate,
        bounds: Mapping[str, tuple[float, float]],
    ) -> tuple[np.ndarray, np.ndarray, int | None]:
        """Verdicts and deciding methods per row group, and the branch-and-bound pieces
        per row group the cost model allowed (None when nothing was left to verify)."""
        n = len(groups)
        budget = None
        regions = build_regions(groups, bound.args, bounds)
        verdicts = np.full(n, UNKNOWN, dtype=np.int8)
        methods = np.array(["untrusted"] * n, dtype=object)
        methods[regions.empty] = "sql-bounds"
        methods[regions.all_null] = "all-null"
        verdicts[regions.empty | regions.all_null] = 0
        if bound.network is None:
            methods[:] = "unverifiable"
        todo = np.flatnonzero(~regions.empty & ~regions.all_null & ~regions.untrusted)
        if bound.network is None:
            todo = todo[:0]
        # model-aware summaries first (a bitmap test per row group); they hold the outputs
        # as computed, so also where a float input may be NaN (a box the verifier distrusts)
        summarized = np.flatnonzero(~regions.empty & ~regions.all_null)
        if bound.network is not None and len(summarized):
            rows = int(sum(groups[i].num_rows for i in summarized))
            chosen = self.verifier_for(len(summarized), rows)
            # the verifier's branch-and-bound budget per row group, else its cap per region
            pieces = getattr(chosen, "bab_pieces_per_region", None) or getattr(
                chosen, "bab_max_pieces", None
            )
            got, by = summary_verdicts(groups, summarized, bound, regions, pieces)
            got[(got == 1) & regions.has_nulls[summarized]] = UNKNOWN
            decided = got != UNKNOWN
            verdicts[summarized[decided]] = got[decided]
            methods[summarized[decided]] = by[decided]
            todo = np.setdiff1d(todo, summarized[decided])
        if len(todo):
            batch = RegionBatch(
                regions.lower[todo],
                regions.upper[todo],
                regions.pairs,
                tuple((A[todo], b[todo]) for A, b in regions.halfspaces),
            )
            rows = int(sum(groups[i].num_rows for i in todo))
            verifier = self.verifier_for(len(todo), rows)
            budget = getattr(verifier, "bab_pieces_per_region", None)  # any verifier object
            result = verifier.verify(bound.network, batch, bound.predicate)
            got = np.asarray(result.verdicts, dtype=np.int8).copy()
            # NULL arguments never qualify, so "every row qualifies" needs no NULLs
            got[(got == 1) & regions.has_nulls[todo]] = UNKNOWN
            verdicts[todo] = got
            names = np.array(result.method_names, dtype=object)[result.method]
            # the safety cap is reported where it left row groups open
            open_label = "safety-cap" if result.capped else "undecided"
            methods[todo] = np.where(got == UNKNOWN, open_label, names)
        return verdicts, methods, budget


def file_limits(facts: FileFacts, predicates: Sequence[BoundPredicate]) -> tuple[str, ...]:
    """What limits skipping in one file, in words for ``explain_skipping``."""
    meta = facts.metadata
    if meta.status == "no-summaries":
        return facts.notes + (
            "no mlskip summaries (plain Parquet): Parquet's min-max only, and float "
            "columns without NaN counts cannot be used",
        )
    if meta.status != "ok":
        prefix = f"{facts.path}: "
        why = "; ".join(w.removeprefix(prefix) for w in meta.warnings) or "footer not trusted"
        return (*facts.notes, f"mlskip summaries not trusted ({why})")
    out = []
    for bound in predicates:
        columns = sorted({c for arg in bound.args for c, _ in arg.coeffs})
        covered = {c for pair in meta.pairs for c in pair if set(pair) <= set(columns)}
        if len(columns) >= 2 and not covered:
            out.append(
                f"no polygon for the model's columns {columns}: boxes only (write with "
                "hulls='auto' or hulls=[(a, b), ...] naming them)"
            )
    return tuple(dict.fromkeys([*facts.notes, *out]))


def _same_footer(path: str, cached: FileFacts) -> bool:
    """Whether a local file still ends in the footer its cached facts were read from."""
    try:
        return footer_hash(path) == cached.footer_hash
    except (OSError, MlskipError):
        return False


def _full_read(path: str, reason: str, num_predicates: int) -> FilePlan:
    empty = np.zeros(0, dtype=np.int64)
    return FilePlan(
        path=path,
        num_rows=empty,
        row_group_bytes=empty,
        verdicts=tuple(np.zeros(0, dtype=np.int8) for _ in range(num_predicates)),
        methods=tuple(() for _ in range(num_predicates)),
        seconds=0.0,
        reason=reason,
    )
