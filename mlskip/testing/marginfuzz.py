"""``mlskip selfcheck --margin``: the verifier's bounds against ONNX Runtime itself.

The float32 error analysis (``verifier/fp_margin.py``) is a proof about IEEE
arithmetic and stated kernel errors; this campaign checks it against the runtime
the SQL functions use. Each trial draws, from its seed alone, a random ONNX model as
exporters write them (Sub/Div normalisation, Gemm with or without transB and with
alpha/beta, MatMul + Add, BatchNormalization, Mul by constants, Relu, LeakyRelu,
Sigmoid, Tanh, Dropout/Identity/Flatten, a final Sigmoid or Softmax), with weights
from 1e-40 to 1e6 (zeros and float32 subnormals included), and boxes from 1e-3 wide
to near float32's overflow. ONNX Runtime evaluates each box's centre, its vertices and
random points inside it (as float64 values rounded to float32, as the SQL function
rounds its DOUBLE arguments); predicates are drawn at the edges of the observed
outputs (the largest and smallest output, one float step inside, and the median).

Oracle, for every box and predicate: if a point satisfies the predicate (as DuckDB
decides it, ``Predicate.holds``: NaN above every number) the verdict is not NONE;
if a point fails it, the verdict is not ALL. A violation is a lost or added row.
Trial ``i`` uses ``random.Random(seed + i)``; every eighth trial also runs
alpha-CROWN and the MILP.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import numpy as np

from mlskip.verifier import ALL, NONE, Predicate

REGIONS = 24  # boxes per trial
POINTS = 24  # random points per box (plus centre and up to 16 vertices)
F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class MarginResult:
    """Counts of one campaign; ``violations`` hold seed, predicate and box."""

    trials: int = 0
    models: int = 0
    unverifiable: int = 0
    checks: int = 0
    decided: int = 0
    violations: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: MarginResult) -> None:
        for name in ("trials", "models", "unverifiable", "checks", "decided"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.violations += other.violations
        self.refusals += other.refusals
        self.errors += other.errors

    @property
    def ok(self) -> bool:
        return not self.violations and not self.errors

    def summary(self) -> str:
        return (
            f"margin campaign: {self.trials} trials, {self.models} models verified "
            f"({self.unverifiable} refused by the loader), {self.checks} (box, predicate) "
            f"checks against ONNX Runtime, {self.decided} decided NONE/ALL, "
            f"{len(self.violations)} violations, {len(self.errors)} errors, "
            f"{self.seconds:.1f} s"
        )


# ----------------------------------------------------------------------------- models
def _weights(rnd: random.Random, nrng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Weights at a random scale in [1e-40, 1e6], with zeros and subnormals mixed in."""
    scale = 10.0 ** rnd.uniform(-40, 6) if rnd.random() < 0.3 else 10.0 ** rnd.uniform(-3, 2)
    w = nrng.normal(0, 1, shape) * scale
    if rnd.random() < 0.3:
        w[nrng.random(shape) < 0.3] = 0.0
    if rnd.random() < 0.15:
        tiny = nrng.random(shape) < 0.3
        w[tiny] = nrng.choice([1e-40, -1e-42, 1e-45], size=int(tiny.sum()))
    return w.astype(np.float32)


class _Builder:
    """An ONNX op chain on one [N, d] input, built node by node."""

    def __init__(self, d: int) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.inputs, self.current, self.width, self._n = d, "x", d, 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def const(self, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], width: int | None = None, **attrs) -> None:
        from onnx import helper

        out = self._name("t")
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        self.current = out
        if width is not None:
            self.width = width

    def model(self, opset: int = 17) -> bytes:
        from onnx import TensorProto, helper

        self.nodes.append(helper.make_node("Identity", [self.current], ["y"], name="out"))
        graph = helper.make_graph(
            self.nodes,
            "marginfuzz",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", self.inputs])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", self.width])],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        return model.SerializeToString()


