"""One leaderboard, rendered alike everywhere: the CLI's table and JSON, the HTML report, the
task log and the Airflow plugin's page all take ``entries`` and ``CELLS``.

An entry is a plain dict (JSON as it is): the stored leaderboard row's fields, plus ``rank``
(1 = chosen by validation score; failed rows last, by name), ``hyperparameters`` (the best
point as one short line), ``reason`` (why a failed row failed) and ``selected``. A family searched
in shards is one entry: its best shard's, with every shard listed in ``shards``.
"""

from __future__ import annotations

from dagml.metrics import get_metric
from dagml.selection import rank

ROW_KEYS = ("family", "status", "error", "metric", "params", "val_score", "test_score", "fit_seconds",
            "search_seconds", "n_trials", "n_failed_trials", "model_uri", "model_sha256", "threads", "seed", "shards",
            "search_rows", "fit_rows")


def score(value, digits: int = 5) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def hyperparameters(params: dict | None) -> str:
    """``a=1, b=0.1235``: sorted, floats to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted((params or {}).items()))


def entries(rows: list[dict], metric: str | None, selected: str | None = None) -> list[dict]:
    """Stored leaderboard rows (``ResultsStore.leaderboard``) as ranked entries. Without a metric
    (a run that failed before profiling) the rows keep their order."""
    ordered = rank(rows, get_metric(metric)) if metric else list(rows)
    out = []
    for i, row in enumerate(ordered, 1):
        ok = row["status"] == "ok"
        out.append({"rank": i, **{k: row.get(k) for k in ROW_KEYS},
                    "hyperparameters": hyperparameters(row.get("params")) if ok else "",
                    "reason": None if ok else row.get("error"), "selected": row["family"] == selected})
    return out


def family_text(entry: dict) -> str:
    """The family, and for one searched in shards which shard its row is: ``sklearn:knn (best of 2
    shards: #2of2)``."""
    shards = entry.get("shards")
    if not shards:
        return entry["family"]
    best = next((s["shard"] for s in shards if s.get("best")), None)
    which = f": #{best.rpartition('#')[2]}" if best else ", none succeeded"
    return f"{entry['family']} (best of {len(shards)} shards{which})"


# (header, cell) in display order: one table layout for the CLI, the report and the page
CELLS = (
    ("#", lambda e: str(e["rank"])),
    ("family", family_text),
    ("status", lambda e: e["status"]),
    ("validation", lambda e: score(e["val_score"])),
    ("test", lambda e: score(e["test_score"])),
    ("fit s", lambda e: score(e["fit_seconds"], 2)),
    ("trials (failed)", lambda e: f"{e['n_trials'] or 0} ({e['n_failed_trials'] or 0})"),
    ("best hyperparameters / failure reason", lambda e: e["hyperparameters"] or e["reason"] or ""),
)
NUMERIC = frozenset({"validation", "test", "fit s", "trials (failed)"})


def cells(entry: dict) -> list[str]:
    return [cell(entry) for _, cell in CELLS]


def trigger_text(trigger: dict | None) -> str:
    """The trigger form's values a run used, as one line (blank fields left out)."""
    if not trigger:
        return ""
    shown = {k: v for k, v in trigger.items() if v is not None}
    return ", ".join(f"{k}={'[' + ', '.join(map(str, v)) + ']' if isinstance(v, list) else v}"
                     for k, v in shown.items())


def document(run: dict, rows: list[dict], champion: dict | None = None) -> dict:
    """A run's leaderboard as JSON: the run's state, its trigger values, the entries, the champion."""
    champion_keys = ("family", "partition", "run_id", "test_score", "model_uri", "model_sha256", "refit_rows",
                     "refit_error", "compared_model_uri", "compared_model_sha256")
    return {"dag_id": run["dag_id"], "partition": run["partition"], "run_id": run["run_id"],
            "status": run["status"], "error": run["error"], "failed_task": run["failed_task"],
            "metric": run["metric"], "selected": run["selected_family"], "promoted": run["promoted"],
            "promotion_reason": run["promotion_reason"], "trigger": run.get("trigger"),
            "rows": entries(rows, run["metric"], run["selected_family"]),
            "champion": {k: champion[k] for k in champion_keys} if champion else None}
