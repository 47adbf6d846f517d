"""The task interface: data + model + training batches + loss + evaluation + metric -> reward.

A task knows nothing of Ray: the search's workers call :meth:`Task.fit` with an ``on_epoch``
callback that reports and checkpoints. Subclasses register themselves with
:func:`~autodropout.tasks.registry.register_task` and own their config dataclass.
"""
from __future__ import annotations

import abc
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from autodropout.core.checks import is_int
from autodropout.core.errors import PatternError
from autodropout.models import SiteLayout, TransformerSites
from autodropout.search_spaces import SPACES, SearchSpace
from autodropout.tasks import loop
from autodropout.tasks.loop import EpochCallback, FitResult
from autodropout.tasks.regularization import Regularization
from autodropout.tasks.reward import METRICS, reward


@dataclass(frozen=True)
class TaskSites:
    """A task config's model, as far as patterns are concerned, known without loading any data
    (``autodropout list`` describes presets whose data are elsewhere; pattern files record the shapes
    so that ``show`` draws each site at its real size).

    Attributes:
        model: short model name, e.g. ``"WRN-10-2"`` or ``"Transformer LM 2L d64 h4"``.
        space: the pattern space kind of its sites, ``"conv"`` or ``"transformer"``.
        shapes: per site, in pattern-site order, ``(C, H, W)`` of the activation a conv site masks, or
            ``(T, C, heads)`` of a Transformer layer (the longest sequence it trains on, the hidden width
            and the attention heads: query, key and value masks act on per-head slices of ``C / heads``).
        data_root: the folder of data files the task reads, or ``None`` for embedded data.
        layout: where the model's regularizer sites are (``Model.site_layout``).
    """

    model: str
    space: str
    shapes: tuple[tuple[int, int, int], ...]
    data_root: str | None = None
    layout: SiteLayout | None = None

    def search_space(self) -> SearchSpace:
        """The default pattern space of these sites (layers, and a Transformer's embedding outputs)."""
        embeddings = self.layout.embeddings if isinstance(self.layout, TransformerSites) else 0
        space_type = SPACES[self.space]
        return space_type(len(self.shapes), num_embeddings=embeddings) if embeddings else space_type(len(self.shapes))


