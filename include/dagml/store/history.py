"""A dataset's history: one line per partition, from the run rows and their winners' leaderboard rows."""

from __future__ import annotations

from dagml.store.results import ResultsStore


def partition_history(results: ResultsStore, dag_id: str) -> list[dict]:
    return [
        {
            "partition": run["partition"], "run_id": run["run_id"], "state": run["status"],
            "failed_task": run["failed_task"], "error": run["error"], "metric": run["metric"],
            "winner": run["selected_family"], "val_score": run["val_score"], "test_score": run["test_score"],
            "promoted": run["promoted"], "promotion_reason": run["promotion_reason"],
            "champion_family": run["champion_family"], "champion_partition": run["champion_partition"],
            "refit_rows": run.get("refit_rows"), "refit_error": run.get("refit_error"),
            "registry_version": run.get("registry_version"), "registry_error": run.get("registry_error"),
            "started_at": run["started_at"], "finished_at": run["finished_at"],
        }
        for run in results.winner_series([dag_id])
    ]
