"""Properties every registered regularizer must have, run over the whole registry.

Only :class:`RegularizerInfo` fields drive the tests (no special cases by name):
``example_params`` build the module, ``input_kinds`` pick the inputs, ``identity_params`` must give the
identity, ``rate_param`` with ``zeros_rate`` gives the expected fraction of zeros, ``unbiased`` says
whether ``E[out] = x``.

Inputs per kind (``example_params`` must fit them; the channel / feature axis has size 8):
conv (4, 8, 16, 16), seq (4, 6, 8), flat (4, 8), heads (2, 2, 6, 8). For the ``"layer"`` kind the
wrapper gets a fresh ``nn.Linear(8, 6, bias=False)`` as ``module=`` and the input is the identity
matrix (8, 8), so the output is the (masked) weight transposed and its zeros are the dropped weights;
the reference output is the wrapped layer's own, found at the wrapper's ``.module`` attribute.

Device: ``AUTODROPOUT_TEST_DEVICE`` (default ``cpu``; e.g. ``cuda``).
"""
from __future__ import annotations

import functools
import inspect
import os

import pytest
import torch
from torch import nn

from autodropout import regularizers

DEVICE = torch.device(os.environ.get("AUTODROPOUT_TEST_DEVICE", "cpu"))
SHAPES = {"conv": (4, 8, 16, 16), "seq": (4, 6, 8), "flat": (4, 8), "heads": (2, 2, 6, 8)}
MC_CALLS = 2000
# ||mean - x|| / ||x|| for an unbiased method is about sqrt(p / (1 - p) / MC_CALLS) (0.015 at
# p = 0.3, 0.022 at p = 0.5); 0.05 leaves room for masks shared over many elements, and still catches
# a missing or wrong rescale (error = p).
UNBIASED_RTOL = 0.05
# DropBlock's overlapping blocks make its realised rate a few percent lower than p.
ZEROS_RTOL = 0.15

CASES = [
    (name, kind)
    for name in regularizers.available()
    for kind in regularizers.info(name).input_kinds
]
IDS = [f"{name}-{kind}" for name, kind in CASES]


def make_input(kind: str, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if kind == "layer":
        return torch.eye(8, dtype=dtype).to(DEVICE)
    return torch.randn(SHAPES[kind], generator=generator).to(device=DEVICE, dtype=dtype)


def build(name: str, kind: str, **overrides) -> nn.Module:
    params = {**regularizers.info(name).example_params, **overrides}
    if kind == "layer":
        params["module"] = nn.Linear(8, 6, bias=False)
    return regularizers.create(name, **params).to(DEVICE)


def reference(module: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    """What the method must return when it does nothing: x, or the plain wrapped layer's output."""
    if kind == "layer":
        with torch.no_grad():
            return module.module(x)
    return x


def nominal_rate(name: str) -> float:
    entry = regularizers.info(name)
    if entry.rate_param in entry.example_params:
        return float(entry.example_params[entry.rate_param])
    return float(inspect.signature(entry.factory).parameters[entry.rate_param].default)


@functools.cache
def monte_carlo(name: str, kind: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(reference output, mean training output, fraction of exact zeros) over MC_CALLS calls."""
    torch.manual_seed(0)
    module = build(name, kind).train()
    x = make_input(kind)
    total = torch.zeros_like(reference(module, kind, x), dtype=torch.float64)
    zeros = 0
    with torch.no_grad():
        for _ in range(MC_CALLS):
            out = module(x)
            total += out
            zeros += int((out == 0).sum())
    return reference(module, kind, x), total / MC_CALLS, zeros / (MC_CALLS * total.numel())


def test_registry_entries_are_consistent():
    for name in regularizers.available():
        entry = regularizers.info(name)
        assert entry.name == name
        assert entry.reference
        assert entry.input_kinds, name
        assert set(entry.input_kinds) <= {"conv", "seq", "flat", "heads", "layer"}, name
        signature = entry.parameters
        for param in (*entry.example_params, *entry.identity_params):
            assert param in signature, f"{name}: {param!r} is not a constructor parameter"
        if entry.rate_param is not None:
            assert entry.rate_param in signature, name


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError, match="valid names: .*dropout"):
        regularizers.create("no_such_method")


@pytest.mark.parametrize("name,kind", CASES, ids=IDS)
def test_output_shape_and_extra_repr(name, kind):
    torch.manual_seed(0)
    module = build(name, kind).train()
    x = make_input(kind)
    assert module(x).shape == reference(module, kind, x).shape
    assert module.extra_repr()


@pytest.mark.parametrize("name,kind", CASES, ids=IDS)
def test_eval_mode_is_identity(name, kind):
    torch.manual_seed(0)
    module = build(name, kind).eval()
    x = make_input(kind)
    assert torch.equal(module(x), reference(module, kind, x))


@pytest.mark.parametrize("name,kind", CASES, ids=IDS)
def test_identity_params_give_identity_in_training(name, kind):
    torch.manual_seed(0)
    module = build(name, kind, **regularizers.info(name).identity_params).train()
    x = make_input(kind)
    assert torch.equal(module(x), reference(module, kind, x))


@pytest.mark.parametrize("name,kind", CASES, ids=IDS)
def test_training_mode_changes_the_output(name, kind):
    torch.manual_seed(0)
    module = build(name, kind).train()
    x = make_input(kind)
    assert not torch.equal(module(x), reference(module, kind, x))


@pytest.mark.parametrize(
    "name,kind", [c for c in CASES if regularizers.info(c[0]).unbiased],
    ids=[i for c, i in zip(CASES, IDS) if regularizers.info(c[0]).unbiased],
)
def test_unbiased_in_expectation(name, kind):
    expected, mean, _ = monte_carlo(name, kind)
    error = torch.linalg.vector_norm(mean - expected.double())
    assert error <= UNBIASED_RTOL * torch.linalg.vector_norm(expected.double())


def _has_zero_rate(case: tuple[str, str]) -> bool:
    entry = regularizers.info(case[0])
    return entry.rate_param is not None and entry.zeros_rate


@pytest.mark.parametrize(
    "name,kind", [c for c in CASES if _has_zero_rate(c)],
    ids=[i for c, i in zip(CASES, IDS) if _has_zero_rate(c)],
)
def test_fraction_of_zeros_is_the_nominal_rate(name, kind):
    rate = nominal_rate(name)
    assert rate > 0, f"{name}: example_params should use a positive rate"
    _, _, zeros = monte_carlo(name, kind)
    assert zeros == pytest.approx(rate, rel=ZEROS_RTOL)


@pytest.mark.parametrize("name,kind", CASES, ids=IDS)
def test_gradients_flow_to_the_input(name, kind):
    torch.manual_seed(0)
    module = build(name, kind).train()
    x = make_input(kind).requires_grad_()
    # Several calls accumulate: a single draw may drop everything (e.g. DropPath on a batch of 2).
    for _ in range(5):
        out = module(x)
        (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for param in module.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name,kind", CASES, ids=IDS)
def test_device_and_dtype_follow_the_input(name, kind, dtype):
    torch.manual_seed(0)
    module = build(name, kind).to(dtype=dtype).train()
    x = make_input(kind, dtype)
    out = module(x)
    assert out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name,kind", CASES, ids=IDS)
def test_seeded_calls_are_deterministic(name, kind):
    outs = []
    for _ in range(2):
        torch.manual_seed(1234)
        module = build(name, kind).train()
        outs.append(module(make_input(kind)))
    assert torch.equal(outs[0], outs[1])
