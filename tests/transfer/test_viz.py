"""Pictures of patterns: masks come from the regularizers' own functions, each site is drawn at its
own size with its measured rate, figures have a legend and colour bars, the preview shows each site
at its size, the TensorBoard image is readable and cheap, errors name the argument."""
import os
import re
import subprocess

import matplotlib.image
import numpy
import pytest
import torch
from matplotlib.figure import Figure

from autodropout import viz
from autodropout.commands import cli
from autodropout.regularizers.pattern_conv import conv_pattern_mask
from autodropout.search_spaces import (
    ConvLayerPattern,
    ConvSpace,
    EmbeddingPattern,
    Pattern,
    TransformerLayerPattern,
    TransformerSpace,
    save_patterns,
)
from autodropout.tune.tensorboard import ControllerLogger
from autodropout.viz.grid import MIN_WIDTH
from tests.conftest import PYTHON


def conv_layer(**changes) -> ConvLayerPattern:
    # On 8x8 maps: two runs of 2 rows and two of 2 columns: 16 dropped pixels, kept ones x 4/3.
    fields = dict(unit="tile", rate=None, size=(2, 2), stride=2, repeat=2, rotate=0, shear_x=0.0, shear_y=0.0,
                  share_c=False, residual=False)
    return ConvLayerPattern(**{**fields, **changes})


def tf_layer(**changes) -> TransformerLayerPattern:
    fields = dict(query=True, key=False, value=False, attn_output=False, ffn_hidden=True, ffn_output=False,
                  size=2, stride=2, span="all", share_heads=False, noise="bernoulli")
    return TransformerLayerPattern(**{**fields, **changes})


CONV = Pattern("conv", (conv_layer(), conv_layer(share_c=True), conv_layer(size=(1, 3), rotate=30)))
# Site 2 drops a run of ceil(P / 3) pixels per period P: 6 of 16 (d = 0.14) on 16x16 maps, 2 of 4 (d = 0.25) on 4x4.
WRN = Pattern("conv", (conv_layer(), conv_layer(rotate=45), conv_layer(size=(1, 1), stride=2, repeat=1)))
WRN_SHAPES = [[32, 16, 16], [64, 8, 8], [128, 4, 4]]  # WRN-10-2 on 16x16 digits
TRANSFORMER = Pattern("transformer", (tf_layer(), tf_layer(noise="gaussian", span=2),
                                      tf_layer(query=False, ffn_hidden=False)))
# TRANSFORMER is hand-made (stride 2, a layer with every sublayer off); files hold patterns of the space.
TRANSFORMER_IN_SPACE = Pattern("transformer", (tf_layer(stride=4), tf_layer(noise="gaussian", span=2, stride=8),
                                               tf_layer(query=False, ffn_hidden=False, attn_output=True, stride=16)))


@pytest.fixture
def wrn_file(tmp_path):
    return save_patterns(tmp_path / "wrn.json", [WRN], ConvSpace(3),
                         source={"experiment": "digits_wrn_quick", "site_shapes": WRN_SHAPES})


# -- masks ------------------------------------------------------------------------------------------

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


def test_conv_units_are_drawn_with_their_regularizers_masks_and_described():
    units = Pattern("conv", tuple(conv_layer(unit=unit, rate=0.5, residual=unit == "sample")
                                  for unit in ("element", "channel", "sample")))
    element, channel, sample = viz.pattern_masks(units, size=(4, 4), channels=3, samples=8, seed=3)
    generator = torch.Generator().manual_seed(3)
    assert torch.equal(element, conv_pattern_mask((8, 3, 4, 4), units.layers[0], generator, dtype=torch.float32))
    assert element.unique().tolist() == [0.0, 2.0] and channel.shape == sample.shape == (8, 3, 4, 4)
    assert torch.equal(channel, channel[:, :, :1, :1].expand_as(channel))  # whole channels
    assert torch.equal(sample, sample[:, :1, :1, :1].expand_as(sample))  # whole samples
    assert [viz.describe_layer(layer) for layer in units.layers] == [
        "drops single activations at p = 0.5", "drops whole channels at p = 0.5",
        "drops whole samples at p = 0.5, +residual"]
    assert viz.site_rate(units.layers[1], (4, 4), channel).expected == 0.5


