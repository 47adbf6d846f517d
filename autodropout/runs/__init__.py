"""Records of runs, readable without Ray: the typed :class:`Trial` that Ray carries, the search's
:class:`RunDir`, the trials table read back from Tune's folders, and export.

Nothing here imports Ray or anything above it, so a run can be read, exported and reported from a
copy of its folder on any machine.
"""
from autodropout.runs.export import Exported, ExportError, export_run
from autodropout.runs.results import (
    ENDED,
    TrialReadError,
    TrialRecord,
    read_trials,
    trial_id_of,
    trial_outcome,
    trial_statuses,
    write_trials_csv,
)
from autodropout.runs.run_dir import RunDir, RunDirError
from autodropout.runs.summary import SearchSummary
from autodropout.runs.trial import Trial

__all__ = ["ENDED", "ExportError", "Exported", "RunDir", "RunDirError", "SearchSummary", "Trial", "TrialReadError",
           "TrialRecord", "export_run", "read_trials", "trial_id_of", "trial_outcome", "trial_statuses",
           "write_trials_csv"]
