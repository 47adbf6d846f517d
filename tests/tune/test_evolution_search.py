"""``search.controller: evolution`` end to end: a real Ray search whose later trials are mutations."""
import pytest
import torch

from tests.tiny import write_experiment
from tests.tune.test_search_e2e import autodropout, read_table, sampled_tokens

pytestmark = pytest.mark.slow


def test_an_evolution_search_runs_and_saves_its_population(tmp_path, cli_env):
    path = write_experiment(tmp_path, {"search": {"trials": 5, "concurrency": 1,
                                                  "searchers": {"evolution": {"population": 2, "sample_size": 1}}}})
    run_dir = tmp_path / "run"
    proc = autodropout("search", path, "--output", run_dir, "--controller", "evolution", env=cli_env)
    assert "search finished: 5 trials (0 failed)" in proc.stdout
    table = read_table(run_dir)
    tokens = sampled_tokens(table)
    assert [r["status"] for r in table] == ["done"] * 5
    state = torch.load(run_dir / "controller" / "state.pt", weights_only=True)
    assert state["config"] == {"population": 2, "sample_size": 1}
    assert [t for t, _ in state["members"]] == tokens[-2:]  # aging: the two most recent
