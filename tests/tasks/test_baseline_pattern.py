"""The pattern spaces contain the baselines they are judged against (issue 20, point 3).

For every preset (the embedded ones and the paper-scale ones) and every mask baseline the study tunes,
anywhere in its tuning domain, placed where the baseline goes, the space has a pattern acting at the
same set of sites with every per-site expected drop rate within 0.02; the baselines that are not masks
act on sites patterns act on too; and no task gives a baseline a site that patterns cannot reach.
"""
import numpy as np
import pytest

from autodropout.core.errors import PatternError
from autodropout.runs.experiment import find_experiment, presets
from autodropout.search_spaces import SUBLAYERS, ConvLayerPattern, Pattern, TransformerLayerPattern
from autodropout.search_spaces.transformer import EmbeddingPattern
from autodropout.study.baselines import NONE, default_baselines, tunable_baselines, tuning_domain
from autodropout.tasks import Regularization, task_class, task_sites
from autodropout.tasks.baseline_pattern import MASKS, TOLERANCE, pattern_like, site_rates

PRESETS = presets()
#: Rates per uniform domain checked: 0.01 apart, ends included.
STEP = 0.01


def _preset(name):
    config = find_experiment(name).task
    sites = task_sites(config)
    return config.kind, sites, sites.search_space()


def _domain_points(name, task_kind):
    """Every combination of the tuned parameters: uniform ones on a 0.01 grid, choices each."""
    grids = {}
    for key, (kind, *args) in tuning_domain(name, task_kind).items():
        grids[key] = (np.round(np.arange(args[0], args[1] + STEP / 2, STEP), 4).tolist() if kind == "uniform"
                      else list(args[0]))
    keys = list(grids)
    for combo in np.array(np.meshgrid(*grids.values(), indexing="ij"), dtype=object).reshape(len(keys), -1).T:
        yield {k: (float(v) if isinstance(v, float) else v) for k, v in zip(keys, combo)}


def _granularity(kind):
    return "conv" if task_class(kind).site_kind == "conv" else "span"


def _mask_cases():
    for name in PRESETS:
        kind = find_experiment(name).task.kind
        for baseline in tunable_baselines(kind):
            if _granularity(kind) in MASKS.get(baseline, {}):
                yield name, baseline


@pytest.mark.parametrize("preset", PRESETS)
def test_every_default_mask_baseline_of_a_study_has_a_pattern_form(preset):
    kind = find_experiment(preset).task.kind
    assert {b for b in default_baselines(kind) if b in MASKS} <= {b for p, b in _mask_cases() if p == preset}


@pytest.mark.parametrize(("preset", "baseline"), list(_mask_cases()))
def test_every_mask_baseline_has_a_pattern_with_the_same_rates_at_the_same_sites(preset, baseline):
    kind, sites, space = _preset(preset)
    worst = 0.0
    for params in _domain_points(baseline, kind):
        regularization = Regularization(name=baseline, params=params)
        pattern = pattern_like(regularization, space, sites.layout, sites.shapes)
        space.validate(pattern)
        want = site_rates(regularization, sites.layout, sites.shapes)
        got = site_rates(Regularization(pattern=pattern), sites.layout, sites.shapes)
        assert set(got) == set(want), (params, sorted(set(got) ^ set(want)))
        worst = max(worst, max(abs(got[key] - rate) for key, rate in want.items()))
        assert worst <= TOLERANCE + 1e-9, (params, worst)  # a rate halfway between two grid rates is 0.02 off


def _all_on(space) -> Pattern:
    """A pattern of ``space`` that acts at every site it can reach."""
    first = {name: choices[0] for name, choices in space.decision_types}
    if space.kind == "conv":
        rate = next(r for r in dict(space.decision_types)["rate"] if r is not None)
        layer = ConvLayerPattern(**{**first, "unit": "element", "rate": rate, "residual": True})
        return Pattern("conv", (layer,) * space.num_sites)
    layer = TransformerLayerPattern(**{**first, **{name: True for name in SUBLAYERS}})
    e_first = {n: c[0] for n, c in space.embedding_types}
    embedding = EmbeddingPattern(**{**e_first, "unit": "feature"})
    return Pattern("transformer", (layer,) * space.num_sites, embeddings=(embedding,) * space.num_embeddings)


@pytest.mark.parametrize("preset", PRESETS)
def test_no_baseline_acts_where_patterns_cannot(preset):
    kind, sites, space = _preset(preset)
    pattern = _all_on(space)
    space.validate(pattern)
    reachable = set(site_rates(Regularization(pattern=pattern), sites.layout, sites.shapes))
    for baseline in tunable_baselines(kind):
        if baseline == NONE:
            continue
        params = {key: (args[1] / 2 if kind_ == "uniform" else args[0][0])
                  for key, (kind_, *args) in tuning_domain(baseline, kind).items()}
        placed = set(site_rates(Regularization(name=baseline, params=params), sites.layout, sites.shapes))
        assert placed and placed <= reachable, (baseline, sorted(placed - reachable))


@pytest.mark.parametrize("preset", PRESETS)
def test_baselines_that_are_not_masks_act_at_the_mask_baselines_sites(preset):
    kind, sites, space = _preset(preset)
    reference = pattern_like(Regularization(name="dropout", params={"p": 0.1}), space, sites.layout, sites.shapes)
    pattern_sites = set(site_rates(Regularization(pattern=reference), sites.layout, sites.shapes))
    for baseline in tunable_baselines(kind):
        if baseline == NONE or _granularity(kind) in MASKS.get(baseline, {}):
            continue
        params = {key: (args[1] / 2 if kind_ == "uniform" else args[0][0])
                  for key, (kind_, *args) in tuning_domain(baseline, kind).items()}
        rates = site_rates(Regularization(name=baseline, params=params), sites.layout, sites.shapes)
        assert set(rates) == pattern_sites, baseline


def test_pattern_like_refuses_regularizers_that_are_not_masks():
    _, sites, space = _preset("lm_transformer_quick")
    with pytest.raises(PatternError, match="ydrop.*not a dropout mask"):
        pattern_like(Regularization(name="ydrop", params={"p": 0.3}), space, sites.layout, sites.shapes)


def test_pattern_like_dropout_on_the_language_model():
    _, sites, space = _preset("lm_transformer_quick")
    pattern = pattern_like(Regularization(name="dropout", params={"p": 0.135}), space, sites.layout, sites.shapes)
    assert all(layer.sublayers == ("attn_output", "ffn_output") and layer.span == 1 for layer in pattern.layers)
    assert len(pattern.embeddings) == 1 and pattern.embeddings[0].unit == "feature"
    rates = site_rates(Regularization(pattern=pattern), sites.layout, sites.shapes)
    assert max(abs(rate - 0.135) for rate in rates.values()) <= TOLERANCE
