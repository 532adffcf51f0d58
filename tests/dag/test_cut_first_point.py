"""A family whose first point cannot finish in its seconds still scores in a real DAG run
(dag.test()): LightGBM on 26 classes stops growing in time to be predicted and returned, where it
used to be killed and the family to fail (``Family.deadline_share``; docs/benchmarks.md, "A cut
fit killed")."""

import numpy as np
import pandas as pd
import pytest

from dagml import settings
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag


def test_lightgbms_first_point_cut_by_its_seconds_on_26_classes_scores(airflow_db, tmp_path, monkeypatch):
    from sklearn.datasets import make_classification

    X, y = make_classification(12000, 16, n_informative=14, n_redundant=0, n_classes=26, n_clusters_per_class=1,
                               random_state=0)
    frame = pd.DataFrame(np.round(X * 3), columns=[f"x{i}" for i in range(16)])
    frame["y"] = [chr(ord("A") + c) for c in y]
    frame.to_csv(tmp_path / "letters.csv", index=False)
    config = f"""
source: {{uri: '{tmp_path}/letters.csv'}}
target: y
metric: log_loss
families: [{{name: lightgbm, max_evals: 3, seconds: 4}}]
ensemble: false
retries: 0
"""
    dag = dag_of(tmp_path, monkeypatch, "letters", config)
    run = dag.test(run_conf={"partition": "2026-05-01"})
    assert run.state == "success"

    results = ResultsStore(settings.results_url())
    row = next(r for r in results.leaderboard(dag.dag_id, "2026-05-01") if r["family"] == "sklearn:lightgbm")
    assert row["status"] == "ok", row["error"]
    first = results.trials(dag.dag_id, "2026-05-01", "sklearn:lightgbm")[0]
    assert first["status"] == "ok", first["error"]
