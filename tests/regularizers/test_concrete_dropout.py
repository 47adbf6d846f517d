"""Concrete Dropout (Gal, Hron & Kendall, NeurIPS 2017): the relaxed mask against the paper's
relaxation, inverted scaling, the dropout-rate penalty and its gradient, the generic auxiliary-loss
mechanism, and a short training run of a task preset in which the rates are learned."""
from __future__ import annotations

import math
import os

import pytest
import torch
from torch import nn

import autodropout as ad
from autodropout.commands.cli import main
from autodropout.regularizers.concrete_dropout import (
    ConcreteDropout,
    concrete_dropout,
    concrete_dropout_penalty,
    relaxed_drop_mask,
)
from autodropout.regularizers.training_step import auxiliary_loss
from autodropout.runs.experiment import find_experiment
from autodropout.tasks import Regularization, build_task

DEVICE = torch.device(os.environ.get("AUTODROPOUT_TEST_DEVICE", "cpu"))
RATES = (0.05, 0.1, 0.3, 0.5, 0.7)
#: Elements per Monte Carlo estimate.
N = 400_000
#: |E[z] - p| at t = 0.1 is at most 0.0015 for RATES (float64, 4e6 draws) and the standard error of
#: the mean of N draws is below 0.0008, so 0.005 holds with a wide margin; swapping z and 1 - z
#: (error |1 - 2p| >= 0.4 but at 0.5) or dropping the temperature (error up to 0.013 at t = 1) fails.
MEAN_TOL = 0.005
#: E[(1 - z)] / (1 - p) is within 0.005 of 1 for RATES at t = 0.1; its standard error over N draws is
#: below 0.003 at p = 0.7. A missing rescale is off by p >= 0.05.
SCALE_TOL = 0.012


