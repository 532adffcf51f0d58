"""The ensemble's candidates in a real DAG run (dag.test()): every family with out-of-fold
predictions, not only the five best, so a family ranked below the fifth can be a member of the
stored ensemble when its errors complement the leaders' (docs/benchmarks.md, "The ensemble's
candidates": on satellite at 300 s, kNN ranked below the boosting families and still helped)."""

import numpy as np
import pandas as pd
import pytest

from dagml import ensemble, settings
from dagml.config import BASELINE_FAMILY
from dagml.metrics import get_metric
from dagml.predictors import EnsemblePredictor, load_verified
from dagml.selection import rank
from dagml.store.artifacts import ArtifactStore
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag

FAMILIES = ["random_forest", "extra_trees", "hist_gradient_boosting", "lightgbm", "xgboost", "elastic_net"]


def _frame(n=300, seed=0):
    """A sum of four linear terms, which trees only approximate by steps, plus a step, which a
    linear model only approximates by a slope: the linear model ranks last of the six families,
    and its errors are the ones the trees do not make."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 6))
    y = 2 * (x[:, 0] + x[:, 3] + x[:, 4] + x[:, 5]) + 5 * (x[:, 1] > 0) + rng.normal(scale=0.1, size=n)
    return pd.DataFrame({**{f"x{i + 1}": x[:, i] for i in range(6)}, "y": y})


def test_a_family_ranked_below_the_fifth_is_a_member_of_the_stored_ensemble(airflow_db, tmp_path, monkeypatch):
    _frame().to_csv(tmp_path / "train.csv", index=False)
    config = f"""
source: {{uri: '{tmp_path}/train.csv'}}
target: y
families: [{", ".join(FAMILIES)}]
budget: {{max_evals: 3, seconds: 600}}
retries: 0
"""
    dag = dag_of(tmp_path, monkeypatch, "six_families", config)
    run = dag.test(run_conf={"partition": "2026-05-01"})
    assert run.state == "success"

    rows = ResultsStore(settings.results_url()).leaderboard(dag.dag_id, "2026-05-01")
    families = [r for r in rank(rows, get_metric("rmse"))
                if r["status"] == "ok" and r["family"] not in (ensemble.FAMILY, BASELINE_FAMILY)]
    assert len(families) == len(FAMILIES)
    below_fifth = {r["family"] for r in families[5:]}
    row = next(r for r in rows if r["family"] == ensemble.FAMILY)
    assert row["status"] == "ok", row["error"]
    assert below_fifth & set(row["params"]), (
        f"members {row['params']}, families best first {[r['family'] for r in families]}")

    stored = load_verified(ArtifactStore.from_settings(), row["model_uri"], row["model_sha256"])
    assert isinstance(stored, EnsemblePredictor)
    members = {m["family"]: m["weight"] for m in stored.manifest["members"]}
    assert members == row["params"] and below_fifth & set(members)
