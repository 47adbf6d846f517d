"""Pictures of patterns: masks come from the regularizers' own functions, figures and PNGs have
content, the terminal preview shows the geometry, errors name the argument."""
import os

import matplotlib.image
import numpy
import pytest
import torch
from matplotlib.figure import Figure

from autodropout import cli, viz
from autodropout.regularizers.pattern_conv import conv_pattern_mask
from autodropout.search_spaces import (
    ConvLayerPattern,
    ConvSpace,
    Pattern,
    TransformerLayerPattern,
    TransformerSpace,
    save_patterns,
)


def conv_layer(**changes) -> ConvLayerPattern:
    # On 8x8 maps: two runs of 2 rows and two of 2 columns: 16 dropped pixels, kept ones x 4/3.
    fields = dict(size=(2, 2), stride=2, repeat=2, rotate=0, shear_x=0.0, shear_y=0.0, share_c=False, residual=False)
    return ConvLayerPattern(**{**fields, **changes})


def tf_layer(**changes) -> TransformerLayerPattern:
    fields = dict(query=True, key=False, value=False, attn_output=False, ffn_hidden=True, ffn_output=False,
                  size=2, stride=2, span="all", share_heads=False, noise="bernoulli")
    return TransformerLayerPattern(**{**fields, **changes})


CONV = Pattern("conv", (conv_layer(), conv_layer(share_c=True), conv_layer(size=(1, 3), rotate=30)))
TRANSFORMER = Pattern("transformer", (tf_layer(), tf_layer(noise="gaussian", span=2),
                                      tf_layer(query=False, ffn_hidden=False)))
# TRANSFORMER is hand-made (stride 2, a layer with every sublayer off); files hold patterns of the space.
TRANSFORMER_IN_SPACE = Pattern("transformer", (tf_layer(stride=4), tf_layer(noise="gaussian", span=2, stride=8),
                                               tf_layer(query=False, ffn_hidden=False, attn_output=True, stride=16)))


def test_conv_masks_are_the_regularizers_masks():
    masks = viz.pattern_masks(CONV, size=(8, 8), channels=3, samples=2, seed=7)
    assert [tuple(m.shape) for m in masks] == [(2, 3, 8, 8)] * 3
    generator = torch.Generator().manual_seed(7)
    expected = conv_pattern_mask((2, 3, 8, 8), CONV.layers[0], generator, dtype=torch.float32)
    assert torch.equal(masks[0], expected)
    assert masks[0].eq(0).sum(dim=(2, 3)).eq(16).all()
    assert masks[0].unique().tolist() == pytest.approx([0.0, 4 / 3])
    # share_c: one mask for every channel.
    assert all(torch.equal(masks[1][:, 0], masks[1][:, c]) for c in range(3))


def test_masks_are_seeded():
    first = viz.pattern_masks(CONV, size=(8, 8), seed=1)
    again = viz.pattern_masks(CONV, size=(8, 8), seed=1)
    other = viz.pattern_masks(CONV, size=(8, 8), seed=2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_transformer_masks():
    masks = viz.pattern_masks(TRANSFORMER, size=(6, 16), samples=3)
    assert [tuple(m.shape) for m in masks] == [(3, 1, 6, 16)] * 3
    bernoulli, gaussian, off = masks
    # size 2, pitch 4: half the units are zero, the same ones at every token (span "all").
    assert bernoulli.eq(0).sum(dim=-1).eq(8).all()
    assert torch.equal(bernoulli, bernoulli[:, :, :1].expand_as(bernoulli))
    # Gaussian noise with span 2: tokens 0-1, 2-3, 4-5 share their multipliers.
    assert torch.equal(gaussian[:, :, 0], gaussian[:, :, 1]) and not torch.equal(gaussian[:, :, 1], gaussian[:, :, 2])
    assert not gaussian.eq(0).any()
    assert torch.equal(off, torch.ones_like(off))  # no sublayer switched on: nothing dropped


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(size=(8,)), r"size: expected two positive ints \(H, W\) or \(T, C\), got \(8,\)"),
    (dict(size=(0, 8)), "size: expected two positive ints"),
    (dict(channels=0), "channels: expected a positive int, got 0"),
    (dict(samples=True), "samples: expected a positive int, got True"),
])
def test_mask_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        viz.pattern_masks(CONV, **kwargs)


