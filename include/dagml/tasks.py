"""The task bodies as plain functions: each takes the config, the run's keys and the stores,
and returns small JSON (URIs, scores). ``factory`` wraps them as Airflow tasks; tests call
them directly. Heavy libraries are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dagml import shards, telemetry, threads
from dagml.config import DatasetConfig
from dagml.errors import DataError, FamilyFailed
from dagml.metrics import get_metric
from dagml.store.artifacts import ArtifactStore
from dagml.store.results import ResultsStore

log = logging.getLogger("dagml.tasks")


@dataclass(frozen=True)
class RunKeys:
    dag_id: str
    partition: str
    run_id: str


@dataclass
class Stores:
    artifacts: ArtifactStore
    results: ResultsStore

    @classmethod
    def from_settings(cls) -> Stores:
        from dagml import settings

        return cls(ArtifactStore.from_settings(), ResultsStore(settings.results_url()))

    def uri(self, keys: RunKeys, *parts: str) -> str:
        return self.artifacts.uri(keys.dag_id, keys.partition, keys.run_id, *parts)

    def load_uri(self, keys: RunKeys, load_id: str, *parts: str) -> str:
        """Where what one load of the partition led to lives. Airflow re-runs a cleared or reprocessed
        run under the same run id: a new load must not resume the old search or overwrite its models
        (one of which may be the champion)."""
        return self.uri(keys, load_id, *parts)


def record_run_failure(dag_id: str, run_id: str, task_id: str, reason: str, partition: str | None = None) -> None:
    """The run's recorded error: its first failing task and that task's one-line reason. ``register``
    runs after the run's report: its failure is the registration's, and the run's outcome stands."""
    try:
        results, error = Stores.from_settings().results, f"{task_id}: {reason}"
        if task_id == "register":
            results.record_registration(dag_id, run_id, None, error)
            log.info("run %s: its winner was not registered: %s", run_id, reason)
        elif results.fail_run(dag_id, run_id, task_id, error, partition):
            log.info("run %s failed at %s: %s", run_id, task_id, reason)
    except Exception as exc:  # a failure callback must not raise; say why the record is missing
        log.error("cannot record the failure of %s %s in the results DB: %s", dag_id, run_id, exc)


def source_ready(config: DatasetConfig, source_uri: str | None, parameters: dict | None) -> bool:
    """Whether the partition is there yet: the file or object exists, or the query returns a row."""
    from dagml import sources

    ready = sources.source_ready(config.source, source_uri, parameters)
    log.info("partition %s: %s", source_uri or config.source.where, "ready" if ready else "not there yet")
    return ready


def load(config: DatasetConfig, source_uri: str | None, keys: RunKeys, stores: Stores,
         parameters: dict | None = None, trigger: dict | None = None) -> dict:
    """Read the partition (``source_uri``, or the SQL query with ``parameters`` bound) and store it
    once as Parquet. A query's rows are streamed to the file a chunk at a time. ``trigger`` (the
    form's values) is recorded with the run."""
    from dagml import sources

    stores.results.migrate()
    stores.results.start_run(keys.dag_id, keys.partition, keys.run_id, trigger=trigger)
    load_id = f"load-{uuid.uuid4().hex[:12]}"
    target = stores.load_uri(keys, load_id, "data.parquet")
    if config.source.sql is not None:
        source = sources.sql_source(config.source, parameters)
        with tempfile.TemporaryDirectory(prefix="dagml-load-") as tmp:
            rows, columns = source.to_parquet(Path(tmp) / "data.parquet")
            uri = stores.artifacts.write_file(target, Path(tmp) / "data.parquet")
        where = source.describe()
    else:
        df = sources.read_frame(config.source, source_uri, None)
        uri = stores.artifacts.write_parquet(target, df)
        rows, columns, where = len(df), df.shape[1], source_uri
    log.info("loaded %d rows x %d columns from %s", rows, columns, where)
    return {"data_uri": uri, "source_uri": source_uri, "rows": rows, "columns": columns, "load_id": load_id}


def profile(config: DatasetConfig, loaded: dict, keys: RunKeys, stores: Stores) -> dict:
    from dagml.profile import min_rows_per_class
    from dagml.profile import profile as check

    df = stores.artifacts.read_parquet(loaded["data_uri"])
    labelled = int(df[config.target].notna().sum()) if config.target in df.columns else len(df)
    summary = check(df, config.target, config.task, config.metric, config.drop_columns,
                    min_rows_per_class(config.split.resolved(labelled), config.split.folds))
    stores.results.update_run(keys.dag_id, keys.partition, task=summary["task"], metric=summary["metric"],
                              profile=summary)
    log.info("profile: %s", summary)
    return summary


