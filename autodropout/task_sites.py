"""What a task's model looks like at its pattern sites, from the task config alone (no data loaded).

Pattern files record the shape each site sees (``source.site_shapes``, see
:mod:`autodropout.search_spaces.pattern_json`) so that ``autodropout show`` draws every site at its
real size, and ``autodropout list`` describes the presets, including the paper-scale ones whose data
is not on this machine. Both need the shapes without loading a dataset, which is why they are derived
here from the config instead of from a built task (``task.site_layout`` needs the data for vision
tasks: the image size comes from the loaded images).

Per site, in pattern-site order:

* vision (WideResNet): ``(C, H, W)`` of the BatchNorm output the site masks
  (:meth:`~autodropout.models.WideResNet.site_layout`);
* language model / translation (Transformer layers, encoder before decoder): ``(T, C, heads)``: the
  longest sequence the model trains on, the hidden width ``d_model`` and the attention heads (query,
  key and value masks act on per-head slices of ``C / heads`` units).

``tests/test_task_sites.py`` checks these against the tasks' own layouts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from autodropout.models import TransformerLM, TransformerSeq2Seq, WideResNet
from autodropout.tasks import task_class

#: Side of the CIFAR python batches' images; the vision task reads them at this size whatever
#: ``image_size`` says (only the embedded digits are resampled to ``image_size``).
CIFAR_SIDE = 32


@dataclass(frozen=True)
class TaskSites:
    """A task config's model, as far as patterns are concerned.

    Attributes:
        model: short model name, e.g. ``"WRN-10-2"`` or ``"Transformer LM 2L d64 h4"``.
        space: the pattern space kind of its sites, ``"conv"`` or ``"transformer"``.
        shapes: per site ``(C, H, W)`` (conv) or ``(T, C, heads)`` (Transformer), see the module docstring.
        data_root: the folder of data files the task reads, or ``None`` for embedded data.
    """

    model: str
    space: str
    shapes: tuple[tuple[int, int, int], ...]
    data_root: str | None = None


def task_sites(config: Any) -> TaskSites | None:
    """The :class:`TaskSites` of a task config (``experiment.task``); ``None`` for a task kind this
    module does not know (a pattern file then simply records no site shapes)."""
    describe = _BY_KIND.get(getattr(config, "kind", None))
    if describe is None:
        return None
    model, shapes, data_root = describe(config)
    return TaskSites(model, task_class(config.kind).space_type.kind, shapes, data_root)


#: Per task kind: (model name, site shapes, data folder or None) from its config.
_Description = tuple[str, tuple[tuple[int, int, int], ...], str | None]


def _vision(config: Any) -> _Description:
    side = config.image_size if config.dataset == "digits" else CIFAR_SIDE
    layout = WideResNet.site_layout(config.depth, config.width, side)
    return f"WRN-{config.depth}-{config.width}", layout.shapes, None if config.dataset == "digits" else config.root


def _language_model(config: Any) -> _Description:
    sites = sum(TransformerLM.site_layout(config.n_layers).stacks)
    return (f"Transformer LM {config.n_layers}L d{config.d_model} h{config.n_heads}",
            ((config.bptt, config.d_model, config.n_heads),) * sites, None if config.dataset == "embedded" else config.root)


def _translation(config: Any) -> _Description:
    sites = sum(TransformerSeq2Seq.site_layout(config.n_enc_layers, config.n_dec_layers).stacks)
    # Sources and decoder inputs are clipped to max_len + 1 tokens (TranslationTask._clip).
    tokens = config.max_len + 1
    return (f"Transformer {config.n_enc_layers}+{config.n_dec_layers}L d{config.d_model} h{config.n_heads}",
            ((tokens, config.d_model, config.n_heads),) * sites, None if config.dataset == "numbers" else config.root)


_BY_KIND: dict[str | None, Callable[[Any], _Description]] = {
    "vision": _vision, "language_model": _language_model, "translation": _translation,
}
