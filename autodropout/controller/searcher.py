"""The controller as a Ray Tune ``Searcher`` (the only controller file that imports Ray).

Each suggestion is ``{"pattern": <pattern JSON layers>, "seed": int}``, with ``"embeddings": <pattern
JSON embedding sites>`` when the space has embedding sites: the pattern travels once, as its sites
(Tune merges it over the ``param_space`` that holds the space; :mod:`autodropout.runs.trial`). Completed
trials feed REINFORCE every ``samples_per_update`` valid results, as they arrive, so workers never
wait for a batch (asynchronous REINFORCE, as in ENAS).

Rule for unusable results (documented in docs/search.md): a trial that errored (after Ray's
retries), or whose final result lacks the metric or holds NaN/inf, is recorded as failed and NEVER
reaches the gradient: no fake reward, no baseline update. Its sample is released and the next
suggestion is made as usual, so the search goes on with the requested number of trials. A completion
for an unknown or already completed trial id is logged and ignored.

Under a trial scheduler (ASHA, HyperBand, BOHB; docs/search.md, "Under a trial scheduler") the
searcher records every intermediate result (our own ``epoch`` key and the metric) of a live trial,
and with ``epochs`` (the full schedule) tells a trial that ran its schedule from one a scheduler
stopped early: Ray says neither (an early stop of a running trial passes its last intermediate
result, a stop of a pending or paused one passes ``result=None``). A trial that ended below
``epochs`` is recorded as "stopped", with the epoch it reached and its last value: not a failure,
and never learned from (the policy learns from full-fidelity rewards only). A paused trial
(``on_pause``) stays live but holds no concurrency slot.

Ray 2.60 traps handled here (see docs/architecture.md, "What the Ray side relies on"): metric/mode come from the
constructor and live in the saved state; the whole state (policy + Adam + baseline, RNG states,
counters, live trial map, reward buffer) is saved atomically and restored exactly; concurrency is
limited *inside* the searcher (``set_max_concurrency`` returns True) so that the live trial map is
part of the saved state rather than of ``ConcurrencyLimiter``'s, which is not saved.

With ``start_tokens`` (``autodropout search --start-from SPEC``) both searchers suggest the start point
first and then search around it (:mod:`autodropout.controller.warm_start`); the start point is part of
the saved state, and a resumed search never starts again.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from ray.tune.search import Searcher

from autodropout.controller.config import START_PROBABILITY, ControllerConfig, check_start_probability
from autodropout.controller.reinforce import Reinforce, UpdateStats
from autodropout.controller.warm_start import PriorPolicy, mutate, start_prior
from autodropout.core.atomic import atomic_write
from autodropout.core.checks import is_int, is_real
from autodropout.search_spaces import SearchSpace, space_from_json, space_to_json

logger = logging.getLogger(__name__)

UpdateListener = Callable[["BaseSearcher", UpdateStats | None, list[dict[str, Any]]], None]

#: The result key with the trial's epoch count: the project's trainable reports it every epoch and it
#: goes on counting across a resume, unlike Ray's ``training_iteration``, which restarts at 1.
EPOCH_KEY = "epoch"


class BaseSearcher(Searcher):
    """Bookkeeping shared by the learned and the random controller.

    Args:
        space: the pattern search space.
        metric, mode: the result key to read (``"reward"``) and ``"max"``/``"min"``.
        seed: seeds the controller and is also the training seed given to every trial, so rewards
            differ by pattern rather than by initialisation (common random numbers).
        max_concurrent: live trials at most (``None``: no limit).
        on_update: called after each processed completion (for logging); must be picklable
            (the Tuner pickles the searcher), e.g. :class:`~autodropout.tune.tensorboard.ControllerLogger`.
        start_tokens: a start point, tokens of ``space`` (checked: ``PatternError`` naming the site and
            field), suggested first and searched around; ``None``: a search from scratch.
        start_probability: with a start point, how likely the first samples keep each of its free
            decisions (``warm_start``'s ``q``).
        epochs: a trial's full schedule, in epochs (``task.train.epochs``): a trial that ends below it
            was stopped by a scheduler and is recorded as "stopped"; ``None``: every completion with a
            result counts as final.
    """

    def __init__(
        self,
        space: SearchSpace,
        metric: str = "reward",
        mode: str = "max",
        seed: int = 0,
        max_concurrent: int | None = None,
        on_update: UpdateListener | None = None,
        start_tokens: Sequence[int] | None = None,
        start_probability: float = START_PROBABILITY,
        epochs: int | None = None,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if epochs is not None and not is_int(epochs, minimum=1):
            raise ValueError(f"epochs must be a positive int or None, got {epochs!r}")
        super().__init__(metric=metric, mode=mode)
        self.space = space
        # decode validates (length, indices, choice_mask); encode gives plain ints back.
        self.start_tokens = None if start_tokens is None else space.encode(space.decode(list(start_tokens)))
        self.start_probability = check_start_probability(start_probability)
        self.seed = seed
        self.max_concurrent = max_concurrent
        self.on_update = on_update
        self.epochs = epochs
        self.live: dict[str, list[int]] = {}
        # [epoch, value] of each intermediate result of a live trial, in arrival order.
        self.intermediate: dict[str, list[list[int | float]]] = {}
        self.paused: set[str] = set()
        self.completed: set[str] = set()
        self.history: list[dict[str, Any]] = []
        self.num_suggested = 0
        self.num_failed = 0

    # -- Ray Searcher API ------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        # Our own metric/mode win: they were given to the constructor and are part of the state.
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        # A paused trial holds no slot: HyperBandForBOHB pauses trials until their bracket is full and
        # fills it with new suggestions (hb_bohb.py), as Ray's TuneBOHB counts only running trials. The
        # paused ones are bounded by the bracket, not by us. Plain HyperBandScheduler pauses without
        # telling the searcher (no on_pause), so there a paused trial keeps its slot: its brackets then
        # halve among fewer trials, but they never deadlock (a trial only waits for trials of its
        # bracket, which are all live and not paused).
        if self.max_concurrent is not None and len(self.live) - len(self.paused) >= self.max_concurrent:
            return None
        starting = self.start_tokens is not None and self.num_suggested == 0
        tokens = self._start(trial_id) if starting else self._next_tokens(trial_id)
        self.live[trial_id] = tokens
        self.num_suggested += 1
        pattern = self.space.decode(tokens)
        config = {"pattern": pattern.to_json(), "seed": self.seed}
        if self.space.num_embeddings:  # the trial config's layout (autodropout.runs.trial)
            config["embeddings"] = pattern.embeddings_to_json()
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # Ray passes every intermediate result here except one its scheduler answered with STOP (that
        # one comes with on_trial_complete).
        if trial_id not in self.live:
            return
        epoch, value = result.get(EPOCH_KEY), result.get(self.metric)
        if is_int(epoch) and is_real(value):
            self.intermediate.setdefault(trial_id, []).append([int(epoch), float(value)])

    def on_pause(self, trial_id: str) -> None:
        if trial_id in self.live:
            self.paused.add(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.paused.discard(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.live:
            reason = "already completed" if trial_id in self.completed else "unknown"
            logger.warning("ignoring completion of %s trial %s", reason, trial_id)
            return
        tokens = self.live.pop(trial_id)
        self.completed.add(trial_id)
        self.paused.discard(trial_id)
        records = self.intermediate.pop(trial_id, [])
        last_epoch, last_value = records[-1] if records else (None, None)
        if error:
            status, value, epoch = "error", None, last_epoch
        elif result is None:
            # Ray stopped the trial while it was pending or paused: HyperBand's losers, and also the
            # winners of a bracket's last rung, paused at the full schedule until the bracket ended.
            epoch, value = last_epoch, last_value
            status = "ok" if self.epochs is not None and epoch is not None and epoch >= self.epochs else "stopped"
        else:
            value = result.get(self.metric)
            epoch = int(result[EPOCH_KEY]) if is_int(result.get(EPOCH_KEY)) else last_epoch
            if not is_real(value):
                status, value = "invalid", None
            else:
                # A result that does not say its epoch is taken as final, as without ``epochs``.
                early = self.epochs is not None and epoch is not None and epoch < self.epochs
                status = "stopped" if early else "ok"
        value = None if value is None else float(value)
        self.history.append({"trial_id": trial_id, "tokens": tokens, "value": value, "status": status,
                             "epoch": epoch})
        # Only full-fidelity rewards reach the policy and its baseline, never a stopped trial's: an
        # early reward can rank patterns the wrong way round (on this project's LM preset the reward at
        # epoch 3 has Spearman -0.31 with the final one), and mixed into the baseline it would make a
        # full-length trial look good against stopped ones. The scheduler's rungs are the filter; the
        # policy learns from the trials that pass them.
        reward = None
        if status == "ok":
            reward = value if self.mode == "max" else -value
        stats = self._complete(trial_id, tokens, reward)
        if status in ("error", "invalid"):
            self.num_failed += 1
            logger.warning("trial %s gave no usable %r (%s); left out of the controller update",
                           trial_id, self.metric, status)
        elif status == "stopped":
            logger.debug("trial %s stopped by the scheduler at epoch %s; left out of the controller update",
                         trial_id, epoch)
        if self.on_update is not None:
            try:
                self.on_update(self, stats, self.history)
            except Exception:  # logging must never fail a trial or stop the search
                logger.exception("controller logging failed after trial %s", trial_id)

    # -- state -----------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            **space_to_json(self.space),
            "metric": self.metric,
            "mode": self.mode,
            "seed": self.seed,
            "max_concurrent": self.max_concurrent,
            "epochs": self.epochs,
            "live": {k: list(v) for k, v in self.live.items()},
            "intermediate": {k: [list(r) for r in v] for k, v in self.intermediate.items()},
            "paused": sorted(self.paused),
            "completed": sorted(self.completed),
            "history": list(self.history),
            "num_suggested": self.num_suggested,
            "num_failed": self.num_failed,
            "start_tokens": None if self.start_tokens is None else list(self.start_tokens),
            "start_probability": self.start_probability,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        # States saved before the space had one serialized form named its kind "space_kind".
        self.space = space_from_json({**state, "space": state.get("space", state.get("space_kind"))})
        self._metric, self._mode = state["metric"], state["mode"]
        self.seed = state["seed"]
        self.max_concurrent = state["max_concurrent"]
        self.live = {k: list(v) for k, v in state["live"].items()}
        self.completed = set(state["completed"])
        # States saved before the scheduler support had no schedule, records, pauses or epochs.
        self.epochs = state.get("epochs")
        self.intermediate = {k: [[int(e), float(v)] for e, v in records]
                             for k, records in state.get("intermediate", {}).items()}
        self.paused = set(state.get("paused", ()))
        self.history = [{"epoch": None, **h} for h in state["history"]]
        self.num_suggested = state["num_suggested"]
        self.num_failed = state["num_failed"]
        # States saved before start points existed searched from scratch.
        start = state.get("start_tokens")
        self.start_tokens = None if start is None else [int(t) for t in start]
        self.start_probability = float(state.get("start_probability", START_PROBABILITY))

    def save(self, checkpoint_path: str) -> None:
        """Write the full state with ``torch.save``, atomically."""
        path = Path(checkpoint_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: torch.save(self.get_state(), fh))

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(torch.load(checkpoint_path, weights_only=True))

    # -- to implement ----------------------------------------------------------------------------
    def _start(self, trial_id: str) -> list[int]:
        """The first suggestion of a search with a start point: the start point itself."""
        return list(self.start_tokens or ())

    def _next_tokens(self, trial_id: str) -> list[int]:
        """The tokens of the next suggestion (for ``trial_id``)."""
        raise NotImplementedError

    def _complete(self, trial_id: str, tokens: list[int], reward: float | None) -> UpdateStats | None:
        """Learn from a finished trial (``reward`` None: failed or stopped early, never learned from);
        stats if the policy moved."""
        return None


class ControllerSearcher(BaseSearcher):
    """AutoDropout's learned controller: an LSTM policy trained with REINFORCE
    (:class:`~autodropout.controller.reinforce.Reinforce`: unit-free advantages, entropy bonus, PPO-clipped
    ratios for samples drawn by an older policy). The policy is a
    :class:`~autodropout.controller.warm_start.PriorPolicy`, the plain LSTM unless the search has a start
    point.

    Args:
        space: the pattern search space.
        config: the controller's settings (:class:`ControllerConfig`, default ``ControllerConfig()``).
        **options: :class:`BaseSearcher`'s keywords (``metric``, ``mode``, ``seed``, ``max_concurrent``,
            ``on_update``, ``start_tokens``, ``start_probability``, ``epochs``).

    The log-probability each suggestion had under the policy that drew it is kept with the live trial,
    so an update that arrives after the policy has moved on can weight the sample by its importance ratio.
    """

    def __init__(self, space: SearchSpace, *, config: ControllerConfig | None = None, **options: Any) -> None:
        super().__init__(space, **options)
        if config is not None and not isinstance(config, ControllerConfig):
            raise TypeError(f"config must be a ControllerConfig, got {type(config).__name__}")
        self._build(config or ControllerConfig())
        self.generator = torch.Generator().manual_seed(self.seed)
        self.behaviour: dict[str, float] = {}
        self.buffer: list[tuple[list[int], float, float | None]] = []
        self.last_stats: UpdateStats | None = None

    def _build(self, config: ControllerConfig) -> None:
        self.config = config
        self.policy = PriorPolicy(self.space, hidden=config.hidden, temperature=config.temperature,
                                  tanh_constant=config.tanh_constant, seed=self.seed, share_heads=config.share_heads)
        if self.start_tokens is not None:
            self.policy.set_prior(start_prior(self.space, self.start_tokens, self.start_probability))
        self._fade_prior(self.num_suggested)
        self.trainer = Reinforce(self.policy, config, seed=self.seed)

    def _fade_prior(self, suggested: int) -> None:
        """The prior's scale once ``suggested`` suggestions were made (so suggestion ``n``, counted
        from 0, is drawn at ``0.5 ** (n / start_half_life)``); a function of the saved count, so a
        restored searcher has the scale the saved one had."""
        self.policy.prior_scale = 0.5 ** (suggested / self.config.start_half_life)

    def _start(self, trial_id: str) -> list[int]:
        """The start point itself, recorded with its log-probability under the policy with the full
        prior, as if the policy had drawn it."""
        tokens = super()._start(trial_id)
        with torch.no_grad():
            self.behaviour[trial_id] = float(self.policy.log_prob([tokens])[0][0])
        self._fade_prior(self.num_suggested + 1)
        return tokens

    def _next_tokens(self, trial_id: str) -> list[int]:
        with torch.no_grad():
            tokens, log_probs, _ = self.policy.sample(1, generator=self.generator)
        self.behaviour[trial_id] = float(log_probs[0])
        self._fade_prior(self.num_suggested + 1)
        return [int(t) for t in tokens[0]]

    def _complete(self, trial_id: str, tokens: list[int], reward: float | None) -> UpdateStats | None:
        behaviour = self.behaviour.pop(trial_id, None)
        if reward is None:
            return None
        self.buffer.append((tokens, reward, behaviour))
        if len(self.buffer) < self.config.samples_per_update:
            return None
        batch, self.buffer = self.buffer, []
        self.last_stats = self.trainer.update(batch)
        return self.last_stats

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "config": self.config.as_dict(),
            "trainer": self.trainer.state_dict(),
            "generator": self.generator.get_state(),
            "behaviour": dict(self.behaviour),
            "buffer": [(list(t), r, b) for t, r, b in self.buffer],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if "config" not in state:  # written before the controller saved its settings (and its reward spread)
            raise ValueError("this controller state was saved by an older autodropout (it has no 'config' "
                             "of settings); resume the search with that version, or start a new one")
        super().set_state(state)
        # The saved settings win over the constructor's: a resumed search goes on as it started.
        self._build(ControllerConfig.from_dict(state["config"]))
        self.trainer.load_state_dict(state["trainer"])
        self.generator.set_state(state["generator"])
        self.behaviour = {str(k): float(v) for k, v in state["behaviour"].items()}
        self.buffer = [(list(t), float(r), None if b is None else float(b)) for t, r, b in state["buffer"]]


class RandomSearcher(BaseSearcher):
    """Uniform random search over the same space, with the same interface (the paper's critics ask
    how much the controller adds over it). With a start point, every draw after the first (the start
    point itself) mutates the start point (:func:`~autodropout.controller.warm_start.mutate`)."""

    def __init__(self, space: SearchSpace, **options: Any) -> None:
        super().__init__(space, **options)
        self.rng = random.Random(self.seed)

    def _next_tokens(self, trial_id: str) -> list[int]:
        if self.start_tokens is None:
            return self.space.sample(self.rng)
        return mutate(self.space, self.start_tokens, self.start_probability, self.rng)

    def get_state(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {**super().get_state(), "rng": [version, list(internal), gauss]}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
