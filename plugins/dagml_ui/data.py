"""What the dagml pages show, as plain JSON-able dicts, read from dagml's results store.

Each page costs a fixed number of queries whatever the number of partitions (a dataset with
a year of daily runs is one query per table, not one per partition): the reads are
``ResultsStore`` methods that take a whole dataset's rows at once, and this module only shapes
them. Nothing here knows of HTTP or authorization: ``app.py`` checks the caller's access first.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache

from dagml.store.results import ResultsStore


class NotFound(LookupError):
    """An unknown dataset or run: the page answers 404 with this message."""


@lru_cache(maxsize=4)
def _store(url: str):
    return ResultsStore(url)


def store():
    """The results store the ``dagml_results`` connection names (one engine per URL, reused)."""
    from dagml import settings

    return _store(settings.results_url())


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _age_seconds(value) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite gives naive datetimes back
        value = value.replace(tzinfo=timezone.utc)
    return round((datetime.now(timezone.utc) - value).total_seconds(), 1)


def _run_line(row: dict) -> dict:
    return {"partition": row["partition"], "run_id": row["run_id"], "state": row["status"],
            "metric": row["metric"], "winner": row["selected_family"], "promoted": row["promoted"],
            "val_score": row["val_score"], "test_score": row["test_score"], "failed_task": row["failed_task"],
            "error": row["error"], "started_at": _iso(row["started_at"]), "finished_at": _iso(row["finished_at"])}


def _champion_line(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {"family": row["family"], "metric": row["metric"], "test_score": row["test_score"],
            "partition": row["partition"], "run_id": row["run_id"], "promoted_at": _iso(row["promoted_at"]),
            "age_seconds": _age_seconds(row["promoted_at"]), "retired_at": _iso(row.get("retired_at")),
            "reason": row.get("reason")}


def dataset_ids() -> list[str]:
    """Every DAG id with a run in the results store."""
    return store().dag_ids()


def datasets(dag_ids: list[str]) -> list[dict]:
    """Each dataset: its champion, its last started run, and its winners' test scores over partitions."""
    if not dag_ids:
        return []
    series = store().winner_series(dag_ids)
    champs = store().active_champions(dag_ids)
    out = []
    for dag_id in dag_ids:
        lines = [_run_line(r) for r in series if r["dag_id"] == dag_id]
        if not lines:
            continue
        last = max(lines, key=lambda r: r["started_at"] or "")
        out.append({"dag_id": dag_id, "metric": next((r["metric"] for r in reversed(lines) if r["metric"]), None),
                    "champion": _champion_line(champs.get(dag_id)), "last_run": last, "runs": len(lines),
                    "scores": [{"partition": r["partition"], "test_score": r["test_score"]}
                               for r in lines if r["test_score"] is not None]})
    return out


def dataset(dag_id: str) -> dict:
    """One dataset: every partition's run with its winner's scores, and the champion history."""
    lines = [_run_line(r) for r in store().winner_series([dag_id])]
    if not lines:
        raise NotFound(f"no dagml run of {dag_id!r} is recorded in the results store")
    history = [_champion_line(r) for r in store().champion_history(dag_id)]
    active = next((h for h in reversed(history) if h["retired_at"] is None), None)
    return {"dag_id": dag_id, "metric": next((r["metric"] for r in reversed(lines) if r["metric"]), None),
            "champion": active, "champion_history": history, "runs": lines}


def _run_row(dag_id: str, run_id: str) -> dict:
    found = store().run_by_id(dag_id, run_id)
    if found is None:
        raise NotFound(f"no dagml run {run_id!r} of {dag_id!r} is recorded in the results store "
                       "(a re-run of its partition replaces it)")
    return found


def _best_so_far(trial_rows: list[dict], better) -> dict[str, list]:
    """Per family, the best score after each trial (a failed trial keeps the previous best)."""
    traces: dict[str, list] = {}
    for row in trial_rows:
        trace = traces.setdefault(row["family"], [])
        best = trace[-1] if trace else None
        score = row["score"]
        trace.append(score if score is not None and (best is None or better(score, best)) else best)
    return traces


def _trial_scores(dag_id: str, partition: str, run_id: str, metric) -> list[dict]:
    rows = store().trial_losses(dag_id, partition, run_id)
    for row in rows:  # dagml stores losses (minimised); the page shows the metric's own scores
        loss = row["loss"]
        row["score"] = None if metric is None or loss is None else (-loss if metric.greater_is_better else loss)
    return rows


def run(dag_id: str, run_id: str) -> dict:
    """One run: its state, why it failed, its trigger values, leaderboard, traces and diagnostics."""
    from dagml import leaderboard
    from dagml.metrics import get_metric

    row = _run_row(dag_id, run_id)
    metric = get_metric(row["metric"]) if row["metric"] else None
    board = store().leaderboard(dag_id, row["partition"], run_id)
    trial_rows = _trial_scores(dag_id, row["partition"], run_id, metric)
    diagnostics = getattr(store(), "diagnostics", None)
    return {
        "dag_id": dag_id, "run_id": run_id, "partition": row["partition"], "state": row["status"],
        "task": row["task"], "metric": row["metric"], "selected_family": row["selected_family"],
        "promoted": row["promoted"], "promotion_reason": row["promotion_reason"],
        "champion_family": row["champion_family"], "failed_task": row["failed_task"], "error": row["error"],
        "failure": failure_line(row), "trigger": row.get("trigger"), "has_report": bool(row["report_uri"]),
        "registry_version": row.get("registry_version"), "registry_error": row.get("registry_error"),
        "started_at": _iso(row["started_at"]), "finished_at": _iso(row["finished_at"]),
        "leaderboard": leaderboard.entries(board, row["metric"], row["selected_family"]),
        "best_so_far": _best_so_far(trial_rows, metric.better) if metric else {},
        "trials": trial_rows,
        "diagnostics": diagnostics(dag_id, row["partition"], run_id) if diagnostics else None,
    }


