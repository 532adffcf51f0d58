"""Recurring retraining under dag.test(): SQL partitions of a scheduled DAG, the champion rules
across partitions, failures recorded once, waiting for a partition, the history command."""

import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dagml import settings
from dagml.cli import app
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    """A SQLite warehouse with 4 days of a learnable binary problem, as the connection `warehouse`."""
    import numpy as np

    url = f"sqlite:///{tmp_path}/warehouse.db"
    rng = np.random.default_rng(0)
    rows = []
    for day in DAYS:
        x = rng.normal(size=(120, 2))
        rows += [{"day": day, "x1": float(a), "x2": float(b), "y": "yes" if a + b > 0 else "no"} for a, b in x]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE sales (day TEXT, x1 REAL, x2 REAL, y TEXT)"))
        conn.execute(sa.text("INSERT INTO sales VALUES (:day, :x1, :x2, :y)"), rows)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", url)
    return engine


_dag = dag_of


SQL_CONFIG = """
source:
  sql: "SELECT x1, x2, y FROM sales WHERE day >= :start AND day < :end AND y != :never"
  conn_id: warehouse
  parameters: {start: "{{ data_interval_start | ds }}", end: "{{ data_interval_end | ds }}",
               never: "{{ dag_run.conf.get('never', '-') }}"}
target: y
metric: roc_auc
families: [elastic_net]
budget: {max_evals: 2}
schedule: "@daily"
start_date: 2026-01-01
retries: 0
"""


def _midnight(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


def _results():
    return ResultsStore(settings.results_url())


def _history(name):
    result = CliRunner().invoke(app, ["history", name, "--json"])
    assert result.exit_code == 0, result.output
    return {h["partition"]: h for h in json.loads(result.output)["partitions"]}


def test_sql_partitions_and_a_champion_only_newer_data_can_replace(airflow_db, warehouse, tmp_path, monkeypatch):
    dag = _dag(tmp_path, monkeypatch, "sales", SQL_CONFIG)
    # the run of 4 January trains on 3 January, the interval that just ended
    newer = dag.test(logical_date=_midnight("2026-01-04"))
    assert newer.state == "success"
    results = _results()
    run = results.run(dag.dag_id, "2026-01-03")
    assert run["status"] == "success" and run["promoted"] and run["run_id"] == newer.run_id
    assert results.champion(dag.dag_id)["partition"] == "2026-01-03"
    profile = run["profile"]
    assert profile["rows"] == 120

    # a backfill-like run of an older partition records its leaderboard but never takes the title
    older = dag.test(logical_date=_midnight("2026-01-02"))
    assert older.state == "success"
    run = results.run(dag.dag_id, "2026-01-01")
    assert run["promoted"] is False and "older than the champion's (2026-01-03)" in run["promotion_reason"]
    assert results.champion(dag.dag_id)["partition"] == "2026-01-03"
    assert results.latest_run(dag.dag_id)["partition"] == "2026-01-03"  # the newest partition, not the last run

    history = _history("sales")
    assert list(history) == ["2026-01-01", "2026-01-03"]
    assert history["2026-01-01"]["champion_partition"] == "2026-01-03"
    assert history["2026-01-01"]["winner"] == "sklearn:elastic_net" and history["2026-01-01"]["test_score"] > 0.8


def test_a_conf_value_carrying_sql_is_bound_and_cannot_change_the_query(airflow_db, warehouse, tmp_path, monkeypatch):
    dag = _dag(tmp_path, monkeypatch, "hostile", SQL_CONFIG)
    run = dag.test(logical_date=_midnight("2026-01-03"), run_conf={"never": "x' OR '1'='1"})
    assert run.state == "success"  # the hostile text is one bound value: y != it keeps every row
    assert _results().run(dag.dag_id, "2026-01-02")["profile"]["rows"] == 120
    with warehouse.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM sales")).scalar() == 480


def test_a_failed_run_says_why_once_everywhere(airflow_db, warehouse, tmp_path, monkeypatch):
    """The first failing task's one-line reason is the run's error; later tasks add none."""
    config = SQL_CONFIG.replace("FROM sales", "FROM sale")  # a typo in the table name
    dag = _dag(tmp_path, monkeypatch, "typo", config)
    run = dag.test(logical_date=_midnight("2026-01-03"))
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["load"] == "failed" and states["select"] == "upstream_failed" and states["report"] == "upstream_failed"
    recorded = _results().run(dag.dag_id, "2026-01-02")
    assert recorded["status"] == "failed" and recorded["failed_task"] == "load"
    assert recorded["error"].startswith("load: source connection 'warehouse', query 'SELECT x1, x2, y FROM sale ")
    assert "no such table: sale" in recorded["error"] and "\n" not in recorded["error"]
    board = CliRunner().invoke(app, ["leaderboard", "typo", "--json"])
    assert json.loads(board.output)["error"] == recorded["error"]
    assert _history("typo")["2026-01-02"]["error"] == recorded["error"]
    listed = CliRunner().invoke(app, ["list"], terminal_width=400)
    assert "no such table" in listed.output


def test_a_run_whose_promote_fails_ends_failed_naming_promote(airflow_db, warehouse, tmp_path, monkeypatch):
    from dagml import tasks

    def broken(*args, **kwargs):
        raise RuntimeError("the champions table is read-only")

    monkeypatch.setattr(tasks, "promote", broken)
    dag = _dag(tmp_path, monkeypatch, "no_promote", SQL_CONFIG)
    run = dag.test(logical_date=_midnight("2026-01-04"))
    assert run.state == "failed"
    recorded = _results().run(dag.dag_id, "2026-01-03")
    assert (recorded["status"], recorded["failed_task"]) == ("failed", "promote")
    assert recorded["error"] == "promote: the champions table is read-only"
    assert _results().champion(dag.dag_id) is None


WAIT_CONFIG = """
source: {{uri: "{folder}/{{{{ ds }}}}.csv", wait: {{timeout: 20s, poke_interval: 1s}}}}
target: y
families: [elastic_net]
budget: {{max_evals: 2}}
schedule: "@daily"
start_date: 2026-01-01
retries: 0
"""


def _write_partition(path: Path):
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 2))
    path.write_text("x1,x2,y\n" + "".join(f"{a},{b},{'yes' if a + b > 0 else 'no'}\n" for a, b in x))


