"""The searcher registry (autodropout.controller.searchers): names, typed settings checked where the
experiment file enters, and a searcher registered from outside the package reaching the config, the
command line, the search builder and a study's arms."""
import random
import subprocess
import sys
from dataclasses import dataclass

import pytest
import yaml

from autodropout.commands.cli import build_parser
from autodropout.controller import searchers
from autodropout.controller.searcher import BaseSearcher, ControllerSearcher, RandomSearcher
from autodropout.controller.searchers.evolution import EvolutionConfig, EvolutionSearcher
from autodropout.core.errors import ConfigError, UnknownNameError
from autodropout.runs.experiment import CONTROLLER_KEYS, experiment_from_dict
from autodropout.search_spaces import TransformerSpace
from tests.helpers import suggested_tokens
from tests.tiny import TINY_VISION

BUILT_IN = ["evolution", "lstm", "random"]


def experiment(**search):
    return experiment_from_dict({**TINY_VISION, "search": {**TINY_VISION["search"], **search}})


@dataclass(frozen=True)
class TinySettings:
    step: int = 1

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ConfigError(f"step: expected a positive int, got {self.step!r}")


class TinySearcher(BaseSearcher):
    """Suggests every ``step``-th draw of random search."""

    def __init__(self, space, *, config: TinySettings, **options) -> None:
        super().__init__(space, **options)
        self.config, self.rng = config, random.Random(self.seed)

    def _next_tokens(self, trial_id):
        for _ in range(self.config.step - 1):
            self.space.sample(self.rng)
        return self.space.sample(self.rng)


@pytest.fixture
def tiny():
    entry = searchers.register(searchers.SearcherInfo(name="tiny", searcher=TinySearcher, summary="a test searcher",
                                                      settings=TinySettings))
    yield entry
    searchers.unregister("tiny")


def test_the_built_in_searchers_are_this_package_s_files_each_registering_its_own_name():
    assert set(BUILT_IN) <= set(searchers.available())
    for name in searchers.available():
        entry = searchers.info(name)
        assert entry.name == name and issubclass(entry.searcher_class(), BaseSearcher)
    assert searchers.info("lstm").searcher_class() is ControllerSearcher
    assert searchers.info("random").searcher_class() is RandomSearcher
    assert searchers.info("evolution").searcher_class() is EvolutionSearcher


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="^unknown searcher 'evolve'; valid names: evolution, lstm, random$"):
        searchers.info("evolve")
    with pytest.raises(ConfigError, match="^search.controller: unknown searcher 'evolve'; "
                                          "valid names: evolution, lstm, random$"):
        experiment(controller="evolve")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--controller", "evolve"])


@pytest.mark.parametrize("search, message", [
    ({"searchers": {"evolve": {}}}, "search.searchers.evolve: unknown searcher; valid names: evolution, lstm, random"),
    ({"searchers": {"lstm": {"lr": 0.1}}}, "search.searchers.lstm: the LSTM controller's settings are search keys "
                                           "of their own \\(samples_per_update, controller_lr, "),
    ({"searchers": {"random": {"x": 1}}}, "search.searchers.random: the random searcher takes no settings, got x"),
    ({"searchers": {"evolution": 3}}, "search.searchers.evolution: expected a mapping, got int"),
    ({"searchers": []}, "search.searchers: expected a mapping"),
])
def test_bad_searcher_settings_are_one_line_naming_the_key(search, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        experiment(**search)


def test_the_lstm_s_flat_keys_still_set_its_settings():
    search = experiment(controller_lr=0.01, samples_per_update=4, share_heads=True).search
    settings = search.searcher_settings()
    assert (settings.lr, settings.samples_per_update, settings.share_heads) == (0.01, 4, True)
    assert search.searcher_settings("lstm") == search.controller_config()
    assert set(CONTROLLER_KEYS) <= set(yaml.safe_load(experiment().to_yaml())["search"])  # still written flat


def test_settings_round_trip_through_the_experiment_file():
    chosen = experiment(controller="evolution", searchers={"evolution": {"population": 8, "sample_size": 2}})
    again = experiment_from_dict(yaml.safe_load(chosen.to_yaml()))
    assert again.search == chosen.search
    assert again.search.searcher_settings() == EvolutionConfig(population=8, sample_size=2)
    assert experiment(controller="random").search.searcher_settings() is None


def test_a_registered_searcher_reaches_the_config_the_command_line_and_the_builder(tiny):
    assert "tiny" in searchers.available()
    search = experiment(controller="tiny", searchers={"tiny": {"step": 3}}).search
    assert search.searcher_settings() == TinySettings(step=3)
    with pytest.raises(ConfigError, match="^search.searchers.tiny.step: expected a positive int, got 0$"):
        experiment(searchers={"tiny": {"step": 0}})
    with pytest.raises(ConfigError, match=r"^search.searchers.tiny.stp: unknown key \(valid keys: step\)$"):
        experiment(searchers={"tiny": {"stp": 2}})
    assert build_parser().parse_args(["search", "--controller", "tiny"]).controller == "tiny"
    space = TransformerSpace(num_sites=2)
    searcher = searchers.build("tiny", space, search.searcher_settings(), seed=7)
    rng = random.Random(7)
    expected = [space.sample(rng) for _ in range(3)][2]  # step 3: the third draw of random search
    assert isinstance(searcher, TinySearcher) and suggested_tokens(searcher, "t0") == expected
    with pytest.raises(TypeError, match="takes TinySettings settings, got EvolutionConfig"):
        searchers.build("tiny", space, EvolutionConfig(), seed=7)
    with pytest.raises(ValueError, match="'tiny' is already registered"):
        searchers.register(tiny)


def test_a_registered_searcher_is_a_study_arm_described_by_its_entry(tiny, tmp_path):
    from autodropout.study import make_plan
    from autodropout.study.plan import search_arms
    from autodropout.study.report import arm_text
    from tests.tiny import write_experiment

    assert search_arms()[:3] == ("lstm", "random", "evolution") and "tiny" in search_arms()
    plan = make_plan(write_experiment(tmp_path), budget=2, search_seeds=1, eval_seeds=2,
                     baselines=["none", "dropout"], arms=["tiny-warm", "random", "tiny"])
    assert plan.arms == ("random", "tiny", "tiny-warm")
    assert arm_text("tiny") == "a test searcher, from scratch"
    assert arm_text("tiny-warm") == "a test searcher started from the best tuned mask baseline"
    assert arm_text("evolution") == "regularized evolution (Real, Aggarwal, Huang & Le, AAAI 2019), from scratch"
    assert arm_text("lstm") == "LSTM controller, REINFORCE, from scratch"  # the published reports' words


def test_checking_an_experiment_imports_ray_only_for_a_searcher_that_needs_it():
    code = ("import sys; from autodropout.runs.experiment import find_experiment; "
            "e = find_experiment('lm_transformer_quick'); e.with_search(controller='random'); "
            "print('ray' in sys.modules, end=' '); e.with_search(controller='evolution'); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