def prepare(config: DatasetConfig, loaded: dict, summary: dict, keys: RunKeys, stores: Stores) -> dict:
    import pandas as pd

    from dagml.prepare import make_recipe, make_split

    df = stores.artifacts.read_parquet(loaded["data_uri"])
    task, split = summary["task"], config.split
    validation = split.resolved(int(df[config.target].notna().sum()))
    roles = make_split(df[config.target], task, split.test_size, validation, split.valid_size,
                       split.folds, config.seed, split.valid_max_rows)
    recipe = make_recipe(df, config.target, task, config.drop_columns, config.preprocessing.onehot_max_categories)
    split_uri = stores.artifacts.write_parquet(stores.load_uri(keys, loaded["load_id"], "split.parquet"),
                                               pd.DataFrame({"role": roles}))
    recipe_uri = stores.artifacts.write_json(stores.load_uri(keys, loaded["load_id"], "recipe.json"), recipe)
    counts = pd.Series(roles).value_counts().to_dict()
    log.info("validation: %s%s", validation, f" ({split.folds} folds)" if validation == "kfold" else "")
    log.info("split %s; recipe: %d numeric, %d one-hot, %d ordinal, %d date columns; %d dropped", counts,
             len(recipe["numeric"]), len(recipe["onehot"]), len(recipe["ordinal"]), len(recipe["dates"]),
             len(recipe["dropped"]))
    changes = {"dropped": recipe["dropped"], "dates": recipe["dates"],
               "infinite_as_missing": summary.get("infinite_as_missing", {})}
    stores.results.update_run(keys.dag_id, keys.partition, profile={**summary, "column_changes": changes})
    return {"data_uri": loaded["data_uri"], "load_id": loaded["load_id"], "split_uri": split_uri,
            "recipe_uri": recipe_uri, "task": task, "rows": len(df), "columns": df.shape[1],
            "metric": summary["metric"], "n_classes": len(recipe.get("classes", [])), "column_changes": changes,
            "validation": validation}


@contextmanager
def _trials_file(stores: Stores, uri: str, every_seconds: float = 5.0):
    """A local file for hyperopt's trials, kept at ``uri`` so a retried search resumes there.

    On a local root it is the file itself. On an object store it is a temporary copy: brought
    down when a predecessor left one, and sent up at most every ``every_seconds`` while the
    search runs (a trial may take milliseconds) and once at the end.
    """
    path = stores.artifacts.local_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield path, None
        return
    with tempfile.TemporaryDirectory(prefix="dagml-trials-") as folder:
        path = Path(folder) / "trials.json"
        if stores.artifacts.exists(uri):
            path.write_bytes(stores.artifacts.read_bytes(uri))
        sent = {"at": time.monotonic()}

        def upload(force: bool = False) -> None:
            if path.exists() and (force or time.monotonic() - sent["at"] >= every_seconds):
                stores.artifacts.write_bytes(uri, path.read_bytes())
                sent["at"] = time.monotonic()

        try:
            yield path, upload
        finally:
            upload(force=True)


def search_family(config: DatasetConfig, family_key: str, prepared: dict, keys: RunKeys, stores: Stores,
                  shard: shards.Shard | None = None) -> dict:
    """Search one family (or one ``shard`` of its search), refit its best point, score validation and
    test rows, store the model. Its trials and fits run in forked children (``hard_time_limit``): one
    that runs out of memory fails as such, and the family's row says out of memory when all did."""
    shard = shard or shards.Shard(family_key)
    try:
        with threads.limit(1):
            return _search_family(config, family_key, prepared, keys, stores, shard)
    except Exception as exc:
        stores.results.record_family(keys.dag_id, keys.partition, shard.label, keys.run_id, status="failed",
                                     error=failure_reason(exc, family_key, prepared), metric=prepared["metric"],
                                     **_shard_columns(config, shard))
        _release_budget(config, shard.label, prepared, keys, stores)
        telemetry.search_ended(config.name, family_key)
        raise


def _shard_columns(config: DatasetConfig, shard: shards.Shard) -> dict:
    """A search's own leaderboard columns: its seed, and for a shard the family it belongs to."""
    return {"seed": shard.seed(config.seed), "shard_of": shard.family if shard.count > 1 else None}


def failure_reason(exc: BaseException, family_key: str, prepared: dict) -> str:
    """A failed family's one-line reason; running out of memory says so, with the family and the
    partition's rows and columns, unless the search's own message already does."""
    from dagml.errors import OutOfMemory
    from dagml.search import OUT_OF_MEMORY

    if not isinstance(exc, (OutOfMemory, MemoryError)):
        return f"{type(exc).__name__}: {exc}"
    if str(exc).startswith(OUT_OF_MEMORY):  # the search's own account: the rows and columns it fit on
        return str(exc)
    shape = (f" on {prepared['rows']:,} rows x {prepared['columns']} columns of the partition"
             if "rows" in prepared else "")
    why = str(exc) if isinstance(exc, OutOfMemory) else f"MemoryError: {exc}"
    return f"{OUT_OF_MEMORY}: {family_key}{shape}: {why}"


def _training_data(config: DatasetConfig, family, prepared: dict, recipe: dict, stores: Stores):
    """The rows as pandas, or, for a Spark family on a partition above ``spark.direct_read_mb``,
    as Spark frames read straight from the Parquet artifact (never collected to this worker)."""
    size_mb = stores.artifacts.size(prepared["data_uri"]) / 2**20
    if family.kind == "spark" and size_mb > config.spark.direct_read_mb:
        if stores.artifacts.is_local:
            from dagml.families.spark import SparkData

            log.info("partition is %.1f MB: Spark reads it directly", size_mb)
            return SparkData(prepared["data_uri"], prepared["split_uri"], recipe, family.needs_scaling)
        # Spark would need the Hadoop S3 connector's jars
        log.warning("partition is %.1f MB, but Spark reads only local artifacts: reading it through pandas", size_mb)
    from dagml.prepare import FrameData

    df = stores.artifacts.read_parquet(prepared["data_uri"])
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    return FrameData(df, roles, recipe, family.needs_scaling)


