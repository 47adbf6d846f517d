"""The study's best patterns as pattern files with their provenance, and publishing one with the package.

``patterns/ARM.json`` in the study folder holds a search arm's patterns (one per search seed), ranked
by mean validation metric over the evaluation seeds; rank 1 is the arm's selected pattern and its
``source.study`` records how it was found and how it scored on test (alone, paired against ``none``
and the best tuned baseline, and on each transfer target). ``autodropout study --publish STUDY_DIR
NAME`` copies the rank 1 of the LSTM arm (cold or warm-started, whichever validates better) into the
shipped patterns (:mod:`autodropout.patterns`).
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from autodropout.core.stats import paired, summarize
from autodropout.patterns import check_name, patterns_dir, shipped
from autodropout.search_spaces import PatternSet, RankedPattern, load_patterns, save_patterns
from autodropout.study.plan import MAIN, StudyDir, StudyError
from autodropout.study.results import MethodScores, TargetSummary

#: The arms whose pattern can be published: the LSTM controller's, cold or warm-started.
PUBLISHED_ARMS = ("lstm", "lstm-warm")


def pattern_file(study: StudyDir, arm: str) -> Path:
    return study.path / "patterns" / f"{arm}.json"


def published_arm(study: StudyDir) -> str | None:
    """The LSTM arm (cold or warm) whose selected pattern has the best mean validation metric over the
    evaluation seeds (``None`` before a pattern file exists): the pattern ``--publish`` ships."""
    best: tuple[float, str] | None = None
    for arm in (a for a in PUBLISHED_ARMS if pattern_file(study, a).is_file()):
        chosen = load_patterns(pattern_file(study, arm)).source["study"]
        key = chosen["val"]["mean"] * (1 if chosen["mode"] == "max" else -1)
        if best is None or key > best[0]:
            best = (key, arm)
    return None if best is None else best[1]


def write_pattern_files(study: StudyDir, summaries: list[TargetSummary]) -> list[Path]:
    """``patterns/ARM.json`` for each search arm evaluated on the searched task."""
    main = next((t for t in summaries if t.key == MAIN), None)
    if main is None:
        return []
    evaluation = study.read_result(study.plan.unit("eval", MAIN))
    written = []
    for arm in (a for a in main.arms if a.search and a.members):
        sign = 1 if main.mode == "max" else -1
        ranked = sorted(arm.members, key=lambda m: -sign * statistics.fmean(m.val.values()) if m.val else 0.0)
        searches = [study.read_result(study.plan.unit("search", MAIN, m.label)) for m in ranked]
        best = searches[0].best
        space = best.trial.space
        entries = [RankedPattern(rank, s.best.trial.regularization.pattern, s.best.reward, s.best.trial_id)
                   for rank, s in enumerate(searches, start=1)]
        shapes = searches[0].site_shapes
        source = {"experiment": main.experiment, "trial_id": best.trial_id, "metric": main.metric,
                  "value": best.value, "reward": best.reward, "created": evaluation.finished,
                  "site_shapes": None if shapes is None else [list(s) for s in shapes],
                  "study": study_provenance(study, summaries, arm.name, ranked[0])}
        path = pattern_file(study, arm.name)
        path.parent.mkdir(exist_ok=True)
        written.append(save_patterns(path, entries, space, source=source))
    return written


def study_provenance(study: StudyDir, summaries: list[TargetSummary], arm: str, chosen: MethodScores) -> dict[str, Any]:
    """``source.study`` of ``arm``'s selected pattern (see :mod:`autodropout.search_spaces.pattern_json`)."""
    plan = study.plan
    main = summaries[0]
    versus = []
    for reference in dict.fromkeys(["none", main.best_baseline]):
        ref = main.arm(reference) if reference else None
        if ref is not None and ref.test_by_seed:
            versus.append({"reference": reference, **paired(chosen.test, ref.test_by_seed).to_json()})
    transfer = []
    for target in summaries[1:]:
        mine = target.arm(arm)
        if mine is not None and mine.test_by_seed:
            transfer.append({"target": target.experiment, "metric": target.metric, "mode": target.mode,
                             "tuning_budget": plan.tuning_budget(target.key), "test": mine.test.to_json(),
                             "versus": [{"reference": c.reference, **c.diff.to_json()}
                                        for c in target.comparisons if c.arm == arm]})
    return {"experiment": main.experiment, "arm": arm, "budget": plan.budget,
            "search_seed": plan.search_seeds[chosen.search_seed], "search_seeds": list(plan.search_seeds),
            "eval_seeds": list(plan.eval_seeds), "metric": main.metric, "mode": main.mode,
            "test": summarize(list(chosen.test.values())).to_json(),
            "val": summarize(list(chosen.val.values())).to_json(),
            "versus": versus, "transfer": transfer}


def publish(study_dir: str | Path, name: str) -> Path:
    """Copy the study's best LSTM pattern (:func:`published_arm`), with its provenance, into the shipped
    patterns as ``NAME``."""
    check_name(name)
    study = StudyDir.open(study_dir)
    arm = published_arm(study)
    if arm is None:
        raise StudyError(f"{study.path}: nothing to publish yet (no patterns/lstm.json or patterns/lstm-warm.json: "
                         "the final evaluation on the searched task has not finished)")
    source_file = pattern_file(study, arm)
    target = patterns_dir() / f"{name}.json"
    if name in shipped() or target.exists():
        raise StudyError(f"pattern {name!r} is already published ({target}); choose another name or remove that file")
    target.parent.mkdir(parents=True, exist_ok=True)
    patterns: PatternSet = load_patterns(source_file)
    best = patterns.patterns[0]
    source = dict(patterns.source)
    source["study"] = {**source["study"], "name": name, "study": study.path.name}
    return save_patterns(target, [RankedPattern(1, best.pattern, best.reward, best.trial_id)], patterns.space,
                         source=source)
