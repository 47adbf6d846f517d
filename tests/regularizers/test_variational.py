"""Variational (locked) dropout: one mask per sequence, shared over time."""
import pytest
import torch

from autodropout.regularizers.spatial import spatial_dropout
from autodropout.regularizers.variational import VariationalDropout, variational_dropout


def test_batch_first_mask_is_shared_over_time():
    torch.manual_seed(0)
    out = variational_dropout(torch.ones(8, 11, 16), p=0.5)
    assert torch.equal(out, out[:, :1, :].expand_as(out))
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert not torch.equal(out[0], out[1])  # one mask per sequence, not per batch


def test_sequence_first_matches_awd_lstm_locked_dropout():
    # salesforce/awd-lstm-lm LockedDropout for (T, B, C): m = new(1, B, C).bernoulli_(1 - p) / (1 - p)
    x = torch.randn(7, 4, 5)
    torch.manual_seed(3)
    reference = x * (x.new_empty(1, 4, 5).bernoulli_(0.7) / 0.7)
    torch.manual_seed(3)
    assert torch.equal(VariationalDropout(0.3, batch_first=False)(x), reference)


def test_conv_input_coincides_with_spatial_dropout():
    x = torch.randn(2, 6, 4, 4)
    torch.manual_seed(1)
    expected = spatial_dropout(x, 0.4)
    torch.manual_seed(1)
    assert torch.equal(variational_dropout(x, 0.4), expected)


def test_sequence_first_needs_three_dims():
    with pytest.raises(ValueError, match=r"batch_first=False expects \(T, B, C\)"):
        variational_dropout(torch.ones(2, 3, 4, 5), 0.5, batch_first=False)
    with pytest.raises(ValueError, match="variational_dropout: expected input of shape"):
        variational_dropout(torch.ones(3), 0.5)


def test_repr():
    assert repr(VariationalDropout(0.25)) == "VariationalDropout(p=0.25, batch_first=True)"
