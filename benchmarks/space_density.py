"""Drop density of every choice of the pattern spaces, per feature-map resolution (docs/search_spaces.md).

Conv space: for every (size, stride, repeat) tile choice of the value sets (rotation, shear and the
channel tokens do not change the expected density: the offset is uniform on the torus), the exact
expected drop density on an L x L map, for L = 2 .. 64. Three spaces:

* **v1** (pattern format version 1): tiles of ``size`` pixels with a pitch of ``size + stride``
  pixels, ``repeat`` runs per axis, union taken mod L; sides {1, 2, 3, 5}, strides {1, 2, 3, 4},
  repeats {1, 2, 3, 4}. A choice whose runs cover both axes has density 1 and fell back to the
  identity (no drop): counted as a no-op, which is what it did. Reimplemented here from the v1
  docstring so the comparison runs on the current code.
* **v2** (format version 2): tiles relative to the map, sides {1, 2, 3}.
* **v3** (this version): the same geometry with sides {1, 2, 3, 4}
  (:meth:`autodropout.search_spaces.ConvLayerPattern.density` on the default value sets); its
  element, channel and sample units drop at their ``rate`` whatever the map (one line below).

Per resolution: v1's mean and share of no-op choices, v2's median, mean and max, v3's min / median /
mean / max, no-op share (must be 0) and mean distance to the nominal ``f_h * f_w``. Also: the share
of sampled whole-model patterns with at least one no-op site, for the shipped presets and the paper's
models (site resolutions below), over ``--samples`` uniform samples of the tile choices.

Transformer space: per head width d, over every (size, stride) choice and every offset, the nominal
rate range, the share of masks that zero the whole head and the largest share of a head one mask
drops, v1 (sizes and strides {1, 2, 4, 8, 16}) against v2 (sizes {1, 2, 4}, strides {4, 8, 16}) and v3
(the default sets, sizes {1, 2, 4, 6}, strides {4, 6, 7, 8, 9, 16, 49}).

Writes ``docs/images/space_density.png`` (violins of the conv tile densities per resolution, v2 and
v3, with the v3 band) unless ``--no-plot``; prints Markdown.

Usage::

    python benchmarks/space_density.py [--all] [--samples 20000] [--plot docs/images/space_density.png]
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import random
import statistics
from fractions import Fraction
from pathlib import Path

from autodropout.regularizers.pattern_transformer import hidden_run
from autodropout.search_spaces import ConvLayerPattern, ConvSpace, ConvValues, TransformerValues

SIDES = range(2, 65)
#: Rows of the short table and violins of the plot: every site resolution of the presets and models.
SHOWN = (2, 3, 4, 5, 6, 7, 8, 12, 14, 16, 24, 28, 32, 48, 56, 64)
#: Site resolutions (one per site) of the shipped presets and the paper's models.
MODELS = {
    "digits WRN-10-2 at 8x8, the digits_wrn_quick preset": (8, 4, 2),
    "digits WRN at 16x16 input, the preset before 2026-11-30": (16, 8, 4),
    "CIFAR WRN-28, 32x32": (32, 16, 8),
    "ImageNet ResNet-50, 224x224": (56, 28, 14, 7),
}
V1_SIDES, V1_STRIDES, V1_REPEATS = (1, 2, 3, 5), (1, 2, 3, 4), (1, 2, 3, 4)
V1_TRANSFORMER = (1, 2, 4, 8, 16)
HEADS = (2, 4, 8, 16, 32, 64)
BAND = (Fraction(1, 16), Fraction(16, 25))
V2_VALUES = dataclasses.replace(ConvValues(), size=tuple((h, w) for h in (1, 2, 3) for w in (1, 2, 3)))


def v1_axis(length: int, size: int, stride: int, repeat: int) -> Fraction:
    """Version-1 axis density: the union of ``repeat`` runs of ``size`` pixels every ``size + stride``."""
    covered = {(k * (size + stride) + u) % length for k in range(repeat) for u in range(size)}
    return Fraction(len(covered), length)


def v1_densities(length: int) -> list[Fraction]:
    """Effective v1 density of every (size, stride, repeat) choice; 0 for the identity fallback."""
    out = []
    for h, w, stride, repeat in itertools.product(V1_SIDES, V1_SIDES, V1_STRIDES, V1_REPEATS):
        density = v1_axis(length, h, stride, repeat) * v1_axis(length, w, stride, repeat)
        out.append(Fraction(0) if density >= 1 else density)
    return out


def tile_choices(values: ConvValues) -> list[ConvLayerPattern]:
    return [ConvLayerPattern("tile", None, size, stride, repeat, 0, 0.0, 0.0, False, False)
            for size, stride, repeat in itertools.product(values.size, values.stride, values.repeat)]


def tile_densities(length: int, values: ConvValues) -> list[Fraction]:
    return [pattern.density(length, length) for pattern in tile_choices(values)]


def summary(densities: list[Fraction]) -> tuple[float, float, float, float, float]:
    """min, median, mean, max of the densities of real drops, and the share of no-op choices."""
    real = [float(d) for d in densities if 0 < d < 1]
    no_op = 1 - len(real) / len(densities)
    return min(real), statistics.median(real), statistics.fmean(real), max(real), no_op


def nominal_error(side: int, values: ConvValues) -> float:
    """Mean ``|d - f_h * f_w|`` over the tile choices on a ``side x side`` map."""
    return statistics.fmean(
        abs(float(p.density(side, side) - Fraction(p.size[0], p.size[0] + p.stride)
                  * Fraction(p.size[1], p.size[1] + p.stride)))
        for p in tile_choices(values)
    )


def conv_table(sides: list[int]) -> str:
    lines = [
        "| side | v1 mean | v1 no-op | v2 median | v2 mean | v2 max | v3 min | v3 median | v3 mean | v3 max "
        "| v3 no-op | v3 mean abs(d - nominal) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side in sides:
        old, before = summary(v1_densities(side)), summary(tile_densities(side, V2_VALUES))
        new = summary(tile_densities(side, ConvValues()))
        cells = [f"{old[2]:.3f}", f"{old[4]:.0%}"] + [f"{v:.3f}" for v in before[1:4] + new[:4]]
        cells += [f"{new[4]:.0%}", f"{nominal_error(side, ConvValues()):.3f}"]
        lines.append(f"| {side} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def band_line() -> str:
    all_v3 = [d for side in SIDES for d in tile_densities(side, ConvValues())]
    low, high = min(all_v3), max(all_v3)
    inside = all(BAND[0] <= d <= BAND[1] for d in all_v3)
    return (f"v3 tiles over every side 2..64: densities in [{low}, {high}] = [{float(low):.4f}, {float(high):.4f}]; "
            f"inside the documented band [1/16, 16/25]: {inside}; no-op choices: "
            f"{sum(1 for d in all_v3 if not 0 < d < 1)}")


def units_line() -> str:
    """The non-tile units' rate grid: how far the farthest rate of [0, 0.7] is from a choice."""
    rates = [Fraction(r).limit_denominator(1000) for r in ConvValues().rate if r is not None]
    gap = max(min(abs(Fraction(k, 10000) - r) for r in rates) for k in range(7001))
    tiles_only = {"unit": ("tile",), "rate": (None,)}
    v2, v3_tiles = (ConvSpace(1, dataclasses.replace(values, **tiles_only)).size
                    for values in (V2_VALUES, ConvValues()))
    return (f"v3 element / channel / sample units: {len(rates)} rates {float(rates[0]):g}..{float(rates[-1]):g}; "
            f"every rate in [0, 0.7] is within {float(gap):g} of one. Layers per site: v2 {v2:,}, "
            f"v3 {ConvSpace(1).size:,} ({v3_tiles:,} tiles)")


