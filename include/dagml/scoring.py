"""The scoring DAG ``score__<name>``: the dataset's current champion predicts each partition of
``scoring.source`` and writes the predictions to ``scoring.output``.

One TaskFlow task, ``score``: load the champion from the results store (its SHA-256 checked
before anything is unpickled), read the partition (the source and output are rendered by
Airflow's templating, like the training DAG's load task), check the input against what the
champion needs, predict, and write key columns, ``prediction``, ``proba_<class>`` and the
champion's family, partition and digest, atomically (a temporary file, then a move). With
``scoring.source.wait``, a ``wait_for_source`` sensor comes first, as in the training DAG.

The run's partition is decided as for training (``dagml.partitions.resolve``): the trigger
form's ``partition``, a partition key, the triggering champion event's ``partition``, the data
interval, else the latest completed interval. The templates see it as ``{{ partition }}``,
``{{ ds }}``, ``{{ data_interval_start }}``... The task body is ``score``, a plain function;
``build_scoring_dag`` builds the DAG at parse time with nothing heavier than the config imported.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from dagml.config import DatasetConfig, load_configs, load_one
from dagml.errors import DataError

log = logging.getLogger("dagml.scoring")

CHAMPION_SCHEDULE = "champion"
CHAMPION_COLUMNS = ("champion_family", "champion_partition", "champion_sha256")

# The configs of the scoring DAGs this process built (see factory._CONFIGS: a task reads its
# config here instead of taking it as an argument that would be serialised per task).
_CONFIGS: dict[str, DatasetConfig] = {}


def _storage(conn_id: str | None) -> dict | None:
    """fsspec options from an Airflow connection; ``ConnectionNotFound`` naming it when it is not defined."""
    from dagml import settings

    return settings.storage_options(conn_id) if conn_id else None


def read_input(config: DatasetConfig, source_uri: str | None, parameters: dict | None = None):
    """The partition to score: ``source_uri`` (rendered), or the SQL query with ``parameters`` (rendered) bound."""
    from dagml.sources import read_frame

    return read_frame(config.scoring.source, source_uri, parameters, field="scoring.source")


def source_ready(config: DatasetConfig, source_uri: str | None, parameters: dict | None = None) -> bool:
    """Whether the partition to score is there yet: the file or object exists, or the query returns a row."""
    from dagml import sources

    source = config.scoring.source
    ready = sources.source_ready(source, source_uri, parameters, field="scoring.source")
    log.info("partition %s: %s", source_uri or source.where, "ready" if ready else "not there yet")
    return ready


def output_frame(predictor, df, key_columns: list[str], champion: dict):
    """Key columns, ``prediction``, ``proba_<class>`` per class, and the champion's identity, one row per input row."""
    import pandas as pd

    missing = [c for c in key_columns if c not in df.columns]
    if missing:
        raise DataError(f"scoring.key_columns: input has no column(s) {', '.join(missing)}")
    predictions = predictor.predictions(df)
    clash = sorted(set(key_columns) & {*predictions.columns, *CHAMPION_COLUMNS})
    if clash:
        raise DataError(f"scoring.key_columns: {', '.join(clash)} would clash with an output column of that name")
    out = pd.concat([df[key_columns], predictions], axis=1).reset_index(drop=True)
    for column, field in zip(CHAMPION_COLUMNS, ("family", "partition", "model_sha256")):
        out[column] = champion[field]
    return out


def write_output(df, uri: str, storage_options: dict | None = None) -> str:
    """Parquet when ``uri`` ends in .parquet (or .pq), else CSV; readers never see half a file."""
    import io

    from dagml.store.artifacts import ArtifactStore

    if uri.lower().endswith((".parquet", ".pq")):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        data = buf.getvalue()
    else:
        data = df.to_csv(index=False).encode()
    return ArtifactStore(uri, storage_options).write_bytes(uri, data)  # a temporary file, then a move


def score(config: DatasetConfig, source_uri: str | None, output_uri: str, partition: str, stores,
          parameters: dict | None = None) -> dict:
    """Score one partition with the dataset's champion and write the predictions to ``output_uri``.

    ``source_uri`` (or, for a SQL source, ``parameters``) and ``output_uri`` arrive rendered;
    ``stores`` is a ``tasks.Stores``. Raises ``DataError`` (no champion, bad input),
    ``ChecksumMismatch`` (the champion's archive is not the one recorded) or
    ``ConnectionNotFound``; nothing is written then.
    """
    from dagml.predictors import load_verified

    if config.scoring is None:
        raise DataError(f"{config.name}: the config has no scoring section")
    stores.results.migrate()
    champion = stores.results.champion(config.dag_id)
    if champion is None:
        raise DataError(f"{config.dag_id} has no champion yet: nothing to score with (run {config.dag_id} first)")
    output_storage = _storage(config.scoring.conn_id)
    with tempfile.TemporaryDirectory(prefix="dagml-score-") as workdir:
        predictor = load_verified(stores.artifacts, champion["model_uri"], champion["model_sha256"], Path(workdir))
        log.info("champion %s (partition %s, sha256 %s) from %s", champion["family"], champion["partition"],
                 champion["model_sha256"], champion["model_uri"])
        df = read_input(config, source_uri, parameters)
        log.info("scoring %d rows x %d columns of partition %s from %s", len(df), df.shape[1], partition,
                 source_uri if source_uri is not None else config.scoring.source.where)
        out = output_frame(predictor, df, config.scoring.key_columns, champion)
    uri = write_output(out, output_uri, output_storage)
    log.info("wrote %d predictions to %s", len(out), uri)
    return {"output_uri": uri, "rows": len(out), "partition": partition, "source_uri": source_uri,
            "champion_family": champion["family"], "champion_partition": champion["partition"],
            "champion_sha256": champion["model_sha256"]}


