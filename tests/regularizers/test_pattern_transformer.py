"""Learned Transformer patterns: exact hidden-axis masks, token spans, heads, noise, site factories."""
import dataclasses
from fractions import Fraction

import pytest
import torch

import autodropout.regularizers as regs
from autodropout.regularizers.pattern_transformer import (
    NOISES,
    TransformerPatternDropout,
    transformer_pattern,
    transformer_pattern_mask,
    transformer_site_factories,
)
from autodropout.search_spaces import SUBLAYERS, ConvSpace, TransformerLayerPattern, TransformerSpace, nominal_rate

OFF = dict.fromkeys(SUBLAYERS, False)
# size 2, stride 1: pitch 3, keep rate 1/3, kept units scaled by 3.
BASE = TransformerLayerPattern(**OFF, size=2, stride=1, span=1, share_heads=False, noise="bernoulli")
# Hidden unit c is dropped iff (c - offset) mod 3 < 2, for D = 8:
ROWS = {
    0: [0, 0, 3, 0, 0, 3, 0, 0],
    1: [3, 0, 0, 3, 0, 0, 3, 0],
    2: [0, 3, 0, 0, 3, 0, 0, 3],
}


def rows(*offsets):
    return torch.tensor([ROWS[o] for o in offsets], dtype=torch.float64)


def mask(shape, pattern, offsets, dtype=torch.float64):
    return transformer_pattern_mask(shape, pattern, offsets=torch.tensor(offsets), dtype=dtype)


def test_hidden_axis_drops_size_units_every_pitch_from_the_offset():
    got = mask((3, 1, 8), BASE, [[0], [1], [2]])
    assert torch.equal(got, rows(0, 1, 2).unsqueeze(1))


def test_span_tokens_share_one_offset():
    pattern = dataclasses.replace(BASE, span=2)
    # T = 5 with span 2: token groups {0, 1}, {2, 3}, {4}.
    got = mask((2, 5, 8), pattern, [[0, 1, 2], [2, 2, 0]])
    assert torch.equal(got[0], rows(0, 0, 1, 1, 2))
    assert torch.equal(got[1], rows(2, 2, 2, 2, 0))


def test_span_one_gives_every_token_its_own_offset():
    got = mask((1, 3, 8), BASE, [[2, 0, 1]])
    assert torch.equal(got[0], rows(2, 0, 1))


@pytest.mark.parametrize("span", ["all", 16])
def test_span_covering_the_sequence_is_one_mask_per_sequence(span):
    pattern = dataclasses.replace(BASE, span=span)
    got = mask((2, 5, 8), pattern, [[1], [0]])
    assert got.shape == (2, 1, 8)
    assert torch.equal(got[:, 0], rows(1, 0))
    out = transformer_pattern(torch.ones(4, 6, 8), pattern, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, out[:, :1].expand(4, 6, 8))


def test_heads_draw_their_own_offsets_unless_shared():
    per_head = mask((1, 2, 1, 8), BASE, [[[0], [2]]])
    assert torch.equal(per_head[0, :, 0], rows(0, 2))
    shared = mask((1, 2, 1, 8), dataclasses.replace(BASE, share_heads=True), [[[1]]])
    assert shared.shape == (1, 1, 1, 8)
    g = torch.Generator().manual_seed(0)
    out = transformer_pattern(torch.ones(2, 4, 3, 8), dataclasses.replace(BASE, share_heads=True), generator=g)
    assert torch.equal(out, out[:, :1].expand(2, 4, 3, 8))
    independent = transformer_pattern(torch.ones(8, 4, 3, 8), BASE, generator=g)
    assert not torch.equal(independent, independent[:, :1].expand(8, 4, 3, 8))


def test_share_heads_does_nothing_on_hidden_states():
    pattern = dataclasses.replace(BASE, share_heads=True)
    assert torch.equal(mask((1, 2, 8), pattern, [[1, 2]])[0], rows(1, 2))


def test_scale_is_numel_over_sum_when_the_pitch_divides_the_hidden_size():
    pattern = dataclasses.replace(BASE, size=1, stride=3)  # pitch 4 divides D = 8
    got = mask((4, 1, 8), pattern, [[0], [1], [2], [3]])
    kept = (got != 0).sum(-1)
    assert torch.equal(kept, torch.full((4, 1), 6))
    assert torch.all(got[got != 0] == 8 / 6)


def test_bernoulli_is_exactly_unbiased_when_the_pitch_does_not_divide():
    # Averaged over the uniform offset (0, 1, 2), every unit's multiplier has mean 1.
    got = mask((3, 1, 8), BASE, [[0], [1], [2]])
    assert torch.allclose(got.mean(0), torch.ones(1, 8, dtype=torch.float64), atol=1e-12)