def _warm_points(config: DatasetConfig, family_key: str, keys: RunKeys, stores: Stores) -> list[dict]:
    """The best points earlier partitions found for this family (newest first, hyperopt's own form)."""
    if not config.warm_start:
        return []
    return [row["vals"] for row in stores.results.best_trials(keys.dag_id, family_key, before=keys.partition)]


def _family(family_key: str, task: str):
    from dagml.families import get_family

    family = get_family(family_key)()
    family.check_available()
    if task not in family.tasks:
        raise FamilyFailed(f"{family_key} cannot do a {task} task")
    return family


def _clock(config: DatasetConfig, entry, prepared: dict, keys: RunKeys, stores: Stores, shard: shards.Shard):
    """The search's seconds: the family's own, or its part of the run's ``budget.total_seconds``
    (less what the refit holds back); a shard's, a k-th of that (in the shared ledger each shard is
    a search of its own)."""
    from dagml.budget import FamilyBudget, Ledger, SharedBudget

    if not config.budget.total_seconds:
        return FamilyBudget(shard.seconds(entry.budget(config.budget).seconds))
    ledger = Ledger(stores.results, keys.dag_id, keys.partition, prepared["load_id"])
    total = config.budget.total_seconds - _refit_seconds(config, prepared.get("validation"))
    return SharedBudget(ledger, shard.label, total, _costs(config), cap=shard.seconds(entry.seconds))


def _costs(config: DatasetConfig) -> dict[str, float]:
    from dagml.families import get_family

    return shards.costs(config.families, lambda name: get_family(name).cost)


def _release_budget(config: DatasetConfig, search_name: str, prepared: dict, keys: RunKeys, stores: Stores) -> None:
    """A search (a family's, or a shard's) that failed hands its unused seconds to the others."""
    from dagml.budget import Ledger

    if config.budget.total_seconds and prepared.get("load_id"):
        ledger = Ledger(stores.results, keys.dag_id, keys.partition, prepared["load_id"])
        try:
            ledger.spend(search_name, ledger.start(search_name), done=True)
        except Exception as exc:  # the family's own error is the one to report
            log.warning("could not release %s's search budget: %s", search_name, exc)


def _search(config: DatasetConfig, family, folds, prepared: dict, keys: RunKeys, stores: Stores, shard: shards.Shard,
            clock):
    """The hyperopt search within the family's (or the shard's) ``clock``, warm-started, its trials
    kept for a retry (a shard's in a file of its own)."""
    from dagml.search import search

    family_key = family.key()
    entry = next(f for f in config.families if f.name == family_key)
    budget = entry.budget(config.budget)
    max_evals, seed = shard.evaluations(budget.max_evals), shard.seed(config.seed)
    trials_uri = stores.load_uri(keys, prepared["load_id"], family_key, *shard.folder, "trials.json")
    log.info("searching %s: up to %d evaluations or %s%s", shard.label, max_evals, clock,
             f", seed {seed}" if shard.count > 1 else "")
    with _trials_file(stores, trials_uri) as (trials_path, checkpoint):
        result = search(family, folds, prepared["task"], prepared["n_classes"], get_metric(prepared["metric"]),
                        max_evals, shard.seconds(budget.seconds), seed, trials_path, checkpoint,
                        warm_points=_warm_points(config, family_key, keys, stores), clock=clock, shard=shard,
                        on_trial=lambda seconds, ok: telemetry.trial(config.name, family_key, seconds, ok))
    stores.results.record_trials(keys.dag_id, keys.partition, family_key, keys.run_id, result.trials, shard.position)
    return result


def valid_predictions_frame(result):
    """The best point's out-of-fold predictions: ``row`` (position in the partition), then
    ``prediction`` (regression) or ``p0..p{k-1}`` (class probabilities)."""
    import numpy as np
    import pandas as pd

    values = np.asarray(result.valid_predictions, dtype=float)
    columns = {"prediction": values} if values.ndim == 1 else {f"p{i}": values[:, i] for i in range(values.shape[1])}
    return pd.DataFrame({"row": np.asarray(result.valid_rows, dtype=np.int64), **columns})


def _write_valid_predictions(stores: Stores, uri: str, result) -> str | None:
    if result.valid_predictions is None:  # Spark frames: rows have no position here
        return None
    return stores.artifacts.write_parquet(uri, valid_predictions_frame(result))


def _row_caps(config: DatasetConfig, family, entry, data):
    """(the rows the family's model is fit on, the rows its search fits on): a seeded sample of
    ``max_rows`` for a family that declares one (SVM, kNN: both), and a seeded sample of what its
    budget affords (``Family.search_rows``) for the search alone. Logged when they apply."""
    name, rows = family.key(), data.training_rows()
    if family.max_rows and rows > family.max_rows:
        capped = data.sample(family.max_rows, config.seed)
        if capped is not None:
            log.info("%s: its row cap is %s: searching and fitting on a seeded sample of %s of the %s training rows",
                     name, f"{family.max_rows:,}", f"{family.max_rows:,}", f"{rows:,}")
            data, rows = capped, family.max_rows
    seconds = entry.budget(config.budget).seconds
    affordable = family.search_rows_for(seconds)
    if affordable and rows > affordable:
        sampled = data.sample(affordable, config.seed)
        if sampled is not None:
            log.info("%s: %s training rows would not fit a %g s search: searching on a seeded sample of %s, "
                     "then fitting the best point on all %s", name, f"{rows:,}", seconds, f"{affordable:,}", f"{rows:,}")
            return data, sampled
    return data, data


