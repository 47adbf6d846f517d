"""TargetDrop (Zhu & Zhao 2020): top-k channel choice, block at the argmax, per-map rescale."""
import pytest
import torch

from autodropout.regularizers.targetdrop import TargetDrop, num_targets, targetdrop


def _peaked(peaks, channels=4, size=6):
    """Positive maps (values in [0.1, 0.2]) with a single 1.0 peak per channel at ``peaks[c]``."""
    torch.manual_seed(0)
    x = torch.rand(1, channels, size, size) * 0.1 + 0.1
    for c, (row, col) in enumerate(peaks):
        x[0, c, row, col] = 1.0
    return x


def test_blocks_at_the_argmax_of_the_top_k_channels_clipped_and_rescaled():
    x = _peaked([(5, 5), (0, 0), (3, 4), (2, 2)])
    attention = torch.tensor([[0.1, 0.9, 0.5, 0.2]])
    out = targetdrop(x, attention, gamma=0.5, block_size=3)
    # Channels 0 and 3 are not among the top-2 of the attention: unchanged.
    assert torch.equal(out[0, 0], x[0, 0]) and torch.equal(out[0, 3], x[0, 3])
    # Channel 1: peak at the corner, block rows/cols -1..1 clipped to 0..1: 4 zeros, scale 36 / 32.
    dropped = torch.zeros(6, 6, dtype=torch.bool)
    dropped[0:2, 0:2] = True
    assert torch.equal(out[0, 1] == 0, dropped)
    assert torch.allclose(out[0, 1][~dropped], x[0, 1][~dropped] * 36 / 32)
    # Channel 2: peak (3, 4), rows 2..4, cols 3..5: 9 zeros, scale 36 / 27.
    dropped = torch.zeros(6, 6, dtype=torch.bool)
    dropped[2:5, 3:6] = True
    assert torch.equal(out[0, 2] == 0, dropped)
    assert torch.allclose(out[0, 2][~dropped], x[0, 2][~dropped] * 36 / 27)


def test_even_block_spans_k_rows_starting_k_over_2_above_the_peak():
    x = _peaked([(3, 3)], channels=1)
    out = targetdrop(x, torch.ones(1, 1), gamma=1.0, block_size=2)
    dropped = torch.zeros(6, 6, dtype=torch.bool)
    dropped[2:4, 2:4] = True
    assert torch.equal(out[0, 0] == 0, dropped)


def test_top_k_is_chosen_per_sample():
    x = torch.cat([_peaked([(1, 1)] * 4), _peaked([(4, 4)] * 4)])
    attention = torch.tensor([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.8, 0.9]])
    dropped = (targetdrop(x, attention, gamma=0.5, block_size=1) == 0).flatten(2).any(-1)
    assert dropped.tolist() == [[True, True, False, False], [False, False, True, True]]


def test_block_covering_the_map_zeroes_it_without_nan():
    out = targetdrop(torch.rand(2, 3, 4, 4) + 1, torch.rand(2, 3), gamma=0.4, block_size=9)
    assert torch.isfinite(out).all()
    assert int((out.flatten(2) == 0).all(-1).sum()) == 2  # K = floor(0.4 * 3) = 1 map per sample


def test_module_targets_the_channels_its_attention_ranks_highest():
    torch.manual_seed(0)
    module = TargetDrop(channels=8, gamma=0.25, block_size=3)
    x = torch.rand(3, 8, 7, 7) + 0.5
    targets = module.attention(x).topk(2, dim=1).indices.sort(dim=1).values
    hit = (module(x) == 0).flatten(2).any(-1)
    assert torch.equal(hit.nonzero()[:, 1].view(3, 2), targets)


def test_attention_is_fixed_buffers_with_no_gradient_path():
    module = TargetDrop(channels=128, reduction=16)
    assert list(module.parameters()) == []
    assert set(module.state_dict()) == {"se_reduce", "se_expand"}
    assert module.se_reduce.shape == (8, 128) and module.se_expand.shape == (128, 8)
    assert TargetDrop(channels=32, reduction=16).se_reduce.shape == (4, 32)  # max(C // r, 4)


def test_no_randomness_in_training_mode():
    module = TargetDrop(channels=8, gamma=0.5)
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(module(x), module(x))


def test_floor_of_gamma_times_channels():
    assert num_targets(0.29, 100) == 29
    assert num_targets(0.15, 6) == 0
    x = torch.randn(2, 6, 5, 5)
    assert TargetDrop(channels=6, gamma=0.15)(x) is x


def test_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"gamma must be a fraction of channels in \[0, 1\]"):
        TargetDrop(channels=8, gamma=1.5)
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        TargetDrop(channels=0)
    with pytest.raises(ValueError, match="targetdrop: built for channels=8"):
        TargetDrop(channels=8)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"attention must have shape \(B, C\)"):
        targetdrop(torch.randn(2, 4, 5, 5), torch.rand(2, 3))
    with pytest.raises(ValueError, match="targetdrop: expected input of shape"):
        targetdrop(torch.randn(2, 4, 5), torch.rand(2, 4))


def test_repr():
    assert repr(TargetDrop(8)) == "TargetDrop(channels=8, gamma=0.15, block_size=5, reduction=16)"
