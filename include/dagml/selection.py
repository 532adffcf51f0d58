"""Choosing among families and deciding on promotion. Pure functions over leaderboard rows.

The choice uses validation scores (what the search optimised) with a deterministic
tie-break: faster fit, then name. Near-ties are not given to the simpler family: the
one-standard-error rule chose worse held-out models on most benchmark datasets
(docs/benchmarks.md, issue 17's ablations). Test scores are reported, never used to choose, so the
reported test score of the chosen family stays an honest estimate.
"""

from __future__ import annotations

from dagml.metrics import Metric


def rank(rows: list[dict], metric: Metric) -> list[dict]:
    """Successful rows best first, then failed rows by name."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("val_score") is not None]
    sign = -1 if metric.greater_is_better else 1
    # rounded so that float noise in the last digits does not beat the tie-break
    ok.sort(key=lambda r: (sign * round(r["val_score"], 10), r.get("fit_seconds") or 0.0, r["family"]))
    failed = sorted((r for r in rows if r not in ok), key=lambda r: r["family"])
    return ok + failed


def choose(rows: list[dict], metric: Metric) -> dict | None:
    ranked = rank(rows, metric)
    return ranked[0] if ranked and ranked[0]["status"] == "ok" else None


# what a sharded family's row takes from its best shard
_FROM_BEST_SHARD = ("status", "error", "metric", "params", "val_score", "test_score", "fit_seconds", "model_uri",
                    "model_sha256", "predictions_uri", "threads", "seed", "search_rows", "fit_rows")
_SUMMED = ("n_trials", "n_failed_trials", "search_seconds")
NO_RESULT = ("the search task ended without a result: its process or worker was killed or lost (Airflow's "
             "task log says 'Likely out of memory' when the kernel killed it); see its log")


def merge_shards(labels: list[str], rows: list[dict], metric: Metric) -> dict:
    """A sharded family's one leaderboard row from its shards' rows. ``labels``: the shards the run
    searched (``dagml.shards.Shard.label``; a row of another label, left by an earlier run with
    another ``shards``, is ignored). The best shard, chosen as families are, gives the model, its
    scores and seed; the trials and search seconds are every shard's; ``shards`` lists each shard
    (``best`` marks the chosen one). A shard without a row (its task ended without writing) is a
    failed shard. Failed when no shard succeeded, naming each shard's reason."""
    by_label = {r["family"]: r for r in rows if r["family"] in labels}
    best = choose(list(by_label.values()), metric)
    summary = []
    for label in labels:
        row = by_label.get(label, {"status": "failed", "error": NO_RESULT})
        summary.append({"shard": label, "seed": row.get("seed"), "status": row["status"],
                        "val_score": row.get("val_score"), "test_score": row.get("test_score"),
                        "n_trials": row.get("n_trials"), "error": row.get("error"),
                        "best": best is not None and label == best["family"]})
    summed = {k: sum(r.get(k) or 0 for r in by_label.values()) for k in _SUMMED}
    if best is None:
        reasons = "; ".join(f"{s['shard']}: {s['error']}" for s in summary)
        return {"status": "failed", "error": f"every shard failed: {reasons}", "metric": metric.name, **summed,
                "shards": summary}
    return {**{k: best.get(k) for k in _FROM_BEST_SHARD}, **summed, "shards": summary}


def promotion_decision(challenger_score: float, champion_score: float | None, metric: Metric,
                       margin: float) -> tuple[bool, str]:
    """Champion/challenger on the same test rows: promote only a clear improvement."""
    if champion_score is None:
        return True, "no champion yet"
    if metric.better(challenger_score, champion_score, margin):
        return True, f"{metric.name} {challenger_score:.5f} beats champion's {champion_score:.5f} by more than {margin}"
    return False, f"{metric.name} {challenger_score:.5f} does not beat champion's {champion_score:.5f} by more than {margin}"
