"""Learned embedding patterns: the layers' comb along the hidden axis, whole tokens, "off"."""
import dataclasses
from fractions import Fraction

import pytest
import torch

import autodropout.regularizers as regs
from autodropout.regularizers.pattern_embedding import (
    EmbeddingPatternDropout,
    embedding_pattern,
    embedding_pattern_mask,
    embedding_site_factories,
)
from autodropout.regularizers.pattern_transformer import transformer_pattern_mask
from autodropout.search_spaces import (
    SUBLAYERS,
    ConvSpace,
    EmbeddingPattern,
    Pattern,
    TransformerLayerPattern,
    TransformerSpace,
)

FEATURE = EmbeddingPattern("feature", 2, 1, 2, "bernoulli")
TOKEN = EmbeddingPattern("token", 2, 3, 1, "bernoulli")
OFF = EmbeddingPattern("off", 1, 4, 1, "bernoulli")


def mask(shape, pattern, offsets=None, **kwargs):
    offsets = None if offsets is None else torch.tensor(offsets)
    return embedding_pattern_mask(shape, pattern, offsets=offsets, dtype=torch.float64, **kwargs)


def test_feature_unit_is_the_layer_comb_exactly():
    # Same offsets, same generator state: the mask of a layer pattern with the same comb.
    for noise in ("bernoulli", "gaussian"):
        for span in (1, 2, "all"):
            embedding = dataclasses.replace(FEATURE, span=span, noise=noise)
            layer = TransformerLayerPattern(**dict.fromkeys(SUBLAYERS, True), size=2, stride=1, span=span,
                                            share_heads=False, noise=noise)
            got = embedding_pattern_mask((3, 5, 8), embedding, torch.Generator().manual_seed(4))
            want = transformer_pattern_mask((3, 5, 8), layer, torch.Generator().manual_seed(4))
            assert torch.equal(got, want), (noise, span)


def test_token_unit_drops_runs_of_whole_tokens_from_the_offset():
    # size 2, stride 3: pitch 5, tokens t with (t - o) mod 5 < 2 are zeroed, the others scaled by 5/3.
    got = mask((2, 7, 4), TOKEN, [[0], [3]])
    assert got.shape == (2, 7, 1)
    k = 5 / 3
    assert torch.equal(got[..., 0], torch.tensor([[0, 0, k, k, k, 0, 0], [k, k, k, 0, 0, k, k]], dtype=torch.float64))
    x = torch.randn(2, 7, 4)
    out = embedding_pattern(x, TOKEN)
    dropped = (out == 0).all(-1)
    assert torch.equal((out == 0).any(-1), dropped)  # a token is dropped whole or not at all
    with pytest.raises(ValueError, match=r"offsets: expected an integer tensor of shape \(2, 1\)"):
        mask((2, 7, 4), TOKEN, [0, 3])


@pytest.mark.parametrize("tokens", [2, 3, 5, 6, 10, 64])
@pytest.mark.parametrize("size, stride", [(1, 4), (2, 3), (6, 4), (1, 49)])
def test_every_token_is_dropped_with_the_exact_rate_and_the_mask_is_exactly_unbiased(tokens, size, stride):
    # Over every offset: token t is dropped with probability run / pitch (nominal_rate, the run cut
    # to tokens - 1), never every token of a sequence, and the multiplier averages to exactly 1.
    pattern = EmbeddingPattern("token", size, stride, 1, "bernoulli")
    run = min(size, tokens - 1)
    pitch = run + stride
    got = mask((pitch, tokens, 3), pattern, [[o] for o in range(pitch)])[..., 0]
    assert (got != 0).any(-1).all()
    rate = (got == 0).double().mean(0)
    assert torch.allclose(rate, torch.full((tokens,), float(pattern.rate(tokens, 3)), dtype=torch.float64))
    assert pattern.rate(tokens, 3) == Fraction(run, pitch)
    assert torch.allclose(got.mean(0), torch.ones(tokens, dtype=torch.float64), atol=1e-12)