def draw_model(rnd: random.Random, nrng: np.random.Generator) -> tuple[bytes, int, int, str]:
    """(ONNX bytes, inputs d, outputs k, a description) of a random chain model."""
    d = rnd.randint(1, 4)
    b = _Builder(d)
    parts: list[str] = []
    if rnd.random() < 0.3:  # normalisation as exporters write it
        b.node("Sub", [b.current, b.const(nrng.normal(0, 10 ** rnd.uniform(0, 4), d))])
        b.node("Div", [b.current, b.const(nrng.uniform(0.1, 10 ** rnd.uniform(0, 3), d))])
        parts.append("norm")
    layers = rnd.randint(1, 3)
    for i in range(layers):
        last = i == layers - 1
        out = rnd.choice([1, 2, 3]) if last else rnd.randint(1, 6)
        kind = rnd.choice(
            ["gemm", "gemm", "matmul", "mul"] if out == b.width else ["gemm", "matmul"]
        )
        if kind == "gemm":
            w = _weights(rnd, nrng, (out, b.width))
            trans = rnd.random() < 0.7
            attrs = {"transB": 1} if trans else {}
            if rnd.random() < 0.3:
                attrs["alpha"] = float(np.float32(rnd.choice([0.5, 3.0, 1e-3, 7.0])))
            if rnd.random() < 0.3:
                attrs["beta"] = float(np.float32(rnd.choice([0.25, 2.0, 1e3])))
            bias = _weights(rnd, nrng, (out,))
            b.node("Gemm", [b.current, b.const(w if trans else w.T), b.const(bias)], out, **attrs)
            parts.append(
                "gemm" + ("T" if trans else "") + ("a" if attrs.keys() - {"transB"} else "")
            )
        elif kind == "matmul":
            b.node("MatMul", [b.current, b.const(_weights(rnd, nrng, (b.width, out)))], out)
            b.node("Add", [b.current, b.const(_weights(rnd, nrng, (out,)))])
            parts.append("matmul")
        else:
            b.node("Mul", [b.current, b.const(_weights(rnd, nrng, (b.width,)))])
            parts.append("mul")
        if rnd.random() < 0.2:
            w = b.width
            stats = [
                nrng.uniform(0.5, 2, w),
                nrng.normal(0, 1, w),
                nrng.normal(0, 10 ** rnd.uniform(-2, 4), w),
                nrng.uniform(1e-3, 10, w),
            ]
            b.node("BatchNormalization", [b.current, *(b.const(s) for s in stats)])
            parts.append("bn")
        if rnd.random() < 0.15:
            b.node(rnd.choice(["Dropout", "Identity", "Flatten"]), [b.current])
        if not last:
            act = rnd.choice(["Relu", "LeakyRelu", "Sigmoid", "Tanh"])
            attrs = {"alpha": rnd.choice([0.01, 0.2, 1.0])} if act == "LeakyRelu" else {}
            b.node(act, [b.current], **attrs)
            parts.append(act.lower())
    final = rnd.random()
    if final < 0.2:
        b.node("Sigmoid", [b.current])
        parts.append("sigmoid")
    elif final < 0.4 and b.width > 1:
        b.node("Softmax", [b.current], axis=-1)
        parts.append("softmax")
    return b.model(), d, b.width, "-".join(parts)


# ----------------------------------------------------------------------------- boxes and points
def draw_boxes(rnd: random.Random, nrng: np.random.Generator, d: int) -> tuple[np.ndarray, ...]:
    """``REGIONS`` boxes [n, d]: centres and widths from 1e-3 to near float32's overflow."""
    lo = np.empty((REGIONS, d))
    hi = np.empty((REGIONS, d))
    for r in range(REGIONS):
        mag = 10.0 ** rnd.uniform(-3, 38.5)
        centre = nrng.normal(0, 1, d) * mag
        half = np.abs(nrng.normal(0, 1, d)) * 10.0 ** rnd.uniform(-3, np.log10(mag) + 0.3)
        lo[r] = np.clip(centre - half, -F32_MAX, F32_MAX)
        hi[r] = np.clip(centre + half, -F32_MAX, F32_MAX)
    return lo, hi


