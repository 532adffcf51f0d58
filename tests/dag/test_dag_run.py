"""Real DAG runs with dag.test() on the embedded SQLite metadata DB."""

from pathlib import Path

import pytest

from dagml import settings
from dagml.predictors import load_verified
from dagml.store.artifacts import ArtifactStore
from dagml.store.results import ResultsStore

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.dag


def _stores():
    return ArtifactStore(settings.artifacts_root()), ResultsStore(settings.results_url())


def test_breast_cancer_end_to_end(airflow_db):
    from airflow.dag_processing.dagbag import DagBag
    from sklearn.datasets import load_breast_cancer

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["automl__breast_cancer"]
    run = dag.test(run_conf={"max_evals": 3, "seconds": 600})  # the trigger form's budget override
    assert run.state == "success"

    artifacts, results = _stores()
    latest = results.latest_run(dag.dag_id)
    assert latest["run_id"] == run.run_id and latest["status"] == "success"
    rows = {r["family"]: r for r in results.leaderboard(dag.dag_id, latest["partition"])}
    configured = {f"sklearn:{f}" for f in
                  ("elastic_net", "random_forest", "extra_trees", "hist_gradient_boosting", "svm", "knn", "dummy")}
    assert set(rows) - {"ensemble:greedy"} == configured  # and the ensemble row, when two or more families blend
    # the baseline's space has 2 points: it is searched once per point, not 3 times
    assert {(k, r["status"], r["n_trials"], r["error"]) for k, r in rows.items() if k in configured} == {
        (k, "ok", 2 if k == "sklearn:dummy" else 3, None) for k in configured}

    champion = results.champion(dag.dag_id)
    assert champion["test_score"] > rows["sklearn:dummy"]["test_score"]
    predictor = load_verified(artifacts, champion["model_uri"], champion["model_sha256"])
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    accuracy = (predictor.predict(X) == y.map({0: "malignant", 1: "benign"})).mean()
    assert accuracy > 0.9
    assert artifacts.exists(latest["report_uri"])


def test_bad_data_fails_the_run_and_promotes_nothing(airflow_db, tmp_path):
    """Through `airflow dags test`, as a user would, on a templated path rendered with the run's ds."""
    import os
    import shutil
    import subprocess
    import sys

    dags = tmp_path / "dags"
    (dags / "configs").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "automl.py", dags)
    (tmp_path / "2026-03-01.csv").write_text("a;b;label\n1;2;x\n3;4;y\n")
    (dags / "configs" / "semicolons.yaml").write_text(
        f"source: {{uri: '{tmp_path}/{{{{ ds }}}}.csv'}}\ntarget: label\nfamilies: [knn]\nretries: 0\n")
    proc = subprocess.run([sys.executable, "-m", "airflow", "dags", "test", "automl__semicolons", "2026-03-01"],
                          capture_output=True, text=True, env={**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)})
    assert proc.returncode != 0, proc.stdout[-2000:]
    _, results = _stores()
    assert results.champion("automl__semicolons") is None
    recorded = results.run("automl__semicolons", "2026-03-01")
    assert recorded is not None, f"no run recorded; airflow dags test printed:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
    assert recorded["status"] == "failed"
    assert "is it ';'-separated? Set source.options.sep" in recorded["error"]
    assert recorded["selected_family"] is None


def test_every_kind_lands_on_one_leaderboard_scored_on_the_same_test_rows(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    from dagml.metrics import get_metric
    from dagml.tasks import _test_score

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["automl__breast_cancer_all_kinds"]
    assert {t.task_id: t.queue for t in dag.tasks if t.task_id.startswith("search_")} == {
        "search_sklearn": "default", "search_r": "r", "search_spark": "spark"}
    # two families of each kind (Spark's boosting, a job per iteration, and R's slowest left out)
    families = ["elastic_net", "hist_gradient_boosting", "r:glmnet", "r:ranger", "spark:linear", "spark:random_forest"]
    run = dag.test(run_conf={"max_evals": 2, "seconds": 600, "families": families})
    assert run.state == "success"

    artifacts, results = _stores()
    latest = results.latest_run(dag.dag_id)
    rows = results.leaderboard(dag.dag_id, latest["partition"])
    assert {r["family"] for r in rows} - {"ensemble:greedy"} == {
        "sklearn:dummy", *(f if ":" in f else f"sklearn:{f}" for f in families)}  # and the baseline
    assert {r["family"].split(":")[0] for r in rows} - {"ensemble"} == {"sklearn", "r", "spark"}
    assert [r["family"] for r in rows if r["status"] != "ok"] == []
    # every stored model, whatever its kind, loads through one interface and reproduces its
    # recorded test score on this run's test rows
    run_uri = rows[0]["model_uri"].rsplit("/", 2)[0]  # <root>/<dag>/<partition>/<run>/<load>/<family>/model.tar
    df = artifacts.read_parquet(f"{run_uri}/data.parquet")
    roles = artifacts.read_parquet(f"{run_uri}/split.parquet")["role"].to_numpy()
    recipe = artifacts.read_json(f"{run_uri}/recipe.json")
    for row in rows:
        predictor = load_verified(artifacts, row["model_uri"], row["model_sha256"])
        score = _test_score(predictor, df, roles, recipe, get_metric(latest["metric"]))
        assert score == pytest.approx(row["test_score"], abs=1e-9), row["family"]
