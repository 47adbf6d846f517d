"""Cost of the best-pattern image the search logs to TensorBoard, per new best pattern.

    python benchmarks/tensorboard_image.py [--repeats 30]

Times ``ControllerLogger._log_best_pattern`` (masks of 2 samples x 4 channels per site, the grey
grid image, ``add_image`` with its PNG encoding, the per-site text) for freshly sampled patterns of
three models at their real site sizes, one torch thread, and says whether logging imported
matplotlib. The search calls it only when the best reward improves.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from autodropout.search_spaces import ConvSpace, SearchSpace, TransformerSpace
from autodropout.tune.tensorboard import ControllerLogger
from autodropout.viz import mask_grid, site_sizes

MODELS = {
    "digits WRN-10-2 (16x16, 8x8, 4x4)": (ConvSpace(3), [(32, 16, 16), (64, 8, 8), (128, 4, 4)]),
    "CIFAR WRN-28-2 (4 sites each at 32x32, 16x16, 8x8)":
        (ConvSpace(12), [(32, 32, 32)] * 4 + [(64, 16, 16)] * 4 + [(128, 8, 8)] * 4),
    "LM Transformer (2 layers, T 32 x C 64)": (TransformerSpace(2), [(32, 64, 4)] * 2),
}


class _Searcher:
    """The one searcher field the image logging reads."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space


def milliseconds(space: SearchSpace, shapes: list, repeats: int) -> float:
    """Mean wall milliseconds of logging one new best pattern of ``space`` at ``shapes``."""
    with tempfile.TemporaryDirectory() as folder:
        logger = ControllerLogger(folder, site_shapes=shapes)
        searcher = _Searcher(space)
        best = [{"tokens": space.sample(i), "trial_id": f"t{i}", "value": 0.5} for i in range(repeats + 1)]
        logger._log_best_pattern(searcher, best[0], 0)  # opens the writer
        began = time.perf_counter()
        for step, entry in enumerate(best[1:], start=1):
            logger._log_best_pattern(searcher, entry, step)
        logger.writer.flush()
        return (time.perf_counter() - began) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, (space, shapes) in MODELS.items():
        pattern = space.decode(space.sample(0))
        image = mask_grid(pattern, site_sizes(pattern.kind, len(pattern), shapes).sizes)
        ms = milliseconds(space, shapes, args.repeats)
        print(f"{name}: {ms:.1f} ms per new best pattern, image {image.shape[-1]} x {image.shape[-2]} pixels")
    print(f"matplotlib imported: {'matplotlib' in sys.modules}")


if __name__ == "__main__":
    main()