def _partition_schedule(config: DatasetConfig):
    """The schedule whose intervals name a scoring run's partitions (none for ``champion`` or manual)."""
    schedule = config.scoring.schedule
    return None if schedule in (None, CHAMPION_SCHEDULE) else schedule


def _rendered(context, config: DatasetConfig, partition) -> dict:
    """The scoring source's templated parts (the URI, or only the SQL parameters' values: the query
    is never templated) and the output URI, rendered by Airflow for this run's partition."""
    from dagml.factory import render_for_partition, rendered_source

    output = render_for_partition(context, partition, config.scoring.output)
    return {"output_uri": output, **rendered_source(context, config.scoring.source, partition)}


def _in_task(body):
    """Run ``body(context, config, partition, rendered)`` in a task; a permanent error (bad data, a
    tampered champion, a connection that does not exist) fails at once, anything else is retried."""
    from airflow.sdk import get_current_context

    from dagml import partitions
    from dagml.factory import failing_at_once

    with failing_at_once():
        context = get_current_context()
        config = _CONFIGS[context["dag"].dag_id]
        partition = partitions.resolve(context, _partition_schedule(config))
        return body(context, config, partition, _rendered(context, config, partition))


def _score() -> dict:
    from dagml import tasks

    return _in_task(lambda context, config, partition, rendered: score(
        config, rendered["source_uri"], rendered["output_uri"], partition.key, tasks.Stores.from_settings(),
        rendered["parameters"]))


def _wait_for_source() -> bool:
    return _in_task(lambda context, config, partition, rendered: source_ready(
        config, rendered["source_uri"], rendered["parameters"]))


def schedule_for(config: DatasetConfig):
    """The ``schedule`` of the scoring DAG: a data-interval timetable for a cron or preset (as
    the training DAG), the champion asset for ``champion``, None (manual runs) for null."""
    schedule = config.scoring.schedule
    if schedule is None:
        return None
    if schedule == CHAMPION_SCHEDULE:
        from airflow.sdk import Asset

        return [Asset(config.champion_asset)]
    if schedule in ("@once", "@continuous"):  # not a cron: Airflow's own timetables
        return schedule
    from dagml.factory import timetable_for

    return timetable_for(schedule)


def _doc(config: DatasetConfig) -> str:
    scoring = config.scoring
    when = {None: "manual runs only", CHAMPION_SCHEDULE: f"each time `{config.champion_asset}` changes"}.get(
        scoring.schedule, f"`{scoring.schedule}`")
    keys = ", ".join(f"`{c}`" for c in scoring.key_columns) or "none"
    return (f"# Scoring {config.name}\n\nThe champion of `{config.dag_id}` scores `{scoring.source.where}` "
            f"and writes `{scoring.output}` (key columns: {keys}). Schedule: {when}.\n")


def build_scoring_dag(config: DatasetConfig):
    """The DAG ``score__<name>`` of a config with a ``scoring`` section (one task, ``score``)."""
    from airflow.sdk import DAG, Param, task

    from dagml.factory import PARTITION_PATTERN

    if config.scoring is None:
        raise ValueError(f"{config.name}: the config has no scoring section")
    start = datetime.combine(config.start_date, datetime.min.time(), tzinfo=timezone.utc)
    with DAG(
        dag_id=config.scoring_dag_id,
        description=f"Score {config.name} with the champion of {config.dag_id}",
        doc_md=_doc(config),
        schedule=schedule_for(config),
        start_date=start,
        catchup=config.catchup,
        max_active_runs=config.max_active_runs,
        tags=["dagml", "scoring", *config.tags],
        default_args={"owner": config.owner, "retries": config.retries, "retry_delay": config.retry_delay},
        params={"partition": Param(None, type=["null", "string"], pattern=PARTITION_PATTERN, description=(
            "The partition to score, e.g. 2026-01-05 (blank: the run's data interval, or the new champion's "
            "partition in a run the champion triggered)"))},
        render_template_as_native_obj=False,
    ) as dag:
        scored = task(task_id="score")(_score)()
        wait = config.scoring.source.wait
        if wait is not None:
            task.sensor(task_id="wait_for_source", mode="reschedule", poke_interval=wait.poke_interval,
                        timeout=wait.timeout)(_wait_for_source)() >> scored
    _CONFIGS[config.scoring_dag_id] = config
    return dag


def scoring_dags_from_folder(folder: Path | str, only_dag_id: str | None = None) -> dict:
    """A scoring DAG for every valid config in ``folder`` that has a ``scoring`` section (or just
    ``only_dag_id``'s, inside a task process). Invalid configs are reported by the training DAG file."""
    if only_dag_id and only_dag_id.startswith("score__"):
        config = load_one(folder, only_dag_id.removeprefix("score__"))
        if config is not None and config.scoring is not None:
            return {config.scoring_dag_id: build_scoring_dag(config)}
    configs, _ = load_configs(folder)
    return {c.scoring_dag_id: build_scoring_dag(c) for c in configs
            if c.scoring is not None and only_dag_id in (None, c.scoring_dag_id)}
