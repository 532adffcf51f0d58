"""Threads as configured, on the real Celery cluster: every search records threadpoolctl's report of
the native libraries it loaded (OpenMP and BLAS), 1 thread each by default, 2 for a family with
`threads: 2`, whose search task held 2 slots of the pool cluster.py sized to the cores.

The config is tests/cluster/dags/configs_extra/threads.yaml (DAG automl__threads)."""

from datetime import datetime

import pytest

pytestmark = pytest.mark.cluster

DAG_ID = "automl__threads"
POOL = "dagml_search"
THREADS = {"sklearn:elastic_net": 1, "sklearn:dummy": 1, "sklearn:hist_gradient_boosting": 2,
           "sklearn:random_forest": 2}


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _log_text(cluster, run_id: str, ti: dict) -> str:
    from urllib.parse import quote

    path = (f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{ti['task_id']}/logs/"
            f"{ti['try_number']}?map_index={ti['map_index']}&full_content=true")
    content = cluster.request("GET", path)["content"]
    return "\n".join(str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in content)


def test_searches_use_the_threads_they_are_given_and_hold_as_many_pool_slots(cluster):
    pool = cluster.request("GET", f"/api/v2/pools/{POOL}")
    assert pool["description"].startswith("dagml searches")
    if pool["slots"] < 2:  # a machine of one core: room for a search of 2 threads all the same
        cluster.request("PATCH", f"/api/v2/pools/{POOL}?update_mask=slots", {"slots": 2})
    slots = max(2, pool["slots"])

    run_id = cluster.trigger(DAG_ID, {})
    assert cluster.wait(DAG_ID, run_id, timeout=900) == "success"

    searches = [ti for ti in cluster.task_instances(DAG_ID, run_id) if ti["task_id"].startswith("search_")]
    held = {ti["rendered_map_index"]: (ti["task_id"], ti["pool"], ti["pool_slots"]) for ti in searches}
    assert held == {
        "sklearn:elastic_net": ("search_sklearn", POOL, 1), "sklearn:dummy": ("search_sklearn", POOL, 1),
        "sklearn:hist_gradient_boosting": ("search_sklearn_t2", POOL, 2),
        "sklearn:random_forest": ("search_sklearn_t2", POOL, 2)}
    # the pool holds the searches running at once to its slots: never more threads than cores
    for ti in searches:
        start, end = _when(ti["start_date"]), _when(ti["end_date"])
        alongside = [o for o in searches if _when(o["start_date"]) < end and start < _when(o["end_date"])]
        assert sum(o["pool_slots"] for o in alongside) <= slots, (ti["rendered_map_index"], alongside)

    rows = {r["family"]: r for r in cluster.results().leaderboard(DAG_ID, run_id=run_id,
                                                                  partition=_partition(cluster, run_id))}
    assert set(rows) == set(THREADS)
    for family, threads in THREADS.items():
        report = rows[family]["threads"]
        assert rows[family]["status"] == "ok", rows[family]["error"]
        assert {e["user_api"] for e in report} >= {"openmp", "blas"}, (family, report)  # both loaded
        assert {e["num_threads"] for e in report} == {threads}, (family, report)

    for ti in searches:  # and each search says so in its log
        family = ti["rendered_map_index"]
        log = _log_text(cluster, run_id, ti)
        assert f"{family}: {THREADS[family]} thread(s) configured; native threads used by its fits: " in log, log[-3000:]


def _partition(cluster, run_id: str) -> str:
    runs = [r for r in cluster.results().runs(DAG_ID) if r["run_id"] == run_id]
    assert len(runs) == 1, runs
    return runs[0]["partition"]
