"""Asset-triggered runs and failures recorded by the failure callback, on the real cluster.

- tests/cluster/dags/configs_extra/asset_sales.yaml (DAG automl__asset_sales) runs on events of
  the asset warehouse://asset_sales_ready posted through the REST API, on the day named by
  "partition" in their extra; a successful run emits the champion's asset event
  dagml://asset_sales/champion. asset_sales_keyed.yaml is the same dataset on a partitioned
  asset schedule of the same asset: a run per partition_key the events carry.
- tests/cluster/dags/configs_extra/slow_load.yaml (DAG automl__slow_load, retries: 0) sleeps in
  its load query, so the worker running it can be killed on its last try.

The cluster fixture turns scheduled runs off (use_job_schedule = False), and in Airflow 3.3 that
also stops the scheduler from creating asset-triggered runs (SchedulerJobRunner._do_scheduling
skips _create_dagruns_for_dags, which creates those too): the asset tests restart the scheduler
with it on (class-scoped fixture) and off again after them. Only unpaused DAGs get scheduled
runs and every DAG is paused at creation, so when this module runs first (as it does, by name)
no cron-scheduled DAG gets a run meanwhile.

The asset tests run in file order: an asset-triggered run consumes every event of its asset
posted since the previous asset-triggered run, so each test's event must be the only new one.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
from pathlib import Path

import pytest
import sqlalchemy as sa

from dagml.settings import _connection_url
from dagml.store.results import ResultsStore

pytestmark = pytest.mark.cluster
ASSET_DAG = "automl__asset_sales"
KEYED_DAG = "automl__asset_sales_keyed"
UPSTREAM = "warehouse://asset_sales_ready"
ROWS = {"2026-01-02": 80, "2026-01-03": 120, "2026-01-04": 100}  # a different count a day: which day was read
SLOW_DAG = "automl__slow_load"


def _fill_warehouse(cluster) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    rows = []
    for day, n in ROWS.items():
        x = rng.normal(size=(n, 2))
        label = (x[:, 0] + x[:, 1] > 0) ^ (rng.random(n) < 0.05)
        rows += [{"day": day, "x1": float(a), "x2": float(b), "y": "yes" if t else "no"} for (a, b), t in zip(x, label)]
    cluster.warehouse_insert("asset_sales", rows, create=True)


def _asset_id(cluster, uri: str, timeout: float = 60) -> int:
    deadline = time.time() + timeout
    while True:
        found = cluster.request("GET", f"/api/v2/assets?uri_pattern={urllib.parse.quote(uri, safe='')}")["assets"]
        # Airflow normalizes the URI (warehouse://x becomes warehouse://x/); the name keeps it as given
        exact = [a["id"] for a in found if a["name"] == uri]
        if exact:
            return exact[0]
        assert time.time() < deadline, f"no asset {uri} registered after {timeout} s: {found}"
        time.sleep(1)


def _runs(cluster, dag_id: str) -> dict[str, dict]:
    return {r["dag_run_id"]: r for r in
            cluster.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]}


def _post_event(cluster, body: dict) -> dict:
    """Post an event of the upstream asset through the REST API; the event as Airflow stored it."""
    return cluster.request("POST", "/api/v2/assets/events", {"asset_id": _asset_id(cluster, UPSTREAM), **body})


def _new_run(cluster, dag_id: str, before: set, timeout: float) -> dict | None:
    """The run of ``dag_id`` not in ``before`` (None if none starts within ``timeout``)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = [r for run_id, r in _runs(cluster, dag_id).items() if run_id not in before]
        if new:
            assert len(new) == 1, new
            return new[0]
        time.sleep(1)
    return None


def _log_tails(cluster, dag_id: str, run_id: str) -> str:
    folder = cluster.home / "task-logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    return "\n".join(f"--- {p.relative_to(folder)}\n{p.read_text()[-1500:]}" for p in sorted(folder.rglob("*.log")))


