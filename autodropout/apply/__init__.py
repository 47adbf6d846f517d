"""A learned pattern on any PyTorch model: forward hooks at its layers (``hooks``) and BatchNorm
statistics recomputed with every regularizer off (``recalibration``).

>>> import autodropout as ad
>>> handles = ad.apply_patterns(model, "lm-transformer-lstm", where="blocks")  # doctest: +SKIP
"""
from autodropout.apply.hooks import apply_patterns, patterns_paused
from autodropout.apply.recalibration import recalibrate_batchnorm

__all__ = ["apply_patterns", "patterns_paused", "recalibrate_batchnorm"]