def test_gaussian_noise_is_shared_within_each_window_of_the_geometry():
    pattern = dataclasses.replace(BASE, noise="gaussian")
    got = transformer_pattern_mask(
        (1, 1, 8), pattern, generator=torch.Generator().manual_seed(0), offsets=torch.tensor([[1]])
    )[0, 0]
    # Offset 1, pitch 3: windows {0}, {1, 2, 3}, {4, 5, 6}, {7}.
    windows = [[0], [1, 2, 3], [4, 5, 6], [7]]
    for window in windows:
        assert torch.all(got[window] == got[window[0]])
    assert len({got[w[0]].item() for w in windows}) == 4


@pytest.mark.parametrize(("size", "stride"), [(4, 2), (1, 4)])
def test_gaussian_noise_has_mean_one_and_variance_size_over_stride(size, stride):
    pattern = dataclasses.replace(BASE, size=size, stride=stride, noise="gaussian")
    got = transformer_pattern_mask((4096, 1, 16), pattern, generator=torch.Generator().manual_seed(0))
    # One draw per unit and row (taking one unit per row makes the draws independent): n = 4096, so
    # the mean's standard error is sqrt(var / n) <= 0.023 and the variance's is var * sqrt(2 / n) <= 0.045.
    samples = got[:, 0, 5].double()
    variance = size / stride
    assert samples.mean().item() == pytest.approx(1.0, abs=4 * (variance / 4096) ** 0.5)
    assert samples.var().item() == pytest.approx(variance, abs=4 * variance * (2 / 4096) ** 0.5)


@pytest.mark.parametrize("noise", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_mask_follows_the_input_dtype_and_device(noise, dtype):
    pattern = dataclasses.replace(BASE, noise=noise, span=2)
    x = torch.randn(2, 3, 5, 8).to(dtype)
    assert transformer_pattern(x, pattern).dtype == dtype
    meta = transformer_pattern(torch.empty(2, 3, 5, 8, device="meta"), pattern)
    assert meta.device.type == "meta" and meta.shape == (2, 3, 5, 8)


@pytest.mark.parametrize("noise", ["bernoulli", "gaussian"])
def test_seeded_generator_is_deterministic(noise):
    pattern = dataclasses.replace(BASE, noise=noise)

    def draw(seed):
        return transformer_pattern_mask((3, 4, 8), pattern, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


def test_gradient_is_the_mask():
    x = torch.randn(2, 3, 4, 8, requires_grad=True)
    transformer_pattern(x, BASE, generator=torch.Generator().manual_seed(5)).sum().backward()
    expected = transformer_pattern_mask(x.shape, BASE, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x.grad, expected.expand_as(x))


def test_eval_mode_and_none_pattern_are_the_identity():
    x = torch.randn(2, 5, 8)
    assert TransformerPatternDropout(BASE).eval()(x) is x
    assert TransformerPatternDropout(None)(x) is x
    assert transformer_pattern(x, BASE, training=False) is x


def test_module_repr_and_registry_entry():
    module = TransformerPatternDropout(dataclasses.replace(BASE, span="all", noise="gaussian"))
    assert "span='all'" in repr(module) and "noise='gaussian'" in repr(module)
    entry = regs.info("transformer_pattern")
    assert entry.rate_param is None and entry.input_kinds == ("seq", "heads")
    assert isinstance(regs.create("transformer_pattern", **entry.example_params), TransformerPatternDropout)


def test_site_factories_switch_on_exactly_the_patterns_sublayers():
    first = dataclasses.replace(BASE, query=True, ffn_hidden=True)
    second = dataclasses.replace(
        BASE, key=True, value=True, attn_output=True, ffn_output=True, noise="gaussian"
    )
    nothing = BASE
    sites = transformer_site_factories([first, second, nothing])
    assert [sorted(site) for site in sites] == [
        ["ffn_hidden", "query"],
        ["attn_output", "ffn_output", "key", "value"],
        [],
    ]
    for layer, site in zip((first, second), sites):
        for make in site.values():
            module = make()
            assert isinstance(module, TransformerPatternDropout) and module.pattern == layer


def test_site_factories_from_a_decoded_pattern():
    space = TransformerSpace(num_sites=4)
    pattern = space.decode(space.sample(3))
    sites = transformer_site_factories(pattern)
    assert [tuple(name for name in SUBLAYERS if name in site) for site in sites] == [
        layer.sublayers for layer in pattern.layers
    ]
    conv = ConvSpace(num_sites=1)
    with pytest.raises(ValueError, match="pattern: expected a 'transformer' Pattern"):
        transformer_site_factories(conv.decode(conv.sample(0)))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": 0}, r"pattern\.size: expected an int >= 1"),
        ({"stride": True}, r"pattern\.stride"),
        ({"span": 0}, r"pattern\.span: expected an int >= 1 or 'all'"),
        ({"span": "some"}, r"pattern\.span"),
        ({"noise": "uniform"}, r"pattern\.noise: expected one of \['bernoulli', 'gaussian'\]"),
        ({"query": 1}, r"pattern\.query: expected a bool"),
    ],
)
def test_bad_pattern_fields_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        TransformerPatternDropout(dataclasses.replace(BASE, **changes))


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="pattern: expected a TransformerLayerPattern"):
        TransformerPatternDropout("bernoulli")
    with pytest.raises(ValueError, match=r"x: transformer_pattern expects \(B, T, C\) or \(B, heads, T, d\)"):
        transformer_pattern(torch.randn(2, 8), BASE)
    with pytest.raises(ValueError, match=r"offsets: expected an integer tensor of shape \(2, 3\)"):
        mask((2, 5, 8), dataclasses.replace(BASE, span=2), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"offsets: values must lie in \[0, 3\)"):
        mask((1, 1, 8), BASE, [[3]])


