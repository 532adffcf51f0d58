"""dagml on a real CeleryExecutor cluster: Postgres, Redis, api-server, scheduler, two workers."""

import pytest

from dagml.store.results import ResultsStore
from dagml.settings import _connection_url

pytestmark = pytest.mark.cluster


def _results(cluster) -> ResultsStore:
    from airflow.models.connection import Connection

    return ResultsStore(_connection_url(Connection(uri=cluster.env()["AIRFLOW_CONN_DAGML_RESULTS"])))


def test_a_run_triggered_through_rest_succeeds_on_celery_workers(cluster):
    run_id = cluster.trigger("automl__breast_cancer", {"max_evals": 2, "seconds": 300})
    assert cluster.wait("automl__breast_cancer", run_id) == "success"

    tis = cluster.task_instances("automl__breast_cancer", run_id)
    assert {ti["state"] for ti in tis} == {"success"}
    hosts = {ti["hostname"] for ti in tis}
    assert all(h.endswith(("-worker-1", "-worker-2")) for h in hosts), hosts
    searches = [ti for ti in tis if ti["task_id"] == "search_sklearn"]
    assert {ti["rendered_map_index"] for ti in searches} == {
        f"sklearn:{f}" for f in ("elastic_net", "random_forest", "extra_trees", "hist_gradient_boosting", "svm",
                                 "knn", "dummy")}

    results = _results(cluster)
    assert results.engine.dialect.name == "postgresql"
    run = results.latest_run("automl__breast_cancer")
    assert run["run_id"] == run_id and run["status"] == "success"
    rows = results.leaderboard("automl__breast_cancer", run["partition"])
    assert len(rows) == 7 and all(r["status"] == "ok" and r["n_trials"] == 2 for r in rows)
    assert results.champion("automl__breast_cancer") is not None
