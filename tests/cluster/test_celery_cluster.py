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


def test_a_killed_worker_s_search_is_retried_elsewhere_and_nothing_is_lost(cluster):
    """Runs last: it leaves the cluster with one worker."""
    from tests.cluster.conftest import kill_worker_running

    dag_id = "automl__wine"
    first = cluster.trigger(dag_id, {"max_evals": 2, "seconds": 300})
    assert cluster.wait(dag_id, first) == "success"
    results = _results(cluster)
    earlier = results.champion(dag_id)

    run_id = cluster.trigger(dag_id, {"max_evals": 10_000, "seconds": 12})  # every search runs ~12 s
    killed = kill_worker_running(cluster, dag_id, run_id, "search_sklearn")
    assert cluster.wait(dag_id, run_id, timeout=900) == "success"

    tis = {(ti["task_id"], ti["map_index"]): ti for ti in cluster.task_instances(dag_id, run_id)}
    retried = tis[(killed["task_id"], killed["map_index"])]
    assert retried["state"] == "success" and retried["try_number"] == 2
    assert retried["hostname"] != killed["hostname"]

    run = results.latest_run(dag_id)
    rows = results.leaderboard(dag_id, run["partition"])
    assert sorted(r["family"] for r in rows) == sorted(
        f"sklearn:{f}" for f in ("elastic_net", "random_forest", "hist_gradient_boosting", "knn", "dummy"))
    assert all(r["status"] == "ok" for r in rows)
    history = results.champion_history(dag_id)
    assert earlier["id"] in {h["id"] for h in history}
    assert {h["model_sha256"] for h in history if h["id"] == earlier["id"]} == {earlier["model_sha256"]}
