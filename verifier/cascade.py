"""The ``Verifier``: a cascade of methods from cheap to complete.

Each method runs only on the regions still UNKNOWN after the previous ones
(and not yet proven mixed), within a total time budget. Between the cheap
bound methods and the expensive ones, points of each open region are
evaluated (random, then a gradient search; witness.py): a region with a
clearly qualifying and a clearly non-qualifying point is *proven mixed* (it
can never be NONE or ALL) and skips the expensive methods. This never
decides NONE or ALL.

Every bound is widened by the float margins of fp_margin.py before the
predicate decides, so NONE / ALL hold for the model as the UDF computes it
(``precision="float32"``, the default) or in float64.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mlskip.errors import ModelInputError

from ._blas import single_thread
from .concretize import tighten_boxes
from .deadline import Deadline
from .fp_margin import UNIT, eval_error
from .load import load_model
from .methods import METHODS, MethodRun
from .network import Network
from .predicate import ALL, NONE, UNKNOWN, Predicate, Spec
from .regions import RegionBatch
from .trees import TreeEnsemble
from .witness import mixed_witness

METHOD_NAMES: tuple[str, ...] = (
    "undecided",
    "ibp",
    "crown",
    "alpha_crown",
    "bab",
    "milp",
    "marabou",
    "auto_lirpa",
    "sampling",
    "empty",
    "lp",
    "leaves",
)
METHOD_CODE = {name: np.int8(i) for i, name in enumerate(METHOD_NAMES)}
AVAILABLE = ("ibp", "crown", "alpha_crown", "bab", "lp", "milp", "marabou", "auto_lirpa")
DEFAULT_METHODS = ("ibp", "crown", "alpha_crown", "bab", "lp", "milp")


@dataclass(frozen=True, eq=False)
class VerificationResult:
    """Per-region verdicts (int8 NONE=0 / ALL=1 / UNKNOWN=2) and how they were reached.

    ``method[r]`` is the code (index into ``method_names``) of the method that
    decided region r, or that proved it mixed; 0 when undecided. ``mixed[r]``
    is True for UNKNOWN regions proven to hold both qualifying and
    non-qualifying points. ``seconds`` maps method name -> time spent.
    ``region_seconds[r]`` attributes that time to regions: each step's time
    is shared by the regions it ran on (evenly for batched bound methods and
    the witness search, by pieces in branch and bound, as measured per region
    in the MILP); it sums to ``total_seconds``.
    """

    verdicts: np.ndarray
    method: np.ndarray
    mixed: np.ndarray
    seconds: Mapping[str, float]
    method_names: tuple[str, ...] = METHOD_NAMES
    region_seconds: np.ndarray | None = None
    capped: bool = False  # the clock (time budget or safety cap) stopped some method

    def __post_init__(self) -> None:
        for a in (self.verdicts, self.method, self.mixed, self.region_seconds):
            if a is not None:
                a.setflags(write=False)

    def __len__(self) -> int:
        return len(self.verdicts)

    def counts(self) -> dict[str, int]:
        """Number of regions per verdict."""
        v = self.verdicts
        return {
            "none": int((v == NONE).sum()),
            "all": int((v == ALL).sum()),
            "unknown": int((v == UNKNOWN).sum()),
        }

    def decided_by(self) -> dict[str, int]:
        """Number of regions decided (or proven mixed) per method name."""
        codes, cnt = np.unique(self.method, return_counts=True)
        return {self.method_names[c]: int(k) for c, k in zip(codes, cnt, strict=True)}

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


@dataclass
class _Ledger:
    """The cascade's running state per region: verdicts, methods, bounds seen, time spent."""

    verdicts: np.ndarray
    method: np.ndarray
    mixed: np.ndarray
    cost: np.ndarray  # seconds attributed to each region
    best_lo: np.ndarray  # [n, m] tightest sound bounds of each spec row so far
    best_hi: np.ndarray
    seen_lo: np.ndarray  # [n, m] extremes of each row at the points evaluated
    seen_hi: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)
    capped: bool = False

    @classmethod
    def start(cls, n: int, m: int) -> _Ledger:
        return cls(
            np.full(n, UNKNOWN, dtype=np.int8),
            np.zeros(n, dtype=np.int8),
            np.zeros(n, dtype=bool),
            np.zeros(n),
            np.full((n, m), -np.inf),
            np.full((n, m), np.inf),
            np.full((n, m), np.inf),
            np.full((n, m), -np.inf),
        )

    def open_regions(self) -> np.ndarray:
        """Regions neither decided nor proven mixed."""
        return np.flatnonzero((self.verdicts == UNKNOWN) & ~self.mixed)

    def spent(
        self, step: str, idx: np.ndarray, secs: float, weights: np.ndarray | None = None
    ) -> None:
        """Book ``secs`` to ``step`` and share them among regions ``idx`` (by ``weights``)."""
        self.seconds[step] = self.seconds.get(step, 0.0) + secs
        if not len(idx):
            return
        if weights is None or not weights.sum() > 0:
            self.cost[idx] += secs / len(idx)
        else:
            self.cost[idx] += secs * (weights / weights.sum())

    def result(self) -> VerificationResult:
        return VerificationResult(
            self.verdicts,
            self.method,
            self.mixed,
            self.seconds,
            region_seconds=self.cost,
            capped=self.capped,
        )