def model_table(samples: int) -> str:
    rng = random.Random(0)
    caches = {
        "v1": {side: v1_densities(side) for sides in MODELS.values() for side in sides},
        "v2": {side: tile_densities(side, V2_VALUES) for sides in MODELS.values() for side in sides},
        "v3": {side: tile_densities(side, ConvValues()) for sides in MODELS.values() for side in sides},
    }
    lines = ["| model (site sides) | v1: sampled models with a no-op site | v2 | v3 tiles |", "|---|---:|---:|---:|"]
    for name, sides in MODELS.items():
        hits = dict.fromkeys(caches, 0)
        for _ in range(samples):
            for version, cache in caches.items():
                if any(rng.choice(cache[side]) in (0, 1) for side in sides):
                    hits[version] += 1
        lines.append(f"| {name} ({', '.join(map(str, sides))}) | "
                     + " | ".join(f"{hits[v] / samples:.0%}" for v in caches) + " |")
    return "\n".join(lines)


def head_masks(size: int, stride: int, head: int, cut: bool) -> list[int]:
    """Dropped units of a ``head``-unit axis for every offset of one (size, stride) choice."""
    run = hidden_run(size, head) if cut else size
    pitch = run + stride
    return [sum((c - offset) % pitch < run for c in range(head)) for offset in range(pitch)]