def _fit_best(config: DatasetConfig, family, entry, result, X, y, task: str, n_classes: int, sampled: bool,
              seed: int):
    """(model, thread report, seconds, params): the best point fit on the family's training rows.
    After a search on a sample, the fit is bounded by the family's seconds (a forest or a booster
    keeps the size it reached, recorded in its params); one that cannot finish, or runs out of
    memory, leaves the best trial's model (fit on the sample) as the family's. With ``memory_mb``
    the fit runs forked under that limit, as the trials do."""
    from dagml.errors import OutOfMemory
    from dagml.time_limit import TimeLimitExceeded, call_with_time_limit

    started = time.perf_counter()

    def fit():
        return family.fit(result.best_params, X, y, task, n_classes, seed)

    if not family.hard_time_limit or not (sampled or family.memory_mb):  # threads > 1: forked (dagml.threads)
        model, report = threads.call(fit, family.threads, fork=family.hard_time_limit)
        return model, report, time.perf_counter() - started, result.best_params

    def body():
        with threads.limit(family.threads):
            return fit(), threads.report()

    seconds = entry.budget(config.budget).seconds if sampled else None
    try:
        model, report = call_with_time_limit(body, seconds, family.memory_mb, same_error=True,
                                             soft_share=family.deadline_share)
    except (TimeLimitExceeded, OutOfMemory) as exc:
        if result.best_model is None or not sampled:
            raise
        log.warning("%s: fitting the best point on all %s training rows failed (%s): the family's model is its "
                    "best trial's, fit on the sample", family.key(), f"{len(y):,}", exc)
        return result.best_model, result.thread_report, result.best_model_seconds, result.best_params
    params = {**result.best_params, **getattr(model, "cut_short", {})}  # the size a deadline left it at
    return model, report, time.perf_counter() - started, params


def _search_family(config, family_key, prepared, keys, stores, shard: shards.Shard) -> dict:
    from dagml.predictors import manifest, write_archive

    task, metric = prepared["task"], get_metric(prepared["metric"])
    family = _family(family_key, task)
    entry = next(f for f in config.families if f.name == family_key)
    family.threads, family.memory_mb = entry.threads, entry.memory_mb
    recipe = family.adopt(stores.artifacts.read_json(prepared["recipe_uri"]))
    # the family's seconds pay for its trials and its best point's fit on all rows; not for
    # building its folds, which would leave a cheap family's small share no first trial
    clock = _clock(config, entry, prepared, keys, stores, shard)
    data, searched = _row_caps(config, family, entry, _training_data(config, family, prepared, recipe, stores))
    folds = searched.folds()
    result = _search(config, family, folds, prepared, keys, stores, shard, clock)
    seed = shard.seed(config.seed)
    folder = (prepared["load_id"], family_key, *shard.folder)
    predictions_uri = _write_valid_predictions(stores, stores.load_uri(keys, *folder, "valid_predictions.parquet"),
                                               result)

    sampled = searched is not data
    fit_rows = data.training_rows()
    if result.best_model is not None and not sampled:
        # holdout: the best trial's model was fit on these rows, preprocessed by the fold's preprocessor
        model, fit_seconds, params = result.best_model, result.best_model_seconds, result.best_params
        thread_report, pre = result.thread_report, folds[0].pre
        del folds
        if pre is None:  # Spark's pipeline carries its own preprocessing
            pre = data.final()[0]
    else:
        sample_pre = folds[0].pre if len(folds) == 1 else None
        del folds  # their matrices, before the fit on all rows builds its own
        pre, X_train, y_train = data.final()
        model, thread_report, fit_seconds, params = _fit_best(config, family, entry, result, X_train, y_train, task,
                                                              prepared["n_classes"], sampled, seed)
        del X_train, y_train
        if model is result.best_model:  # the fit on all rows failed: the sample's model it is
            pre, fit_rows = sample_pre, searched.training_rows()
    clock.finish()
    kept = model is result.best_model
    log.info("%s: %d thread(s) configured; native threads used by its fits: %s", family_key, family.threads,
             threads.describe(thread_report))
    if result.shrinkage:
        from dagml.families.base import Shrunk

        model = Shrunk(model, result.shrinkage)

    def score(role):
        X, y = data.rows(role, pre)
        return metric(y, model.predict(X))

    # k-fold: the folds' mean; holdout with the best trial's model kept: that trial scored these very
    # rows (predicting them again cost an SVM on diamonds about 1.5 s outside its seconds)
    val_score = score("valid") if data.has("valid") and not kept else result.best_score
    test_score = score("test")
    origin = {"dag_id": keys.dag_id, "partition": keys.partition, "run_id": keys.run_id,
              **({"shard": shard.label, "seed": seed} if shard.count > 1 else {})}
    model_uri = stores.load_uri(keys, *folder, "model.tar")
    sha = write_archive(stores.artifacts, model_uri, manifest(family_key, task, metric.name, recipe,
                                                              params, origin, result.shrinkage),
                        pre, model)
    row = {"status": "ok", "error": None, "metric": metric.name, "params": params,
           "val_score": val_score, "test_score": test_score, "fit_seconds": fit_seconds,
           "search_seconds": result.seconds, "n_trials": result.n_trials, "n_failed_trials": result.n_failed,
           "model_uri": model_uri, "model_sha256": sha, "predictions_uri": predictions_uri,
           "threads": thread_report, "search_rows": searched.training_rows(),
           "fit_rows": fit_rows, **_shard_columns(config, shard)}
    stores.results.record_family(keys.dag_id, keys.partition, shard.label, keys.run_id, **row)
    telemetry.search_ended(config.name, family_key, result.seconds, val_score if shard.count == 1 else None)
    log.info("%s: validation %s %.5f, test %.5f; searched on %s training rows, its model fit on %s (%s) in %.2f s",
             shard.label, metric.name, val_score, test_score, row["search_rows"], fit_rows,
             "the best trial's" if kept else "fit again", fit_seconds)
    return {"family": shard.label, **{k: row[k] for k in ("val_score", "test_score", "fit_seconds", "model_uri")}}


