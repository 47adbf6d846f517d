"""Elementwise inverted dropout and the shared mask helpers (autodropout/regularizers/dropout.py)."""
import math

import pytest
import torch

from autodropout.regularizers.dropout import Dropout, check_dims, check_rate, dropout, keep_mask


def test_kept_values_are_scaled_by_inverse_keep_and_dropped_are_zero():
    torch.manual_seed(0)
    x = torch.randn(64, 32)
    out = dropout(x, p=0.25)
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / 0.75, rtol=1e-6, atol=0)
    assert 0.2 < 1 - kept.float().mean() < 0.3


def test_elementwise_variance_matches_bernoulli():
    # Var[x m / (1 - p)] = x^2 p / (1 - p); 200k draws of x = 2 give a relative s.e. of ~0.3 %.
    torch.manual_seed(0)
    out = dropout(torch.full((200_000,), 2.0), p=0.4)
    assert out.var().item() == pytest.approx(4 * 0.4 / 0.6, rel=0.02)


def test_rate_zero_and_eval_return_the_input_object():
    x = torch.randn(3, 4)
    assert dropout(x, 0.0) is x
    assert dropout(x, 0.5, training=False) is x
    assert Dropout(0.5).eval()(x) is x


def test_keep_mask_shape_values_and_constant_for_autograd():
    torch.manual_seed(0)
    x = torch.randn(5, 6, 7, dtype=torch.bfloat16, requires_grad=True)
    mask = keep_mask(x, 0.5, shared_dims=(-1, 1))
    assert mask.shape == (5, 1, 1)
    assert mask.dtype == torch.bfloat16 and not mask.requires_grad
    assert set(mask.unique().tolist()) <= {0.0, 2.0}


@pytest.mark.parametrize("bad", [1.0, -0.1, math.nan, "0.5", True, None])
def test_check_rate_names_the_parameter(bad):
    with pytest.raises(ValueError, match=r"max_rate must be a probability in \[0, 1\)"):
        check_rate(bad, "max_rate")


def test_module_validates_and_reprs():
    with pytest.raises(ValueError, match="p must be a probability"):
        Dropout(1.0)
    assert repr(Dropout(0.2)) == "Dropout(p=0.2)"


def test_check_dims_message_names_method_and_layout():
    expected = r"dropblock: expected input of shape \(B, C, H, W\), got shape \(2, 3\)"
    with pytest.raises(ValueError, match=expected):
        check_dims(torch.zeros(2, 3), "dropblock", "(B, C, H, W)", min_dim=4, max_dim=4)
