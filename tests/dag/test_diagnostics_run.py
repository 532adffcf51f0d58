"""The chosen model's diagnostics in a real DAG run (dag.test()): permutation importance plans its
rows and repeats from the speed the champion predicted the test rows at, in promote."""

import pytest

from dagml import diagnostics, settings
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag
CONFIG = """
source: {uri: sklearn://breast_cancer}
target: target
task: binary
metric: roc_auc
families: [knn]
budget: {max_evals: 2, seconds: 60}
ensemble: false
retries: 0
"""


def test_a_champion_too_slow_for_the_importance_budget_gets_fewer_rows_and_one_repeat(
        airflow_db, tmp_path, monkeypatch):
    # a budget no model meets: the plan falls to its floor, as it did for dna's 25 s ensemble
    monkeypatch.setattr(diagnostics, "IMPORTANCE_SECONDS", 1e-6)
    dag = dag_of(tmp_path, monkeypatch, "slow_importance", CONFIG)
    run = dag.test(run_conf={"partition": "2026-04-01"})
    assert run.state == "success"
    stored = ResultsStore(settings.results_url()).diagnostics(dag.dag_id, "2026-04-01")
    assert stored["rows"] > diagnostics.MIN_IMPORTANCE_ROWS  # the test rows: more than the floor
    assert (stored["importance_rows"], stored["importance_repeats"]) == (diagnostics.MIN_IMPORTANCE_ROWS, 1)
    assert len(stored["importance"]) == 30  # every input column still has its importance
