"""Transformer LM and encoder-decoder: sites (names, shapes, order), masks, classic dropout, errors."""
import functools
import math

import pytest
import torch
from torch import nn

from autodropout import regularizers
from autodropout.models import (
    DECODER_SITES,
    ENCODER_SITES,
    TransformerLayer,
    TransformerLM,
    TransformerSeq2Seq,
    classic_dropout_sites,
    classic_lm_dropout,
    classic_seq2seq_dropout,
)

V, C, H, FF = 23, 16, 4, 24  # vocab, width, heads, feed-forward width
D = C // H


class Recorder(nn.Module):
    """Identity that logs (site name, shape) of every tensor it sees."""

    def __init__(self, log: list, name: str) -> None:
        super().__init__()
        self.log, self.name = log, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append((self.name, tuple(x.shape)))
        return x


def recording_sites(log: list, names) -> dict:
    return {name: functools.partial(Recorder, log, name) for name in names}


def lm(**kwargs) -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(V, C, 2, H, d_ff=FF, max_len=12, **kwargs)


def seq2seq(**kwargs) -> TransformerSeq2Seq:
    torch.manual_seed(0)
    return TransformerSeq2Seq(V, V + 4, C, 2, 1, H, d_ff=FF, max_len=12, **kwargs)


def ids(*shape: int, vocab: int = V, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, vocab, shape, generator=torch.Generator().manual_seed(seed))


def test_lm_forward_backward_without_sites():
    model = lm()
    logits = model(ids(3, 7))
    assert logits.shape == (3, 7, V) and model.num_sites == 2
    logits.logsumexp(-1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_seq2seq_forward_backward_without_sites():
    model = seq2seq()
    logits = model(ids(3, 5), ids(3, 4, vocab=V + 4))
    assert logits.shape == (3, 4, V + 4) and model.num_sites == 3
    logits.logsumexp(-1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_lm_sites_see_the_documented_shapes_in_order():
    log: list = []
    model = lm(layer_sites=[recording_sites(log, ENCODER_SITES)] * 2)
    model(ids(3, 7)).sum().backward()
    shapes = {"query": (3, H, 7, D), "key": (3, H, 7, D), "value": (3, H, 7, D), "attn_probs": (3, H, 7, 7),
              "attn_output": (3, 7, C), "ffn_hidden": (3, 7, FF), "ffn_output": (3, 7, C)}
    assert log == [(name, shapes[name]) for name in ENCODER_SITES] * 2


def test_seq2seq_sites_see_the_documented_shapes_in_order():
    log: list = []
    model = seq2seq(encoder_sites=[recording_sites(log, ENCODER_SITES)] * 2,
                    decoder_sites=[recording_sites(log, DECODER_SITES)])
    model(ids(2, 5), ids(2, 3, vocab=V + 4)).sum().backward()
    b, s, t = 2, 5, 3
    encoder = {"query": (b, H, s, D), "key": (b, H, s, D), "value": (b, H, s, D), "attn_probs": (b, H, s, s),
               "attn_output": (b, s, C), "ffn_hidden": (b, s, FF), "ffn_output": (b, s, C)}
    decoder = {"query": (b, H, t, D), "key": (b, H, t, D), "value": (b, H, t, D), "attn_probs": (b, H, t, t),
               "attn_output": (b, t, C), "cross_query": (b, H, t, D), "cross_key": (b, H, s, D),
               "cross_value": (b, H, s, D), "cross_attn_probs": (b, H, t, s), "cross_attn_output": (b, t, C),
               "ffn_hidden": (b, t, FF), "ffn_output": (b, t, C)}
    expected = [(n, encoder[n]) for n in ENCODER_SITES] * 2 + [(n, decoder[n]) for n in DECODER_SITES]
    assert log == expected


def test_missing_names_and_none_factories_leave_sites_empty():
    log: list = []
    model = lm(layer_sites=[{"value": functools.partial(Recorder, log, "value"), "key": None}, None])
    model(ids(1, 4))
    assert log == [("value", (1, H, 4, D))]
    assert sum(isinstance(m, Recorder) for m in model.modules()) == 1


def test_explicit_attention_path_matches_sdpa():
    # An attn_probs site forces the explicit softmax path; with the identity it must change nothing.
    identity = {"attn_probs": nn.Identity}
    torch.testing.assert_close(lm(layer_sites=[identity] * 2)(ids(2, 9)), lm()(ids(2, 9)))
    src = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    tgt = ids(2, 4, vocab=V + 4)
    explicit = seq2seq(encoder_sites=[identity] * 2, decoder_sites=[{"attn_probs": nn.Identity,
                                                                      "cross_attn_probs": nn.Identity}])
    torch.testing.assert_close(explicit(src, tgt), seq2seq()(src, tgt))


@pytest.mark.parametrize("sites", [None, {"attn_probs": nn.Identity}])
def test_lm_is_causal(sites):
    model = lm(layer_sites=[sites] * 2).eval()
    x = ids(2, 10)
    changed = x.clone()
    changed[:, 6] = (changed[:, 6] + 1) % V
    a, b = model(x), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6], rtol=0, atol=1e-6)
    assert (a[:, 6:] - b[:, 6:]).abs().amax(-1).min() > 1e-4  # every later position sees the change