@dataclass
class Verifier:
    """Decide NONE / ALL / UNKNOWN per region with a cascade of methods.

    ``methods``: names from ``AVAILABLE``, run in order; ``time_budget``:
    seconds for one ``verify`` call (None: unlimited; the cheap bound
    methods always run); ``milp_time_per_region``: HiGHS limit per solve;
    ``precision``: the precision the model is evaluated in ("float32" as
    ONNX Runtime does, or "float64"); ``bab_max_pieces``: boxes per region
    in branch and bound; ``sample_points``: points per region tried to prove
    it mixed (0 disables), ``attack_steps``: gradient steps of the search for
    such points (witness.py); ``alpha_mode``: which slopes alpha-CROWN frees
    ("full", "final", "last"; alpha_crown.py); ``overlap_lp``: where polygons share an input,
    open regions are re-bounded with CROWN over box ∩ all polygons by certified LP
    (concretize.lp_min; otherwise a disjoint subset of the polygons is used): in the
    ``lp`` step where ``methods`` has one (after branch and bound, whose pieces are
    cheaper, so that a tight time budget goes to them first), else right after CROWN.
    ``box_first``: regions with polygons are first verified as bare boxes (exactly what
    min-max statistics alone get, with the whole budget) and only the regions that stay
    UNKNOWN again with their polygons (with their share of the budget, by count): polygons
    can only add decisions. With work budgets only (``time_budget=None``, ``bab_time_budget``
    infinite, no MILP) the cascade is deterministic and that holds exactly.
    ``bab_triage``: branch and bound takes regions by the pieces they are estimated to
    need (triage.py: the current bounds against the rows' values at the points the
    witness search saw), skipping those that no bound could decide.
    """

    methods: Sequence[str] = DEFAULT_METHODS
    time_budget: float | None = None
    milp_time_per_region: float = 1.0
    precision: str = "float32"
    bab_max_pieces: int = 256
    bab_time_budget: float = 2.0
    bab_pieces_per_region: int | None = None
    safety_seconds: float | None = None
    alpha_iters: int = 20
    alpha_mode: str = "full"
    sample_points: int = 16
    attack_steps: int = 12
    marabou_timeout: float = 5.0
    seed: int = 0
    overlap_lp: bool = True
    fp_margins: bool = True  # False only to measure what the margins cost (unsound for the UDF)
    box_first: bool = True
    bab_triage: bool = True
    _cheap: tuple[str, ...] = field(default=("ibp", "crown"), init=False, repr=False)
    _complete: tuple[str, ...] = field(default=("milp", "marabou"), init=False, repr=False)

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in AVAILABLE]
        if bad:
            raise ValueError(f"unknown verification methods {bad}; choose from {AVAILABLE}")
        if self.precision not in UNIT:
            raise ValueError(f"precision must be 'float32' or 'float64', got {self.precision!r}")
        if self.alpha_mode not in ("full", "final", "last"):
            raise ValueError(
                f"alpha_mode must be 'full', 'final' or 'last', got {self.alpha_mode!r}"
            )

    def verify(
        self, network: Any, regions: RegionBatch, predicate: Predicate
    ) -> VerificationResult:
        """Verdicts for ``predicate`` on ``network`` over every region of ``regions``."""
        network = load_model(network)
        if isinstance(network, TreeEnsemble):
            from .tree_verify import verify_trees

            return verify_trees(self, network, regions, predicate)
        with single_thread():
            if self.box_first and isinstance(regions, RegionBatch) and regions.has_polygons:
                return self._box_then_polygons(network, regions, predicate)
            return self._verify(network, regions, predicate)

    def _box_then_polygons(
        self, network: Any, regions: RegionBatch, predicate: Predicate
    ) -> VerificationResult:
        """The cascade on the bare boxes, then with the polygons on what stays UNKNOWN."""
        box = self._verify(network, RegionBatch(regions.lower, regions.upper), predicate)
        open_ = np.flatnonzero(box.verdicts == UNKNOWN)
        if not len(open_):
            return box
        stage = self
        share = len(open_) / regions.n  # the budgets' share of the regions still open
        if self.time_budget is not None:
            stage = replace(stage, time_budget=self.time_budget * share)
        cut = stage._verify(network, regions.subset(open_), predicate)
        verdicts, method = box.verdicts.copy(), box.method.copy()
        verdicts[open_], method[open_] = cut.verdicts, cut.method
        mixed = np.zeros(regions.n, dtype=bool)
        mixed[open_] = cut.mixed  # mixed on the box says nothing of box ∩ polygons
        seconds = dict(box.seconds)
        for name, secs in cut.seconds.items():
            seconds[name] = seconds.get(name, 0.0) + secs
        cost = np.array(box.region_seconds, dtype=float)
        cost[open_] += cut.region_seconds
        return VerificationResult(
            verdicts, method, mixed, seconds, region_seconds=cost, capped=box.capped or cut.capped
        )

    def _verify(
        self, network: Any, regions: RegionBatch, predicate: Predicate
    ) -> VerificationResult:
        limit = self.time_budget if self.time_budget is not None else self.safety_seconds
        deadline = None if limit is None else Deadline(limit)
        net: Network = load_model(network)
        if not isinstance(regions, RegionBatch):
            raise ModelInputError(f"regions must be a RegionBatch, got {type(regions).__name__}")
        if regions.d != net.num_inputs:
            raise ModelInputError(
                f"regions have {regions.d} inputs, the model takes {net.num_inputs}"
            )
        spec = predicate.compile(net)
        book = _Ledger.start(regions.n, spec.C.shape[0])
        t0 = time.perf_counter()
        empty = (regions.lower > regions.upper).any(axis=1)
        book.verdicts[empty] = NONE
        book.method[empty] = METHOD_CODE["empty"]
        regions = tighten_boxes(regions)
        row_margin = self.row_margins(net, spec, regions)
        book.spent("prepare", np.arange(regions.n), time.perf_counter() - t0)

        searched: set[bool] = set()  # witness searches done: light (False), heavy (True)
        for name in self.methods:
            open_ = book.open_regions()
            if not len(open_):
                break
            expensive = name not in self._cheap
            heavy = name in self._complete
            if expensive and self.sample_points and heavy not in searched:
                searched.add(heavy)
                if deadline is not None and deadline.passed():
                    book.capped = True
                    break
                open_ = self._witness_step(book, spec, regions, open_, row_margin, heavy)
                if not len(open_):
                    break
            if expensive and deadline is not None and deadline.passed():
                book.capped = True
                break
            self._method_step(book, name, net, spec, regions, open_, row_margin, deadline)
        undecided = bool((book.verdicts == UNKNOWN).any())
        book.capped |= deadline is not None and deadline.passed() and undecided
        return book.result()

    def _witness_step(
        self,
        book: _Ledger,
        spec: Spec,
        regions: RegionBatch,
        open_: np.ndarray,
        row_margin: np.ndarray,
        heavy: bool,
    ) -> np.ndarray:
        """Search the open regions for points proving them mixed; returns those still open."""
        t0 = time.perf_counter()
        seen: dict[str, np.ndarray] = {}
        book.mixed[open_] = mixed_witness(
            spec,
            regions.subset(open_),
            row_margin[open_],
            self.precision,
            self.sample_points,
            self.attack_steps,
            self.seed,
            heavy=heavy,
            seen=seen,
        )
        book.seen_lo[open_] = np.fmin(book.seen_lo[open_], seen["lo"])
        book.seen_hi[open_] = np.fmax(book.seen_hi[open_], seen["hi"])
        book.method[open_[book.mixed[open_]]] = METHOD_CODE["sampling"]
        book.spent("sampling", open_, time.perf_counter() - t0)
        return open_[~book.mixed[open_]]

    def _method_step(
        self,
        book: _Ledger,
        name: str,
        net: Network,
        spec: Spec,
        regions: RegionBatch,
        open_: np.ndarray,
        row_margin: np.ndarray,
        deadline: Deadline | None,
    ) -> None:
        """Run method ``name`` on the open regions and record what it decided."""
        t0 = time.perf_counter()
        sub = regions.subset(open_)
        stats: dict[str, Any] = {}
        if name == "bab" and self.bab_triage:
            from .triage import pieces_needed

            stats["cost"] = pieces_needed(
                spec, book.best_lo[open_], book.best_hi[open_], book.seen_lo[open_],
                book.seen_hi[open_], row_margin[open_], self.precision, regions.d,
            )  # fmt: skip
        v, mx = self._run(name, net, spec, spec.spec_net, sub, row_margin[open_], deadline, stats)
        if "bounds" in stats:
            book.best_lo[open_] = np.fmax(book.best_lo[open_], stats["bounds"][0])
            book.best_hi[open_] = np.fmin(book.best_hi[open_], stats["bounds"][1])
        dec = v != UNKNOWN
        book.verdicts[open_[dec]] = v[dec]
        book.method[open_[dec]] = METHOD_CODE[name]
        if mx is not None:
            book.mixed[open_[mx]] = True
            book.method[open_[mx]] = METHOD_CODE[name]
        book.spent(name, open_, time.perf_counter() - t0, stats.get("weights"))
        book.capped |= bool(stats.get("timed_out"))

    # ------------------------------------------------------------------ helpers
    def row_margins(self, net: Network, spec: Spec, regions: RegionBatch) -> np.ndarray:
        """Float evaluation margin ``[n, m]`` of every spec row (``|C| e_out``)."""
        if not self.fp_margins:
            return np.zeros((regions.n, spec.C.shape[0]))
        e = eval_error(net, regions.lower, regions.upper, self.precision)
        C = np.abs(spec.C)
        fin = np.where(np.isfinite(e), e, 0.0) @ C.T
        inf = (~np.isfinite(e)).astype(float) @ (C > 0).T.astype(float)
        return np.where(inf > 0, np.inf, fin)

    def _run(
        self,
        name: str,
        net: Network,
        spec: Spec,
        snet: Network,
        sub: RegionBatch,
        mg: np.ndarray,
        deadline: Deadline | None,
        stats: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Verdicts (and proven-mixed flags) of method ``name`` on ``sub`` (methods.py);
        ``stats`` receives ``weights`` [n]: the relative cost per region, where known."""
        run = MethodRun(self, net, spec, snet, sub, mg, deadline, {} if stats is None else stats)
        return METHODS[name](run)
