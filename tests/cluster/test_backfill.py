"""Backfills of a daily SQL-sourced dataset through Airflow's REST API and CLI, on the real cluster.

The config is tests/cluster/dags/configs_extra/sales.yaml (DAG automl__sales): each run reads one
day of the `sales` table in the cluster's scratch warehouse (the connection `warehouse`). The
rows' decision boundary turns a little every day, so a newer day's model beats an older one on
the newer day's test rows: the champion should end on the newest partition.
"""

import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from dagml.store.results import ResultsStore

pytestmark = pytest.mark.cluster
DAG_ID = "automl__sales"
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
RERUN = DAYS[1:3]  # re-run by the second backfill: both older than the champion's partition
ROWS_PER_DAY = 150
LATE_ROWS = 30


def _fill_warehouse(cluster) -> None:
    import math

    import numpy as np

    rng = np.random.default_rng(7)
    rows = []
    for i, day in enumerate(DAYS):
        angle = math.radians(35 * i)  # the boundary turns 35 degrees a day
        x = rng.normal(size=(ROWS_PER_DAY, 2))
        label = x @ np.array([math.cos(angle), math.sin(angle)]) > 0
        label ^= rng.random(ROWS_PER_DAY) < 0.03  # a little label noise: scores below 1, no ties
        rows += [{"day": day, "x1": float(a), "x2": float(b), "y": "yes" if t else "no"}
                 for (a, b), t in zip(x, label)]
    cluster.warehouse_insert("sales", rows, create=True)


def _add_late_rows(cluster, days: list[str], n: int) -> None:
    """Rows that arrive after a day was trained on: the reason to reprocess it."""
    import numpy as np

    rng = np.random.default_rng(11)
    rows = [{"day": day, "x1": float(a), "x2": float(b), "y": "yes" if a > b else "no"}
            for day in days for a, b in rng.normal(size=(n, 2))]
    cluster.warehouse_insert("sales", rows)


def _body(first: str, last: str, reprocess: str) -> dict:
    """Logical dates first..last: with a data-interval timetable, the run of D trains on [D, D + 1 day)."""
    return {"dag_id": DAG_ID, "from_date": f"{first}T00:00:00Z", "to_date": f"{last}T00:00:00Z",
            "reprocess_behavior": reprocess, "max_active_runs": 2, "dag_run_conf": {}}


def _log_tails(cluster, run_id: str) -> str:
    folder = cluster.home / "task-logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    return "\n".join(f"--- {p.relative_to(folder)}\n{p.read_text()[-1500:]}" for p in sorted(folder.rglob("*.log")))


def _backfill_cli(cluster, first: str, last: str, reprocess: str) -> dict:
    """`airflow backfill create`, as the README shows it, against the cluster's metadata DB."""
    env = {**os.environ, **cluster.env()}
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run([str(airflow), "backfill", "create", "--dag-id", DAG_ID, "--from-date", first,
                           "--to-date", last, "--reprocess-behavior", reprocess, "--max-active-runs", "2"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    backfills = cluster.request("GET", f"/api/v2/backfills?dag_id={DAG_ID}")["backfills"]
    return max(backfills, key=lambda b: b["id"])


def _backfill(cluster, body: dict | None = None, created: dict | None = None, timeout: float = 300) -> dict:
    """Create a backfill through the REST API (or take one created), wait until Airflow marks it
    complete; its runs by logical day."""
    backfill = created or cluster.request("POST", "/api/v2/backfills", body)
    deadline = time.time() + timeout
    while cluster.request("GET", f"/api/v2/backfills/{backfill['id']}")["completed_at"] is None:
        assert time.time() < deadline, f"backfill {backfill['id']} not complete after {timeout} s"
        time.sleep(2)
    runs = cluster.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"]
    by_day = {r["logical_date"][:10]: r for r in runs}
    failed = [r for r in by_day.values() if r["state"] != "success"]
    assert not failed, "\n".join(
        f"{r['dag_run_id']}: {r['state']}\n{_log_tails(cluster, r['dag_run_id'])}" for r in failed)
    return by_day


def _tries(cluster, run_id: str) -> dict:
    return {ti["task_id"]: ti["try_number"] for ti in cluster.task_instances(DAG_ID, run_id) if ti["map_index"] == -1}


def _duplicates(results: ResultsStore) -> dict:
    keys = {"dagml_runs": "dag_id, partition", "dagml_leaderboard": "dag_id, partition, family",
            "dagml_trials": "dag_id, partition, family, trial"}
    with results.engine.connect() as conn:
        return {table: conn.execute(sa.text(
            f"SELECT {key}, count(*) FROM {table} WHERE dag_id = :d GROUP BY {key} HAVING count(*) > 1"),
            {"d": DAG_ID}).all() for table, key in keys.items()}


def _counts(results: ResultsStore) -> dict:
    with results.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t} WHERE dag_id = :d"), {"d": DAG_ID}).scalar()
                for t in ("dagml_runs", "dagml_leaderboard", "dagml_trials", "dagml_champions")}


def _assert_champion_never_went_back(history: list[dict]) -> None:
    """In promotion order, no champion is of an older partition than the one it replaced."""
    partitions = [h["partition"] for h in history]
    assert partitions == sorted(partitions), partitions
    assert [h["id"] for h in history] == sorted(h["id"] for h in history)
    assert [h["promoted_at"] for h in history] == sorted(h["promoted_at"] for h in history)