def test_sampled_token_rate_and_mean():
    # 20000 sequences of 12 tokens, size 2 / stride 4: rate 1/3. Per token, the fraction of dropped
    # sequences has standard error sqrt(p (1 - p) / n) = 0.0033 (4 SE: 0.0133); the mean multiplier's
    # is sqrt(p / (1 - p) / n) = 0.005 (4 SE: 0.02).
    pattern = EmbeddingPattern("token", 2, 4, 1, "bernoulli")
    got = mask((20000, 12, 2), pattern, generator=torch.Generator().manual_seed(0))[..., 0]
    assert torch.allclose((got == 0).double().mean(0), torch.full((12,), 1 / 3, dtype=torch.float64), atol=0.0133)
    assert torch.allclose(got.mean(0), torch.ones(12, dtype=torch.float64), atol=0.02)


def test_gaussian_token_noise_multiplies_whole_tokens_with_the_bernoulli_variance():
    # size 2, stride 4: one N(1, 2 / 4) per window of 6 tokens; every unit of a token shares it.
    pattern = EmbeddingPattern("token", 2, 4, 1, "gaussian")
    got = embedding_pattern_mask((4096, 6, 5), pattern, generator=torch.Generator().manual_seed(1))
    assert got.shape == (4096, 6, 1)
    samples = got[:, 2, 0].double()
    # n = 4096 draws: standard errors 0.011 (mean), 0.011 (variance); allow 4.
    assert samples.mean().item() == pytest.approx(1.0, abs=4 * (0.5 / 4096) ** 0.5)
    assert samples.var().item() == pytest.approx(0.5, abs=4 * 0.5 * (2 / 4096) ** 0.5)


def test_identity_in_eval_for_off_none_and_a_single_token():
    x = torch.randn(3, 5, 8)
    module = EmbeddingPatternDropout(TOKEN)
    assert torch.equal(module.eval()(x), x)
    assert torch.equal(EmbeddingPatternDropout(OFF).train()(x), x)
    assert torch.equal(EmbeddingPatternDropout(None).train()(x), x)
    assert torch.equal(embedding_pattern(x[:, :1], TOKEN), x[:, :1])  # one token: nothing to drop
    assert torch.equal(mask((3, 5, 8), OFF), torch.ones(1, 1, 1, dtype=torch.float64))
    assert not torch.equal(module.train()(x), x)


def test_masks_follow_the_input_device_and_dtype():
    x = torch.randn(2, 6, 8, dtype=torch.bfloat16)
    for pattern in (FEATURE, TOKEN, dataclasses.replace(TOKEN, noise="gaussian")):
        out = EmbeddingPatternDropout(pattern).train()(x)
        assert out.dtype == torch.bfloat16 and out.device == x.device and out.shape == x.shape


def test_bad_patterns_and_inputs_are_named():
    with pytest.raises(ValueError, match=r"pattern\.unit: expected one of \['off', 'feature', 'token'\]"):
        EmbeddingPatternDropout(dataclasses.replace(TOKEN, unit="word"))
    with pytest.raises(ValueError, match=r"pattern\.stride: expected an int >= 1"):
        EmbeddingPatternDropout(dataclasses.replace(TOKEN, stride=0))
    with pytest.raises(TypeError, match="pattern: expected an EmbeddingPattern"):
        EmbeddingPatternDropout("token")
    with pytest.raises(ValueError, match=r"x: embedding_pattern expects \(B, T, C\)"):
        embedding_pattern(torch.randn(2, 2, 3, 4), FEATURE)
    with pytest.raises(ValueError, match="a hidden axis of 1 unit cannot be masked"):
        embedding_pattern(torch.randn(2, 3, 1), TOKEN)


def test_site_factories_leave_off_and_pattern_less_sites_empty():
    space = TransformerSpace(2, num_embeddings=2)
    layers = space.decode(space.sample(0)).layers
    factories = embedding_site_factories(Pattern("transformer", layers, (OFF, TOKEN)))
    assert factories[0] is None and isinstance(factories[1](), EmbeddingPatternDropout)
    assert factories[1]().pattern == TOKEN and "unit='token', size=2, stride=3" in repr(factories[1]())
    assert embedding_site_factories(Pattern("transformer", layers)) == []
    conv = ConvSpace(1)
    with pytest.raises(ValueError, match="expected a 'transformer' Pattern, got a 'conv' one"):
        embedding_site_factories(conv.decode(conv.sample(0)))


def test_registered_for_sequence_inputs():
    entry = regs.info("embedding_pattern")
    assert entry.input_kinds == ("seq",) and entry.identity_params == {"pattern": None}
