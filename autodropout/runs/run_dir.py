"""The run folder of a search: every path and file in it, in one place.

::

    config.yaml           the resolved experiment (after command-line overrides)
    run.json              the run's record: seed, metric, search space, where the Tune experiment lives
                          (``trials``, relative to the run folder, unless ``search.storage_path`` put it
                          elsewhere: then that absolute path), the start point (``search.start_from``
                          and its tokens, resolved once)
    controller/state.pt   the controller's latest state (torch.load(..., weights_only=True))
    tensorboard/          controller curves, choice histograms, best-pattern images
    trials/               the Tune experiment (unless search.storage_path points elsewhere): one folder
                          per trial with params.json (its Trial config), result.json, checkpoints
    trials.csv            index, trial id, status, metric, reward, epochs, duration, tokens, pattern
    best_patterns.json    the top-k patterns in the pattern JSON format
    search_progress.png   reward per trial, best so far, running mean (refreshed as the search goes)

``config.yaml``'s ``search.trials`` is the number of trials the run is to have: extending a search
(``autodropout search --resume RUN_DIR --trials N``) raises it (:meth:`RunDir.with_trials`).

The search space is recorded once, in ``run.json``, when the run is created; everything that reads
the run later (export, resume, the report) takes it from there.

A run folder can be moved or copied: its Tune experiment is recorded relative to it, so export and
``--resume`` of the copy read and extend the copy (Tune's restore follows a moved experiment folder;
:mod:`autodropout.tune.tuner` makes the trials it creates after the restore follow it too).
Version 2 records (always absolute) are read as they were written.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from autodropout.core.atomic import atomic_write
from autodropout.core.errors import ConfigError, PatternError, UserInputError
from autodropout.core.folders import check_new_folder
from autodropout.runs.experiment import ExperimentConfig, experiment_from_dict
from autodropout.search_spaces import SearchSpace, space_from_json, space_to_json

FORMAT = "autodropout.run"
#: Version 2 records the search space (version 1 runs searched the pixel-geometry conv space); version 3
#: records the Tune experiment relative to the run folder when it is inside it (version 2: always absolute).
VERSION = 3
#: The versions this one reads: a version 2 ``experiment_dir`` is absolute, so it reads the same.
READABLE_VERSIONS = (2, 3)
EXPERIMENT_NAME = "trials"


class RunDirError(UserInputError, ValueError):
    """The folder given is not a search run folder (or cannot become one)."""


@dataclass(frozen=True)
class RunDir:
    """A search's run folder and what it records (see the module docstring).

    Build one with :meth:`create` (a new run) or :meth:`open` (an existing one, validated).
    """

    path: Path
    experiment: ExperimentConfig
    space: SearchSpace
    metric: str
    seed: int
    experiment_dir: Path
    #: The tokens the search starts from (``search.start_from`` resolved when the run was created), or None.
    start_tokens: tuple[int, ...] | None = None

    # -- the files -------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def info_file(self) -> Path:
        return self.path / "run.json"

    @property
    def trials_table(self) -> Path:
        return self.path / "trials.csv"

    @property
    def best_patterns(self) -> Path:
        return self.path / "best_patterns.json"

    @property
    def reevaluation_file(self) -> Path:
        return self.path / "reevaluation.json"

    @property
    def reevaluation_dir(self) -> Path:
        """The Tune experiment of the top-k re-evaluation (``search.reevaluate``)."""
        return self.path / "reevaluation"

    @property
    def controller_state(self) -> Path:
        return self.path / "controller" / "state.pt"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard" / "controller"

    @property
    def progress_plot(self) -> Path:
        return self.path / "search_progress.png"

    @property
    def trials(self) -> int:
        """How many trials the run is to have (``search.trials`` of its config)."""
        return self.experiment.search.trials

    def with_trials(self, trials: int) -> RunDir:
        """This run, to have ``trials`` trials (not fewer than now); :meth:`save_config` records it."""
        if trials < self.trials:
            raise RunDirError(f"{self.path}: the run is to have {self.trials} trials; --trials {trials} would shrink "
                              "it (a search can be extended, not shortened)")
        return replace(self, experiment=self.experiment.with_search(trials=trials))

    def save_config(self) -> None:
        """Rewrite ``config.yaml`` from :attr:`experiment` (atomically)."""
        atomic_write(self.config_file, self.experiment.to_yaml())

    def size(self) -> int:
        """Bytes on disk of the run folder and, if it lives elsewhere, of its Tune experiment."""
        folders = [self.path] + ([] if self.experiment_dir.resolve().is_relative_to(self.path.resolve())
                                 else [self.experiment_dir])
        return sum(_file_size(f) for folder in folders for f in folder.rglob("*"))

    # -- creating and opening --------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, experiment: ExperimentConfig, space: SearchSpace, metric: str,
               seed: int, start_tokens: Sequence[int] | None = None) -> RunDir:
        """Make a new run folder (it must not exist, or be empty) and record the run in it."""
        path = cls.check_new(path)
        storage = experiment.search.storage_path
        storage_dir = Path(storage).expanduser().resolve() if storage else path.resolve()
        start = None if start_tokens is None else tuple(space.encode(space.decode(list(start_tokens))))
        run = cls(path, experiment, space, metric, seed, storage_dir / EXPERIMENT_NAME, start)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write(run.config_file, experiment.to_yaml())
        atomic_write(run.info_file, json.dumps(run._info(), indent=1) + "\n")
        return run

    @staticmethod
    def check_new(path: str | Path) -> Path:
        """``path`` if a new run can be created there (:func:`~autodropout.core.folders.check_new_folder`)."""
        return check_new_folder(path, RunDirError, resumable="run.json", what="run")

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Read a run folder back; anything missing or damaged is a :class:`RunDirError`."""
        path = Path(path)
        if not (path / "run.json").is_file():
            raise RunDirError(f"{path}: not a search run folder (no run.json)")
        try:
            info = json.loads((path / "run.json").read_text())
            experiment = experiment_from_dict(yaml.safe_load((path / "config.yaml").read_text()))
        except FileNotFoundError as exc:
            raise RunDirError(f"{path}: not a search run folder (missing {Path(exc.filename).name})") from None
        except (OSError, json.JSONDecodeError, yaml.YAMLError, ConfigError) as exc:
            raise RunDirError(f"{path}: damaged run folder: {exc}") from None
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise RunDirError(f"{path}: run.json is not an autodropout run record")
        if info.get("version") not in READABLE_VERSIONS:
            raise RunDirError(f"{path}: run.json version {info.get('version')!r} was written by another version of "
                              f"autodropout (this one reads versions {', '.join(map(str, READABLE_VERSIONS))}); "
                              "start a new search")
        try:
            space = space_from_json(info)
            start = info.get("start_tokens")  # absent in runs from before start points: from scratch
            start = None if start is None else tuple(space.encode(space.decode(start)))
            # A relative experiment_dir is the run folder's own; "/" joins an absolute one as it is.
            experiment_dir = path.resolve() / info["experiment_dir"]
            return cls(path, experiment, space, info["metric"], int(info["seed"]), experiment_dir, start)
        except (KeyError, TypeError, ValueError, PatternError) as exc:
            raise RunDirError(f"{path}: damaged run.json: {exc}") from None

    def _info(self) -> dict[str, Any]:
        # Inside the run folder (no search.storage_path): relative, so the folder can move; elsewhere:
        # the absolute path, which is the truth wherever the run folder goes.
        inside = self.experiment.search.storage_path is None
        where = EXPERIMENT_NAME if inside else str(self.experiment_dir)
        return {"format": FORMAT, "version": VERSION, "experiment_dir": where, "seed": self.seed,
                "metric": self.metric, **space_to_json(self.space),
                "start_from": self.experiment.search.start_from,
                "start_tokens": None if self.start_tokens is None else list(self.start_tokens)}


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:  # gone since it was listed
        return 0
