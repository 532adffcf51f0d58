"""CatBoost's native categorical columns in a real DAG run (dag.test()): its search, its fit on all
rows and the champion's refit all give it the categorical columns as codes it treats as
categories; `dagml score` predicts new rows, unseen values included, with that champion."""

import numpy as np
import pandas as pd
import pytest

from dagml import settings
from dagml.predictors import load_verified
from dagml.store.artifacts import ArtifactStore
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag


def _frame(n, seed, target=True):
    rng = np.random.default_rng(seed)
    city = rng.integers(0, 40, n)  # 40 values: above the one-hot cap, so target statistics
    colour = rng.choice(["red", "green", "blue"], n)
    df = pd.DataFrame({"x1": rng.normal(size=n), "city": [f"city {i}" for i in city], "colour": colour})
    if target:
        df["y"] = np.where((city % 2 == 0) ^ (colour == "red") ^ (rng.random(n) < 0.05), "yes", "no")
    return df


def test_catboost_searches_refits_and_scores_with_native_categoricals(airflow_db, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dagml.cli import app

    _frame(400, 0).to_csv(tmp_path / "train.csv", index=False)
    config = f"""
source: {{uri: '{tmp_path}/train.csv'}}
target: y
families: [{{name: catboost, max_evals: 1}}]
budget: {{max_evals: 1, seconds: 120}}
ensemble: false
retries: 0
"""
    dag = dag_of(tmp_path, monkeypatch, "native_cats", config)
    run = dag.test(run_conf={"partition": "2026-05-01"})
    assert run.state == "success"

    results = ResultsStore(settings.results_url())
    row = next(r for r in results.leaderboard(dag.dag_id, "2026-05-01") if r["family"] == "sklearn:catboost")
    assert row["status"] == "ok" and row["test_score"] > 0.9  # parity of the city: only as a category
    assert isinstance(row["params"]["rounds"], int)  # its fit on all rows reused the k-fold median rounds
    champion = results.champion(dag.dag_id)
    assert champion["refit_rows"] == 400  # the champion is the refit on every row with a target
    predictor = load_verified(ArtifactStore.from_settings(), champion["model_uri"], champion["model_sha256"])
    assert predictor.model.estimator.get_cat_feature_indices() == [0, 1]

    new = _frame(30, 1, target=False)
    new.loc[:4, "city"] = "Atlantis"  # unseen values
    new.loc[5:9, "colour"] = None
    new.to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(app, ["score", "native_cats", str(tmp_path / "new.csv"), "--output",
                                      str(tmp_path / "scored.csv")])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert len(scored) == 30 and set(scored["prediction"]) <= {"no", "yes"}
    np.testing.assert_allclose(scored[["proba_no", "proba_yes"]].sum(axis=1), 1.0, atol=1e-6)
