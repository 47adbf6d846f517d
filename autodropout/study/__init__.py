"""``autodropout study``: do learned patterns beat what a user would do instead, with confidence intervals?

One command runs, on the search's own Ray machinery: the LSTM controller and random search in the same
space at equal budget (several search seeds each), every hand-designed regularizer that applies with
its rate tuned by a Ray Tune searcher at the same budget, the final evaluation of every arm's best on
new training seeds and the held-out test split, transfer targets, and a report with tables and plots.
See ``docs/study.md``.

>>> from autodropout.study import run_study
>>> study = run_study("digits_wrn_quick", budget=16, search_seeds=2, eval_seeds=5)  # doctest: +SKIP
"""
from autodropout.core.stats import Summary, paired, summarize
from autodropout.study.baselines import DEFAULTS, DOMAINS, BaselineError, default_baselines
from autodropout.study.driver import rebuild_report, resume_study, run_study
from autodropout.study.plan import StudyDir, StudyError, StudyPlan
from autodropout.study.provenance import publish
from autodropout.study.request import StudyRequest, make_plan

__all__ = ["DEFAULTS", "DOMAINS", "BaselineError", "StudyDir", "StudyError", "StudyPlan", "StudyRequest",
           "Summary",
           "default_baselines", "make_plan", "paired", "publish", "rebuild_report", "resume_study", "run_study",
           "summarize"]
