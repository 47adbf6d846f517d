"""DropPath / stochastic depth: per-sample masks and the linear depth rule."""
import pytest
import torch

from autodropout.regularizers.droppath import DropPath, drop_path, droppath_rates


def test_each_sample_is_dropped_or_scaled_as_a_whole():
    torch.manual_seed(0)
    x = torch.randn(64, 3, 4, 4)
    out = drop_path(x, p=0.5)
    dropped = (out == 0).flatten(1)
    assert torch.equal(dropped.all(1), dropped.any(1))
    kept = ~dropped.all(1)
    assert torch.allclose(out[kept], x[kept] * 2.0)
    assert 0 < int(kept.sum()) < 64


def test_matches_timm_drop_path_bit_for_bit():
    # timm.layers.drop_path: shape (B, 1, ..., 1), bernoulli_(keep).div_(keep), x * mask
    x = torch.randn(5, 7, 3)
    torch.manual_seed(11)
    reference = x * x.new_empty(5, 1, 1).bernoulli_(0.8).div_(0.8)
    torch.manual_seed(11)
    assert torch.equal(DropPath(0.2)(x), reference)


def test_one_dim_input_is_a_batch_of_scalars():
    torch.manual_seed(0)
    out = drop_path(torch.ones(1000), p=0.25)
    values = out.unique()
    assert values.tolist()[0] == 0.0 and len(values) == 2
    assert values[1].item() == pytest.approx(4 / 3)
    assert 200 < int((out == 0).sum()) < 300


def test_linear_decay_rule():
    assert droppath_rates(0.5, 4) == [0.125, 0.25, 0.375, 0.5]
    assert droppath_rates(0.0, 2) == [0.0, 0.0]
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        droppath_rates(0.1, 0)
    with pytest.raises(ValueError, match="max_rate must be a probability"):
        droppath_rates(1.0, 3)


def test_zero_dim_input_raises():
    with pytest.raises(ValueError, match="droppath: expected input of shape"):
        drop_path(torch.tensor(1.0), 0.5)
