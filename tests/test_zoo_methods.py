"""model_zoo compression methods: shapes, parameter counts, exactness, healing, ONNX agreement."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlskip.model_zoo import dot_moe, lorp, lumping, starfish, structured, wanda  # noqa: E402
from mlskip.model_zoo.export import max_rel_diff, metadata_props, to_onnx  # noqa: E402
from mlskip.model_zoo.nets import from_weights, get_weights, n_params, predict, widths  # noqa: E402
from mlskip.model_zoo.prune_magnitude import magnitude_prune, sparsity_of  # noqa: E402
from mlskip.model_zoo.train import fit_mlp, fold_normalisation, score  # noqa: E402


def _data(n=1200, seed=0):
    """Raw-unit inputs of very different scales, like TPC columns (quantity, price, discount, day)."""
    rng = np.random.default_rng(seed)
    x = np.stack(
        [
            rng.integers(1, 51, n),
            rng.uniform(900, 105000, n),
            rng.uniform(0, 0.1, n),
            rng.uniform(8000, 10500, n),
        ],
        1,
    ).astype(np.float64)
    y = x[:, 1] * (1 - x[:, 2]) + 3 * x[:, 0]
    return x, y


@pytest.fixture(scope="module")
def trained():
    x, y = _data()
    model = fit_mlp(x[:800], y[:800], hidden=(16, 16), epochs=40, seed=0)
    return model, x[:800], x[800:], y[800:]


def test_dense_training_and_normalisation_folding(trained):
    model, _, x_test, y_test = trained
    assert widths(model) == [4, 16, 16, 1]
    assert n_params(model) == 4 * 16 + 16 + 16 * 16 + 16 + 16 + 1
    assert score(model, x_test, y_test, "regression") > 0.9


def test_fold_normalisation_is_exact():
    torch.manual_seed(0)
    m = from_weights([(torch.randn(5, 3), torch.randn(5)), (torch.randn(1, 5), torch.randn(1))])
    ref = from_weights(get_weights(m))
    mean, std = np.array([10.0, -3.0, 1000.0]), np.array([2.0, 0.5, 300.0])
    fold_normalisation(m, mean, std, 7.0, 3.0)
    x = np.random.default_rng(1).normal(size=(50, 3)) * std + mean
    expect = predict(ref, ((x - mean) / std).astype(np.float32)) * 3.0 + 7.0
    assert np.allclose(predict(m, x), expect, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_sparsity(trained, scope):
    model, x_cal, _, _ = trained
    pruned = magnitude_prune(model, 0.6, scope, x_cal)
    assert widths(pruned) == widths(model)
    assert sparsity_of(pruned) == pytest.approx(0.6, abs=0.01)
    if scope == "layer":
        for lin in [m for m in pruned if isinstance(m, torch.nn.Linear)]:
            assert float((lin.weight == 0).float().mean()) == pytest.approx(0.6, abs=0.07)


def test_wanda_prunes_each_output_row(trained):
    model, x_cal, _, _ = trained
    pruned = wanda.wanda_prune(model, x_cal, 0.5)
    for lin in [m for m in pruned if isinstance(m, torch.nn.Linear)]:
        zeros = (lin.weight == 0).sum(1)
        assert (zeros == round(0.5 * lin.in_features)).all()


def test_remove_dead_neurons_is_exact(trained):
    model, x_cal, _, _ = trained
    ws = get_weights(model)
    w0, b0 = ws[0]
    w0[[1, 4]] = 0.0  # constant neurons relu(b): folded into the next bias
    w1, b1 = ws[1]
    w1[:, 7] = 0.0  # neuron 7 of layer 0 has no effect
    ws[2][0][:, 3] = 0.0  # neuron 3 of layer 1 has no effect
    m = from_weights(ws)
    shrunk = structured.remove_dead_neurons(m)
    assert widths(shrunk) == [4, 13, 15, 1]
    assert np.allclose(predict(shrunk, x_cal), predict(m, x_cal), rtol=1e-5, atol=1e-2)


def test_structured_prune_shapes_and_counts(trained):
    model, x_cal, _, _ = trained
    pruned = structured.l2_prune(model, {0: 0.5, 1: 0.25}, x_cal)
    assert widths(pruned) == [4, 8, 12, 1]
    assert n_params(pruned) == 4 * 8 + 8 + 8 * 12 + 12 + 12 + 1


def test_psvit_and_primesvt_respect_loss_budget(trained):
    model, x_cal, _, _ = trained
    from mlskip.model_zoo.train import fidelity

    sens = structured.sensitivity(model, x_cal, "regression", ratios=(0.25, 0.5))
    assert set(sens) == {0, 1} and all(len(c) == 2 for c in sens.values())
    p = structured.psvit_prune(model, x_cal, "regression", max_loss=0.05)
    assert 1 - fidelity(p, model, x_cal, "regression") <= 0.05
    with pytest.warns(UserWarning):  # an impossible saving target under a tiny budget
        q = structured.primesvt_prune(model, x_cal, "regression", max_loss=1e-9, min_saving=0.9)
    assert n_params(q) <= n_params(model)
    r = structured.primesvt_prune(model, x_cal, "regression", max_loss=1.0, min_saving=0.3)
    assert 1 - n_params(r) / n_params(model) >= 0.3


def test_lumping_eps0_merges_scaled_copies_exactly():
    torch.manual_seed(0)
    w0, b0 = torch.randn(6, 3), torch.randn(6)
    w0[3], b0[3] = 2.0 * w0[0], 2.0 * b0[0]  # neuron 3 = 2 x neuron 0
    w0[5], b0[5] = 0.5 * w0[1], 0.5 * b0[1]  # neuron 5 = 0.5 x neuron 1
    m = from_weights(
        [(w0, b0), (torch.randn(4, 6), torch.randn(4)), (torch.randn(1, 4), torch.randn(1))]
    )
    x = np.random.default_rng(0).normal(size=(300, 3))
    lumped = lumping.lump_neurons(m, eps=0.0)
    assert widths(lumped) == [3, 4, 4, 1]
    assert np.allclose(predict(lumped, x), predict(m, x), atol=1e-5)
    lumped_cal = lumping.lump_neurons(m, eps=0.0, x_calib=x * 100)
    assert widths(lumped_cal) == [3, 4, 4, 1]


def test_lumping_eps_tradeoff(trained):
    model, x_cal, _, _ = trained
    sizes = [n_params(lumping.lump_neurons(model, eps, x_cal)) for eps in (0.0, 0.3, 0.8)]
    assert sizes[0] >= sizes[1] >= sizes[2]
    assert sizes[2] < n_params(model)


@pytest.mark.parametrize("method", ["unstructured", "structured", "lumped"])
def test_healing_improves_alignment_on_held_out_rows(trained, method):
    model, x_cal, x_test, _ = trained
    if method == "unstructured":
        comp = wanda.wanda_prune(model, x_cal, 0.6)
    elif method == "structured":
        comp = structured.l2_prune(model, 0.5, x_cal)
    else:
        comp = lumping.lump_neurons(model, 0.6, x_cal)
    healed = starfish.heal(comp, model, x_cal[:128], steps=300)
    before = starfish.alignment(comp, model, x_test)
    after = starfish.alignment(healed, model, x_test)
    assert after > before
    assert widths(healed) == widths(comp)
    if method == "unstructured":  # the pruning mask stays fixed
        for a, b in zip(comp.parameters(), healed.parameters(), strict=True):
            assert ((a == 0) == (b == 0)).all()


def test_lorp_removes_identity_layer_exactly():
    torch.manual_seed(0)
    ws = [
        (torch.randn(8, 3), torch.randn(8)),
        (torch.randn(8, 8), torch.randn(8)),
        (torch.eye(8), torch.zeros(8)),  # identity on non-negative inputs
        (torch.randn(1, 8), torch.randn(1)),
    ]
    m = from_weights(ws)
    x = np.random.default_rng(0).normal(size=(400, 3))
    assert max(lorp.layer_redundancy(m, x), key=lorp.layer_redundancy(m, x).get) == 2
    pruned = lorp.lorp_prune(m, x, 1)
    assert widths(pruned) == [3, 8, 8, 1]
    assert np.allclose(predict(pruned, x), predict(m, x), atol=1e-4)


def test_lorp_depth_counts(trained):
    _, x_cal, _, _ = trained
    x, y = _data(600, seed=3)
    deep = fit_mlp(x, y, hidden=(8, 8, 8, 8), epochs=5)
    assert widths(lorp.lorp_prune(deep, x_cal, 2)) == [4, 8, 8, 1]


def test_sinkhorn_assignment_is_balanced():
    rng = np.random.default_rng(0)
    labels = dot_moe.assign_experts(rng.normal(size=(32, 50)), 4)
    assert np.bincount(labels, minlength=4).tolist() == [8, 8, 8, 8]
    plan = dot_moe.sinkhorn(rng.uniform(size=(12, 3)), np.full(12, 1 / 12), np.full(3, 1 / 3))
    assert np.allclose(plan.sum(0), 1 / 3, atol=1e-6) and np.allclose(
        plan.sum(1), 1 / 12, atol=1e-3
    )


@pytest.mark.parametrize("layer", [0, 1])
def test_dot_moe_shapes_and_onnx(trained, layer):
    model, x_cal, x_test, _ = trained
    moe = dot_moe.to_moe(model, x_cal, layer=layer, n_experts=4)
    assert moe.mask_table.shape == (4, 16) and (moe.mask_table.sum(1) == 4).all()
    out = predict(moe, x_test)
    assert out.shape == (len(x_test), 1)
    proto = to_onnx(moe, ["a", "b", "c", "d"], "regression")
    assert {"ArgMax", "Gather"} <= {n.op_type for n in proto.graph.node}
    assert max_rel_diff(moe, proto, x_test) <= 1e-5


def test_onnx_export_agrees_with_torch_and_follows_contract(trained):
    model, x_cal, x_test, _ = trained
    variants = [
        model,
        magnitude_prune(model, 0.5, "global", x_cal),
        structured.l2_prune(model, 0.5, x_cal),
        lumping.lump_neurons(model, 0.5, x_cal),
    ]
    for m in variants:
        proto = to_onnx(m, ["q", "p", "d", "t"], "regression")
        props = metadata_props(proto)
        assert props == {
            "mlskip.input_columns": '["q", "p", "d", "t"]',
            "mlskip.task": "regression",
        }
        assert proto.graph.input[0].name == "input" and len(proto.graph.output) == 1
        assert max_rel_diff(m, proto, x_test) <= 1e-5