def test_masks_per_site_size():
    masks = viz.pattern_masks(WRN, size=[(16, 16), (8, 8), (4, 4)], channels=2, samples=3)
    assert [tuple(m.shape) for m in masks] == [(3, 2, 16, 16), (3, 2, 8, 8), (3, 2, 4, 4)]
    # The same geometry drops another share of a smaller map: 6/16 of each axis at 16x16, 2/4 at 4x4.
    assert masks[2].eq(0).float().mean().item() == pytest.approx(0.25)
    big = viz.pattern_masks(WRN, size=(16, 16), channels=2, samples=3)[2]
    assert big.eq(0).float().mean().item() == pytest.approx(36 / 256)


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
    (dict(size=(8,)), r"size: expected two positive ints \(H, W\) or \(T, C\), at most 1024, got \(8,\)"),
    (dict(size=(0, 8)), "size: expected two positive ints"),
    (dict(size=(8, 4096)), "at most 1024"),
    (dict(size=(1, 1)), "a 1x1 map cannot carry a pattern"),
    (dict(size=[(8, 8), (4, 4)]), "size: 2 per-site sizes for a pattern of 3 sites"),
    (dict(channels=0), "channels: expected a positive int, got 0"),
    (dict(samples=True), "samples: expected a positive int, got True"),
])
def test_mask_argument_errors(kwargs, message):
    with pytest.raises(viz.ViewError, match=message):
        viz.pattern_masks(CONV, **kwargs)


def test_site_sizes_from_the_model_the_option_or_the_default():
    model = viz.site_sizes("conv", 3, WRN_SHAPES)
    assert model.sizes == ((16, 16), (8, 8), (4, 4)) and model.origin == "model" and model.extra == (32, 64, 128)
    given = viz.site_sizes("conv", 3, WRN_SHAPES, size=(8, 8))
    assert given.sizes == ((8, 8),) * 3 and given.origin == "given"
    default = viz.site_sizes("conv", 3)
    assert default.sizes == ((16, 16),) * 3 and "file records no site shapes" in default.note()
    lm = viz.site_sizes("transformer", 2, [[32, 64, 4]] * 2)
    assert lm.sizes == ((32, 64),) * 2 and lm.extra == (4, 4)


def test_site_rates():
    masks = viz.pattern_masks(WRN, size=[(16, 16), (8, 8), (4, 4)], samples=4)
    rates = [viz.site_rate(layer, size, mask) for layer, size, mask in
             zip(WRN.layers, [(16, 16), (8, 8), (4, 4)], masks)]
    assert [r.expected for r in rates] == pytest.approx([0.25, 0.25, 0.25])
    assert rates[0].measured == pytest.approx(0.25)  # unrotated: every mask drops exactly d
    assert rates[2].text() == "drops 25.0% (expected d = 25.0%)"
    gaussian = viz.pattern_masks(TRANSFORMER, size=(64, 64), samples=8)[1]
    rate = viz.site_rate(TRANSFORMER.layers[1], (64, 64), gaussian)
    assert rate.gaussian and rate.expected == pytest.approx(1.0)  # N(1, size / stride = 1)
    assert rate.measured == pytest.approx(float(gaussian.std())) and "noise std" in rate.text()


# -- figures ----------------------------------------------------------------------------------------

def test_figure_grid_and_title():
    figure = viz.pattern_figure(CONV, title="best reward 0.9", size=(8, 8), channels=2, samples=2)
    assert isinstance(figure, Figure)
    images = [ax for ax in figure.axes if ax.images]
    assert len(images) == 3 * 4  # sites x (samples x channels)
    assert figure._suptitle.get_text().startswith("best reward 0.9\nsizes as given")
    assert "site 1: 8x8" in figure.axes[4].get_ylabel()
    figure = viz.pattern_figure(TRANSFORMER)
    assert len([ax for ax in figure.axes if ax.images]) == 3 * 2
    assert "off" in figure.axes[4].get_ylabel()


def test_figure_draws_each_site_at_its_size_with_rates_and_a_legend():
    sizes = viz.site_sizes("conv", 3, WRN_SHAPES)
    figure = viz.pattern_figure(WRN, size=sizes, channels=2, samples=2, seed=3)
    rows = [[ax for ax in figure.axes if ax.images][4 * i:4 * i + 4] for i in range(3)]
    for row, side in zip(rows, (16, 8, 4)):
        assert all(ax.images[0].get_array().shape == (side, side) for ax in row)
    masks = viz.pattern_masks(WRN, sizes.sizes, channels=2, samples=2, seed=3)
    for site, (row, mask) in enumerate(zip(rows, masks)):
        label = row[0].get_ylabel()
        assert label.startswith(f"site {site}: {sizes.sizes[site][0]}x{sizes.sizes[site][1]}, "
                                f"{WRN_SHAPES[site][0]} channels")
        assert f"drops {mask.eq(0).float().mean().item():.1%}" in label
    assert "expected d = 25.0%" in rows[2][0].get_ylabel()
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[0] == "dropped (x 0)" and legend[1].startswith("kept (x 1 / (1 - d)")


