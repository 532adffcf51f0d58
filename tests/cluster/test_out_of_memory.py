"""Out of memory on a Celery worker: a family whose forked trials cannot allocate what they need
(``memory_mb``) ends as a failed leaderboard row saying out of memory, with the family, its rows and
columns, without a retry; the worker and the run go on, and the run selects among the other families.

The config is tests/cluster/dags/configs_extra/tight.yaml (DAG automl__tight)."""

import re

import pytest

pytestmark = pytest.mark.cluster

DAG_ID = "automl__tight"


def test_a_family_over_its_memory_limit_fails_as_out_of_memory_on_a_worker(cluster):
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(40_000, 20, n_informative=10, flip_y=0.2, random_state=0)
    pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(label=y).to_parquet(
        cluster.home / "wide.parquet")

    run_id = cluster.trigger(DAG_ID, {})
    assert cluster.wait(DAG_ID, run_id, timeout=900) == "success"

    results = cluster.results()
    run = next(r for r in results.runs(DAG_ID) if r["run_id"] == run_id)
    rows = {r["family"]: r for r in results.leaderboard(DAG_ID, run_id=run_id, partition=run["partition"])}
    assert {f: r["status"] for f, r in rows.items()} == {
        "sklearn:extra_trees": "failed", "sklearn:elastic_net": "ok", "sklearn:dummy": "ok"}
    # 40,000 rows, 0.64 of them train (holdout); 20 numeric columns
    assert re.match(r"out of memory: sklearn:extra_trees on 25,600 training rows x 20 columns: ",
                    rows["sklearn:extra_trees"]["error"]), rows["sklearn:extra_trees"]["error"]
    assert run["status"] == "success" and run["selected_family"] == "sklearn:elastic_net"
    # running out of memory is not a retry's to fix: the search failed once, though the config allows a retry
    searches = {ti["rendered_map_index"]: ti for ti in cluster.task_instances(DAG_ID, run_id)
                if ti["task_id"].startswith("search_")}
    forest = searches["sklearn:extra_trees"]
    assert (forest["state"], forest["try_number"]) == ("failed", 1), forest