def _ensemble_row(config, finalists: list[dict], metric, prepared: dict, keys: RunKeys, stores: Stores) -> dict | None:
    """The ``ensemble:greedy`` leaderboard row over ``finalists`` (best first), its archive stored;
    None when greedy selection keeps fewer than two of them."""
    from types import SimpleNamespace

    from dagml import ensemble
    from dagml.predictors import ensemble_manifest, load_verified, write_ensemble
    from dagml.prepare import encode_target

    started = time.perf_counter()
    frames = {r["family"]: stores.artifacts.read_parquet(r["predictions_uri"]) for r in finalists}
    rows, predictions = ensemble.aligned(frames)
    if set(frames) - set(predictions):
        log.warning("ensemble: left out %s, whose out-of-fold rows differ from %s's",
                    ", ".join(sorted(set(frames) - set(predictions))), finalists[0]["family"])
    df = stores.artifacts.read_parquet(prepared["data_uri"])
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])
    y, groups = encode_target(df[recipe["target"]].iloc[rows], recipe), roles[rows]
    names = list(predictions)
    weights, _ = ensemble.greedy_weights([predictions[n] for n in names], y, groups, metric)
    chosen = {n: float(w) for n, w in zip(names, weights) if w > 0}
    if len(chosen) < 2:
        log.info("no ensemble: greedy selection keeps %s alone", ", ".join(chosen))
        return None
    by_family = {r["family"]: r for r in finalists}
    members = [stores.artifacts.read_verified(by_family[n]["model_uri"], by_family[n]["model_sha256"]) for n in chosen]
    origin = {"dag_id": keys.dag_id, "partition": keys.partition, "run_id": keys.run_id}
    uri = stores.load_uri(keys, prepared["load_id"], ensemble.FAMILY, "model.tar")
    sha = write_ensemble(stores.artifacts, uri, ensemble_manifest(ensemble.FAMILY, prepared["task"], metric.name,
                                                                  recipe, chosen, origin), members)
    blended = ensemble.blend([predictions[n] for n in chosen], list(chosen.values()))
    predictions_uri = stores.artifacts.write_parquet(
        stores.load_uri(keys, prepared["load_id"], ensemble.FAMILY, "valid_predictions.parquet"),
        valid_predictions_frame(SimpleNamespace(valid_rows=rows, valid_predictions=blended)))
    test_score = _test_score(load_verified(stores.artifacts, uri, sha), df, roles, recipe, metric)
    return {"status": "ok", "error": None, "metric": metric.name, "params": chosen,
            "val_score": ensemble.fold_score(metric, y, blended, groups), "test_score": test_score,
            "fit_seconds": sum(by_family[n]["fit_seconds"] or 0.0 for n in chosen),
            "search_seconds": time.perf_counter() - started, "n_trials": ensemble.ROUNDS, "n_failed_trials": 0,
            "model_uri": uri, "model_sha256": sha, "predictions_uri": predictions_uri}


def _offer_ensemble(config, rows: list[dict], metric, prepared: dict, keys: RunKeys, stores: Stores) -> None:
    """Record ``ensemble:greedy`` as one more leaderboard row when a blend of two or more of the best
    families (by validation score, with out-of-fold predictions) is possible. It competes like any
    row; building it failing is a failed row of its own, never the run's failure."""
    from dagml import ensemble

    finalists = ensemble.finalists(rows, metric)
    if len(finalists) < 2:
        log.info("no ensemble: %d family(ies) with out-of-fold predictions", len(finalists))
        return
    try:
        with threads.limit(1):
            row = _ensemble_row(config, finalists, metric, prepared, keys, stores)
    except Exception as exc:
        log.exception("the ensemble could not be built")
        row = {"status": "failed", "metric": metric.name, "error": f"{type(exc).__name__}: {exc}"}
    if row is not None:
        stores.results.record_family(keys.dag_id, keys.partition, ensemble.FAMILY, keys.run_id, **row)


def _merge_shards(config: DatasetConfig, metric, keys: RunKeys, stores: Stores) -> None:
    """Each sharded family's one leaderboard row, its best shard's (``selection.merge_shards``); the
    shards' own rows stay, marked as shards, out of the leaderboard users see."""
    from dagml.selection import merge_shards

    sharded = [f for f in config.families if f.shards > 1]
    if not sharded:
        return
    rows = stores.results.leaderboard(keys.dag_id, keys.partition, keys.run_id, shards=True)
    for entry in sharded:
        row = merge_shards([s.label for s in shards.of(entry)], [r for r in rows if r["shard_of"] == entry.name],
                           metric)
        stores.results.record_family(keys.dag_id, keys.partition, entry.name, keys.run_id, **row)
        if row.get("val_score") is not None:
            telemetry.best_score(config.name, entry.name, row["val_score"])
        best = next((s for s in row["shards"] if s["best"]), None)
        log.info("%s: %d shards, %s", entry.name, entry.shards,
                 f"the best is {best['shard']} (seed {best['seed']})" if best else "every one failed")


