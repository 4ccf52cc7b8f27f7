"""auto_LiRPA adapter: CROWN bounds from auto_LiRPA where a working copy is importable.

auto_LiRPA's PyPI release (0.3) does not import with numpy 2 / torch 2
(docs/ARCHITECTURE.md); newer versions exist only as source. ``available()`` reports
whether it can be used; the bench and tests skip it otherwise.
"""

from __future__ import annotations

import warnings

import numpy as np

from mlskip.errors import UnsupportedModelError

from ..network import Network
from ..regions import RegionBatch
from ..torch_loader import network_to_torch


def available() -> bool:
    try:
        import auto_LiRPA  # noqa: F401
    except Exception:  # broken installs raise all sorts of errors at import
        return False
    return True


def auto_lirpa_bounds(
    net: Network,
    regions: RegionBatch,
    method: str = "CROWN",
    compare_crown_with_ibp: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Output bounds by auto_LiRPA over the boxes (polygons ignored: still sound).

    ``compare_crown_with_ibp`` clips auto_LiRPA's intermediate CROWN bounds with interval
    bounds (mlskip's ``crown_bounds(..., clip="ibp")``); without it auto_LiRPA computes
    plain CROWN (``clip="plain"``). The model runs in float64 (torch's default dtype is
    set to it for the call: auto_LiRPA's alpha-CROWN creates its slopes in that dtype).
    auto_LiRPA rounds to nearest in float64, so the float64 margin of fp_margin.py is
    added to the final bound, as for our own CROWN.
    """
    if not available():
        raise UnsupportedModelError(
            "auto_LiRPA is not importable here (its PyPI release is broken on numpy 2)"
        )
    import torch
    from auto_LiRPA import BoundedModule, BoundedTensor
    from auto_LiRPA.perturbations import PerturbationLpNorm

    from ..fp_margin import bound_margin, margin_magnitudes

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = network_to_torch(net, dtype="float64", runtime=False)
        lo = torch.tensor(np.array(regions.lower))
        hi = torch.tensor(np.array(regions.upper))
        with warnings.catch_warnings():  # its torch.jit use is deprecated in torch 2.13
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            bm = BoundedModule(
                model,
                torch.zeros(1, net.num_inputs, dtype=torch.float64),
                bound_opts={"compare_crown_with_ibp": compare_crown_with_ibp},
            )
            x = BoundedTensor((lo + hi) / 2, PerturbationLpNorm(x_L=lo, x_U=hi))
            lb, ub = bm.compute_bounds(x=(x,), method=method)
    finally:
        torch.set_default_dtype(previous)
    mg = bound_margin(
        net, margin_magnitudes(net, regions.lower, regions.upper), len(net.affines) - 1
    )
    return lb.detach().numpy() - mg, ub.detach().numpy() + mg
