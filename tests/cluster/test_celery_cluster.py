"""dagml on a real CeleryExecutor cluster: Postgres, Redis, api-server, scheduler, two workers."""

import pytest

from dagml.store.results import ResultsStore

pytestmark = pytest.mark.cluster

# Three of breast_cancer's seven families: searches long enough for a broker restart or a killed
# worker to land in the middle of one, fewer of them to wait for.
FEW = ("elastic_net", "knn", "random_forest")
FEW_ROWS = sorted(f"sklearn:{f}" for f in ("dummy", *FEW))  # and the baseline's, always searched


def _rows_of(results: ResultsStore, dag_id: str, run_id: str) -> list[dict]:
    """The leaderboard of one DAG run: a manual run of an unscheduled DAG trains on the partition of
    the day it was triggered, so the runs of one day share it and each replaces the one before."""
    run = next(r for r in results.runs(dag_id) if r["run_id"] == run_id)
    return [r for r in results.leaderboard(dag_id, run["partition"], run_id)
            if r["family"] != "ensemble:greedy"]  # the families' rows; select may add the ensemble's


def test_a_run_triggered_through_rest_succeeds_on_celery_workers(cluster):
    # trigger form values in the conf: the run uses them and records them with its row
    conf = {"max_evals": 2, "seconds": 300, "seed": 7, "note": "through the REST API"}
    run_id = cluster.trigger("automl__breast_cancer", conf)
    assert cluster.wait("automl__breast_cancer", run_id) == "success"

    tis = cluster.task_instances("automl__breast_cancer", run_id)
    assert {ti["state"] for ti in tis} == {"success"}
    hosts = {ti["hostname"] for ti in tis}
    assert all(h.endswith(("-worker-1", "-worker-2")) for h in hosts), hosts
    searches = [ti for ti in tis if ti["task_id"] == "search_sklearn"]
    assert {ti["rendered_map_index"] for ti in searches} == {
        f"sklearn:{f}" for f in ("elastic_net", "random_forest", "extra_trees", "hist_gradient_boosting", "svm",
                                 "knn", "dummy")}

    results = cluster.results()
    assert results.engine.dialect.name == "postgresql"
    run = results.latest_run("automl__breast_cancer")
    assert run["run_id"] == run_id and run["status"] == "success"
    assert {k: run["trigger"][k] for k in conf} == conf
    rows = _rows_of(results, "automl__breast_cancer", run_id)
    assert len(rows) == 7 and all(r["status"] == "ok" and r["n_trials"] == 2 for r in rows)
    assert results.champion("automl__breast_cancer") is not None