def select(config: DatasetConfig, keys: RunKeys, stores: Stores, prepared: dict | None = None) -> dict:
    """Choose the run's best row by validation score; with ``prepared`` (and ``ensemble`` on), an
    ``ensemble:greedy`` row competes too."""
    from dagml import leaderboard as board
    from dagml.selection import NO_RESULT, choose

    run = stores.results.run(keys.dag_id, keys.partition)
    if run is None or run["run_id"] != keys.run_id or not run.get("metric"):
        raise DataError("nothing to select from: load, profile or prepare did not finish for this run")
    metric = get_metric(run["metric"])
    _merge_shards(config, metric, keys, stores)
    rows = stores.results.leaderboard(keys.dag_id, keys.partition, keys.run_id)
    reported = {r["family"] for r in rows}
    for entry in config.families:
        if entry.name not in reported:  # the task died without writing (worker lost, killed, timed out)
            stores.results.record_family(keys.dag_id, keys.partition, entry.name, keys.run_id, status="failed",
                                         metric=metric.name, error=NO_RESULT)
    rows = stores.results.leaderboard(keys.dag_id, keys.partition, keys.run_id)
    if config.ensemble and prepared is None:
        log.info("no ensemble: select was not given the prepared data")
    elif config.ensemble:
        _offer_ensemble(config, rows, metric, prepared, keys, stores)
        rows = stores.results.leaderboard(keys.dag_id, keys.partition, keys.run_id)
    best = choose(rows, metric)
    if best is None:
        reasons = "; ".join(f"{r['family']}: {r['error']}" for r in rows)
        raise FamilyFailed(f"every family failed, nothing to promote: {reasons}")
    stores.results.update_run(keys.dag_id, keys.partition, selected_family=best["family"])
    for entry in board.entries(rows, metric.name, best["family"]):
        log.info("%s", " | ".join(board.cells(entry)))
    return {k: best[k] for k in ("family", "val_score", "test_score", "fit_seconds", "model_uri", "model_sha256")}


def _raw(predictor, frame, recipe: dict):
    """Values (regression) or class probabilities in this run's class order: a champion from
    another partition may know other classes, so align on this run's."""
    import numpy as np

    if recipe.get("classes") is None:
        return predictor.predict_raw(frame)
    proba = predictor.predict_proba(frame).reindex(columns=recipe["classes"], fill_value=0.0)
    return np.asarray(proba, dtype=float)


def _test_score(predictor, df, roles, recipe, metric) -> float:
    from dagml.prepare import encode_target

    test = df[roles == "test"]
    return metric(encode_target(test[recipe["target"]], recipe), _raw(predictor, test, recipe))


def _record_diagnostics(config, family: str, predictor, df, roles, recipe: dict, metric, keys: RunKeys,
                        stores: Stores) -> None:
    """The chosen model's diagnostics on this run's test rows, stored once with the run. Failing
    to compute them is logged and recorded as their error, never the run's failure."""
    from dagml import diagnostics
    from dagml.prepare import encode_target

    test = df[roles == "test"]
    started = time.perf_counter()
    try:
        with threads.limit(1):
            values = diagnostics.compute(lambda frame: _raw(predictor, frame, recipe), test[recipe["features"]],
                                         encode_target(test[recipe["target"]], recipe), recipe, metric, config.seed)
    except Exception as exc:
        log.exception("the diagnostics of %s could not be computed", family)
        values = {"error": f"{type(exc).__name__}: {exc}"}
    stores.results.record_diagnostics(keys.dag_id, keys.partition, keys.run_id, family, values)
    log.info("diagnostics of %s on %d test rows in %.1f s", family, len(test), time.perf_counter() - started)


def _decide(config: DatasetConfig, keys: RunKeys, current: dict | None, challenger_score: float, metric,
            score_champion) -> tuple[bool, str, float | None]:
    """Champion/challenger: (promote?, why, the champion's score on this run's test rows)."""
    from dagml.selection import promotion_decision

    if current is None:
        return True, "no champion yet", None
    if keys.partition < current["partition"]:
        return False, (f"partition {keys.partition} is older than the champion's ({current['partition']}): "
                       "a model of older data never replaces it"), None
    if current["metric"] != metric.name:
        return True, f"the champion was chosen by {current['metric']}, this dataset now uses {metric.name}", None
    try:
        champion_score = score_champion(current)
    except Exception as exc:  # a champion that cannot score this data cannot defend its title
        log.warning("the champion cannot be scored on this run's test rows: %s", exc)
        return True, f"the champion cannot score this run's test rows ({type(exc).__name__}: {exc})", None
    promote_it, reason = promotion_decision(challenger_score, champion_score, metric, config.promotion.margin)
    return promote_it, reason, champion_score


@dataclass(frozen=True)
class Refit:
    """The promoted model refit on all rows with a target (uri, digest, rows), or why not (error)."""

    uri: str | None = None
    sha256: str | None = None
    rows: int | None = None
    error: str | None = None


def _refit_wanted(config: DatasetConfig, roles) -> bool:
    from dagml.config import REFIT_FULL_MAX_ROWS

    if config.refit_full == "auto":
        return int((roles != "dropped").sum()) < REFIT_FULL_MAX_ROWS or _refit_seconds(config, _validation(roles)) > 0
    return bool(config.refit_full)


def _validation(roles) -> str:
    return "holdout" if (roles == "valid").any() else "kfold"


