"""A study folder with hand-made unit results (no Ray, no training): for the statistics, report,
pattern-file and publishing tests."""
from pathlib import Path

from autodropout.runs import Trial
from autodropout.runs.experiment import load_experiment
from autodropout.search_spaces import ConvSpace
from autodropout.study import unit_results as results
from autodropout.study.baselines import tuning_domain
from autodropout.study.plan import ARMS, WARM_ARMS, StudyDir, arm_of, is_warm
from autodropout.study.request import make_plan
from autodropout.tasks import Regularization, task_sites
from autodropout.tune.lattice import TUNER
from tests.helpers import trial_for_tokens
from tests.tiny import write_experiment

SEEDS = (1000, 1001, 1002)
#: (val per seed, test per seed) of every method of the final evaluation.
SCORES = {
    "lstm-s0": ([0.91] * 3, [0.90, 0.92, 0.94]),
    "lstm-s1": ([0.95] * 3, [0.86, 0.88, 0.84]),  # best validation: the selected lstm pattern
    "random-s0": ([0.90] * 3, [0.85, 0.85, 0.85]),
    "random-s1": ([0.80] * 3, [0.87, 0.83, 0.85]),
    "none": ([0.80] * 3, [0.80, 0.83, 0.81]),
    "dropout": ([0.86] * 3, [0.84, 0.87, 0.85]),
}
#: The same for a pattern imported with ``--transfer-from digits-wrn-lstm``.
IMPORTED = {"digits-wrn-lstm": ([0.85] * 3, [0.86, 0.86, 0.89])}
#: The same for the warm-started arms (``warm=True``).
WARM = {
    "lstm-warm-s0": ([0.96] * 3, [0.91, 0.93, 0.92]),  # validates better than every cold lstm: published
    "lstm-warm-s1": ([0.90] * 3, [0.88, 0.88, 0.88]),
    "random-warm-s0": ([0.92] * 3, [0.86, 0.87, 0.85]),
    "random-warm-s1": ([0.91] * 3, [0.85, 0.85, 0.86]),
}
#: The same for a regularized evolution arm (``evolution=True``).
EVOLUTION = {
    "evolution-s0": ([0.93] * 3, [0.89, 0.89, 0.89]),
    "evolution-s1": ([0.89] * 3, [0.87, 0.88, 0.86]),
}
#: Where the fake warm arms started.
START = results.WarmStart("dropout:p=0.2", "dropout", 0.8, ("tune/main/dropout",))


def _cost(trials: int, seconds: float) -> results.Cost:
    # each trial ran the tiny schedule's 2 epochs
    return results.Cost(trials, seconds, seconds, 0.0, 2 * trials, seconds / 2)


def _head(unit, finished: str) -> dict:
    return dict(unit=unit.id, target=unit.target, name=unit.name, metric="accuracy", mode="max", finished=finished)


def _trials_fields(unit, best_trial: Trial, rewards: list[float]) -> dict:
    best = max(range(len(rewards)), key=rewards.__getitem__)
    trials = tuple(results.TrialRow(i, f"t{i}", "done", r, r, 10.0, None, None) for i, r in enumerate(rewards))
    return dict(**_head(unit, "2026-01-01T00:00:00+00:00"), seed=0, trials=trials,
                best=results.Best(f"t{best}", rewards[best], rewards[best], best_trial.to_config()), best_at={},
                cost=_cost(len(rewards), 10.0 * len(rewards)))


def search_result(unit, best_trial: Trial, rewards: list[float], **extra) -> results.SearchResult:
    """A search's result whose trials have ``rewards`` and whose best is ``best_trial``."""
    return results.SearchResult(**_trials_fields(unit, best_trial, rewards), **extra)


def tune_result(unit, best_trial: Trial, rewards: list[float], **extra) -> results.TuneResult:
    """A tuning's result whose trials have ``rewards`` and whose best is ``best_trial``."""
    return results.TuneResult(**_trials_fields(unit, best_trial, rewards), **extra)


def fake_study(folder: Path, finished: bool = True, imported: bool = False, warm: bool = False,
               evolution: bool = False) -> StudyDir:
    """A study of tests.tiny's vision experiment, budget 2, 2 search seeds, 3 evaluation seeds,
    baselines none and dropout; with ``finished`` its final evaluation has the :data:`SCORES`; with
    ``imported`` it also scores the shipped ``digits-wrn-lstm`` (:data:`IMPORTED`); with ``warm`` it
    has the warm-started arms too (:data:`WARM`, started at :data:`START`); with ``evolution`` a
    regularized evolution arm (:data:`EVOLUTION`)."""
    experiment_file = write_experiment(folder)
    plan = make_plan(experiment_file, budget=2, search_seeds=2, eval_seeds=3, baselines=["none", "dropout"],
                     transfer_from=list(IMPORTED) if imported else [],
                     arms=ARMS + ("evolution",) * evolution + WARM_ARMS * warm)
    study = StudyDir.create(folder / "study", plan)
    task = load_experiment(experiment_file).task
    space = ConvSpace(num_sites=3)
    shapes = tuple(tuple(s) for s in task_sites(task).shapes)
    for n, unit in enumerate(plan.search_units()):
        trial = trial_for_tokens(task, space, space.sample(n), seed=plan.search_seeds[int(unit.name[-1])])
        arm = arm_of(unit.name)
        result = search_result(unit, trial, [0.5 + 0.1 * n, 0.4 + 0.1 * n], arm=arm, search_seed=trial.seed,
                               site_shapes=shapes, start=START if is_warm(arm) else None)
        study.write_result(unit, result)
    tune = plan.unit("tune", "main", "dropout")
    dropout = Trial(task, Regularization(name="dropout", params={"p": 0.2}), 0, label="dropout")
    study.write_result(tune, tune_result(tune, dropout, [0.7, 0.8], baseline="dropout",
                                         domain=tuning_domain("dropout", "vision"), tuner=TUNER))
    if finished:
        study.write_result(plan.unit("eval", "main"), _evaluation(plan.unit("eval", "main"), imported, warm,
                                                                  evolution))
    return study


def _evaluation(unit, imported: bool, warm: bool, evolution: bool = False) -> results.EvalResult:
    methods, cells = [], []
    searched = {**SCORES, **(WARM if warm else {}), **(EVOLUTION if evolution else {})}
    for label, (val, test) in {**searched, **(IMPORTED if imported else {})}.items():
        arm, _, k = label.rpartition("-s") if label in searched and "-s" in label else (label, "", "")
        regularization = {"dropout": "dropout(p=0.2)", **{name: "learned conv pattern (3 sites)" for name in IMPORTED}}
        methods.append(results.EvalMethod(label, arm, int(k) if k else None, label if label in IMPORTED else "t1", 0.9,
                                  regularization.get(arm, arm), {"p": 0.2} if arm == "dropout" else None, None))
        cells += [results.Cell(label, s, 5.0, v, t, None) for s, v, t in zip(SEEDS, val, test)]
    return results.EvalResult(**_head(unit, "2026-01-02T00:00:00+00:00"), methods=tuple(methods), missing=(),
                      cells=tuple(cells), cost=_cost(len(cells), 5.0 * len(cells)))