def test_a_redis_restart_during_a_run_does_not_stop_it(cluster, redis_server):
    """The broker is the tests' own Redis: restarting it touches nothing else on the machine."""
    import subprocess
    import time

    dag_id = "automl__breast_cancer"  # unscheduled: unpausing it starts no run of its own
    run_id = cluster.trigger(dag_id, {"max_evals": 10_000, "seconds": 8, "families": list(FEW)})
    deadline = time.time() + 300
    while not any(ti["task_id"] == "search_sklearn" and ti["state"] == "running"
                  for ti in cluster.task_instances(dag_id, run_id)):
        assert time.time() < deadline, "no search started"
        time.sleep(0.5)
    redis_server["proc"].terminate()
    redis_server["proc"].wait(10)
    time.sleep(3)
    redis_server["proc"] = subprocess.Popen(redis_server["cmd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert cluster.wait(dag_id, run_id, timeout=900) == "success"
    rows = _rows_of(cluster.results(), dag_id, run_id)
    assert sorted(r["family"] for r in rows) == FEW_ROWS and all(r["status"] == "ok" for r in rows)


REASON = "RuntimeError: always_raises raises by design"  # tests/cluster/dags/raising.py (not imported here:
# it would register its family in this process, for the tests that run after)


def _by_family(cluster, dag_id: str, run_id: str) -> dict:
    return {ti["rendered_map_index"] or ti["task_id"]: ti for ti in cluster.task_instances(dag_id, run_id)}


def test_a_family_that_always_raises_fails_after_its_retries_and_the_others_are_selected(cluster):
    """tests/cluster/dags: sklearn:always_raises raises before its first trial, on every try."""
    dag_id = "automl__one_family_raises"
    run_id = cluster.trigger(dag_id, {})
    assert cluster.wait(dag_id, run_id) == "success"

    tis = _by_family(cluster, dag_id, run_id)
    assert tis["sklearn:always_raises"]["state"] == "failed"
    assert tis["sklearn:always_raises"]["try_number"] == 2  # retries: 1
    assert {tis[k]["state"] for k in ("sklearn:elastic_net", "sklearn:dummy", "select", "promote", "report")} == {
        "success"}

    results = cluster.results()
    rows = {r["family"]: r for r in _rows_of(results, dag_id, run_id)}
    assert sorted(rows) == ["sklearn:always_raises", "sklearn:dummy", "sklearn:elastic_net"]  # one row each
    assert rows["sklearn:always_raises"]["status"] == "failed"
    assert rows["sklearn:always_raises"]["error"] == REASON
    assert rows["sklearn:elastic_net"]["status"] == rows["sklearn:dummy"]["status"] == "ok"
    champion = results.champion(dag_id)
    assert champion["family"] in {"sklearn:elastic_net", "sklearn:dummy"} and champion["run_id"] == run_id


def test_when_every_family_raises_the_run_fails_and_nothing_is_promoted(cluster):
    dag_id = "automl__every_family_raises"
    run_id = cluster.trigger(dag_id, {})
    assert cluster.wait(dag_id, run_id) == "failed"

    tis = _by_family(cluster, dag_id, run_id)
    assert {tis[k]["state"] for k in ("sklearn:always_raises", "sklearn:dummy", "select")} == {"failed"}
    assert tis["sklearn:dummy"]["try_number"] == 2
    assert {tis[k]["state"] for k in ("promote", "report")} == {"upstream_failed"}

    results = cluster.results()
    rows = _rows_of(results, dag_id, run_id)
    assert len(rows) == 2 and {(r["status"], r["error"]) for r in rows} == {("failed", REASON)}
    assert results.champion(dag_id) is None and results.champion_history(dag_id) == []
    run = results.latest_run(dag_id)
    assert run["run_id"] == run_id and run["status"] == "failed" and "every family failed" in run["error"]


def test_a_rest_conf_with_a_family_the_config_does_not_allow_fails_the_first_task_naming_it(cluster):
    """The server validates the conf against the Params' schema; which families a config allows is
    dagml's to know, so the run starts and its first task, on a worker, refuses it."""
    dag_id = "automl__breast_cancer"
    conf = {"partition": "2026-02-02", "families": ["random_forest", "lightgbm"]}
    run_id = cluster.trigger(dag_id, conf)
    assert cluster.wait(dag_id, run_id) == "failed"

    tis = {ti["task_id"]: ti for ti in cluster.task_instances(dag_id, run_id) if ti["map_index"] in (-1, None)}
    assert tis["load"]["state"] == "failed" and tis["load"]["try_number"] == 1  # bad input: no retry
    assert tis["profile"]["state"] == "upstream_failed"
    run = cluster.results().run(dag_id, "2026-02-02")
    assert run["run_id"] == run_id and run["status"] == "failed" and run["failed_task"] == "load"
    assert run["error"].startswith("load: trigger param 'families': 'lightgbm' not among this config's families")


def test_a_killed_worker_s_search_is_retried_elsewhere_and_nothing_is_lost(cluster):
    """Runs last: it leaves the cluster with one worker."""
    from tests.cluster.conftest import kill_worker_running

    dag_id = "automl__breast_cancer"
    results = cluster.results()
    earlier = results.champion(dag_id)  # crowned by the tests before
    assert earlier is not None

    run_id = cluster.trigger(dag_id, {"max_evals": 10_000, "seconds": 12, "families": list(FEW)})  # ~12 s each
    killed = kill_worker_running(cluster, dag_id, run_id, "search_sklearn")
    assert cluster.wait(dag_id, run_id, timeout=900) == "success"

    tis = {(ti["task_id"], ti["map_index"]): ti for ti in cluster.task_instances(dag_id, run_id)}
    retried = tis[(killed["task_id"], killed["map_index"])]
    assert retried["state"] == "success" and retried["try_number"] == 2
    assert retried["hostname"] != killed["hostname"]

    rows = _rows_of(results, dag_id, run_id)
    assert sorted(r["family"] for r in rows) == FEW_ROWS
    assert all(r["status"] == "ok" for r in rows)
    history = results.champion_history(dag_id)
    assert earlier["id"] in {h["id"] for h in history}
    assert {h["model_sha256"] for h in history if h["id"] == earlier["id"]} == {earlier["model_sha256"]}