def _refit_seconds(config: DatasetConfig, validation: str | None) -> float:
    """The seconds of ``budget.total_seconds`` held back from the searches for the refit: on a
    partition validated by holdout, whose models were fit on 64% of the rows (a k-fold family's
    model is fit on all non-test rows inside its search's seconds); 0 otherwise."""
    from dagml.config import REFIT_SHARE

    if not config.budget.total_seconds or validation != "holdout" or config.refit_full is False:
        return 0.0
    return REFIT_SHARE * config.budget.total_seconds


def _refit_family(config, family_key: str, compared: dict, prepared: dict, data, keys: RunKeys,
                  stores: Stores, recipe: dict) -> tuple[str, str]:
    """``family_key`` fit with the compared model's hyperparameters on ``data`` (every row with a
    target), its preprocessor fitted on those rows; stored like any model: (uri, sha256)."""
    from dagml.predictors import manifest, write_archive
    from dagml.prepare import build_preprocessor, encode_target

    family = _family(family_key, prepared["task"])
    recipe = family.adopt(recipe)
    size_mb = stores.artifacts.size(prepared["data_uri"]) / 2**20
    if family.kind == "spark" and size_mb > config.spark.direct_read_mb:
        raise FamilyFailed(f"a refit reads the rows through pandas; the partition is {size_mb:.0f} MB, above "
                           f"spark.direct_read_mb ({config.spark.direct_read_mb:g})")
    pre = build_preprocessor(recipe, family.needs_scaling)
    X, y = pre.fit_transform(data[recipe["features"]]), encode_target(data[recipe["target"]], recipe)
    model = family.fit(compared["params"], X, y, prepared["task"], prepared["n_classes"], config.seed)
    origin = {"dag_id": keys.dag_id, "partition": keys.partition, "run_id": keys.run_id, "fit_rows": len(data)}
    about = manifest(family_key, prepared["task"], prepared["metric"], recipe, compared["params"], origin)
    if compared.get("shrinkage"):  # its probabilities are post-processed as the compared model's were
        about["shrinkage"] = compared["shrinkage"]
    uri = stores.load_uri(keys, prepared["load_id"], "refit", family_key, "model.tar")
    return uri, write_archive(stores.artifacts, uri, about, pre, model)


def _refit_model(config, selection: dict, prepared: dict, keys: RunKeys, stores: Stores, df, roles,
                 recipe: dict, seconds: float | None = None) -> Refit:
    """The compared model (a family, or each member of an ensemble) refit on all rows with a target.
    Within ``seconds`` (what a whole-run budget held back): a model is refit only when its search's
    fit, scaled to these rows, fits in what is left; the members by weight, and a member that does
    not fit keeps its compared model."""
    from dagml.predictors import ENSEMBLE, ensemble_manifest, load_verified, write_ensemble
    from dagml.report import NOT_REFIT

    data = df[roles != "dropped"]
    with tempfile.TemporaryDirectory(prefix="dagml-refit-") as tmp:
        compared = load_verified(stores.artifacts, selection["model_uri"], selection["model_sha256"], Path(tmp))
    ends = None if seconds is None else time.monotonic() + seconds
    # the searches' fits, to estimate the refits: read only when the seconds are bounded
    searched = {} if ends is None else {
        r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition, keys.run_id)}

    def fits(family: str) -> bool:
        row = searched.get(family) or {}
        estimate = (row.get("fit_seconds") or 0.0) * len(data) / (row.get("fit_rows") or len(data))
        return ends is None or estimate <= ends - time.monotonic()

    if compared.manifest.get("kind") != ENSEMBLE:
        if not fits(selection["family"]):
            return Refit(error=f"{NOT_REFIT}its fit on {len(data):,} rows would outlast the {seconds:.1f} s "
                               "the budget held back for it")
        uri, sha = _refit_family(config, selection["family"], compared.manifest, prepared, data, keys, stores, recipe)
        return Refit(uri, sha, len(data))
    specs = compared.manifest["members"]
    archives, kept = {}, []
    for i in sorted(range(len(specs)), key=lambda i: -specs[i]["weight"]):
        family = specs[i]["family"]
        if fits(family):
            uri, sha = _refit_family(config, family, compared.members[i].manifest, prepared, data, keys, stores,
                                     recipe)
        else:
            kept.append(family)
            uri, sha = searched[family]["model_uri"], searched[family]["model_sha256"]
        archives[i] = stores.artifacts.read_verified(uri, sha)
    if len(kept) == len(specs):
        return Refit(error=f"{NOT_REFIT}no member's fit on {len(data):,} rows fits in the {seconds:.1f} s the "
                           "budget held back for it")
    if kept:
        log.info("refit: not %s, whose fit on all rows would outlast what was left of the %.1f s held back",
                 ", ".join(kept), seconds)
    weights = {m["family"]: m["weight"] for m in specs}
    origin = {"dag_id": keys.dag_id, "partition": keys.partition, "run_id": keys.run_id, "fit_rows": len(data),
              **({"compared_members": kept} if kept else {})}
    uri = stores.load_uri(keys, prepared["load_id"], "refit", selection["family"], "model.tar")
    sha = write_ensemble(stores.artifacts, uri, ensemble_manifest(selection["family"], prepared["task"],
                                                                  prepared["metric"], recipe, weights, origin),
                         [archives[i] for i in range(len(specs))])
    return Refit(uri, sha, len(data))


