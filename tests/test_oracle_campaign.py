"""The selfcheck campaign with Marabou as an oracle on its NONE / ALL verdicts.

``run_trial(..., oracle="marabou")`` records every batch the planner's verifier
decides, puts a sample of the NONE / ALL verdicts on ReLU, sigmoid and tanh
models to Marabou as "find an input of this region that refutes the verdict",
and settles every SAT answer by evaluating the model at the point (moved into
the region if Marabou's point lies outside it). An UNSAT counts only if a
control query (the same query made to hold at the region's centre) is not
UNSAT as well and no sampled point of the region contradicts it. Only a checked
counterexample fails a trial.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mlskip.testing import selfcheck
from mlskip.testing.marabou_oracle import ORACLE_OUTCOMES, check_verdict, settle_point
from mlskip.testing.selfcheck import run_campaign, summarize
from mlskip.udf.model import prepare_model
from mlskip.udf.runtime import make_runner
from mlskip.verifier import Network, Predicate, RegionBatch, ReLU, Sigmoid, Tanh
from mlskip.verifier.adapters.marabou import available, marabou_query

pytestmark = [
    pytest.mark.skipif(not available(), reason="maraboupy is not installed"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def _campaign(trials: int, seed: int) -> dict[str, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_campaign(trials, seed, progress=False, oracle="marabou")
    assert all(r.ok for r in results), summarize(results, 0.0)
    totals = {k: sum(r.oracle.get(k, 0) for r in results) for k in ORACLE_OUTCOMES}
    assert totals["refuted"] == 0
    return totals


def test_oracle_campaign_default_run():
    # seeds 12-31 hold trials whose ReLU models get NONE/ALL verdicts from the verifier
    totals = _campaign(20, seed=12)
    assert totals["confirmed"] > 0, totals  # the oracle did look at some verdicts
    # every answer Marabou gave was UNSAT or settled by evaluation; time-outs stay rare
    assert totals["inconclusive"] <= sum(totals.values()) // 2, totals


@pytest.mark.slow
def test_oracle_campaign_long():
    totals = _campaign(400, seed=20_000)
    assert totals["confirmed"] > 50, totals


# ------------------------------------------------------------ the oracle itself can fail


def _relu_net() -> Network:
    # y = relu(x0 + x1) - relu(x0 - x1) : 2 -> 2 -> 1
    return Network.mlp(
        [(np.array([[1.0, 1.0], [1.0, -1.0]]), np.zeros(2)), (np.array([[1.0, -1.0]]), np.zeros(1))]
    )


def _runner(net: Network):
    return make_runner(prepare_model(net))


def test_oracle_refutes_a_wrong_none_and_confirms_a_right_one():
    net = _relu_net()
    runner = _runner(net)
    regions = RegionBatch(np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]))
    # on [0,1]^2, y = 2 min(x0, x1) ranges over [0, 2]
    outcome, message = check_verdict(net, regions, 0, Predicate.gt(1.5), 0, runner)
    assert outcome == "refuted" and "NONE refuted" in message
    assert check_verdict(net, regions, 0, Predicate.gt(2.5), 0, runner)[0] == "confirmed"
    assert check_verdict(net, regions, 0, Predicate.ge(-0.5), 1, runner)[0] == "confirmed"
    outcome, message = check_verdict(net, regions, 0, Predicate.lt(1.0), 1, runner)
    assert outcome == "refuted" and "ALL refuted" in message


def test_oracle_respects_polygons_and_between():
    net = _relu_net()
    runner = _runner(net)
    # the polygon x0 + x1 <= 0.5 keeps y = 2 min(x0, x1) <= 0.5
    A = np.array([[[1.0, 1.0]]])
    regions = RegionBatch(
        np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]), pairs=((0, 1),), halfspaces=((A, [[0.5]]),)
    )
    assert check_verdict(net, regions, 0, Predicate.gt(0.6), 0, runner)[0] == "confirmed"
    assert check_verdict(net, regions, 0, Predicate.between(0.2, 0.3), 0, runner)[0] == "refuted"
    assert check_verdict(net, regions, 0, Predicate.between(-1.0, 0.6), 1, runner)[0] == (
        "confirmed"
    )


def test_oracle_checks_argmax_verdicts():
    # logits (x0, x1): class 0 wins where x0 > x1 (ties go to class 0, the first maximum)
    net = Network.mlp([(np.eye(2), np.zeros(2))])
    runner = _runner(net)
    regions = RegionBatch(np.array([[2.0, 0.0]]), np.array([[3.0, 1.0]]))
    assert check_verdict(net, regions, 0, Predicate.argmax(0), 1, runner)[0] == "confirmed"
    assert check_verdict(net, regions, 0, Predicate.argmax(1), 0, runner)[0] == "confirmed"
    assert check_verdict(net, regions, 0, Predicate.argmax(1), 1, runner)[0] == "refuted"


def _one_unit(act, W) -> Network:
    return Network.mlp([(np.array(W), np.zeros(1)), (np.ones((1, 1)), np.zeros(1))], act)


def test_oracle_checks_sigmoid_and_tanh_verdicts():
    box = RegionBatch(np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]))
    # y = sigmoid(x0 + x1) spans [0.5, 0.881] on the box
    net = _one_unit(Sigmoid(), [[1.0, 1.0]])
    runner = _runner(net)
    assert check_verdict(net, box, 0, Predicate.gt(0.95), 0, runner)[0] == "confirmed"
    outcome, message = check_verdict(net, box, 0, Predicate.gt(0.8), 0, runner)
    assert outcome == "refuted" and "NONE refuted" in message
    # y = tanh(x0 - x1) spans [-0.762, 0.762]
    net = _one_unit(Tanh(), [[1.0, -1.0]])
    runner = _runner(net)
    assert check_verdict(net, box, 0, Predicate.gt(0.9), 0, runner)[0] == "confirmed"
    assert check_verdict(net, box, 0, Predicate.ge(-0.9), 1, runner)[0] == "confirmed"
    outcome, message = check_verdict(net, box, 0, Predicate.lt(-0.6), 0, runner)
    assert outcome == "refuted" and "NONE refuted" in message


@pytest.mark.parametrize("act", [ReLU(), Sigmoid()], ids=["relu", "sigmoid"])
def test_an_unsat_on_a_degenerate_network_is_not_trusted(act):
    """With hidden values varying by ~1e-6, maraboupy 2.0 answers UNSAT even where every
    input qualifies; a wrong NONE must still be refuted, not confirmed."""
    w = 1e-6
    net = Network.mlp(
        [(np.array([[w, w], [w, -w]]), np.array([1.0, 0.3])), (np.ones((1, 2)), np.zeros(1))], act
    )
    runner = _runner(net)
    box = RegionBatch(np.array([[-1.0, -1.0]]), np.array([[1.0, 1.0]]))
    y = float(net.evaluate(np.zeros((1, 2)))[0, 0])
    wrong = Predicate.gt(y - 0.1)  # every input qualifies: NONE is wrong
    notes: dict = {}
    outcome, message = check_verdict(net, box, 0, wrong, 0, runner, notes)
    assert outcome == "refuted" and "NONE refuted" in message, (outcome, notes)
    # a right NONE is never refuted (confirmed, or inconclusive if Marabou is still wrong)
    right = Predicate.gt(y + 0.1)
    assert check_verdict(net, box, 0, right, 0, runner)[0] in ("confirmed", "inconclusive")
    if marabou_query(net, box.lower[0], box.upper[0], [], [(np.ones(1), ">=", -100.0)])[0] == (
        "unsat"
    ):  # the Marabou defect is present: the control caught it
        assert notes.get("unsat_contradicted") == 1


def test_false_sat_is_settled_by_evaluation(monkeypatch):
    """Marabou claiming a counterexample that evaluation does not confirm is counted, not failed."""
    net = _relu_net()
    runner = _runner(net)
    regions = RegionBatch(np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]))

    def lying_marabou(net, lo, hi, hs, conditions, timeout):
        return "sat", np.array([0.1, 0.1])  # y = 0.2: no counterexample to "NONE for > 2.5"

    import mlskip.verifier.adapters.marabou as adapter

    monkeypatch.setattr(adapter, "marabou_query", lying_marabou)
    assert check_verdict(net, regions, 0, Predicate.gt(2.5), 0, runner)[0] == "false_sat"

    def timing_out(net, lo, hi, hs, conditions, timeout):
        return "timeout", None

    monkeypatch.setattr(adapter, "marabou_query", timing_out)
    assert check_verdict(net, regions, 0, Predicate.gt(2.5), 0, runner)[0] == "inconclusive"


def test_points_outside_the_region_are_moved_inside():
    lo, hi = np.zeros(2), np.ones(2)
    hs = [(0, 1, np.array([[1.0, 1.0]]), np.array([1.0]))]
    inside = settle_point(np.array([0.6, 0.4 + 1e-9]), lo, hi, hs)
    assert inside is not None and inside.sum() <= 1.0 and np.abs(inside - [0.6, 0.4]).max() < 1e-6
    assert settle_point(np.array([2.0, -1.0]), lo, hi, hs).tolist() == [1.0, 0.0]
    empty = [(0, 1, np.array([[1.0, 1.0]]), np.array([-1.0]))]  # no point of the box
    assert settle_point(np.array([0.5, 0.5]), lo, hi, empty) is None


def test_unknown_oracle_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown oracle"):
        selfcheck.run_trial(0, tmp_path, oracle="z3")


class _Overconfident:
    """A broken verifier: every undecided region becomes NONE (prunes qualifying rows)."""

    def __init__(self) -> None:
        from mlskip.verifier.cascade import Verifier

        self.inner = Verifier(time_budget=0.2)

    def verify(self, net, regions, predicate):
        import dataclasses

        result = self.inner.verify(net, regions, predicate)
        verdicts = np.asarray(result.verdicts).copy()
        verdicts[verdicts == 2] = 0
        return dataclasses.replace(result, verdicts=verdicts)


def test_oracle_catches_a_broken_verifier(tmp_path):
    """Wired into run_trial, the oracle reports refuted verdicts with a checked point."""
    refuted = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(12, 32):
            result = selfcheck.run_trial(seed, tmp_path, _Overconfident(), oracle="marabou")
            if result.oracle.get("refuted"):
                refuted.append(seed)
                assert not result.ok
                assert any(p.startswith("oracle: verdict NONE refuted") for p in result.problems)
            if len(refuted) == 2:
                break
    assert refuted, "the oracle never refuted an invented NONE verdict"


def test_oracle_catches_a_broken_verifier_on_sigmoid_and_tanh_models(tmp_path):
    """Trials whose models are sigmoid (seed 26) and tanh (seed 5): invented NONE
    verdicts are refuted at a point Marabou found (not only at a sampled point)."""
    caught = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in (5, 26, 46, 38):
            result = selfcheck.run_trial(seed, tmp_path, _Overconfident(), oracle="marabou")
            for act in ("sigmoid", "tanh"):
                if result.oracle.get(f"{act}:refuted"):
                    assert not result.ok
                    if any(
                        p.startswith("oracle: verdict NONE refuted at [") for p in result.problems
                    ):
                        caught.add(act)
            if caught == {"sigmoid", "tanh"}:
                break
    assert caught == {"sigmoid", "tanh"}, f"refuted only on {caught} (the seeds' models changed?)"
