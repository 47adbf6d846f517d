"""DropBlock (Ghiasi et al. 2018): block geometry, gamma, per-position keep law, rescale, schedule."""
import pytest
import torch

from autodropout.regularizers import dropblock as dropblock_module
from autodropout.regularizers.dropblock import DropBlock, dropblock, dropblock_gamma, grow_blocks


def _seeds(shape, *points):
    seeds = torch.zeros(shape, dtype=torch.bool)
    for point in points:
        seeds[point] = True
    return seeds


def test_odd_block_grows_down_and_right_from_its_valid_seed():
    # 6 x 6 map, 3 x 3 block: the valid seed grid is 4 x 4; seed (0, 3) is the top-right corner block.
    dropped = grow_blocks(_seeds((4, 4), (0, 3)), (3, 3))
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[0:3, 3:6] = True
    assert torch.equal(dropped, expected)


def test_even_and_rectangular_blocks_have_their_exact_size():
    dropped = grow_blocks(_seeds((5, 5), (4, 0)), (2, 2))
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[4:6, 0:2] = True
    assert torch.equal(dropped, expected)
    dropped = grow_blocks(_seeds((1, 2, 4, 2), (0, 1, 1, 1)), (2, 5))
    expected = torch.zeros(1, 2, 5, 6, dtype=torch.bool)
    expected[0, 1, 1:3, 1:6] = True
    assert torch.equal(dropped, expected)


def test_overlapping_blocks_form_their_union():
    dropped = grow_blocks(_seeds((3, 3), (0, 0), (1, 1)), (3, 3))
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[0:3, 0:3] = True
    expected[1:4, 1:4] = True
    assert torch.equal(dropped, expected)
    assert int(dropped.sum()) == 14


def test_gamma_has_the_edge_correction_and_clips_the_block():
    assert dropblock_gamma(0.1, 3, 8, 8) == pytest.approx(0.1 / 9 * 64 / 36)
    assert dropblock_gamma(0.1, (2, 4), 6, 8) == pytest.approx(0.1 / 8 * 48 / 25)
    assert dropblock_gamma(0.3, 7, 4, 4) == pytest.approx(0.3)  # block clipped to the whole map
    assert dropblock_gamma(0.9, 5, 5, 6) == pytest.approx(0.9 / 25 * 30 / 2)


def test_per_position_keep_probability_follows_the_valid_seed_law():
    # Position (i, j) is covered by n_i * n_j valid seeds, so P(keep) = (1 - gamma)^(n_i n_j):
    # border positions are kept more often than interior ones. 40k maps: s.e. <= 0.0025; tol 0.012.
    p, size, block = 0.3, 8, 3
    torch.manual_seed(0)
    kept = (dropblock(torch.ones(40_000, 1, size, size), p, block) != 0).double().mean(dim=(0, 1))
    idx = torch.arange(size)
    n = (torch.minimum(idx, torch.tensor(size - block)) - torch.clamp(idx - block + 1, min=0) + 1)
    expected = (1 - dropblock_gamma(p, block, size, size)) ** (n[:, None] * n[None, :]).double()
    assert torch.allclose(kept, expected, atol=0.012)
    assert kept[0, 0] > 0.9 and kept[3, 3] < 0.65


@pytest.mark.parametrize("gamma", [0.004, 0.05, 0.3], ids=["gaps", "gaps", "uniforms"])
def test_seed_sampler_is_iid_bernoulli(gamma, monkeypatch):
    # Both CPU samplers (geometric gaps below gamma = 0.1, one uniform per position above). With one
    # gap per round the refill loop runs thousands of times and must give the same law.
    cpu = torch.device("cpu")
    for draws in (None, 1):
        if draws:
            monkeypatch.setattr(dropblock_module, "_gap_draws", lambda total, gamma, draws=draws: draws)
        torch.manual_seed(0)
        seeds = dropblock_module._bernoulli_seeds((4, 50, 1000), gamma, cpu).flatten().double()
        se = (gamma * (1 - gamma) / seeds.numel()) ** 0.5
        assert abs(seeds.mean().item() - gamma) < 5 * se
        # No drift along the flattened order and no correlation between neighbours.
        first, second = seeds.view(2, -1).mean(dim=1)
        assert abs(first.item() - second.item()) < 7 * se
        both = (seeds[1:] * seeds[:-1]).mean().item()
        assert abs(both - gamma**2) < 5 * (gamma**2 * (1 - gamma**2) / seeds.numel()) ** 0.5


def test_kept_values_share_one_global_scale_numel_over_kept():
    torch.manual_seed(1)
    x = torch.rand(4, 3, 10, 10) + 0.5
    out = dropblock(x, p=0.2, block_size=3)
    kept = out != 0
    scale = out.numel() / int(kept.sum())
    assert torch.allclose(out[kept], x[kept] * scale, rtol=1e-6)


def test_shared_mask_across_channels_when_not_per_channel():
    torch.manual_seed(0)
    out = dropblock(torch.ones(4, 5, 9, 9), p=0.3, block_size=3, per_channel=False)
    dropped = out == 0
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped)) and dropped.any()


def test_block_covering_the_map_is_spatial_dropout():
    torch.manual_seed(0)
    dropped = (dropblock(torch.ones(500, 8, 4, 4), p=0.25, block_size=7) == 0).flatten(2)
    assert torch.equal(dropped.all(-1), dropped.any(-1))
    assert dropped.all(-1).float().mean().item() == pytest.approx(0.25, abs=0.02)


def test_block_size_one_is_dropout_rate():
    torch.manual_seed(0)
    dropped = dropblock(torch.ones(100, 4, 8, 8), p=0.2, block_size=1) == 0
    assert dropped.float().mean().item() == pytest.approx(0.2, abs=0.01)


def test_linear_schedule_from_zero_to_p():
    module = DropBlock(p=0.2, block_size=3, schedule_fraction=0.5)
    x = torch.randn(2, 3, 8, 8)
    assert module.current_p == 0.0 and torch.equal(module(x), x)
    module.set_progress(0.25)
    assert module.current_p == pytest.approx(0.1)
    module.set_progress(0.5)
    assert module.current_p == pytest.approx(0.2)
    module.set_progress(1.0)
    assert module.current_p == pytest.approx(0.2)
    assert not torch.equal(module(x), x)
    constant = DropBlock(p=0.2, block_size=3)
    assert constant.current_p == 0.2


def test_scheduled_rate_reaches_the_output():
    torch.manual_seed(0)
    module = DropBlock(p=0.4, block_size=1, schedule_fraction=1.0)
    module.set_progress(0.5)
    dropped = module(torch.ones(64, 8, 8, 8)) == 0
    assert dropped.float().mean().item() == pytest.approx(0.2, abs=0.01)


def test_errors_name_the_parameter():
    with pytest.raises(ValueError, match="dropblock: expected input of shape"):
        dropblock(torch.ones(2, 3, 4), 0.1, 3)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        DropBlock(0.1, block_size=0)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        DropBlock(0.1, block_size=(3,))
    with pytest.raises(ValueError, match="schedule_fraction must be in"):
        DropBlock(0.1, schedule_fraction=1.5)
    with pytest.raises(ValueError, match="progress must be in"):
        DropBlock(0.1).set_progress(-0.1)


def test_repr():
    assert repr(DropBlock(0.1, (3, 5))) == (
        "DropBlock(p=0.1, block_size=(3, 5), per_channel=True, schedule_fraction=0.0, progress=0.0)"
    )
