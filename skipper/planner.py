"""Plan which row groups of which files to prune, read without the model, or evaluate.

The planner reads each file's footer summaries (cached by file identity),
builds one region per row group and ML predicate, asks the verifier for
verdicts (one batched call per predicate over all files of a scan) and
returns a ``FilePlan`` per file. Anything it cannot trust becomes UNKNOWN:
the row group is read and the model evaluated, so results never change.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlskip.errors import MlskipError, SkippingFallbackWarning
from mlskip.metadata import (
    FileSkipMetadata,
    footer_hash,
    key_id,
    read_skip_metadata,
    resolve_key,
)
from mlskip.skipper.plan import FilePlan
from mlskip.skipper.remote import (
    S3Options,
    default_filesystem,
    is_s3,
    read_remote_tail,
    remote_identity,
)
from mlskip.skipper.row_group_regions import build_regions
from mlskip.skipper.rules.predicates import AffineArg, MLPredicate
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

    @property
    def key(self) -> tuple:
        return (self.digest, repr(self.predicate), self.args)


def verifier_predicate(ml: MLPredicate) -> Predicate:
    """The verifier's predicate for an SQL ML conjunct."""
    return Predicate.comparison(ml.kind, ml.values)


@dataclass(frozen=True)
class FileFacts:
    """A file's summaries plus compressed bytes per row group, for one identity
    (everything here was read from the file that identity names)."""

    path: str
    identity: tuple
    metadata: FileSkipMetadata
    row_group_bytes: np.ndarray
    column_names: tuple[str, ...]
    numeric_columns: frozenset[str]
    parquet_schema: tuple = ()  # names, physical and logical types of every leaf column


def _identity_of(path: str, st: os.stat_result) -> tuple:
    return (
        os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev
    )  # fmt: skip


def stat_identity(path: str) -> tuple:
    """Cheap identity of a local file: every write changes its ctime (which, unlike the
    mtime, no tool can set back); size, mtime and inode change when it is replaced."""
    return _identity_of(path, os.stat(path))


class Planner:
    """Plans scans; caches footers by file identity and plans by
    (footer hash, file identity, model digest, predicate, bounds).

    Thread-safe: one planner may serve many threads (its caches are guarded
    by a lock; two threads missing the cache at once both plan, same result).
    ``s3`` (or an explicit pyarrow ``filesystem``) is used to read the
    footers of ``s3://`` files; without either, pyarrow's default S3 chain.
    ``footer_key`` (default ``$MLSKIP_FOOTER_KEY``, read at each footer read):
    when set, only footers signed with it are trusted.
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
    ) -> None:
        # without an explicit verifier, the expensive methods get a work budget that
        # follows the rows at stake (planning must stay cheap next to the scan), and a
        # wall-clock safety cap of safety_seconds + seconds_per_row_group per row group
        self.verifier = verifier
        self.seconds_per_row_group = seconds_per_row_group
        self.safety_seconds = safety_seconds
        self._files: OrderedDict[str, FileFacts] = OrderedDict()
        self._plans: OrderedDict[tuple, FilePlan] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.s3 = S3Options.coerce(s3)
        self._filesystem = filesystem
        self._footer_key = footer_key

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
            and cached.metadata.key_id == key_id(trusted)
            and cached.identity == self.identity(path)
            and (is_s3(path) or _same_footer(path, cached))
        ):
            return cached
        if is_s3(path):
            tail, identity = read_remote_tail(self.filesystem, path)
            facts = self._read_facts(path, identity, tail, trusted)
        else:
            with open(path, "rb") as handle:
                identity = _identity_of(path, os.fstat(handle.fileno()))
                facts = self._read_facts(path, identity, handle, trusted)
        with self._lock:
            self._files[key] = facts
            self._files.move_to_end(key)
            self._trim(self._files)
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
        return FileFacts(path, identity, meta, sizes, tuple(schema.names), numeric, leaves)

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
            bab_pieces_per_region=work_budget(regions, rows),
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
        for i, path in enumerate(paths if read is None else ()):
            try:
                facts.append(self.file_facts(path))
            except (OSError, MlskipError, ValueError) as error:
                # unreadable here: DuckDB will read it (or report the error) as usual
                warnings.warn(
                    f"{path}: cannot read its footer ({error}); reading it in full",
                    SkippingFallbackWarning,
                    stacklevel=3,
                )
                facts.append(None)  # type: ignore[arg-type]
                plans[i] = _full_read(path, f"footer unreadable: {error}", len(predicates))
        bounds_key = tuple(sorted(bounds.items()))
        pred_key = tuple(p.key for p in predicates)
        todo: list[int] = []
        for i, f in enumerate(facts):
            if f is None:
                continue
            key = (f.metadata.footer_hash, f.metadata.key_id, f.identity, pred_key, bounds_key)
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
                    key = (
                        f.metadata.footer_hash,
                        f.metadata.key_id,
                        f.identity,
                        pred_key,
                        bounds_key,
                    )
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
        groups = [g for f in files for g in f.metadata.row_groups]
        starts = np.cumsum([0] + [len(f.metadata.row_groups) for f in files])
        verdicts: list[np.ndarray] = []
        methods: list[np.ndarray] = []
        budgets: list[int] = []
        seconds = 0.0
        for bound in predicates:
            start = time.perf_counter()
            verdict, method, budget = self._verify_one(groups, bound, bounds)
            if budget is not None:
                budgets.append(budget)
            seconds += time.perf_counter() - start
            verdicts.append(verdict)
            methods.append(method)
        total = max(len(groups), 1)
        plans = []
        for k, f in enumerate(files):
            lo, hi = starts[k], starts[k + 1]
            plans.append(
                FilePlan(
                    path=f.path,
                    num_rows=np.array([g.num_rows for g in f.metadata.row_groups], dtype=np.int64),
                    row_group_bytes=f.row_group_bytes,
                    verdicts=tuple(v[lo:hi] for v in verdicts),
                    methods=tuple(tuple(m[lo:hi].tolist()) for m in methods),
                    seconds=seconds * (hi - lo) / total,
                    reason=None,
                    identity=f.identity,
                    limits=file_limits(f, predicates),
                    budget=max(budgets) if budgets else None,
                )
            )
        return plans

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
        return (
            "no mlskip summaries (plain Parquet): Parquet's min-max only, and float "
            "columns without NaN counts cannot be used",
        )
    if meta.status != "ok":
        prefix = f"{facts.path}: "
        why = "; ".join(w.removeprefix(prefix) for w in meta.warnings) or "footer not trusted"
        return (f"mlskip summaries not trusted ({why})",)
    out = []
    for bound in predicates:
        columns = sorted({c for arg in bound.args for c, _ in arg.coeffs})
        covered = {c for pair in meta.pairs for c in pair if set(pair) <= set(columns)}
        if len(columns) >= 2 and not covered:
            out.append(
                f"no polygon for the model's columns {columns}: boxes only (write with "
                "hulls='auto' or hulls=[(a, b), ...] naming them)"
            )
    return tuple(dict.fromkeys(out))


def _same_footer(path: str, cached: FileFacts) -> bool:
    """Whether a local file still ends in the footer its cached facts were read from."""
    try:
        return footer_hash(path) == cached.metadata.footer_hash
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
