"""Pattern JSON: the versioned, user-facing file format of learned patterns.

```
{"format": "autodropout.patterns", "version": 3, "space": "conv" | "transformer",
 "space_config": {"num_sites": L, "values": {...}, "num_embeddings": E, "embedding_values": {...}},
 "source": {"experiment": ..., "trial_id": ..., "metric": ..., "value": ..., "reward": ..., "created": ...,
            "site_shapes": [[C, H, W], ...] | [[T, C, heads], ...], "study": {...}},
 "patterns": [{"rank": 1, "reward": 0.93, "trial_id": "...", "seed_rewards": [[0, 0.93], [1, 0.92]],
               "embeddings": [{...}, ...], "layers": [{...}, ...]}, ...]}
```

``seed_rewards`` (optional) is there when the search re-evaluated its best patterns on more training
seeds (``search.reevaluate``): ``[seed, reward]`` per training seed, ``reward`` then being their mean.

``num_embeddings`` and ``embedding_values`` (the embedding sites of a Transformer space: its
embedding outputs) and each pattern's ``embeddings`` (one object per embedding site, in forward
order) are there exactly when the space has embedding sites.

``source.site_shapes`` (optional) records what each site of the searched model sees, so that a file
alone says how large each site's masks are: ``[C, H, W]`` per conv site (channels and feature-map
size), ``[T, C, heads]`` per Transformer layer (longest training sequence, hidden width, attention
heads; the embedding outputs are ``(T, C)`` too). A conv pattern's drop density depends on the map
size, so pictures need it; files written without it stay valid.

``source.study`` (optional) is the provenance of a pattern chosen and scored by ``autodropout study``
(the patterns that ship with the package carry it): ``arm`` (``lstm`` or ``random``), ``budget``
(trials per search), ``search_seed`` / ``search_seeds``, ``eval_seeds``, ``metric`` and ``mode``,
``test`` and ``val`` (``{"n", "mean", "se", "ci95": [low, high]}`` over the evaluation seeds),
``versus`` (paired test differences, each ``{"reference", "n", "mean", "se", "ci95"}``),
``transfer`` (the same on other tasks, with ``tuning_budget``: the trials per tuned baseline there),
and ``name`` once published (see ``docs/study.md``).

Version 3 (this one) adds the conv ``unit`` and ``rate`` (dropout, spatial dropout and DropPath-like
units beside the tiles) and the Transformer embedding sites, and widens the default Transformer
``size`` and ``stride`` sets (``docs/search_spaces.md``), so that a search space contains the
regularizers a study compares with. Version 2 files still load, faithfully: the fields they lack take
the values that mean what version 2 did (:attr:`SearchSpace.v2_upgrade`: conv layers become
``unit`` "tile" with a null ``rate``, and their space a one-choice value set of each), their value
sets are the file's own, and a version-2 Transformer file has no embedding sites, so its patterns
put nothing at the embeddings and draw the same masks. Version 2 laid conv tiles relative to the map
and bounded the Transformer runs (see :mod:`autodropout.search_spaces.conv`). Version 1 measured conv
tiles in pixels, so its patterns mean something else at every resolution and have no faithful
translation: a version-1 file is rejected with one message that says how to make a new file.

Reading is strict and never executes anything (plain ``json``): any deviation raises one
:class:`PatternFormatError` naming the file, the pattern, the site and the field. Writing is atomic
(temp file in the same folder, then ``os.replace``), so readers never see half a file.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autodropout.core.atomic import atomic_write
from autodropout.core.checks import finite
from autodropout.core.errors import PatternError, UnknownNameError
from autodropout.search_spaces.space import Pattern, SearchSpace
from autodropout.search_spaces.space_json import SPACES, pattern_from_json, space_from_json, space_to_json

FORMAT = "autodropout.patterns"
VERSION = 3
#: Versions this reader accepts (version 2 is upgraded on reading, see the module docstring).
READABLE = (2, 3)

_TOP_KEYS = {"format", "version", "space", "space_config", "source", "patterns"}
_SOURCE_KEYS = {"experiment", "trial_id", "metric", "value", "reward", "created", "site_shapes", "study"}
#: Keys of ``source.study`` (see the module docstring): required, then optional.
STUDY_REQUIRED = {"arm", "budget", "eval_seeds", "metric", "mode", "test"}
STUDY_OPTIONAL = {"name", "experiment", "search_seed", "search_seeds", "val", "versus", "transfer", "study"}
#: The dimensions of one ``source.site_shapes`` entry, per space kind.
SITE_SHAPE_DIMS = {"conv": ("C", "H", "W"), "transformer": ("T", "C", "heads")}
_PATTERN_KEYS = {"rank", "reward", "layers"}
_V2_SPACE_KEYS = {"num_sites", "values"}
_PATTERN_OPTIONAL = {"trial_id", "seed_rewards"}


class PatternFormatError(PatternError):
    """A pattern file is not a valid ``autodropout.patterns`` file. Subclass of ``ValueError``."""


@dataclass(frozen=True)
class RankedPattern:
    """A pattern with its rank (1 = best), the reward it earned and the trial that found it; re-evaluated
    on more training seeds, ``seed_rewards`` holds ``(seed, reward)`` per seed and ``reward`` their mean."""

    rank: int
    pattern: Pattern
    reward: float | None = None
    trial_id: str | None = None
    seed_rewards: tuple[tuple[int, float], ...] | None = None


@dataclass(frozen=True)
class PatternSet:
    """The content of a pattern file: its space, ranked patterns (best first) and provenance."""

    space: SearchSpace
    patterns: tuple[RankedPattern, ...]
    source: dict[str, Any] = field(default_factory=dict)

    def get(self, rank: int = 1) -> Pattern:
        """The pattern of the given rank; an unknown rank lists the available ones."""
        for ranked in self.patterns:
            if ranked.rank == rank:
                return ranked.pattern
        raise UnknownNameError(f"no pattern of rank {rank}; ranks in file: {[p.rank for p in self.patterns]}")

    @property
    def best(self) -> Pattern:
        return self.patterns[0].pattern

    @property
    def site_shapes(self) -> tuple[tuple[int, int, int], ...] | None:
        """``source.site_shapes`` as tuples (``(C, H, W)`` or ``(T, C, heads)`` per site), or ``None``
        when the file does not record them."""
        shapes = self.source.get("site_shapes")
        return None if shapes is None else tuple(tuple(shape) for shape in shapes)


def save_patterns(
    path: str | os.PathLike,
    patterns: Iterable[Pattern | RankedPattern | tuple[Pattern, float | None]],
    space: SearchSpace,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Validate ``patterns`` against ``space`` and write them, ranked in the given order, atomically.

    Args:
        path: destination file (its folder must exist).
        patterns: best first; plain patterns, ``(pattern, reward)`` pairs or :class:`RankedPattern`.
        space: the space the patterns come from (its config is stored so the file is self-contained).
        source: provenance (keys among ``experiment, trial_id, metric, value, reward, created,
            site_shapes, study``); ``created`` defaults to now (UTC, ISO 8601); ``site_shapes`` is checked
            against ``space`` (see the module docstring).
    """
    entries = []
    for rank, item in enumerate(patterns, start=1):
        seed_rewards = None
        if isinstance(item, RankedPattern):
            pattern, reward, trial_id, seed_rewards = item.pattern, item.reward, item.trial_id, item.seed_rewards
        elif isinstance(item, tuple):
            (pattern, reward), trial_id = item, None
        else:
            pattern, reward, trial_id = item, None, None
        try:
            space.validate(pattern)
        except PatternError as exc:
            raise PatternError(f"pattern {rank}: {exc}") from None
        entry: dict[str, Any] = {"rank": rank, "reward": finite(reward)}
        if space.num_embeddings:
            entry["embeddings"] = pattern.embeddings_to_json()
        entry["layers"] = pattern.to_json()
        if trial_id is not None:
            entry["trial_id"] = str(trial_id)
        if seed_rewards is not None:
            entry["seed_rewards"] = [[int(seed), float(value)] for seed, value in seed_rewards]
        entries.append(entry)
    src = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **dict(source or {})}
    unknown = sorted(set(src) - _SOURCE_KEYS)
    if unknown:
        raise PatternError(f"source: unknown key {unknown[0]!r} (expected among {sorted(_SOURCE_KEYS)})")
    if src.get("site_shapes") is None:
        src.pop("site_shapes", None)  # unknown shapes are left out, never written as null
    else:
        src["site_shapes"] = [list(shape) for shape in check_site_shapes(src["site_shapes"], space)]
    if "study" in src:
        check_study(src["study"])
    document = {
        "format": FORMAT,
        "version": VERSION,
        **space_to_json(space),
        "source": {k: finite(v) if isinstance(v, float) else v for k, v in src.items()},
        "patterns": entries,
    }
    text = json.dumps(document, indent=1, allow_nan=False)
    return atomic_write(path, text + "\n")


