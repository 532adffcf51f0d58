"""A holdout-validated partition under a whole-run budget, run as `airflow dags test` runs it
(dag.test()): the searches share 70% of ``total_seconds`` and the promoted model is refit on every
row with a target, above the 5,000 rows below which ``refit_full: auto`` always refits (docs
"Letter: the refit on all rows")."""

import numpy as np
import pandas as pd
import pytest

from dagml import settings
from dagml.config import REFIT_FULL_MAX_ROWS, REFIT_SHARE
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag
PARTITION = "2026-05-01"


def test_a_large_holdout_run_under_a_whole_run_budget_refits_its_champion_on_all_rows(airflow_db, tmp_path,
                                                                                     monkeypatch):
    rows = REFIT_FULL_MAX_ROWS + 3000  # its non-test rows are above the k-fold threshold too: holdout
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 4)), columns=["a", "b", "c", "d"])
    frame["y"] = np.where(frame["a"] + frame["b"] + rng.normal(scale=0.5, size=rows) > 0, "yes", "no")
    frame.to_csv(tmp_path / "large.csv", index=False)
    total = 6.0
    dag = dag_of(tmp_path, monkeypatch, "refit_budget", f"""
source: {{uri: '{tmp_path}/large.csv'}}
target: y
metric: roc_auc
families: [knn, elastic_net]
budget: {{total_seconds: {total}, max_evals: 10000}}
retries: 0
""")
    assert dag.test(run_conf={"partition": PARTITION}).state == "success"

    results = ResultsStore(settings.results_url())
    run = results.run(dag.dag_id, PARTITION)
    champion = results.champion(dag.dag_id)
    assert run["refit_rows"] == rows and champion["refit_rows"] == rows, (run["refit_error"], champion)
    assert champion["model_uri"] != champion["compared_model_uri"]
    board = {r["family"]: r for r in results.leaderboard(dag.dag_id, PARTITION)}
    assert board["sklearn:knn"]["fit_rows"] < 0.7 * rows  # the searches fit on the holdout's training rows
    longest = max(t["seconds"] or 0 for f in board if not f.startswith("ensemble")
                  for t in results.trials(dag.dag_id, PARTITION, f))
    spent = sum(r["search_seconds"] for f, r in board.items() if not f.startswith("ensemble"))
    assert spent <= (1 - REFIT_SHARE) * total + longest + 1.0, spent