def test_a_backfill_trains_each_day_and_a_reprocessing_backfill_rewrites_without_duplicates(cluster):
    _fill_warehouse(cluster)
    cluster.unpause(DAG_ID)
    results = cluster.results()

    # 1. a backfill over the four days: one run per day, by Airflow's scheduler on the Celery workers
    planned = cluster.request("POST", "/api/v2/backfills/dry_run", _body(DAYS[0], DAYS[-1], "none"))
    assert [b["logical_date"][:10] for b in planned["backfills"]] == DAYS
    first = _backfill(cluster, _body(DAYS[0], DAYS[-1], "none"))
    assert sorted(first) == DAYS
    assert {r["run_type"] for r in first.values()} == {"backfill"}
    for day, r in first.items():  # the run of D trains on the interval that starts at D
        next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        assert (r["data_interval_start"][:10], r["data_interval_end"][:10]) == (day, next_day)

    runs = {r["partition"]: r for r in results.runs(DAG_ID)}
    assert sorted(runs) == DAYS
    for day in DAYS:
        run = runs[day]
        assert run["status"] == "success" and run["run_id"] == first[day]["dag_run_id"], run
        assert run["profile"]["rows"] == ROWS_PER_DAY
        rows = results.leaderboard(DAG_ID, day)
        assert sorted(r["family"] for r in rows) == ["sklearn:dummy", "sklearn:elastic_net"], rows
        assert {r["status"] for r in rows} == {"ok"}
    champion = results.champion(DAG_ID)
    promoted = [d for d in DAYS if runs[d]["promoted"]]
    assert champion["partition"] == max(promoted) == DAYS[-1], (champion, promoted)
    history = results.champion_history(DAG_ID)
    _assert_champion_never_went_back(history)
    before_counts = _counts(results)
    assert before_counts["dagml_runs"] == len(DAYS) and before_counts["dagml_leaderboard"] == 2 * len(DAYS)

    load_tries = {d: _tries(cluster, first[d]["dag_run_id"])["load"] for d in RERUN}
    trials_before = {d: results.trials(DAG_ID, d, "sklearn:elastic_net") for d in RERUN}

    # 2. late rows arrive for two older days, and a second backfill, made with the CLI, reprocesses
    # their completed runs: Airflow clears and re-runs the same dag runs (same run ids, new tries);
    # dagml rewrites those two partitions in place
    _add_late_rows(cluster, RERUN, LATE_ROWS)
    created = _backfill_cli(cluster, RERUN[0], RERUN[-1], "completed")
    assert created["reprocess_behavior"] == "completed" and created["from_date"][:10] == RERUN[0]
    second = _backfill(cluster, created=created)
    assert sorted(second) == DAYS  # no new Airflow run: the two were cleared and re-run
    for day in RERUN:
        assert second[day]["dag_run_id"] == first[day]["dag_run_id"]
        assert second[day]["start_date"] > first[day]["start_date"]
        assert _tries(cluster, second[day]["dag_run_id"])["load"] > load_tries[day]
    for day in set(DAYS) - set(RERUN):
        assert second[day]["start_date"] == first[day]["start_date"]

    after = {r["partition"]: r for r in results.runs(DAG_ID)}
    assert sorted(after) == DAYS
    for day in DAYS:
        if day in RERUN:
            assert after[day]["started_at"] > runs[day]["finished_at"], (day, runs[day], after[day])
            assert after[day]["status"] == "success" and after[day]["run_id"] == runs[day]["run_id"]
            assert after[day]["profile"]["rows"] == ROWS_PER_DAY + LATE_ROWS  # the late rows were read
            assert after[day]["promoted"] is False
            assert f"older than the champion's ({DAYS[-1]})" in after[day]["promotion_reason"]
            rows = results.leaderboard(DAG_ID, day)
            assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
            assert all(r["updated_at"] > runs[day]["finished_at"] for r in rows)
        else:
            assert after[day]["started_at"] == runs[day]["started_at"]
    assert _duplicates(results) == {"dagml_runs": [], "dagml_leaderboard": [], "dagml_trials": []}
    assert _counts(results) == before_counts  # rewritten in place: not one row more, champions included
    assert results.champion(DAG_ID)["id"] == champion["id"]
    assert results.champion_history(DAG_ID) == history

    # 3. the history command lists the four partitions, read from the cluster's results DB
    env = {**os.environ, **cluster.env()}
    dagml = Path(sys.executable).parent / "dagml"
    done = subprocess.run([str(dagml), "history", "sales", "--json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = json.loads(done.stdout)
    assert lines["dag_id"] == DAG_ID
    assert [h["partition"] for h in lines["partitions"]] == DAYS
    assert {h["state"] for h in lines["partitions"]} == {"success"}
    assert {h["champion_partition"] for h in lines["partitions"] if h["partition"] in RERUN} == {DAYS[-1]}

    # 4. (last, so that a failure here leaves the rest verified) the reprocessed partitions were
    # searched again on their new rows, not resumed from the first run's trials
    for day in RERUN:
        trials = results.trials(DAG_ID, day, "sklearn:elastic_net")
        key = [(t["trial"], t["loss"], t["seconds"]) for t in trials]
        resumed = [line.strip() for p in (cluster.home / "task-logs" / f"dag_id={DAG_ID}"
                                          / f"run_id={first[day]['dag_run_id']}").rglob("*.log")
                   for line in p.read_text().splitlines() if "resuming" in line]
        assert key != [(t["trial"], t["loss"], t["seconds"]) for t in trials_before[day]], (
            f"{day}: the reprocessed run kept the first run's trials (same run id, so the same trials file): "
            f"{resumed}")
