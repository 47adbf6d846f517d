"""BatchNorm recalibration (Li et al., CVPR 2019 variance shift): statistics without the regularizers."""
import torch
from torch import nn

import autodropout as ad
from autodropout.apply.recalibration import recalibrate_batchnorm
from autodropout.search_spaces import ConvLayerPattern, Pattern
from autodropout.tasks import Regularization, TrainConfig, build_task
from autodropout.tasks.vision import VisionConfig

#: Drops 9/16 of every site map and of the shortcut too (the residual token): heavy enough that
#: running statistics collected on the masked, rescaled maps break eval-mode BatchNorm.
HEAVY = ConvLayerPattern(unit="tile", rate=None, size=(7, 7), stride=1, repeat=1, rotate=0, shear_x=0.0, shear_y=0.0,
                         share_c=False, residual=True)


def test_heavy_pattern_no_longer_collapses_to_chance():
    results = {}
    for recalibrate in (False, True):
        config = VisionConfig(image_size=8, depth=10, width=1,
                              train=TrainConfig(epochs=4, batch_size=64, lr=0.05, recalibrate_bn=recalibrate))
        fit = build_task(config).fit(Regularization(pattern=Pattern("conv", (HEAVY,) * 3)), progress=False)
        results[recalibrate] = fit.history
    # Training is untouched (same losses to the bit): only the statistics eval-mode BatchNorm uses change.
    assert [r.train_loss for r in results[False]] == [r.train_loss for r in results[True]]
    # Measured (seed 0): 0.100 (chance: 10 classes) without, 0.489 with; the loss fell 2.30 -> 2.10.
    assert results[False][-1].metric <= 0.2
    assert results[True][-1].metric >= 0.35


def model_with_dropout_before_batchnorm() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.9), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))


def test_statistics_are_those_of_the_unregularized_activations():
    model = model_with_dropout_before_batchnorm().train()
    batches = [torch.randn(32, 4) for _ in range(5)]
    model[1].eval()  # a mixed state, restored as it was
    assert recalibrate_batchnorm(model, iter(batches))
    hidden = [model[0](b).detach() for b in batches]
    # update_bn's cumulative average: the mean of the per-batch (unbiased) statistics, no mask applied.
    torch.testing.assert_close(model[2].running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0))
    torch.testing.assert_close(model[2].running_var, torch.stack([h.var(0) for h in hidden]).mean(0))
    assert [m.training for m in model] == [True, False, True, True, True]
    assert model[2].momentum == 0.1  # restored after the cumulative average


def test_pattern_hooks_are_paused_and_tuple_batches_unpacked():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
    handle = ad.apply_patterns(model, Pattern("conv", (HEAVY,)), where=nn.BatchNorm2d)
    x = torch.randn(16, 1, 8, 8)
    recalibrate_batchnorm(model, [(x,)])
    handle.remove()
    # What the last BatchNorm saw: the first one normalising with batch statistics, and no mask.
    expected = model[2](model[1].train()(model[0](x))).detach()
    torch.testing.assert_close(model[3].running_mean, expected.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_without_batchnorm_nothing_happens_and_batches_are_not_read():
    def batches():
        raise AssertionError("read")
        yield

    assert recalibrate_batchnorm(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)), batches()) is False
