"""SpatialDropout: one draw per (sample, channel), broadcast over positions."""
import pytest
import torch

from autodropout.regularizers.spatial import SpatialDropout, spatial_dropout


def test_conv_mask_is_constant_over_each_map():
    torch.manual_seed(0)
    out = spatial_dropout(torch.ones(8, 16, 5, 7), p=0.5)
    per_map = out.flatten(2)
    assert torch.equal(per_map, per_map[..., :1].expand_as(per_map))
    assert set(per_map[..., 0].unique().tolist()) == {0.0, 2.0}


def test_five_dim_input_drops_whole_volumes():
    torch.manual_seed(0)
    out = spatial_dropout(torch.ones(4, 8, 2, 3, 3), p=0.5).flatten(2)
    assert torch.equal(out, out[..., :1].expand_as(out))


def test_sequence_mask_is_b1c_shared_over_time():
    torch.manual_seed(0)
    x = torch.randn(6, 9, 12)
    out = spatial_dropout(x, p=0.5)
    ratio = torch.where(out == 0, torch.zeros_like(x), torch.ones_like(x))
    assert torch.equal(ratio, ratio[:, :1, :].expand_as(ratio))
    # Features differ within a time step, so the mask is not per-sample.
    assert 0 < ratio[:, 0, :].mean() < 1


def test_flat_input_is_elementwise():
    torch.manual_seed(0)
    out = spatial_dropout(torch.ones(1, 1000), p=0.5)
    assert 400 < int((out == 0).sum()) < 600


def test_bad_rank_and_rate_raise():
    with pytest.raises(ValueError, match="spatial_dropout: expected input of shape"):
        spatial_dropout(torch.ones(5), p=0.5)
    with pytest.raises(ValueError, match="p must be a probability"):
        SpatialDropout(p=-0.5)


def test_eval_identity_and_repr():
    x = torch.randn(2, 3, 4, 4)
    assert SpatialDropout(0.5).eval()(x) is x
    assert repr(SpatialDropout(0.5)) == "SpatialDropout(p=0.5)"