@pytest.mark.parametrize("sites", [None, {"attn_probs": nn.Identity}])
def test_source_padding_does_not_change_other_positions(sites):
    model = seq2seq(encoder_sites=[sites] * 2).eval()
    src, tgt = ids(2, 6), ids(2, 5, vocab=V + 4)
    padded = torch.cat([src, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(padded, tgt), model(src, tgt), rtol=0, atol=1e-5)
    encoded, encoded_padded = model.encode(src), model.encode(padded)
    torch.testing.assert_close(encoded_padded.states[:, :6], encoded.states, rtol=0, atol=1e-5)
    assert encoded_padded.key_mask.tolist() == [[True] * 6 + [False] * 4] * 2


def test_rows_of_different_length_match_their_unpadded_selves():
    model = seq2seq().eval()
    batch = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]])
    tgt = ids(2, 3, vocab=V + 4)
    together = model(batch, tgt)
    torch.testing.assert_close(together[:1], model(batch[:1, :3], tgt[:1]), rtol=0, atol=1e-5)
    torch.testing.assert_close(together[1:], model(batch[1:], tgt[1:]), rtol=0, atol=1e-5)


def test_target_is_causal():
    model = seq2seq().eval()
    src, tgt = ids(1, 5), ids(1, 6, vocab=V + 4)
    changed = tgt.clone()
    changed[0, 4] = 0  # e.g. padding from position 4 on
    torch.testing.assert_close(model(src, changed)[:, :4], model(src, tgt)[:, :4], rtol=0, atol=1e-6)


def test_all_padding_source_row_is_rejected():
    with pytest.raises(ValueError, match=r"src: every row needs at least one token other than pad_id=0"):
        seq2seq()(torch.tensor([[4, 5], [0, 0]]), ids(2, 3))


def test_classic_dropout_site_map():
    assert set(classic_dropout_sites(0.1)) == {"attn_probs", "attn_output", "ffn_output"}
    assert set(classic_dropout_sites(0.1, cross_attention=True)) == {
        "attn_probs", "attn_output", "cross_attn_probs", "cross_attn_output", "ffn_output"}
    assert set(classic_dropout_sites(0.1, attn_p=0.0)) == {"attn_output", "ffn_output"}
    assert classic_dropout_sites(0.0, attn_p=0.0) == {}
    rates = {name: factory().p for name, factory in classic_dropout_sites(0.3, attn_p=0.1).items()}
    assert rates == {"attn_probs": 0.1, "attn_output": 0.3, "ffn_output": 0.3}
    kwargs = classic_lm_dropout(0.2, 3)
    assert len(kwargs["layer_sites"]) == 3 and kwargs["embedding_dropout"]().p == 0.2
    assert classic_lm_dropout(0.0, 2)["embedding_dropout"] is None
    kwargs = classic_seq2seq_dropout(0.2, 2, 1)
    assert len(kwargs["encoder_sites"]) == 2 and "cross_attn_output" in kwargs["decoder_sites"][0]
    with pytest.raises(ValueError, match=r"p: expected a dropout rate in \[0, 1\), got 1.0"):
        classic_dropout_sites(1.0)
    with pytest.raises(ValueError, match="attn_p"):
        classic_dropout_sites(0.1, attn_p=-0.1)


def test_classic_dropout_is_active_in_training_and_inactive_in_eval():
    model = lm(**classic_lm_dropout(0.3, 2))
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2 * 3 + 1
    x = ids(2, 8)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), lm()(x), rtol=0, atol=1e-6)

    translation = seq2seq(**classic_seq2seq_dropout(0.3, 2, 1)).eval()
    src, tgt = ids(2, 5), ids(2, 4, vocab=V + 4)
    torch.testing.assert_close(translation(src, tgt), seq2seq()(src, tgt), rtol=0, atol=1e-6)
    translation.train()
    assert not torch.allclose(translation(src, tgt), translation(src, tgt))
    translation(src, tgt).sum().backward()


def test_weight_tying():
    tied, untied = lm(), lm(tie_weights=False)
    assert tied.head.weight is tied.embed.token.weight
    assert untied.head.weight is not untied.embed.token.weight
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters()) == V * C
    model = seq2seq()
    assert model.head.weight is model.tgt_embed.token.weight