def report(dag_id: str, run_id: str) -> bytes:
    """The run's self-contained HTML report, as the report task stored it."""
    from dagml.store.artifacts import ArtifactStore

    uri = _run_row(dag_id, run_id)["report_uri"]
    if not uri:
        raise NotFound(f"run {run_id!r} of {dag_id!r} has no report (it did not reach its report task)")
    return ArtifactStore.from_settings().read_bytes(uri)


def failure_line(row: dict) -> str | None:
    """One line naming what failed: the task, then the first line of its recorded reason."""
    if row["status"] != "failed":
        return None
    reason = (row["error"] or "no reason was recorded").strip().splitlines()[0]
    task = row["failed_task"] or "an unknown task"
    return reason if reason.startswith(f"{task}:") else f"{task}: {reason}"


def progress(dag_id: str, run_id: str) -> dict:
    """A run's searches as they go: per family, trials done of planned and the best score so far.

    A running search keeps its finished trials in ``trials.json`` under the run's artifacts
    (rewritten after each evaluation); a finished one also has them in the results DB."""
    from dagml.metrics import get_metric

    row = _run_row(dag_id, run_id)
    metric = get_metric(row["metric"]) if row["metric"] else None
    planned = planned_trials(dag_id, row.get("trigger"))
    done = {f: {"family": f, "done": 0, "planned": n, "best": None, "finished": False} for f, n in planned.items()}
    for family, trials in _trial_files(dag_id, row["partition"], run_id).items():
        entry = done.setdefault(family, {"family": family, "done": 0, "planned": None, "best": None,
                                         "finished": False})
        entry["done"] = len(trials)
        scores = [t["result"].get("score") for t in trials if t.get("result", {}).get("status") == "ok"]
        scores = [s for s in scores if s is not None]
        if scores and metric:
            entry["best"] = max(scores) if metric.greater_is_better else min(scores)
    for lb in store().leaderboard(dag_id, row["partition"], run_id):
        entry = done.setdefault(lb["family"], {"family": lb["family"], "done": 0, "planned": None, "best": None})
        entry.update(finished=True, status=lb["status"], best=lb["val_score"] if lb["val_score"] is not None
                     else entry["best"], done=max(entry["done"], lb["n_trials"] or 0))
    return {"dag_id": dag_id, "run_id": run_id, "partition": row["partition"], "state": row["status"],
            "metric": row["metric"], "searches": sorted(done.values(), key=lambda e: e["family"]),
            "trials_done": sum(e["done"] for e in done.values())}


def planned_trials(dag_id: str, trigger: dict | None) -> dict[str, int]:
    """Each family's evaluation budget in this run: the config as the run's trigger values changed it."""
    from dagml import settings, trigger as form
    from dagml.config import load_one

    try:
        config = load_one(settings.configs_dir(), dag_id.removeprefix("automl__"))
        if config is not None and trigger:
            config = form.apply(config, trigger)
    except Exception:  # an invalid config shows as Airflow's import error; the page still shows the DB
        return {}
    if config is None:
        return {}
    return {f.name: _searchable(f.name, f.budget(config.budget).max_evals, config.task) for f in config.families}


def _searchable(family: str, max_evals: int, task: str | None) -> int:
    """``max_evals``, or fewer for a finite space (the baseline's two points), which is searched once
    per point (``dagml.warm_start.grid_points``)."""
    from dagml.families import get_family
    from dagml.warm_start import grid_points

    try:
        grid = grid_points(get_family(family)().space(task or "binary", 1000, 10))
    except Exception:  # a space that needs the data's shape or a library this process lacks
        return max_evals
    return min(max_evals, len(grid)) if grid is not None else max_evals


def _trial_files(dag_id: str, partition: str, run_id: str) -> dict[str, list]:
    """The finished trials a run's searches saved so far, per family, from the artifact store."""
    import fsspec

    from dagml.store.artifacts import ArtifactStore

    artifacts = ArtifactStore.from_settings()
    base = artifacts.uri(dag_id, partition, run_id)
    fs, root = fsspec.core.url_to_fs(base, **artifacts.storage_options)
    out: dict[str, list] = {}
    # <load>/<family>/trials.json, or a sharded family's <load>/<family>/shard-<i>of<k>/trials.json
    for path in sorted([*fs.glob(f"{root}/*/*/trials.json"), *fs.glob(f"{root}/*/*/shard-*/trials.json")]):
        parts = path.rstrip("/").split("/")
        family_part = parts[-3] if parts[-2].startswith("shard-") else parts[-2]
        try:
            trials = json.loads(fs.cat_file(path))["trials"]
        except (OSError, ValueError, KeyError):  # being replaced right now: the next poll reads it
            continue
        out.setdefault(family_part, []).extend(trials)  # a family's shards: its trials together
    return {_family_name(k): v for k, v in out.items()} if out else {}


def _family_name(part: str) -> str:
    """The artifact folder of ``sklearn:knn`` is ``sklearn_knn`` (safe_part): name it as the leaderboard does."""
    kind, _, name = part.partition("_")
    return f"{kind}:{name}" if kind in ("sklearn", "r", "spark", "ensemble") and name else part