def test_the_next_scheduled_partition_starts_from_the_best_points_of_the_previous_one(airflow_db, warehouse,
                                                                                      tmp_path, monkeypatch):
    config = SQL_CONFIG.replace("families: [elastic_net]", "families: [knn]").replace("max_evals: 2", "max_evals: 5")
    dag = _dag(tmp_path, monkeypatch, "warm", config)
    assert dag.test(logical_date=_midnight("2026-01-02")).state == "success"
    store = _results()
    first = store.trials(dag.dag_id, "2026-01-01", "sklearn:knn")
    assert first and not any(t["warm_start"] for t in first)
    best = sorted((t for t in first if t["status"] == "ok"), key=lambda t: (t["loss"], t["trial"]))[:2]
    assert dag.test(logical_date=_midnight("2026-01-03")).state == "success"
    second = store.trials(dag.dag_id, "2026-01-02", "sklearn:knn")
    warm = [t for t in second if t["warm_start"]]
    assert [t["vals"] for t in warm] == [t["vals"] for t in best]  # hyperopt's own points, choice indices
    assert [t["trial"] for t in warm] == [0, 1]  # evaluated before the family's first points and TPE


def test_a_database_that_drops_the_first_connection_is_read_on_airflows_retry(airflow_db, tmp_path, monkeypatch):
    """A connection error is retryable: the task fails its first try, Airflow retries it, and the
    run trains on the partition, with no error recorded."""
    from tests.services import DroppingProxy, scratch_database

    with scratch_database("postgres") as url, DroppingProxy(("127.0.0.1", 5432), drop=1) as proxy:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE sales (day TEXT, x1 REAL, x2 REAL, y TEXT)"))
            conn.execute(sa.text("INSERT INTO sales VALUES (:day, :x1, :x2, :y)"),
                         [{"day": "2026-01-02", "x1": float(i % 7) - 3, "x2": float(i % 5) - 2,
                           "y": "yes" if (i % 7) + (i % 5) > 5 else "no"} for i in range(120)])
        engine.dispose()
        database = url.rsplit("/", 1)[1]
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", f"postgres://postgres@127.0.0.1:{proxy.port}/{database}")
        config = SQL_CONFIG.replace("retries: 0", "retries: 1\nretry_delay: 1")
        dag = _dag(tmp_path, monkeypatch, "flaky", config)
        run = dag.test(logical_date=_midnight("2026-01-03"))
    assert proxy.dropped == 1
    assert run.state == "success"
    load = run.get_task_instance("load")
    assert load.state == "success" and load.try_number == 2
    recorded = _results().run(dag.dag_id, "2026-01-02")
    assert recorded["status"] == "success" and recorded["error"] is None


def test_a_partition_that_lands_late_is_waited_for(airflow_db, tmp_path, monkeypatch):
    dag = _dag(tmp_path, monkeypatch, "late", WAIT_CONFIG.format(folder=tmp_path))
    lands = threading.Timer(2.5, _write_partition, [tmp_path / "2026-01-02.csv"])
    lands.start()
    started = time.monotonic()
    run = dag.test(logical_date=_midnight("2026-01-03"))
    lands.join()
    assert run.state == "success" and time.monotonic() - started >= 2.5
    assert _results().run(dag.dag_id, "2026-01-02")["status"] == "success"


def test_a_partition_that_never_lands_fails_after_the_timeout_without_a_leaderboard(airflow_db, tmp_path,
                                                                                     monkeypatch):
    dag = _dag(tmp_path, monkeypatch, "never", WAIT_CONFIG.format(folder=tmp_path).replace("20s", "3s"))
    run = dag.test(logical_date=_midnight("2026-01-03"))
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["wait_for_source"] == "failed" and states["load"] == "upstream_failed"
    recorded = _results().run(dag.dag_id, "2026-01-02")
    assert (recorded["status"], recorded["failed_task"]) == ("failed", "wait_for_source")
    assert recorded["error"] == f"wait_for_source: partition 2026-01-02 of {tmp_path}/{{{{ ds }}}}.csv did not appear within 3 s"
    assert _results().leaderboard(dag.dag_id, "2026-01-02") == []