def logit_of(p: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(math.log(p / (1 - p)), dtype=dtype, device=DEVICE)


def draws(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.ones(N // 16, 16, dtype=dtype, device=DEVICE)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


@pytest.mark.parametrize("p", RATES)
def test_relaxed_mask_drops_a_p_fraction_on_average(p):
    z = relaxed_drop_mask(draws(), logit_of(p), 0.1, generator())
    assert z.shape == (N // 16, 16) and float(z.min()) >= 0 and float(z.max()) <= 1
    assert abs(float(z.mean()) - p) < MEAN_TOL


def test_relaxed_mask_becomes_binary_as_the_temperature_falls():
    near_binary = []
    for temperature in (1.0, 0.1, 0.01, 0.001):
        z = relaxed_drop_mask(draws(), logit_of(0.3), temperature, generator())
        near_binary.append(float(((z < 0.01) | (z > 0.99)).double().mean()))
    assert near_binary == sorted(near_binary) and near_binary[0] < 0.3
    assert near_binary[2] > 0.97 and near_binary[3] > 0.997
    # At t -> 0 it is the Bernoulli(p) it relaxes: the same noise drops exactly where noise > -logit.
    z = relaxed_drop_mask(draws(), logit_of(0.3), 1e-6, generator(1))
    assert abs(float((z > 0.5).double().mean()) - 0.3) < MEAN_TOL


@pytest.mark.parametrize("p", RATES)
def test_output_is_unbiased_by_the_inverted_scaling(p):
    x = draws() * 2.5
    out = concrete_dropout(x, logit_of(p), 0.1, generator=generator())
    assert abs(float(out.mean()) / 2.5 - 1) < SCALE_TOL
    assert torch.equal(concrete_dropout(x, logit_of(p), training=False), x)


def test_data_gradient_reaches_the_logit_with_the_expected_sign():
    # E[out^2] = x^2 E[(1 - z)^2] / (1 - p)^2 grows with p (more noise): its gradient in the logit is > 0.
    module = ConcreteDropout(init_p=0.2).to(DEVICE).train()
    x = torch.randn(256, 64, device=DEVICE, generator=generator())
    module(x).pow(2).mean().backward()
    assert module.logit.grad is not None and float(module.logit.grad) > 0
    # And the data can push it down: a loss that rewards the output's mean square falling.
    module.zero_grad()
    (-module(x).pow(2).mean()).backward()
    assert float(module.logit.grad) < 0


@pytest.mark.parametrize("layout,shape", [("flat", (4, 8)), ("seq", (4, 6, 8)), ("conv", (4, 8, 5, 5))])
def test_penalty_is_the_papers_term_with_k_the_feature_count(layout, shape):
    module = ConcreteDropout(init_p=0.2, dropout_regularizer=0.01).to(DEVICE).train()
    assert float(module.regularization_loss().detach()) == 0.0  # no input seen yet: K unknown
    module(torch.randn(shape, device=DEVICE))
    # By hand: 0.01 * K * (p log p + (1 - p) log(1 - p)) with K = 8 features.
    expected = 0.01 * 8 * (0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert module.features == 8
    assert float(module.regularization_loss().detach()) == pytest.approx(expected, rel=1e-5)
    module.eval()(torch.randn(2, 3, device=DEVICE))  # an eval call does not change K
    assert module.features == 8


@pytest.mark.parametrize("p", (0.05, 0.2, 0.45, 0.55, 0.8, 0.95))
def test_penalty_gradient_pushes_p_towards_one_half(p):
    logit = logit_of(p).requires_grad_()
    concrete_dropout_penalty(logit, features=16, dropout_regularizer=0.1).backward()
    # d/dlogit [p log p + (1 - p) log(1 - p)] = p (1 - p) logit: gradient descent raises p below 0.5.
    assert float(logit.grad) == pytest.approx(0.1 * 16 * p * (1 - p) * float(logit.detach()), rel=1e-9)
    assert (float(logit.grad) < 0) == (p < 0.5)
    half = torch.zeros((), dtype=torch.float64, requires_grad=True)
    concrete_dropout_penalty(half, features=16, dropout_regularizer=0.1).backward()
    assert float(half.grad) == 0.0


def test_auxiliary_loss_sums_every_module_that_has_one():
    plain = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1))
    assert auxiliary_loss(plain) == 0.0 and isinstance(auxiliary_loss(plain), float)
    first, second = ConcreteDropout(0.1, dropout_regularizer=0.5), ConcreteDropout(0.4, dropout_regularizer=0.5)
    model = nn.Sequential(nn.Linear(6, 8), first, nn.ReLU(), nn.Linear(8, 4), second).to(DEVICE).train()
    model(torch.randn(3, 6, device=DEVICE))
    total = auxiliary_loss(model)
    expected = sum(0.5 * k * (p * math.log(p) + (1 - p) * math.log(1 - p)) for p, k in ((0.1, 8), (0.4, 4)))
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert float(first.logit.grad) < 0 and float(second.logit.grad) < 0


def test_init_p_zero_is_the_identity_with_nothing_to_learn():
    module = ConcreteDropout(init_p=0.0).train()
    x = torch.randn(4, 8)
    assert torch.equal(module(x), x)
    assert list(module.parameters()) == [] and float(module.regularization_loss().detach()) == 0.0
    assert module.p == 0.0 and "p=0.0000" in module.extra_repr()


def test_extra_repr_shows_the_current_rate():
    module = ConcreteDropout(init_p=0.1)
    assert module.extra_repr().startswith("p=0.1000, init_p=0.1, temperature=0.1,")
    with torch.no_grad():
        module.logit.fill_(0.0)
    assert module.p == 0.5 and module.extra_repr().startswith("p=0.5000,")


def test_a_float32_logit_under_bfloat16_activations_keeps_the_activation_dtype():
    # What autocast hands a site: bfloat16 activations, the module's parameter in float32.
    module = ConcreteDropout(init_p=0.3).to(DEVICE).train()
    x = torch.randn(4, 8, 6, 6, device=DEVICE, dtype=torch.bfloat16)
    out = module(x)
    assert out.dtype == torch.bfloat16 and out.device == x.device and torch.isfinite(out).all()
    out.float().sum().backward()
    assert module.logit.grad.dtype == torch.float32 and torch.isfinite(module.logit.grad)


@pytest.mark.parametrize("params,message", [
    ({"init_p": 1.0}, "init_p must be a probability in"),
    ({"temperature": 0.0}, "temperature must be a positive"),
    ({"dropout_regularizer": -1.0}, "dropout_regularizer must be a finite number >= 0"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        ad.regularizers.create("concrete_dropout", **params)
    with pytest.raises(ValueError, match="expected input of shape"):
        ConcreteDropout()(torch.randn(5))


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTODROPOUT_CACHE", str(tmp_path / "cache"))


def _learned_rates(task, dropout_regularizer: float) -> list[float]:
    params = {"init_p": 0.1, "dropout_regularizer": dropout_regularizer}
    result = task.fit(Regularization(name="concrete_dropout", params=params), epochs=2, progress=False)
    assert all(math.isfinite(r.train_loss) for r in result.history)
    return [m.p for m in result.model.modules() if isinstance(m, ConcreteDropout)]


def test_a_task_preset_learns_its_rates_and_the_loop_adds_the_penalty(private_cache):
    task = build_task(find_experiment("digits_wrn_quick").task)
    rates = _learned_rates(task, 1e-5)
    assert len(rates) == task.num_sites
    assert all(abs(p - 0.1) > 1e-4 for p in rates), rates  # the data loss alone moves every rate
    # A penalty this strong dominates the data term: only if the loop optimises it do all rates rise.
    pulled = _learned_rates(task, 1.0)
    assert all(p > 0.1 + 0.02 and p > q for p, q in zip(pulled, rates)), (pulled, rates)


def test_the_train_command_takes_it_by_name(private_cache, capsys):
    assert main(["train", "digits_wrn_quick", "--regularizer", "concrete_dropout", "--param", "init_p=0.2",
                 "--epochs", "1"]) == 0
    assert "with concrete_dropout(init_p=0.2)" in capsys.readouterr().out