def box_points(nrng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Centre, vertices (up to 16) and random points of one box, as float32 inputs."""
    d = lo.shape[0]
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * d)).reshape(d, -1).T[:16]
    unit = np.vstack([np.full((1, d), 0.5), corners, nrng.random((POINTS, d))])
    x = lo + unit * (hi - lo)
    return np.clip(x, lo, hi).astype(np.float32)


def predicates(y: np.ndarray, k: int, rnd: random.Random) -> list[Predicate]:
    """Thresholds at the edges of the observed outputs, and class predicates."""
    out: list[Predicate] = []
    j = rnd.randrange(k)
    v = y[:, j].astype(np.float64)
    finite = v[np.isfinite(v)]
    if len(finite):
        top, bottom = float(finite.max()), float(finite.min())
        below_top = float(np.nextafter(top, -np.inf))
        above_bottom = float(np.nextafter(bottom, np.inf))
        out += [
            Predicate.gt(below_top, j),
            Predicate.le(below_top, j),
            Predicate.lt(above_bottom, j),
            Predicate.ge(above_bottom, j),
            Predicate.gt(top, j),
            Predicate.ge(bottom, j),
            Predicate.between(bottom, top, j),
            Predicate.between(above_bottom, below_top, j) if above_bottom <= below_top else None,
            Predicate.gt(float(np.median(finite)), j),
        ]
    if k > 1:
        out += [Predicate.argmax(c) for c in range(k)]
    return [p for p in out if p is not None]


# ----------------------------------------------------------------------------- trials
def _verifier(seed: int):
    from mlskip.verifier.cascade import Verifier

    if seed % 8 == 0:
        return Verifier(
            methods=("ibp", "crown", "alpha_crown", "milp"),
            time_budget=None,
            milp_time_per_region=0.2,
            bab_time_budget=float("inf"),
            sample_points=0,
        )
    return Verifier(methods=("ibp", "crown"), time_budget=None, sample_points=0)


def run_trial(seed: int) -> MarginResult:
    """One random model and ``REGIONS`` boxes; every predicate checked on every box."""
    import onnxruntime as ort

    from mlskip.errors import UnsupportedModelError
    from mlskip.verifier import RegionBatch
    from mlskip.verifier.onnx_loader import load_onnx

    result = MarginResult(trials=1)
    rnd = random.Random(seed)
    nrng = np.random.default_rng(rnd.getrandbits(64))
    model, d, k, label = draw_model(rnd, nrng)
    try:
        net = load_onnx(model)
    except UnsupportedModelError as error:
        result.unverifiable += 1
        result.refusals.append(f"seed {seed} ({label}): {error}")
        return result
    result.models += 1
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    lo, hi = draw_boxes(rnd, nrng, d)
    points = [box_points(nrng, lo[r], hi[r]) for r in range(REGIONS)]
    with np.errstate(all="ignore"):
        outputs = [session.run(None, {"x": p})[0] for p in points]
    verifier = _verifier(seed)
    regions = RegionBatch.boxes(lo, hi)
    # predicates drawn per box from its own outputs, verified over every box
    for r in range(REGIONS):
        for predicate in predicates(outputs[r], k, rnd):
            verdicts = verifier.verify(net, regions, predicate).verdicts
            for s in range(REGIONS):
                holds = predicate.holds(outputs[s])
                result.checks += 1
                result.decided += int(verdicts[s] in (NONE, ALL))
                if (verdicts[s] == NONE and holds.any()) or (
                    verdicts[s] == ALL and not holds.all()
                ):
                    result.violations.append(
                        f"seed {seed} ({label}): {predicate} verdict "
                        f"{'NONE' if verdicts[s] == NONE else 'ALL'} on box "
                        f"[{lo[s].tolist()}, {hi[s].tolist()}], ONNX Runtime gives "
                        f"{outputs[s][~holds if verdicts[s] == ALL else holds][:2].tolist()}"
                    )
    return result


def run_chunk(seeds: list[int]) -> MarginResult:
    total = MarginResult()
    for s in seeds:
        try:
            total.merge(run_trial(s))
        except Exception as error:  # the campaign's own failure, reported with its seed
            total.errors.append(f"seed {s}: {type(error).__name__}: {error}")
    return total


def run_campaign(trials: int, seed: int = 0, workers: int = 1) -> MarginResult:
    """Trials ``seed .. seed + trials - 1`` on ``workers`` processes."""
    start = time.perf_counter()
    seeds = list(range(seed, seed + trials))
    if workers <= 1:
        total = run_chunk(seeds)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        chunks = [seeds[i :: workers * 4] for i in range(workers * 4)]
        total = MarginResult()
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for part in pool.map(run_chunk, chunks):
                total.merge(part)
    total.seconds = time.perf_counter() - start
    return total


def main(trials: int, seed: int, workers: int = 1) -> bool:
    """The CLI's ``selfcheck --margin``: run, print violations and the summary."""
    result = run_campaign(trials, seed, workers)
    for line in result.violations[:20] + result.errors[:20]:
        print(line)
    print(result.summary())
    return result.ok
