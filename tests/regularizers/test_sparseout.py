"""Sparseout (Khan & Stavness 2019): q = 2 is dropout, official gradient rule, variance, clamp."""
import pytest
import torch

from autodropout.regularizers.dropout import dropout, keep_mask
from autodropout.regularizers.sparseout import Sparseout, sparseout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_q2_is_exactly_inverted_dropout(dtype):
    x = torch.randn(16, 33, dtype=dtype)
    for p in (0.1, 0.3, 0.7):
        torch.manual_seed(5)
        expected = dropout(x, p)
        torch.manual_seed(5)
        assert torch.equal(sparseout(x, p, q=2.0), expected)


def test_forward_formula_by_hand():
    # out = x + sgn(x) |x|^(q/2) xi, xi = m / (1 - p) - 1, for |x| above the clamp.
    x = torch.tensor([[-2.0, -0.5, 0.25, 1.0, 3.0, 4.0]] * 50)
    torch.manual_seed(2)
    xi = keep_mask(x, 0.4) - 1
    torch.manual_seed(2)
    out = sparseout(x, p=0.4, q=1.0)
    expected = x + x.sign() * x.abs().sqrt() * xi
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-7)


def test_gradient_is_the_detached_noise_factor_not_the_exact_derivative():
    q, p = 1.0, 0.5
    x = torch.tensor([[0.25, -1.0, 4.0, 9.0]] * 8, requires_grad=True)
    torch.manual_seed(4)
    xi = keep_mask(x, p) - 1
    torch.manual_seed(4)
    sparseout(x, p, q).sum().backward()
    factor = 1 + x.detach().abs().pow((q - 2) / 2) * xi
    assert torch.allclose(x.grad, factor)
    exact = 1 + (q / 2) * x.detach().abs().pow((q - 2) / 2) * xi
    assert not torch.allclose(x.grad, exact)


@pytest.mark.parametrize("q", [1.0, 2.0, 3.0])
def test_variance_is_rate_odds_times_abs_x_to_the_q(q):
    # 100k iid draws per value: the sample variance has a relative s.e. below 0.5 %; tolerance 3 %.
    p = 0.3
    values = torch.tensor([0.5, 1.5, -2.0, 3.0], dtype=torch.float64)
    torch.manual_seed(0)
    out = sparseout(values.expand(100_000, 4).contiguous(), p, q)
    expected = p / (1 - p) * values.abs() ** q
    assert torch.allclose(out.var(dim=0), expected, rtol=0.03)
    assert torch.allclose(out.mean(dim=0), values, atol=0.02 * values.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_clamp_keeps_values_and_gradients_bounded_near_zero(dtype):
    q = 0.5
    x = torch.tensor([0.0, 1e-8, -1e-6, 1e-5] * 64, dtype=dtype, requires_grad=True)
    torch.manual_seed(0)
    out = sparseout(x, p=0.5, q=q)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    # |xi| <= 1 at p = 0.5, so the factor is at most 1 + 1e-4^((q - 2)/2) = 1 + 1e3.
    assert x.grad.abs().max().item() <= (1 + 1e-4 ** ((q - 2) / 2)) * 1.01
    assert out[0].item() == 0.0


def test_parameter_errors_and_repr():
    with pytest.raises(ValueError, match="q must be a positive finite number"):
        Sparseout(0.5, q=0.0)
    with pytest.raises(ValueError, match="min_abs must be a positive finite number"):
        sparseout(torch.ones(2), 0.5, 1.0, min_abs=-1.0)
    with pytest.raises(ValueError, match="p must be a probability"):
        Sparseout(1.0)
    assert repr(Sparseout(0.2, q=1.5)) == "Sparseout(p=0.2, q=1.5, min_abs=0.0001)"
