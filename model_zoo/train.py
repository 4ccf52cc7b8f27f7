"""Train dense filter models in seconds, with normalisation folded into the weights.

Training runs on standardised inputs and targets; afterwards the scaling is
folded into the first and last Linear layers, so the stored model takes raw
column units (dates as days since epoch) and returns raw target units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mlskip.errors import InputDataError
from mlskip.model_zoo.data import DEFAULT_SF, sample_table
from mlskip.model_zoo.nets import linears, make_mlp, predict
from mlskip.model_zoo.specs import CLASSIFICATION, REGRESSION, ModelSpec


@dataclass
class Dataset:
    """Raw-unit inputs and targets (float targets, or class indices for classifiers)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class TrainedModel:
    """A dense model with its spec, data and held-out score (R2 or accuracy)."""

    spec: ModelSpec
    model: nn.Sequential
    data: Dataset
    score: float


def load_dataset(
    spec: ModelSpec, n_train: int = 4000, n_test: int = 20000, seed: int = 0, sf: float = DEFAULT_SF
) -> Dataset:
    """Disjoint train and held-out samples of a spec's table."""
    cols = sample_table(
        spec.suite, spec.table, [*spec.inputs, spec.target], n_train + n_test, seed, sf
    )
    x = np.stack([cols[c] for c in spec.inputs], axis=1).astype(np.float64)
    raw_y = cols[spec.target]
    if spec.task == CLASSIFICATION:
        index = {c: i for i, c in enumerate(spec.classes)}
        unknown = set(np.unique(raw_y)) - set(index)
        if unknown:
            raise InputDataError(
                f"{spec.name}: target {spec.target!r} has labels {unknown} not in classes"
            )
        y = np.array([index[v] for v in raw_y], dtype=np.int64)
    else:
        y = raw_y.astype(np.float64)
    n_tr = min(n_train, len(x) // 2)
    return Dataset(x[:n_tr], y[:n_tr], x[n_tr:], y[n_tr:])


def fold_normalisation(
    model: nn.Sequential,
    x_mean: np.ndarray,
    x_std: np.ndarray,
    y_mean: float = 0.0,
    y_std: float = 1.0,
) -> nn.Sequential:
    """Fold ``(x - x_mean) / x_std`` into the first Linear and ``y * y_std + y_mean`` into the last."""
    ls = linears(model)
    with torch.no_grad():
        first = ls[0]
        scale = torch.as_tensor(1.0 / x_std, dtype=torch.float64)
        w = first.weight.double() * scale
        first.bias.copy_(first.bias.double() - w @ torch.as_tensor(x_mean, dtype=torch.float64))
        first.weight.copy_(w)
        last = ls[-1]
        last.weight.mul_(y_std)
        last.bias.copy_(last.bias * y_std + y_mean)
    return model


def fit_mlp(
    x: np.ndarray,
    y: np.ndarray,
    task: str = REGRESSION,
    hidden: Sequence[int] = (32,),
    n_classes: int = 1,
    epochs: int = 150,
    batch: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
) -> nn.Sequential:
    """Train a ReLU MLP on raw-unit ``x`` -> ``y`` and return it in raw units."""
    torch.manual_seed(seed)
    x_mean, x_std = x.mean(0), x.std(0) + 1e-9
    xs = torch.as_tensor((x - x_mean) / x_std, dtype=torch.float32)
    if task == CLASSIFICATION:
        y_mean, y_std = 0.0, 1.0
        ys = torch.as_tensor(y, dtype=torch.long)
        loss_fn: nn.Module = nn.CrossEntropyLoss()
        d_out = n_classes
    else:
        y_mean, y_std = float(y.mean()), float(y.std() + 1e-9)
        ys = torch.as_tensor((y - y_mean) / y_std, dtype=torch.float32).reshape(-1, 1)
        loss_fn = nn.MSELoss()
        d_out = 1
    model = make_mlp(x.shape[1], hidden, d_out, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * max(1, -(-len(xs) // batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xs), generator=gen)
        for i in range(0, len(xs), batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            loss = loss_fn(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return fold_normalisation(model, x_mean, x_std, y_mean, y_std)


def score(model: nn.Module, x: np.ndarray, y: np.ndarray, task: str) -> float:
    """Held-out R2 (regression) or accuracy (classification) in raw units."""
    out = predict(model, x)
    if task == CLASSIFICATION:
        return float((out.argmax(1) == y).mean())
    pred = out[:, 0].astype(np.float64)
    return float(1.0 - np.mean((pred - y) ** 2) / max(np.var(y), 1e-12))


def train_dense(
    spec: ModelSpec,
    hidden: Sequence[int] = (32,),
    n_train: int = 4000,
    epochs: int = 150,
    seed: int = 0,
    data: Dataset | None = None,
    sf: float = DEFAULT_SF,
) -> TrainedModel:
    """Sample the spec's table, train a dense model, score it on held-out rows."""
    data = data or load_dataset(spec, n_train=n_train, seed=seed, sf=sf)
    model = fit_mlp(
        data.x_train, data.y_train, spec.task, hidden, spec.n_outputs, epochs=epochs, seed=seed
    )
    return TrainedModel(spec, model, data, score(model, data.x_test, data.y_test, spec.task))


def fidelity(model: nn.Module, reference: nn.Module, x: np.ndarray, task: str) -> float:
    """How well ``model`` reproduces ``reference`` on unlabeled rows: R2 of its outputs
    against the reference's (regression) or argmax agreement (classification)."""
    ref = predict(reference, x)
    if task == CLASSIFICATION:
        return float((predict(model, x).argmax(1) == ref.argmax(1)).mean())
    return score(model, x, ref[:, 0].astype(np.float64), task)