def test_sinusoidal_positions_by_hand():
    table = lm().embed.position
    assert table.shape == (12, C)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * (C // 2)))
    assert table[3, 0].item() == pytest.approx(math.sin(3))
    assert table[3, 3].item() == pytest.approx(math.cos(3 * 10000 ** (-2 / C)))


def test_bfloat16_forward():
    model = lm(**classic_lm_dropout(0.1, 2)).to(torch.bfloat16)
    out = model(ids(2, 6))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_site_errors_name_the_layer_and_key():
    with pytest.raises(ValueError, match=r"layer_sites\[1\]: unknown site 'querry'; valid names here: query, key"):
        lm(layer_sites=[None, {"querry": nn.Identity}])
    with pytest.raises(ValueError, match=r"encoder_sites\[0\]: unknown site 'cross_key'"):
        seq2seq(encoder_sites=[{"cross_key": nn.Identity}, None])
    with pytest.raises(ValueError, match=r"layer_sites: expected one entry per layer \(2\), got 1"):
        lm(layer_sites=[None])
    with pytest.raises(TypeError, match=r"layer_sites: expected a sequence of 2 mappings"):
        lm(layer_sites={"query": nn.Identity})
    with pytest.raises(TypeError, match=r"decoder_sites\[0\]\['ffn_hidden'\]: the factory returned str"):
        seq2seq(decoder_sites=[{"ffn_hidden": lambda: "dropout"}])
    with pytest.raises(TypeError, match=r"embedding_dropout: expected a zero-argument factory"):
        lm(embedding_dropout=0.1)


def test_size_and_input_errors():
    with pytest.raises(ValueError, match="d_model: 16 is not divisible by n_heads=3"):
        TransformerLM(V, 16, 1, 3)
    with pytest.raises(ValueError, match="n_layers: expected a positive int"):
        TransformerLM(V, 16, 0, 4)
    with pytest.raises(ValueError, match=r"pad_id: expected an int in \[0, 23\)"):
        seq2seq(pad_id=23)
    with pytest.raises(ValueError, match=r"ids: sequence length 13 is outside \[1, max_len=12\]"):
        lm()(ids(1, 13))
    with pytest.raises(ValueError, match=r"ids: expected integer token ids of shape \(B, T\), got \(2, 3, 4\)"):
        lm()(ids(2, 3, 4))
    with pytest.raises(ValueError, match="tgt_in: expected integer token ids"):
        seq2seq()(ids(1, 3), torch.zeros(1, 3))


SEQ_REGULARIZERS = [n for n in regularizers.available() if {"seq", "heads"} <= set(regularizers.info(n).input_kinds)]


@pytest.mark.parametrize("name", SEQ_REGULARIZERS)
def test_every_sequence_regularizer_of_the_registry_fits_every_site(name):
    params = regularizers.info(name).example_params
    every = {site: functools.partial(regularizers.create, name, **params) for site in DECODER_SITES}
    encoder = {site: every[site] for site in ENCODER_SITES}
    model = seq2seq(encoder_sites=[encoder] * 2, decoder_sites=[every], embedding_dropout=every["query"])
    src, tgt = ids(2, 5), ids(2, 4, vocab=V + 4)
    model(src, tgt).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    torch.testing.assert_close(model(src, tgt), seq2seq()(src, tgt))  # identity in eval mode


def test_layer_with_cross_attention_needs_a_context():
    layer = TransformerLayer(C, H, FF, cross_attention=True)
    with pytest.raises(ValueError, match="context: a layer with cross-attention needs the encoder output"):
        layer(torch.randn(1, 3, C))


def test_each_embedding_can_have_its_own_site():
    # A list of one factory-or-None per embedding (source, target), as embedding patterns give it.
    log: list = []
    model = seq2seq(embedding_dropout=[None, functools.partial(Recorder, log, "target")])
    assert model.src_embed.site is None and isinstance(model.tgt_embed.site, Recorder)
    model(ids(2, 5), ids(2, 3, vocab=V + 4))
    assert log == [("target", (2, 3, C))]
    single = lm(embedding_dropout=[functools.partial(Recorder, log, "lm")])
    assert isinstance(single.embed.site, Recorder)
    shared = seq2seq(embedding_dropout=functools.partial(nn.Dropout, 0.1))  # one factory: called for each
    assert shared.src_embed.site is not shared.tgt_embed.site
    assert TransformerLM.site_layout(2).embeddings == 1 and TransformerSeq2Seq.site_layout(2, 1).embeddings == 2
    with pytest.raises(ValueError, match=r"expected one entry per embedding \(source, target\), got 1"):
        seq2seq(embedding_dropout=[None])
    with pytest.raises(TypeError, match=r"embedding_dropout\[1\] \(target\): expected a zero-argument factory"):
        seq2seq(embedding_dropout=[None, 0.1])