def test_figure_grid_and_title():
    figure = viz.pattern_figure(CONV, title="best reward 0.9", size=(8, 8), channels=2, samples=2)
    assert isinstance(figure, Figure)
    images = [ax for ax in figure.axes if ax.images]
    assert len(images) == 3 * 4  # sites x (samples x channels)
    assert figure._suptitle.get_text() == "best reward 0.9"
    assert "site 1" in figure.axes[4].get_ylabel()
    figure = viz.pattern_figure(TRANSFORMER)
    assert len([ax for ax in figure.axes if ax.images]) == 3 * 2
    assert "off" in figure.axes[4].get_ylabel()


@pytest.mark.parametrize(("pattern", "space"), [(CONV, ConvSpace(3)), (TRANSFORMER_IN_SPACE, TransformerSpace(3))])
def test_show_writes_a_png_with_content(tmp_path, pattern, space):
    patterns = save_patterns(tmp_path / "patterns.json", [pattern], space)
    out = tmp_path / "masks.png"
    note = viz.show(patterns, size=(12, 12), output=out)
    assert note == f"wrote {out} ({pattern.kind} pattern, 3 sites, rank 1)"
    pixels = matplotlib.image.imread(out)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.min() < pixels.max()
    assert len(numpy.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 2
    assert sorted(os.listdir(tmp_path)) == ["masks.png", "patterns.json"]  # no temp file left


def test_terminal_preview_shows_each_site(tmp_path):
    patterns = save_patterns(tmp_path / "p.json", [CONV], ConvSpace(3))
    text = viz.show(patterns, size=(8, 8))
    lines = text.splitlines()
    assert lines[0] == ("rank 1 of p.json: conv pattern, 3 sites, 8x8 maps; '#' dropped, '.' kept")
    assert lines[1] == "  site 0: 2x2 tiles, each drops 1/2 x 1/2, per channel"
    assert lines[3] == "  site 2: 2x2 tiles, each drops 1/3 x 3/5, rotate 30, per channel"
    header = lines.index("site 0     site 1     site 2")
    grids = lines[header + 1:header + 9]
    assert len(grids) == 8 and all(set(row) <= {"#", ".", " "} for row in grids)
    site0 = [row[:8] for row in grids]
    # Unrotated, 2 tiles per axis each dropping half its 4-pixel period: four rows with two 2-wide runs, 16 '#'.
    assert sum(row.count("#") for row in site0) == 16
    assert sorted(row.count("#") for row in site0) == [0] * 4 + [4] * 4


def test_terminal_preview_wraps_and_labels_transformer_layers():
    text = viz.preview(TRANSFORMER, size=(4, 40))
    assert "layer 1: query,ffn_hidden: N(1, 1) noise per 4-unit window, span 2" in text
    assert "layer 2: off: drop 2 every 4 units" in text
    assert "Gaussian noise: multiplier below 1" in text
    # 40-wide blocks: two per 100 columns, so layer 2 starts a new row of blocks.
    assert "layer 0" + " " * 36 + "layer 1" in text
    assert "\nlayer 2\n" in text
    assert "." * 40 in text  # layer 2 is off: nothing dropped


def test_show_unknown_rank(tmp_path):
    patterns = save_patterns(tmp_path / "p.json", [CONV], ConvSpace(3))
    with pytest.raises(KeyError, match=r"no pattern of rank 2; ranks in file: \[1\]"):
        viz.show(patterns, rank=2)


def test_cli_show(tmp_path, capsys):
    patterns = save_patterns(tmp_path / "p.json", [CONV, CONV], ConvSpace(3))
    assert cli.main(["show", str(patterns), "--rank", "2", "--size", "8", "8"]) == 0
    assert "conv pattern, 3 sites, 8x8 maps" in capsys.readouterr().out
    assert cli.main(["show", str(patterns), "-o", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").stat().st_size > 1000
    assert cli.main(["show", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err


def test_mask_grid_for_tensorboard_tiles_sites_and_channels():
    from autodropout.search_spaces import ConvSpace
    from autodropout.viz import mask_grid, pattern_masks

    space = ConvSpace(3)
    pattern = space.decode(space.sample(3))
    grid = mask_grid(pattern, size=(8, 8), channels=2, samples=3, gap=1)
    # 3 sites of 8 rows (+1 gap each); 2 x 3 tiles of 8 columns (+1 gap each)
    assert grid.shape == (1, 3 * 9, 6 * 9)
    masks = pattern_masks(pattern, (8, 8), channels=2, samples=3)
    first_tile = grid[0, :8, :8]
    assert torch.equal(first_tile, (masks[0][0, 0] > 0).float())
    assert set(grid.unique().tolist()) <= {0.0, 0.5, 1.0} and (grid == 0).any() and (grid == 1).any()