def _task_log(cluster, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> str:
    return (cluster.home / "task-logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
            / f"attempt={attempt}.log").read_text()


def _assert_champion_published(cluster, results: ResultsStore, dag_id: str, run_id: str, partition: str) -> dict:
    """The run's publish_champion emitted one event of dagml://<name>/champion, its extra the champion's row."""
    champion = results.champion(dag_id)
    assert champion["run_id"] == run_id and champion["partition"] == partition, champion
    uri = f"dagml://{dag_id.removeprefix('automl__')}/champion"
    events = cluster.request("GET", f"/api/v2/assets/events?asset_id={_asset_id(cluster, uri)}&source_run_id="
                                    f"{urllib.parse.quote(run_id, safe='')}")["asset_events"]
    assert len(events) == 1, events
    published = events[0]
    assert (published["source_dag_id"], published["source_task_id"]) == (dag_id, "publish_champion")
    assert published["name"] == uri
    assert published["extra"] == {k: champion[k] for k in ("family", "partition", "run_id", "metric", "test_score",
                                                           "model_uri", "model_sha256", "refit_rows")}
    assert len(published["extra"]["model_sha256"]) == 64
    return published


def _history(cluster, name: str) -> dict:
    env = {**os.environ, **cluster.env()}
    dagml = Path(sys.executable).parent / "dagml"
    done = subprocess.run([str(dagml), "history", name, "--json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="class")
def asset_scheduling(cluster):
    """The scheduler, restarted with use_job_schedule on (asset-triggered runs), and off again after."""
    from tests.cluster.conftest import restart_scheduler

    restart_scheduler(cluster, {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"})
    yield
    restart_scheduler(cluster)  # as the fixture started it


@pytest.mark.usefixtures("asset_scheduling")
class TestAssetTriggeredRuns:
    def test_an_asset_event_with_a_partition_in_its_extra_trains_on_that_day_and_publishes_the_champion(self, cluster):
        _fill_warehouse(cluster)
        cluster.unpause(ASSET_DAG)
        scoring = "score__asset_sales"  # scheduled on the champion asset: a paused DAG would queue nothing
        cluster.unpause(scoring)
        before = set(_runs(cluster, ASSET_DAG))

        event = _post_event(cluster, {"extra": {"partition": "2026-01-03"}})
        assert event["extra"] == {"partition": "2026-01-03", "from_rest_api": True}
        run = _new_run(cluster, ASSET_DAG, before, timeout=60)
        assert run is not None, "the upstream asset event queued no run"
        run_id = run["dag_run_id"]
        assert run["run_type"] == "asset_triggered"
        state = cluster.wait(ASSET_DAG, run_id, timeout=300)
        assert state == "success", _log_tails(cluster, ASSET_DAG, run_id)

        # dagml recorded the run under the event's partition, and read that day's rows (120 of them)
        results = cluster.results()
        recorded = {r["run_id"]: r for r in results.runs(ASSET_DAG)}[run_id]
        assert recorded["partition"] == "2026-01-03"
        assert recorded["status"] == "success" and recorded["error"] is None
        assert recorded["profile"]["rows"] == ROWS["2026-01-03"]
        rows = results.leaderboard(ASSET_DAG, "2026-01-03", run_id)
        assert sorted(r["family"] for r in rows) == ["sklearn:dummy", "sklearn:elastic_net"]
        assert {r["status"] for r in rows} == {"ok"}
        assert recorded["promoted"] is True  # the dataset's first champion

        # the champion's asset event carries what a consumer needs, as the results DB has it
        _assert_champion_published(cluster, results, ASSET_DAG, run_id, "2026-01-03")

        # and it triggers the scoring DAG, which scores that day's rows with the new champion
        scored = None
        deadline = time.time() + 180
        while scored is None and time.time() < deadline:
            runs = [r for r in _runs(cluster, scoring).values() if r["state"] in ("success", "failed")]
            scored = runs[0] if runs else None
            time.sleep(2)
        assert scored is not None and scored["run_type"] == "asset_triggered"
        assert scored["state"] == "success", _log_tails(cluster, scoring, scored["dag_run_id"])
        import pandas as pd

        out = pd.read_csv(cluster.home / "scores" / "2026-01-03.csv")
        champion = results.champion(ASSET_DAG)
        assert len(out) == ROWS["2026-01-03"] and set(out["day"].astype(str)) == {"2026-01-03"}
        assert set(out["prediction"]) <= {"yes", "no"} and {"proba_yes", "proba_no"} <= set(out.columns)
        assert set(out["champion_sha256"]) == {champion["model_sha256"]}

    def test_an_asset_event_without_a_partition_fails_the_run_and_says_why(self, cluster):
        cluster.unpause(ASSET_DAG)
        before = set(_runs(cluster, ASSET_DAG))
        _post_event(cluster, {"extra": {"note": "no partition here"}})
        run = _new_run(cluster, ASSET_DAG, before, timeout=60)
        assert run is not None, "the upstream asset event queued no run"
        run_id = run["dag_run_id"]
        assert cluster.wait(ASSET_DAG, run_id, timeout=180) == "failed"

        tis = {ti["task_id"]: ti for ti in cluster.task_instances(ASSET_DAG, run_id) if ti["map_index"] == -1}
        assert tis["load"]["state"] == "failed" and tis["load"]["try_number"] == 1  # a permanent error: no retry
        assert "the asset events that triggered this run carry no partition" in _task_log(
            cluster, ASSET_DAG, run_id, "load")

        # the run's recorded error, in the results DB and in `dagml history`
        deadline = time.time() + 30  # the failure callback runs in the task's process, after the task
        while True:
            recorded = [r for r in cluster.results().runs(ASSET_DAG) if r["run_id"] == run_id]
            if recorded or time.time() > deadline:
                break
            time.sleep(1)
        # load fails before its run row exists: the failure callback writes a failed row of its own
        assert recorded, f"the failed run {run_id} has no dagml run row"
        assert recorded[0]["status"] == "failed" and recorded[0]["failed_task"] == "load"
        assert "carry no partition" in recorded[0]["error"]
        lines = [h for h in _history(cluster, "asset_sales")["partitions"] if h["run_id"] == run_id]
        assert len(lines) == 1 and lines[0]["state"] == "failed" and "carry no partition" in lines[0]["error"]

    def test_an_asset_event_with_a_partition_key_runs_the_partitioned_schedule_on_that_day(self, cluster):
        """Airflow 3.3 takes a partition_key on POST /api/v2/assets/events. asset_sales_keyed
        (partitioned: true) runs on it; asset_sales, on the same asset with a plain schedule, does not:
        Airflow queues a non-partitioned DAG only for events without a key. (Last of the asset_sales
        tests: that unqueued event would be consumed by the plain DAG's next run.)"""
        cluster.unpause(KEYED_DAG)
        before, before_plain = set(_runs(cluster, KEYED_DAG)), set(_runs(cluster, ASSET_DAG))
        event = _post_event(cluster, {"partition_key": "2026-01-04"})
        assert event["partition_key"] == "2026-01-04"
        # the plain DAG's queue row would be written with the event, and deleted with the creation
        # of the run consuming it: neither means it was not queued at all
        try:
            queued = cluster.request("GET", f"/api/v2/dags/{ASSET_DAG}/assets/queuedEvents")["queued_events"]
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
            queued = []
        assert queued == [] and set(_runs(cluster, ASSET_DAG)) == before_plain

        run = _new_run(cluster, KEYED_DAG, before, timeout=60)
        assert run is not None, "the partition_key event queued no run of the partitioned DAG"
        run_id = run["dag_run_id"]
        assert run["partition_key"] == "2026-01-04"
        assert cluster.wait(KEYED_DAG, run_id, timeout=300) == "success", _log_tails(cluster, KEYED_DAG, run_id)

        results = cluster.results()
        recorded = {r["run_id"]: r for r in results.runs(KEYED_DAG)}[run_id]
        assert recorded["partition"] == "2026-01-04" and recorded["status"] == "success"
        assert recorded["profile"]["rows"] == ROWS["2026-01-04"]
        _assert_champion_published(cluster, results, KEYED_DAG, run_id, "2026-01-04")
        assert set(_runs(cluster, ASSET_DAG)) == before_plain


def _sleeping_load_query(cluster) -> bool:
    """Whether slow_load's query sleeps on the warehouse now (its load is past start_run). The load
    streams through a server-side cursor: the statement running is a FETCH, so match the wait."""
    from airflow.models.connection import Connection

    engine = sa.create_engine(_connection_url(Connection(uri=cluster.warehouse_url)))
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'")).scalar())
    finally:
        engine.dispose()


def test_a_worker_killed_on_the_last_try_of_load_fails_the_run_and_the_run_row_says_so(cluster):
    """kill -9 the worker running slow_load's load (retries: 0) while its query sleeps. The scheduler
    fails the task once its heartbeat stops (20 s on this cluster), and the dag-processor runs its
    failure callback, which records the run's failure. The worker is started again for the modules
    after this one (it comes up while this test waits)."""
    from tests.cluster.conftest import kill_worker_running, start_service, wait_worker_ready, worker_ready_count

    partition = "2026-02-01"
    run_id = cluster.trigger(SLOW_DAG, {"partition": partition})
    results = cluster.results()
    deadline = time.time() + 180  # kill it mid-query: after load recorded the run as running
    while not _sleeping_load_query(cluster):
        assert time.time() < deadline, "slow_load's query never started"
        time.sleep(0.5)
    started = results.run(SLOW_DAG, partition)
    assert started["run_id"] == run_id and started["status"] == "running"

    killed = kill_worker_running(cluster, SLOW_DAG, run_id, "load", timeout=10)
    worker = "-".join(killed["hostname"].rsplit("-", 2)[-2:])
    readies = worker_ready_count(cluster, worker)
    # started again at once: the killed task's Celery message is not redelivered to it (acks_late,
    # and the broker's visibility timeout is 24 h), and it is ready by the end of this test
    start_service(cluster, worker)
    try:
        assert cluster.wait(SLOW_DAG, run_id, timeout=240) == "failed"
        tis = {ti["task_id"]: ti for ti in cluster.task_instances(SLOW_DAG, run_id) if ti["map_index"] == -1}
        assert tis["load"]["state"] == "failed" and tis["load"]["try_number"] == 1
        assert {tis[t]["state"] for t in ("profile", "prepare", "select", "promote", "report")} == {
            "upstream_failed"}

        deadline = time.time() + 60  # the dag-processor runs the callback some seconds after
        while True:
            recorded = results.run(SLOW_DAG, partition)
            if recorded["status"] != "running" or time.time() > deadline:
                break
            time.sleep(1)
        assert recorded["run_id"] == run_id
        assert recorded["status"] == "failed", (recorded, _callback_log(cluster))
        assert recorded["failed_task"] == "load"
        assert recorded["error"].startswith("load: the task's process or worker ended without reporting"), recorded
        assert recorded["finished_at"] is not None

        lines = [h for h in _history(cluster, "slow_load")["partitions"] if h["run_id"] == run_id]
        assert len(lines) == 1
        assert (lines[0]["partition"], lines[0]["state"], lines[0]["failed_task"]) == (partition, "failed", "load")
        assert "ended without reporting" in lines[0]["error"]
    finally:
        wait_worker_ready(cluster, worker, readies)


def _callback_log(cluster) -> str:
    """The dag-processor's log lines about callbacks (where a failing on_failure_callback says why)."""
    files = sorted((cluster.home / "airflow" / "logs" / "dag_processor").rglob("*.log"))
    lines = [line for f in files for line in f.read_text(errors="replace").splitlines()
             if "callback" in line.lower() or "dagml" in line]
    return "\n".join(lines[-30:])