DEFAULTS = TransformerSpace(1).values


@pytest.mark.parametrize("hidden", [*range(2, 17), 24, 32, 64, 256])
def test_no_default_choice_ever_drops_a_whole_head_and_all_are_exactly_unbiased(hidden):
    # Exact, over every offset: each (size, stride) of the default space keeps at least one unit of
    # every head of `hidden` units, drops each unit with probability exactly run / pitch (the nominal
    # size / (size + stride) unless the run is cut to hidden - 1: nominal_rate), and averages to a
    # multiplier of 1. The default rates lie in [1/50, 3/5] (size 1 / stride 49 to size 6 / stride 4).
    for size in DEFAULTS.size:
        for stride in DEFAULTS.stride:
            pattern = dataclasses.replace(BASE, size=size, stride=stride)
            run = min(size, hidden - 1)
            pitch = run + stride
            got = mask((pitch, 1, 1, hidden), pattern, [[[o]] for o in range(pitch)])[:, 0, 0]
            assert (got != 0).any(-1).all(), (size, stride, hidden)
            assert torch.allclose((got == 0).double().mean(0), torch.full((hidden,), run / pitch, dtype=torch.float64))
            assert torch.allclose(got.mean(0), torch.ones(hidden, dtype=torch.float64), atol=1e-12)
            assert Fraction(run, pitch) == nominal_rate(size, stride, hidden) == pattern.rate(hidden)
            assert Fraction(1, 50) <= nominal_rate(size, stride, hidden) <= Fraction(3, 5)


def test_the_run_is_cut_below_a_tiny_head():
    # d = 2, size 4: the run is cut to 1 unit, pitch 1 + 4 = 5, kept units scaled by 5 / 4.
    pattern = dataclasses.replace(BASE, size=4, stride=4)
    got = mask((5, 1, 1, 2), pattern, [[[o]] for o in range(5)])[:, 0, 0]
    assert torch.equal(got, torch.tensor([[0, 1.25], [1.25, 0], [1.25, 1.25], [1.25, 1.25], [1.25, 1.25]],
                                         dtype=torch.float64))
    with pytest.raises(ValueError, match=r"offsets: values must lie in \[0, 5\) \(run \+ stride\)"):
        mask((1, 1, 1, 2), pattern, [[[5]]])


def test_a_hidden_axis_of_one_unit_is_an_error_not_a_whole_drop():
    for noise in NOISES:
        with pytest.raises(ValueError, match="a hidden axis of 1 unit cannot be masked"):
            transformer_pattern(torch.ones(2, 3, 4, 1), dataclasses.replace(BASE, noise=noise))


def test_gaussian_variance_follows_the_cut_run():
    # d = 3, size 4 -> run 2, stride 4: N(1, 2 / 4), the variance of a Bernoulli multiplier of rate 2 / 6.
    pattern = dataclasses.replace(BASE, size=4, stride=4, noise="gaussian")
    got = transformer_pattern_mask((4096, 1, 3), pattern, generator=torch.Generator().manual_seed(0))
    samples = got[:, 0, 1].double()
    # n = 4096 independent draws: standard errors sqrt(0.5 / n) = 0.011 (mean), 0.5 * sqrt(2 / n) = 0.011 (var).
    assert samples.mean().item() == pytest.approx(1.0, abs=4 * (0.5 / 4096) ** 0.5)
    assert samples.var().item() == pytest.approx(0.5, abs=4 * 0.5 * (2 / 4096) ** 0.5)
