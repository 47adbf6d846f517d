"""The tuned baselines' domains (study/baselines.py): every family can be switched off and stays a
probability, ConvNets get the wider ranges, the table describes them, and bad names are one line."""
import pytest

from autodropout.study.baselines import (
    CONV_DOMAINS,
    DOMAINS,
    BaselineError,
    check_baselines,
    describe_domain,
    tunable_baselines,
    tuning_domain,
)
from autodropout.tune.lattice import axes, design

#: The parameter of each family that is its rate ("off" at 0).
RATES = {"targetdrop": "gamma"}


@pytest.mark.parametrize("table", [DOMAINS, CONV_DOMAINS], ids=["transformer", "conv"])
def test_every_rate_range_starts_at_off_and_stays_below_1(table):
    for name, domain in table.items():
        if not domain:  # nothing to tune (Concrete Dropout learns its rates): its one trial, the defaults
            assert name == "concrete_dropout" and design(domain, 4) == [{}] * 4
            continue
        kind, low, high = domain[RATES.get(name, "p")]
        assert (kind, low) == ("uniform", 0.0) and 0.0 < high < 1.0, name
        assert design(domain, 4)  # every domain is one the lattice reads


def test_convnets_get_the_wider_ranges_and_transformers_keep_theirs():
    assert tuning_domain("dropout", "vision") == {"p": ["uniform", 0.0, 0.7]}
    assert tuning_domain("dropout", "language_model") == {"p": ["uniform", 0.0, 0.5]}
    assert tuning_domain("ydrop", "vision") == {"p": ["uniform", 0.0, 0.8]}
    assert tuning_domain("sparseout", "translation") == {"p": ["uniform", 0.0, 0.5], "q": ["uniform", 1.0, 3.0]}
    for kind in ("language_model", "translation"):
        for name in (n for n in tunable_baselines(kind)[1:] if tuning_domain(n, kind)):
            assert axes(tuning_domain(name, kind))[0].high <= 0.6, (kind, name)  # the Transformer space's reach
    # The mask baselines stop where the conv pattern space does (tests/tasks/test_baseline_pattern.py).
    for name in ("dropout", "spatial_dropout", "droppath", "dropblock", "variational_dropout"):
        assert axes(tuning_domain(name, "vision"))[0].high <= 0.7, name


def test_describe_domain():
    assert describe_domain(tuning_domain("dropblock", "vision")) == "p ~ U(0, 0.3), block_size in {3, 5, 7}"
    assert describe_domain(tuning_domain("sparseout", "vision")) == "p ~ U(0, 0.7), q ~ U(1, 4)"
    assert describe_domain({}) == "-"


def test_unknown_or_inapplicable_baselines_are_one_line():
    with pytest.raises(BaselineError, match="baseline 'dropblock' is not usable on a language_model task"):
        check_baselines(["none", "dropblock"], "language_model")
    with pytest.raises(BaselineError, match="baseline 'dropout' is listed twice"):
        check_baselines(["dropout", "dropout"], "vision")