def _refit(config, selection: dict, prepared: dict, keys: RunKeys, stores: Stores, df, roles, recipe) -> Refit:
    """A refit when ``refit_full`` asks for one; a failed refit is logged and recorded, never raised:
    the compared model is then crowned as it is."""
    if not _refit_wanted(config, roles):
        return Refit()
    seconds = _refit_seconds(config, _validation(roles)) or None
    try:
        with threads.limit(1):
            refit = _refit_model(config, selection, prepared, keys, stores, df, roles, recipe, seconds)
    except Exception as exc:
        log.exception("refitting %s on all rows failed: the compared model becomes the champion", selection["family"])
        return Refit(error=f"{type(exc).__name__}: {exc}")
    if refit.error:
        log.info("%s: the compared model becomes the champion", refit.error)
    else:
        log.info("refit %s on all %d rows with a target: %s", selection["family"], refit.rows, refit.uri)
    return refit


def promote(config: DatasetConfig, selection: dict, prepared: dict, keys: RunKeys, stores: Stores) -> dict:
    """Crown the run's winner if it may replace the champion (not an older partition, better by the
    margin on this run's test rows). The swap is a compare-and-swap in the results DB: if another
    run changed the champion meanwhile, decide again against the new one.

    When it is crowned and ``refit_full`` is on, the stored champion is its refit on all the
    partition's rows with a target; the recorded test score stays the compared model's, and the
    compared model is the one that defends the title against later runs (a refit has seen rows
    that may be their test rows)."""
    from dagml.predictors import load_verified

    metric = get_metric(prepared["metric"])
    df = stores.artifacts.read_parquet(prepared["data_uri"])
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])

    def score(model_uri: str, sha256: str) -> float:
        return _test_score(load_verified(stores.artifacts, model_uri, sha256), df, roles, recipe, metric)

    challenger = load_verified(stores.artifacts, selection["model_uri"], selection["model_sha256"])
    challenger_score = _test_score(challenger, df, roles, recipe, metric)
    _record_diagnostics(config, selection["family"], challenger, df, roles, recipe, metric, keys, stores)
    refit = None  # fit once, when first promoted: a lost compare-and-swap decides again, not refits
    for _ in range(10):
        current = stores.results.champion(keys.dag_id)
        promote_it, reason, champion_score = _decide(
            config, keys, current, challenger_score, metric,
            lambda c: score(c.get("compared_model_uri") or c["model_uri"],
                            c.get("compared_model_sha256") or c["model_sha256"]))
        if not promote_it:
            break
        refit = refit or _refit(config, selection, prepared, keys, stores, df, roles, recipe)
        if stores.results.replace_champion(
                keys.dag_id, current["id"] if current else None, keys.partition, keys.run_id, selection["family"],
                metric.name, challenger_score, refit.uri or selection["model_uri"],
                refit.sha256 or selection["model_sha256"], reason, refit_rows=refit.rows, refit_error=refit.error,
                compared_model_uri=selection["model_uri"], compared_model_sha256=selection["model_sha256"]):
            break
        log.info("another run changed the champion meanwhile: deciding again against the new one")
    else:
        raise RuntimeError("the champion kept changing under this run's promotion; a retry decides again")
    champion = stores.results.champion(keys.dag_id)
    refit = refit if promote_it else Refit()
    stores.results.update_run(keys.dag_id, keys.partition, promoted=promote_it, promotion_reason=reason,
                              champion_family=champion["family"], champion_partition=champion["partition"],
                              refit_rows=refit.rows, refit_error=refit.error)
    log.info("%s %s: %s", "promoted" if promote_it else "kept the champion over", selection["family"], reason)
    telemetry.promotion(config.name, promote_it, champion["test_score"])
    keep = ("family", "partition", "run_id", "metric", "test_score", "model_uri", "model_sha256", "refit_rows")
    return {"promoted": promote_it, "reason": reason, "challenger_score": challenger_score,
            "champion_score": champion_score, "champion_family": champion["family"],
            "champion_uri": champion["model_uri"], "refit_rows": refit.rows, "refit_error": refit.error,
            "champion": {k: champion[k] for k in keep}}


def report(config: DatasetConfig, promotion: dict, keys: RunKeys, stores: Stores) -> str:
    from dagml.report import render_report
    from dagml.store.history import partition_history

    run = stores.results.run(keys.dag_id, keys.partition)
    rows = stores.results.leaderboard(keys.dag_id, keys.partition, keys.run_id)
    trials = {r["family"]: stores.results.trials(keys.dag_id, keys.partition, r["family"]) for r in rows}
    html = render_report(config, run, rows, trials, promotion, partition_history(stores.results, keys.dag_id),
                         stores.results.diagnostics(keys.dag_id, keys.partition, keys.run_id))
    uri = stores.artifacts.write_bytes(stores.uri(keys, "report.html"), html.encode())
    stores.results.update_run(keys.dag_id, keys.partition, status="success", report_uri=uri,
                              finished_at=datetime.now(timezone.utc))
    log.info("report: %s", uri)
    return uri


def register(config: DatasetConfig, promotion: dict, keys: RunKeys, stores: Stores) -> dict:
    """The run's winner in the config's model registry, as alias ``challenger``, and alias ``champion``
    on the version of dagml's champion. Runs after promote and undoes nothing there: a registry that
    cannot be reached fails this task, which a retry completes without duplicating a version."""
    from dagml import model_registry

    done = model_registry.register(config, keys, stores, config.registry.conn_id)
    stores.results.record_registration(keys.dag_id, keys.run_id, str(done["version"]))
    log.info("registry: %s (this run's champion decision: %s)", done, promotion["reason"])
    return done