def load_patterns(path: str | os.PathLike) -> PatternSet:
    """Read and strictly validate a pattern file (see the module docstring for the format)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PatternFormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternFormatError(f"{path}: cannot read: {exc}") from None
    try:
        return parse_patterns(json.loads(text, parse_constant=_reject_constant))
    except json.JSONDecodeError as exc:
        raise PatternFormatError(
            f"{path}: not valid JSON (truncated or corrupt?) at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except PatternError as exc:
        raise PatternFormatError(f"{path}: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise PatternError(f"{name} is not allowed in a pattern file")


def parse_patterns(document: Any) -> PatternSet:
    """Validate an already-parsed JSON document; errors name the pattern, site and field."""
    if not isinstance(document, dict):
        raise PatternError(f"top level must be a JSON object, got {type(document).__name__}")
    if document.get("format") != FORMAT:
        raise PatternError(f"field 'format': expected {FORMAT!r}, got {document.get('format')!r}")
    version = document.get("version")
    if type(version) is int and version == 1:
        raise PatternError(
            "field 'version': this is a version-1 pattern file, whose conv tiles were measured in pixels "
            f"(and whose Transformer runs could cover whole heads); version {VERSION} lays tiles relative to "
            "the map, and the old patterns cannot be translated faithfully. Make a new file with this "
            "version of autodropout: run the search again (`autodropout search`), then `autodropout export`"
        )
    if type(version) is not int or version not in READABLE:
        raise PatternError(f"field 'version': unsupported version {version!r} (this reader knows "
                           f"{' and '.join(map(str, READABLE))})")
    _check_keys(document, _TOP_KEYS, set(), "")
    space = _read_space(document, version)
    upgrade = SPACES[space.kind].v2_upgrade if version == 2 else {}
    source = document["source"]
    if not isinstance(source, dict):
        raise PatternError("field 'source': expected an object")
    _check_keys(source, set(), _SOURCE_KEYS, "source: ")
    if "site_shapes" in source:
        check_site_shapes(source["site_shapes"], space)
    if "study" in source:
        check_study(source["study"])
    entries = document["patterns"]
    if not isinstance(entries, list) or not entries:
        raise PatternError("field 'patterns': expected a non-empty list")
    ranked = [_parse_entry(entry, f"pattern {index}: ", space, upgrade) for index, entry in enumerate(entries, start=1)]
    ranks = [r.rank for r in ranked]
    if len(set(ranks)) != len(ranks):
        raise PatternError(f"field 'rank': duplicate ranks {ranks}")
    return PatternSet(space, tuple(sorted(ranked, key=lambda r: r.rank)), dict(source))


def _read_space(document: Mapping[str, Any], version: int) -> SearchSpace:
    """The document's space; a version-2 one has no embedding sites and gets a one-choice value set of
    each field of ``v2_upgrade`` (the value those layers take)."""
    config, kind = document["space_config"], document["space"]
    space_type = SPACES.get(kind) if isinstance(kind, str) else None
    if version == 2 and isinstance(config, dict) and space_type is not None:
        unknown = sorted(set(config) - _V2_SPACE_KEYS)
        if unknown:
            raise PatternError(f"space_config: unknown key {unknown[0]!r} in a version-2 file "
                               f"(expected {', '.join(sorted(_V2_SPACE_KEYS))})")
        values = config.get("values", {})
        upgrade = space_type.v2_upgrade
        if isinstance(values, dict) and upgrade:
            _check_not_v2(values, upgrade, "space_config: values: ")
            values = {**values, **{name: [value] for name, value in upgrade.items()}}
            document = {**document, "space_config": {**config, "values": values}}
    return space_from_json(document)


def _check_not_v2(fields: Mapping[str, Any], upgrade: Mapping[str, Any], where: str) -> None:
    present = sorted(set(fields) & set(upgrade))
    if present:
        raise PatternError(f"{where}unknown field {present[0]!r} (version-2 files have none; it came with version 3)")


def _parse_entry(entry: Any, where: str, space: SearchSpace, upgrade: Mapping[str, Any]) -> RankedPattern:
    """One element of ``patterns``: its rank, reward, trial id, per-site embeddings and layers
    (version-2 layers get the fields of ``upgrade``)."""
    if not isinstance(entry, dict):
        raise PatternError(f"{where}expected an object, got {type(entry).__name__}")
    _check_keys(entry, _PATTERN_KEYS | ({"embeddings"} if space.num_embeddings else set()), _PATTERN_OPTIONAL, where)
    rank, reward = entry["rank"], entry["reward"]
    if type(rank) is not int or rank < 1:
        raise PatternError(f"{where}field 'rank': expected a positive integer, got {rank!r}")
    if reward is not None and not _is_number(reward):
        raise PatternError(f"{where}field 'reward': expected a number or null, got {reward!r}")
    trial_id = entry.get("trial_id")
    if trial_id is not None and not isinstance(trial_id, str):
        raise PatternError(f"{where}field 'trial_id': expected a string, got {trial_id!r}")
    seed_rewards = entry.get("seed_rewards")
    if seed_rewards is not None:
        if not isinstance(seed_rewards, list) or not all(
                isinstance(x, list) and len(x) == 2 and type(x[0]) is int and _is_number(x[1]) for x in seed_rewards):
            raise PatternError(f"{where}field 'seed_rewards': expected a list of [seed, reward] pairs, "
                               f"got {seed_rewards!r}")
        seed_rewards = tuple((seed, float(value)) for seed, value in seed_rewards)
    layers = entry["layers"]
    if upgrade and isinstance(layers, list):
        layers = [_upgraded(fields, upgrade, f"{where}site {at}: ") if isinstance(fields, dict) else fields
                  for at, fields in enumerate(layers)]
    pattern = pattern_from_json(space, layers, entry.get("embeddings", []), where)
    return RankedPattern(rank, pattern, reward, trial_id, seed_rewards)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _upgraded(fields: Mapping[str, Any], upgrade: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    _check_not_v2(fields, upgrade, where)
    return {**upgrade, **fields}


def check_site_shapes(shapes: Any, space: SearchSpace) -> tuple[tuple[int, int, int], ...]:
    """``shapes`` as tuples if it is a valid ``source.site_shapes`` for ``space``: one entry per
    site of three ints >= 1 (see :data:`SITE_SHAPE_DIMS`), a conv map of at least 2 pixels and a
    Transformer hidden width of at least 2 divisible by the head count (smaller sites cannot carry a
    pattern)."""
    where = "source: field 'site_shapes': "
    if not isinstance(shapes, (list, tuple)) or len(shapes) != space.num_sites:
        raise PatternError(f"{where}expected a list of one shape per site ({space.num_sites}), got {shapes!r}")
    dims = SITE_SHAPE_DIMS[space.kind]
    for site, shape in enumerate(shapes):
        if not isinstance(shape, (list, tuple)) or len(shape) != 3 or not all(type(v) is int and v >= 1 for v in shape):
            raise PatternError(f"{where}site {site}: expected [{', '.join(dims)}] (ints >= 1), got {shape!r}")
        if space.kind == "conv" and shape[1] * shape[2] < 2:
            raise PatternError(f"{where}site {site}: a {shape[1]}x{shape[2]} map cannot carry a pattern")
        if space.kind == "transformer" and (shape[1] < 2 or shape[1] % shape[2]):
            raise PatternError(f"{where}site {site}: hidden width {shape[1]} must be >= 2 and divisible by "
                               f"heads={shape[2]}")
    return tuple(tuple(shape) for shape in shapes)


def check_study(study: Any) -> None:
    """``source.study`` must be an object with the keys of :data:`STUDY_REQUIRED` (and only those
    and :data:`STUDY_OPTIONAL`), and a ``test`` summary with a numeric ``mean``."""
    where = "source: field 'study': "
    if not isinstance(study, dict):
        raise PatternError(f"{where}expected an object, got {type(study).__name__}")
    _check_keys(study, STUDY_REQUIRED, STUDY_OPTIONAL, where)
    if study["mode"] not in ("max", "min"):
        raise PatternError(f"{where}field 'mode': expected 'max' or 'min', got {study['mode']!r}")
    test = study["test"]
    if (not isinstance(test, dict) or isinstance(test.get("mean"), bool)
            or not isinstance(test.get("mean"), (int, float))):
        raise PatternError(f"{where}field 'test': expected an object with a numeric 'mean', got {test!r}")


def _check_keys(obj: Mapping[str, Any], required: set[str], optional: set[str], where: str) -> None:
    missing = sorted(required - set(obj))
    if missing:
        raise PatternError(f"{where}missing field {missing[0]!r}")
    extra = sorted(set(obj) - required - optional)
    if extra:
        raise PatternError(f"{where}unknown field {extra[0]!r} (allowed: {sorted(required | optional)})")
