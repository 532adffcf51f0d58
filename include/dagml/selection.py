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


def promotion_decision(challenger_score: float, champion_score: float | None, metric: Metric,
                       margin: float) -> tuple[bool, str]:
    """Champion/challenger on the same test rows: promote only a clear improvement."""
    if champion_score is None:
        return True, "no champion yet"
    if metric.better(challenger_score, champion_score, margin):
        return True, f"{metric.name} {challenger_score:.5f} beats champion's {champion_score:.5f} by more than {margin}"
    return False, f"{metric.name} {challenger_score:.5f} does not beat champion's {champion_score:.5f} by more than {margin}"
