"""A family whose first point cannot finish in its seconds still scores in a real DAG run
(dag.test()):

- LightGBM on 26 classes stops growing in time to be predicted and returned, where it used to be
  killed and the family to fail (``Family.deadline_share``; docs/benchmarks.md, "A cut fit killed");
- HistGradientBoosting on 26 classes stops at its deadline, its early-stopping score (docs "A grown
  fit's last call, again");
- elastic net's pure-L2 first points on one-hot-like columns fit each of their 5 folds in a short
  share (docs "Elastic net's first points"; with saga they outlasted it on satellite and dna).
"""

import numpy as np
import pandas as pd
import pytest

from dagml import settings
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag
PARTITION = "2026-05-01"


def letters(tmp_path):
    from sklearn.datasets import make_classification

    X, y = make_classification(12000, 16, n_informative=14, n_redundant=0, n_classes=26, n_clusters_per_class=1,
                               random_state=0)
    frame = pd.DataFrame(np.round(X * 3), columns=[f"x{i}" for i in range(16)])
    frame["y"] = [chr(ord("A") + c) for c in y]
    frame.to_csv(tmp_path / "letters.csv", index=False)
    return "letters.csv", "y", "log_loss"


def one_hot_classes(tmp_path):
    """As dna: 1,900 rows of 360 binary columns and 3 classes (k-fold below 5,000 rows)."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(1900, 360))
    y = np.argmax(X[:, :20] @ rng.normal(size=(20, 3)) + rng.gumbel(size=(1900, 3)), axis=1)
    frame = pd.DataFrame(X, columns=[f"b{i}" for i in range(360)]).assign(kind=np.array(["ei", "ie", "n"])[y])
    frame.to_parquet(tmp_path / "dna.parquet")
    return "dna.parquet", "kind", "log_loss"


CASES = {  # family: (data, its seconds)
    "lightgbm": (letters, 4),
    "hist_gradient_boosting": (letters, 4),
    "elastic_net": (one_hot_classes, 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_first_point_cut_by_the_familys_seconds_scores(name, airflow_db, tmp_path, monkeypatch):
    data, seconds = CASES[name]
    file, target, metric = data(tmp_path)
    config = f"""
source: {{uri: '{tmp_path}/{file}'}}
target: {target}
metric: {metric}
families: [{{name: {name}, max_evals: 4, seconds: {seconds}}}]
ensemble: false
retries: 0
"""
    dag = dag_of(tmp_path, monkeypatch, "cut", config)
    run = dag.test(run_conf={"partition": PARTITION})
    assert run.state == "success"

    results = ResultsStore(settings.results_url())
    row = next(r for r in results.leaderboard(dag.dag_id, PARTITION) if r["family"] == f"sklearn:{name}")
    assert row["status"] == "ok", row["error"]
    trials = results.trials(dag.dag_id, PARTITION, f"sklearn:{name}")
    assert trials[0]["status"] == "ok", trials[0]["error"]