def test_gaussian_layers_get_a_colour_bar():
    figure = viz.pattern_figure(TRANSFORMER, size=(8, 32))
    bars = [ax for ax in figure.axes if ax.get_ylabel() == "multiplier"]
    assert len(bars) == 1  # one Gaussian layer of three
    assert "noise std" in figure.axes[2].get_ylabel()


@pytest.mark.parametrize(("pattern", "space"), [(CONV, ConvSpace(3)), (TRANSFORMER_IN_SPACE, TransformerSpace(3))])
def test_show_writes_a_png_with_content(tmp_path, pattern, space):
    patterns = save_patterns(tmp_path / "patterns.json", [pattern], space)
    out = tmp_path / "masks.png"
    note = viz.show(patterns, size=(12, 12), output=out)
    noun = "sites" if pattern.kind == "conv" else "layers"
    assert note == f"wrote {out} ({pattern.kind} pattern, 3 {noun}, rank 1; sizes as given)"
    pixels = matplotlib.image.imread(out)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.min() < pixels.max()
    assert len(numpy.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 2
    assert sorted(os.listdir(tmp_path)) == ["masks.png", "patterns.json"]  # no temp file left


# -- the terminal preview ---------------------------------------------------------------------------

def blocks(text: str, noun: str = "site") -> dict[int, list[str]]:
    """The preview's grids by site: the columns under each ``site i ...`` header, up to the next one."""
    lines = text.splitlines()
    found: dict[int, list[str]] = {}
    for index, line in enumerate(lines):
        starts = [(m.start(), int(m.group(1))) for m in re.finditer(rf"{noun} (\d+) \S", line)]
        if not starts or line.startswith("  "):
            continue
        body = []
        for row in lines[index + 1:]:
            if not row.strip():
                break
            body.append(row)
        for k, (start, site) in enumerate(starts):
            end = starts[k + 1][0] if k + 1 < len(starts) else None
            found[site] = [r[start:end].strip() for r in body if r[start:end].strip()]
    return found


def test_preview_draws_each_site_at_its_size_with_the_measured_rate(wrn_file):
    text = viz.show(wrn_file)
    lines = text.splitlines()
    assert lines[0] == ("rank 1 of wrn.json: conv pattern, 3 sites, each site at its size in the searched model; "
                        "'#' dropped, '.' kept (kept values x 1/(1-d))")
    assert lines[3].startswith("  site 2 (4x4, 128 channels): drops ")
    grids = blocks(text)
    assert [(len(grids[i]), len(grids[i][0])) for i in range(3)] == [(16, 16), (8, 8), (4, 4)]
    for site in range(3):
        dropped = sum(row.count("#") for row in grids[site]) / sum(len(row) for row in grids[site])
        rate = re.search(rf"  site {site} \(.*?\): drops ([\d.]+)% \(expected d = ([\d.]+)%\)", text)
        assert float(rate.group(1)) == pytest.approx(100 * dropped, abs=0.05)
        assert float(rate.group(2)) == pytest.approx(25.0)


def test_preview_size_option_and_files_without_shapes(tmp_path, wrn_file):
    given = viz.show(wrn_file, size=(8, 8))
    assert "sizes as given" in given.splitlines()[0]
    assert [len(b) for b in blocks(given).values()] == [8, 8, 8]
    plain = save_patterns(tmp_path / "plain.json", [WRN], ConvSpace(3))
    default = viz.show(plain)
    assert "default size (the file records no site shapes; choose with --size)" in default.splitlines()[0]
    assert [len(b) for b in blocks(default).values()] == [16, 16, 16]
    assert "  site 2 (16x16): drops 14.1% (expected d = 14.1%)" in default


def test_terminal_preview_shows_each_site(tmp_path):
    patterns = save_patterns(tmp_path / "p.json", [CONV], ConvSpace(3))
    text = viz.show(patterns, size=(8, 8))
    lines = text.splitlines()
    assert lines[1] == "  site 0 (8x8): drops 25.0% (expected d = 25.0%); 2x2 tiles, each drops 1/2 x 1/2, per channel"
    assert lines[3].endswith("2x2 tiles, each drops 1/3 x 3/5, rotate 30, per channel")
    header = lines.index("site 0 8x8   site 1 8x8   site 2 8x8")
    grids = lines[header + 1:header + 9]
    assert len(grids) == 8 and all(set(row) <= {"#", ".", " "} for row in grids)
    site0 = [row[:8] for row in grids]
    # Unrotated, 2 tiles per axis each dropping half its 4-pixel period: four rows with two 2-wide runs, 16 '#'.
    assert sum(row.count("#") for row in site0) == 16
    assert sorted(row.count("#") for row in site0) == [0] * 4 + [4] * 4


def test_terminal_preview_wraps_and_labels_transformer_layers():
    text = viz.preview(TRANSFORMER, size=(4, 40))
    assert "layer 1 (T 4 x C 40): noise std" in text
    assert "query,ffn_hidden: N(1, 1) noise per 4-unit window, span 2" in text
    assert "layer 2 (T 4 x C 40): drops 0.0% (expected d = 0.0%); off: drop 2 every 4 units" in text
    assert "Gaussian layers: '#' multiplier below 1" in text
    # 40-wide blocks: two per 100 columns, so layer 2 starts a new row of blocks.
    assert "layer 0 T 4 x C 40" + " " * 25 + "layer 1 T 4 x C 40" in text
    assert "\nlayer 2 T 4 x C 40\n" in text
    assert "." * 40 in text  # layer 2 is off: nothing dropped


def test_show_prints_the_embedding_sites_of_a_version_3_pattern(tmp_path):
    space = TransformerSpace(len(TRANSFORMER_IN_SPACE.layers), num_embeddings=2)
    embeddings = (EmbeddingPattern("token", 1, 9, 1, "bernoulli"), space.off_embedding())
    path = save_patterns(tmp_path / "p.json", [Pattern("transformer", TRANSFORMER_IN_SPACE.layers, embeddings)], space)
    lines = viz.show(path, size=(4, 40)).splitlines()
    assert ", 2 embedding sites," in lines[0]
    assert lines[1:3] == ["  embedding 0: tokens: drop 1 every 10 tokens (d = 10.0%)",
                          "  embedding 1: off (nothing dropped)"]
    assert lines[3].startswith("  layer 0 (T 4 x C 40)")
    written = viz.show(path, size=(4, 40), output=tmp_path / "p.png").splitlines()
    assert "2 embedding sites" in written[0] and written[1:] == lines[1:3]
    assert viz.preview(Pattern("transformer", TRANSFORMER.layers), size=(4, 40)).count("embedding") == 0


def test_preview_crops_wide_hidden_states():
    text = viz.preview(TRANSFORMER, size=(40, 512))
    assert "showing at most 96 columns and 32 rows of each layer" in text.splitlines()[0]
    assert max(len(line) for line in text.splitlines()[4:]) < 100
    assert len(blocks(text, "layer")[0]) == 32


# -- TensorBoard ------------------------------------------------------------------------------------

def test_mask_grid_scales_small_sites_and_is_at_least_min_width():
    grid = viz.mask_grid(WRN, size=[(16, 16), (8, 8), (4, 4)], channels=4, samples=2, seed=5, gap=1, min_width=1)
    # 3 rows of 16-pixel cells (+1 gap), 8 tiles of 16 columns (+1 gap); the 4x4 site is scaled by 4.
    assert grid.shape == (1, 3 * 17, 8 * 17)
    masks = viz.pattern_masks(WRN, [(16, 16), (8, 8), (4, 4)], channels=4, samples=2, seed=5)
    site2 = grid[0, 34:50, :16]
    assert torch.equal(site2, (masks[2][0, 0] > 0).float().repeat_interleave(4, 0).repeat_interleave(4, 1))
    readable = viz.mask_grid(WRN, size=[(16, 16), (8, 8), (4, 4)], seed=5)
    assert readable.shape[-1] >= MIN_WIDTH >= 400
    scale = readable.shape[-1] // grid.shape[-1]
    assert readable.shape[-2:] == (grid.shape[-2] * scale, grid.shape[-1] * scale)
    assert torch.equal(readable[0, ::scale, ::scale], grid[0])  # enlarged by a whole factor: nearest neighbour
    assert set(readable.unique().tolist()) <= {0.0, 0.5, 1.0}


def test_mask_grid_of_gaussian_noise_is_grey_around_one():
    grid = viz.mask_grid(TRANSFORMER, size=(8, 32))
    assert grid.shape[-1] >= MIN_WIDTH and 0 <= grid.min() and grid.max() <= 1
    assert ((grid > 0) & (grid < 1) & (grid != 0.5)).any()  # multipliers, not only kept / dropped


class FakeWriter:
    def __init__(self):
        self.images, self.texts = [], []

    def add_image(self, tag, image, step):
        self.images.append((tag, image))

    def add_text(self, tag, text, step):
        self.texts.append((tag, text))


class FakeSearcher:
    def __init__(self, space):
        self.space = space


def test_tensorboard_best_pattern_image_is_readable_and_at_the_sites_sizes(tmp_path):
    space = ConvSpace(3)
    logger = ControllerLogger(tmp_path, site_shapes=WRN_SHAPES)
    logger._writer = FakeWriter()
    logger._log_best_pattern(FakeSearcher(space), {"tokens": space.encode(WRN), "trial_id": "t1", "value": 0.9}, 1)
    (tag, image), = logger._writer.images
    assert tag == "best_pattern/masks" and image.ndim == 3 and image.shape[0] == 1 and image.shape[-1] >= 400
    text = logger._writer.texts[0][1]
    assert "site 0 (16x16): drops 25.0%" in text and "site 2 (4x4): drops 25.0% (expected d = 25.0%)" in text
    # Without shapes (e.g. a logger restored from an older searcher state) it draws the default size.
    logger = ControllerLogger(tmp_path)
    logger._writer = FakeWriter()
    logger._log_best_pattern(FakeSearcher(space), {"tokens": space.encode(WRN), "trial_id": "t1", "value": 0.9}, 1)
    assert "site 2 (16x16)" in logger._writer.texts[0][1]


def test_the_logging_path_does_not_import_matplotlib():
    code = ("import sys; import autodropout.tune.tensorboard; from autodropout.viz import mask_grid; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([PYTHON, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


# -- the command ------------------------------------------------------------------------------------

def test_show_unknown_rank(tmp_path):
    patterns = save_patterns(tmp_path / "p.json", [CONV], ConvSpace(3))
    with pytest.raises(KeyError, match=r"no pattern of rank 2; ranks in file: \[1\]"):
        viz.show(patterns, rank=2)


def test_cli_show(tmp_path, capsys, wrn_file):
    patterns = save_patterns(tmp_path / "p.json", [CONV, CONV], ConvSpace(3))
    assert cli.main(["show", str(patterns), "--rank", "2", "--size", "8", "8"]) == 0
    assert "conv pattern, 3 sites, sizes as given" in capsys.readouterr().out
    assert cli.main(["show", str(wrn_file), "-o", str(tmp_path / "m.png")]) == 0
    assert capsys.readouterr().out.strip() == (f"wrote {tmp_path / 'm.png'} (conv pattern, 3 sites, rank 1; "
                                               "each site at its size in the searched model)")
    assert (tmp_path / "m.png").stat().st_size > 1000


@pytest.mark.parametrize(("args", "message"), [
    (["--rank", "3"], "no pattern of rank 3; ranks in file: [1]"),
    (["--size", "0", "8"], "size: expected two positive ints (H, W) or (T, C), at most 1024, got (0, 8)"),
    (["--size", "a", "8"], "--size: expected two integers H W, got 'a 8'"),
    (["--size", "1", "1"], "size: a 1x1 map cannot carry a pattern (it needs 2 pixels or more)"),
    (["-o", "OUT/nowhere/m.png"], "OUT/nowhere/m.png: folder OUT/nowhere does not exist"),
    (["-o", "OUT/m.jpg"], "OUT/m.jpg: the picture is written as PNG; give a file name ending in .png"),
])
def test_cli_show_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, wrn_file, args, message):
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    before = sorted(os.listdir(tmp_path))
    assert cli.main(["show", str(wrn_file), *args, *([] if "-o" in args else ["-o", str(tmp_path / "m.png")])]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"autodropout: error: {message.replace('OUT', str(tmp_path))}\n"
    assert sorted(os.listdir(tmp_path)) == before


def test_cli_show_missing_file(tmp_path, capsys):
    assert cli.main(["show", str(tmp_path / "missing.json"), "-o", str(tmp_path / "m.png")]) == 2
    assert capsys.readouterr().err == f"autodropout: error: {tmp_path / 'missing.json'}: no such file\n"
    assert os.listdir(tmp_path) == []
