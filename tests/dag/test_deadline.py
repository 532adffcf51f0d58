"""A search's seconds are a bound in a real DAG run: a first point too large for the budget is
stopped at its deadline, still scored, and kept at the size it reached (dag.test(), as a user's
`airflow dags test` runs it)."""

from pathlib import Path

import pytest

from dagml import settings
from dagml.store.results import ResultsStore

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.dag
SECONDS = 8  # the trial (seeded: a point of 90% of the features) grows about one tree a second here


def test_a_forest_too_large_for_the_budget_is_cut_short_and_kept_at_its_size(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from sklearn.datasets import make_classification

    import pandas as pd

    X, y = make_classification(40_000, 40, n_informative=20, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(label=y)
    frame.to_parquet(tmp_path / "large.parquet")
    configs = tmp_path / "configs"
    configs.mkdir()
    # any point of the forest's space (25 to 300 trees) takes well over the budget on these rows
    (configs / "large.yaml").write_text(
        f"source: {{uri: '{tmp_path}/large.parquet'}}\ntarget: label\ntask: binary\nmetric: roc_auc\n"
        f"families: [random_forest]\nbudget: {{max_evals: 1, seconds: {SECONDS}}}\nensemble: false\nretries: 0\n")
    monkeypatch.setenv("DAGML_CONFIGS", str(configs))
    bag = DagBag(dag_folder=str(REPO / "dags" / "automl.py"))
    assert bag.import_errors == {}
    run = bag.dags["automl__large"].test(run_conf={"partition": "2026-03-01"})
    assert run.state == "success"

    rows = {r["family"]: r for r in ResultsStore(settings.results_url()).leaderboard("automl__large", "2026-03-01")}
    forest = rows["sklearn:random_forest"]
    assert forest["status"] == "ok" and forest["n_trials"] == 1 and forest["val_score"] > 0.8, forest
    # the trees it grew in time: fewer than any point of the space has (25 to 300)
    assert 0 < forest["params"]["n_estimators"] < 25, forest["params"]
    assert forest["search_seconds"] < SECONDS * 1.5