class Task(abc.ABC):
    """Base class of every task.

    Class attributes a subclass sets: ``kind`` (its name in experiment files), ``config_type`` (its
    frozen config dataclass, with ``kind`` and ``train`` fields), ``metric`` (a key of
    :data:`~autodropout.tasks.reward.METRICS`), ``space_type`` (the pattern search space of its
    model) and ``site_kind`` (the activation layout at its regularizer sites, a registry
    ``input_kinds`` value: ``"conv"`` or ``"seq"``); an instance declares its model's
    ``site_layout``. ``data`` may be passed in (the search shares
    one copy through Ray's object store).
    """

    kind: ClassVar[str]
    config_type: ClassVar[type]
    metric: ClassVar[str]
    space_type: ClassVar[type[SearchSpace]]
    site_kind: ClassVar[str]

    def __init__(self, config: Any, data: Any = None) -> None:
        self.config = config
        self.data = data if data is not None else self.load_data(config)

    # -- to implement --------------------------------------------------------------------------
    @staticmethod
    @abc.abstractmethod
    def load_data(config: Any) -> Any: ...

    @classmethod
    @abc.abstractmethod
    def describe_sites(cls, config: Any) -> TaskSites:
        """The :class:`TaskSites` of ``config``'s model, from the config alone."""

    @property
    @abc.abstractmethod
    def site_layout(self) -> SiteLayout:
        """Where the model's regularizer sites are (declared by the model class)."""

    @property
    def num_sites(self) -> int:
        """Pattern sites of the model (all its layer stacks)."""
        return sum(self.site_layout.stacks)

    @property
    def num_embeddings(self) -> int:
        """Embedding sites of the model (a Transformer's embedding outputs; a ConvNet has none)."""
        layout = self.site_layout
        return layout.embeddings if isinstance(layout, TransformerSites) else 0

    @abc.abstractmethod
    def build_model(self, regularization: Regularization) -> nn.Module: ...

    @abc.abstractmethod
    def num_train_batches(self) -> int:
        """Number of batches :meth:`train_batches` yields per epoch."""

    @abc.abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[Any, torch.Tensor]]:
        """One epoch of (inputs, targets) training batches on the CPU."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, inputs: Any, targets: torch.Tensor) -> torch.Tensor: ...

    def calibration_batches(self) -> Iterator[Any]:
        """Model inputs for BatchNorm recalibration: one epoch of training inputs (tasks with
        augmentation give them unaugmented, in a fixed order)."""
        batches = self.train_batches(torch.Generator().manual_seed(0))
        return (inputs for inputs, _ in itertools.islice(batches, self.steps_per_epoch()))

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Metrics on ``split`` ("val" or "test"); must include ``self.metric``."""

    # -- shared --------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return METRICS[self.metric]

    def reward(self, value: float) -> float:
        return reward(self.metric, value, constant=getattr(self.config, "reward_constant", None))

    def search_space(self, values: Mapping[str, Any] | None = None,
                     embedding_values: Mapping[str, Any] | None = None) -> SearchSpace:
        """The pattern space for this task's model (site counts from the model), with an experiment's
        ``search.values`` and ``search.embedding_values`` (the value sets of the layer and the
        embedding decisions; missing keys keep the documented defaults)."""
        layers = self.space_type.values_type.from_mapping(values or {}, "search.values")
        if not embedding_values:
            return self.space_with(layers)
        if not self.num_embeddings:
            raise PatternError("search.embedding_values: this task's model has no embedding sites (only a "
                               "Transformer's embedding outputs are)")
        return self.space_with(layers, self.space_type.embedding_values_type.from_mapping(
            embedding_values, "search.embedding_values"))

    def space_with(self, values: Any, embedding_values: Any = None) -> SearchSpace:
        """The space of this task's sites (layers and embeddings) with the given value sets, e.g. those
        of a pattern learned on another task (``None``: the defaults)."""
        if not self.num_embeddings:
            return self.space_type(self.num_sites, values)
        return self.space_type(self.num_sites, values, num_embeddings=self.num_embeddings,
                               embedding_values=embedding_values)

    @property
    def device(self) -> torch.device:
        return loop.resolve_device(self.config.train.device)

    def steps_per_epoch(self) -> int:
        """Training steps per epoch: all batches, or ``train.max_batches_per_epoch`` when set."""
        limit = self.config.train.max_batches_per_epoch
        return min(self.num_train_batches(), limit) if limit else self.num_train_batches()

    def fit(
        self,
        regularization: Regularization | None = None,
        *,
        epochs: int | None = None,
        seed: int | None = None,
        on_epoch: EpochCallback | None = None,
        resume_state: dict[str, Any] | None = None,
        progress: bool | None = None,
    ) -> FitResult:
        """Train a fresh model and evaluate on validation after every epoch.

        Args:
            regularization: what goes at the sites (default: nothing).
            epochs, seed: override the config's ``train.epochs`` / ``train.seed``.
            on_epoch: called after each epoch with the record and a function returning the full
                training state (for checkpoints); the search reports through it.
            resume_state: a state returned by that function; training continues after its epoch.
            progress: show a progress bar; ``None`` shows one only on a terminal.
        """
        cfg = self.config.train
        epochs = cfg.epochs if epochs is None else epochs
        if not is_int(epochs, 1):
            raise ValueError(f"epochs: expected a positive int, got {epochs!r}")
        return loop.fit(self, regularization or Regularization.none(), epochs=epochs,
                        seed=cfg.seed if seed is None else seed, on_epoch=on_epoch,
                        resume_state=resume_state, progress=progress)