def transformer_table() -> str:
    spaces = (("v1", V1_TRANSFORMER, V1_TRANSFORMER, False), ("v2", (1, 2, 4), (4, 8, 16), True),
              ("v3", TransformerValues().size, TransformerValues().stride, True))
    header = " | ".join(f"{v} rates | {v} masks zeroing the head | {v} largest share of a head" for v, *_ in spaces)
    lines = [f"| head width d | {header} |", "|---:|" + "---|---:|---:|" * len(spaces)]
    for head in HEADS:
        cells = []
        for _, sizes, strides, cut in spaces:
            rates, zeroed, total, largest = [], 0, 0, 0.0
            for size, stride in itertools.product(sizes, strides):
                run = hidden_run(size, head) if cut else size
                rates.append(Fraction(run, run + stride))
                dropped = head_masks(size, stride, head, cut)
                zeroed += sum(n == head for n in dropped)
                total += len(dropped)
                largest = max(largest, max(dropped) / head)
            cells += [f"{min(rates)}..{max(rates)}", f"{zeroed / total:.1%}", f"{largest:.2f}"]
        lines.append(f"| {head} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from autodropout.viz import save_figure

    sides = [s for s in SHOWN if s >= 2]
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    positions = range(len(sides))
    for offset, color, label, values in (
        (-0.2, "#999999", "v2 (sides 1-3)", V2_VALUES),
        (0.2, "#1f77b4", "v3 tiles (sides 1-4)", ConvValues()),
    ):
        data = [[float(d) for d in tile_densities(side, values)] for side in sides]
        parts = ax.violinplot(data, [p + offset for p in positions], widths=0.38, showmedians=True)
        for body in parts["bodies"]:
            body.set_facecolor(color)
            body.set_alpha(0.6)
        for key in ("cbars", "cmins", "cmaxes", "cmedians"):
            parts[key].set_color(color)
        ax.plot([], [], color=color, linewidth=8, alpha=0.6, label=label)
    for bound in BAND:
        ax.axhline(float(bound), color="#1f77b4", linestyle=":", linewidth=1)
    ax.set_xticks(list(positions), [f"{s}x{s}" for s in sides])
    ax.set_xlabel("feature map")
    ax.set_ylabel("expected drop density")
    ax.set_ylim(-0.03, 0.75)
    ax.set_title("Drop density of every (size, stride, repeat) tile choice of the conv space, per resolution "
                 "(dotted: the v3 band [1/16, 16/25])", fontsize=10)
    ax.legend(loc="upper right", fontsize=9)
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="a table row for every side 2..64")
    parser.add_argument("--samples", type=int, default=20000, help="sampled model patterns per model")
    parser.add_argument("--plot", type=Path, default=Path("docs/images/space_density.png"))
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    print("### Conv space: expected drop density per resolution (every (size, stride, repeat) tile choice)\n")
    print(conv_table(list(SIDES) if args.all else list(SHOWN)))
    print(f"\n{band_line()}\n\n{units_line()}\n")
    print("### Sampled whole-model patterns with a no-op site\n")
    print(model_table(args.samples))
    print("\n### Transformer space: per-head coverage (every (size, stride) choice and offset)\n")
    print(transformer_table())
    if not args.no_plot:
        plot(args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
