"""build_dag(config) -> an Airflow DAG of the shape in ARCHITECTURE.md, using TaskFlow.

Only the DAG's shape is built here, at parse time: the task callables import
``dagml.tasks`` (and through it pandas, scikit-learn, hyperopt) when they run.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import yaml

from dagml import shards, trigger
from dagml.config import ConfigError, DatasetConfig, load_configs, load_one

log = logging.getLogger("dagml.factory")
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: doc_md is built at every parse
QUEUES = {"sklearn": "default", "r": "r", "spark": "spark"}
SEARCH_KINDS = tuple(QUEUES)
SEARCH_POOL_ENV = "DAGML_SEARCH_POOL"
PARTITION_PATTERN = trigger.PARTITION_PATTERN


# The validated config of every DAG this process built. A task process parses its DAG file
# before running the task, so tasks read their config here instead of taking it as an
# argument, which would be serialised (and stored as rendered fields) once per task.
_CONFIGS: dict[str, DatasetConfig] = {}


def _effective_config(config: DatasetConfig, params: dict) -> DatasetConfig:
    """The config as validated at parse time, with the trigger form's values for this run."""
    return trigger.apply(config, params)


def timetable_for(schedule):
    """A config's schedule as Airflow's: a cron or preset becomes a data-interval timetable, so
    the run at midnight of 2 January trains on 1 January, the day that just ended (Airflow 3's
    default for a cron string, CronTriggerTimetable, would give it a zero-length interval);
    a list of asset URIs runs when every one has a new event; a partitioned asset schedule runs
    once per partition key its producers publish."""
    if schedule is None:
        return None
    if isinstance(schedule, list):
        from airflow.sdk import Asset

        return [Asset(uri) for uri in schedule]
    if not isinstance(schedule, str):  # an AssetSchedule
        from airflow.sdk import Asset, AssetAll, PartitionedAssetTimetable

        assets = [Asset(uri) for uri in schedule.assets]
        if not schedule.partitioned:
            return assets
        return PartitionedAssetTimetable(assets=assets[0] if len(assets) == 1 else AssetAll(*assets))
    from airflow.sdk import CronDataIntervalTimetable

    from dagml.partitions import cron_of

    return CronDataIntervalTimetable(cron_of(schedule), timezone="UTC")


def _context_and_keys():
    from airflow.sdk import get_current_context

    from dagml import threads

    threads.pin_environment()  # the task process: before dagml.tasks imports numpy and what it loads
    from dagml import partitions, tasks

    context = get_current_context()
    dag_id = context["dag"].dag_id
    config = _effective_config(_CONFIGS[dag_id], context["params"])
    partition = partitions.resolve(context, config.schedule)
    return context, config, partition, tasks.RunKeys(dag_id, partition.key, context["run_id"])


@contextmanager
def failing_at_once():
    """The one retry-or-fail decision: a permanent error (bad data, a family that cannot fit, a
    connection that does not exist, a tampered model) fails the task at once with its one-line
    reason; anything else (a network error, a timeout) is left to the task's retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from dagml.errors import PERMANENT_ERRORS

    try:
        yield
    except PERMANENT_ERRORS as exc:
        raise AirflowFailException(str(exc)) from None


def _run(step: str, **kwargs):
    from dagml import tasks, telemetry

    with failing_at_once():
        _, config, _, keys = _context_and_keys()
        with telemetry.stage(config.name, step):
            return getattr(tasks, step)(config, keys=keys, stores=tasks.Stores.from_settings(), **kwargs)


def render_for_partition(context, partition, value):
    """``value`` rendered by Airflow with the run's context and the partition's interval."""
    return context["task"].render_template(value, {**context, **partition.template_context()})


def rendered_source(context, source, partition) -> dict:
    """A source's templated parts rendered for this partition: the URI, or only the values of
    the SQL parameters (the query text is never templated, and the values are bound)."""
    if source.sql is not None:
        return {"source_uri": None, "parameters": render_for_partition(context, partition, dict(source.parameters))}
    return {"source_uri": render_for_partition(context, partition, source.uri), "parameters": None}


def _load() -> dict:
    with failing_at_once():
        context, config, partition, _ = _context_and_keys()
        rendered = rendered_source(context, config.source, partition)
    return _run("load", trigger=trigger.recorded(context["params"]), **rendered)


def _wait_for_source():
    """Poke until the partition's file, object or rows exist (the sensor frees its slot between pokes)."""
    from dagml import tasks

    with failing_at_once():
        context, config, partition, _ = _context_and_keys()
        return tasks.source_ready(config, **rendered_source(context, config.source, partition))


def _record_failure(context) -> None:
    """on_failure_callback: the run's recorded error is its first failing task's one-line reason.

    It runs in the task's process, or in the dag-processor when the task's worker died (then
    there is no exception to quote). A search's failure is its family's leaderboard row instead.
    """
    from dagml import partitions, tasks

    ti = context["ti"]
    if ti.task_id.startswith("search_"):
        return
    exc = context.get("exception")
    reason = (str(exc).splitlines() or [type(exc).__name__])[0] if exc is not None else (
        "the task's process or worker ended without reporting (killed, lost or timed out); see its log")
    config = _CONFIGS[context["dag"].dag_id]
    try:  # for a run that failed before its row was written
        partition = partitions.resolve(context, config.schedule).key
    except Exception:  # the very reason it failed, e.g. asset events without a partition
        partition = None
    if ti.task_id == "wait_for_source" and exc is not None and "timed out" in str(exc):
        reason = (f"partition {partition} of {config.source.where} did not appear within "
                  f"{config.source.wait.timeout:g} s")
    tasks.record_run_failure(context["dag"].dag_id, context["run_id"], ti.task_id, reason, partition)


def _profile(loaded: dict) -> dict:
    return _run("profile", loaded=loaded)


def _prepare(loaded: dict, summary: dict) -> dict:
    return _run("prepare", loaded=loaded, summary=summary)


def _search(prepared: dict, family: str) -> dict:
    """One mapped search: ``family`` is a family's name, or one of its shards' (``dagml.shards``)."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    context["family"] = family  # labels the mapped instance in the UI
    shard = shards.Shard.parse(family)
    with failing_at_once():
        chosen = [f.name for f in _effective_config(_CONFIGS[context["dag"].dag_id], context["params"]).families]
    if shard.family not in chosen:
        # The mapping is fixed at parse time and the form chose fewer families. It ends as a success
        # with nothing searched, not as skipped: select's trigger rule reads a skipped upstream as
        # "not done" and would skip the run's selection.
        log.info("%s is not among this run's families (the trigger form's): nothing searched", shard.family)
        return {"family": family, "not_chosen": True}
    return _run("search_family", family_key=shard.family, prepared=prepared, shard=shard)


def _select(prepared: dict) -> dict:
    return _run("select", prepared=prepared)


def _promote(selection: dict, prepared: dict) -> dict:
    return _run("promote", selection=selection, prepared=prepared)


def _publish_champion(promotion: dict) -> None:
    """Emit the champion asset's event, with what a consumer needs in its extra, only when it changed."""
    from airflow.sdk import Asset, get_current_context
    from airflow.sdk.exceptions import AirflowSkipException

    if not promotion["promoted"]:
        raise AirflowSkipException(f"the champion did not change: {promotion['reason']}")
    context = get_current_context()
    config = _CONFIGS[context["dag"].dag_id]
    context["outlet_events"][Asset(config.champion_asset)].extra = promotion["champion"]


def _report(promotion: dict) -> str:
    return _run("report", promotion=promotion)


def _register(promotion: dict) -> dict:
    return _run("register", promotion=promotion)


def _doc(config: DatasetConfig) -> str:
    data = config.model_dump(mode="json")
    families = ", ".join(f"`{f.name}`" for f in config.families)
    return (f"# {config.name}\n\n{config.description}\n\nAutoML over {families}, chosen by "
            f"`{config.metric or 'the task default metric'}` on validation rows.\n\n"
            f"```yaml\n{yaml.dump(data, Dumper=_Dumper, sort_keys=False)}```\n")


def search_pool() -> str | None:
    """The Airflow pool every search task takes slots of: ``DAGML_SEARCH_POOL`` (the cluster's
    ``dagml_search``, as many slots as its cores), else Airflow's ``default_pool``. Read at parse time
    from the environment (no I/O): a pool named here that does not exist keeps the searches from
    being scheduled (Airflow shows a "non-existent pool" DAG warning), so create it first."""
    return os.environ.get(SEARCH_POOL_ENV) or None


def search_task_id(kind: str, threads: int) -> str:
    """``search_sklearn`` for families of 1 thread, ``search_sklearn_t4`` for those of 4: a mapped task
    has one pool_slots value for all its instances (Airflow maps only the callable's arguments)."""
    return f"search_{kind}" if threads == 1 else f"search_{kind}_t{threads}"


def search_groups(config: DatasetConfig) -> list[tuple[str, int]]:
    """(kind, threads) of each mapped search task, in a stable order."""
    return sorted({(f.kind, f.threads) for f in config.families})


def mapped_searches(config: DatasetConfig, kind: str, threads: int) -> list[str]:
    """What the search task of (kind, threads) is mapped over: its families' names, or for a family of
    ``shards: k``, its k shards' (``sklearn:random_forest#2of2``), each a map index of its own."""
    return [shard.label for f in config.families if (f.kind, f.threads) == (kind, threads) for shard in shards.of(f)]


def build_dag(config: DatasetConfig):
    from airflow.sdk import DAG, Asset, Param, TriggerRule, task

    start = datetime.combine(config.start_date, datetime.min.time(), tzinfo=timezone.utc)
    with DAG(
        dag_id=config.dag_id,
        description=config.description or f"AutoML for {config.name}",
        doc_md=_doc(config),
        schedule=timetable_for(config.schedule),
        start_date=start,
        catchup=config.catchup,
        max_active_runs=config.max_active_runs,
        tags=["dagml", *config.tags],
        default_args={"owner": config.owner, "retries": config.retries, "retry_delay": config.retry_delay,
                      "on_failure_callback": _record_failure},
        params={name: Param(**field) for name, field in trigger.form(config).items()},
        render_template_as_native_obj=False,
    ) as dag:
        first = loaded = task(task_id="load")(_load)()
        if config.source.wait is not None:
            wait = config.source.wait
            first = task.sensor(task_id="wait_for_source", mode="reschedule", poke_interval=wait.poke_interval,
                                timeout=wait.timeout, soft_fail=False)(_wait_for_source)()
            first >> loaded
        summary = task(task_id="profile")(_profile)(loaded)
        prepared = task(task_id="prepare")(_prepare)(loaded, summary)
        pool = search_pool()
        searches = [
            task(task_id=search_task_id(kind, threads), queue=QUEUES[kind], map_index_template="{{ family }}",
                 **({"pool": pool} if pool else {}), pool_slots=threads)(_search)
            .partial(prepared=prepared)
            .expand(family=mapped_searches(config, kind, threads))
            for kind, threads in search_groups(config)
        ]
        # select runs when every search ended, however, but not when prepare failed: then the
        # run's reason is prepare's, and select has nothing to add
        selection = task(task_id="select", trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)(_select)(prepared)
        [prepared, *searches] >> selection
        promotion = task(task_id="promote")(_promote)(selection, prepared)
        published = task(task_id="publish_champion", outlets=[Asset(config.champion_asset)])(_publish_champion)(
            promotion)
        # report is the last task, so the run row it marks a success is the end of a run Airflow
        # calls a success too; it runs whether or not the champion changed (publish skipped)
        report = task(task_id="report", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)(_report)(promotion)
        published >> report
        if config.registry is not None:
            # last, so an MLflow outage leaves the run's promotion and report as they are; it runs
            # even when report failed, as long as promote did
            registered = task(task_id="register", trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)(_register)(
                promotion)
            report >> registered
    _CONFIGS[config.dag_id] = config
    return dag


def dags_from_folder(folder: Path | str, only_dag_id: str | None = None) -> dict:
    """Every valid config in ``folder`` as a DAG (or just ``only_dag_id``'s, inside a task process).

    Invalid configs are skipped here and reported by ``raise_config_errors``.
    """
    if only_dag_id and only_dag_id.startswith("automl__"):
        config = load_one(folder, only_dag_id.removeprefix("automl__"))
        if config is not None:
            return {config.dag_id: build_dag(config)}
    configs, _ = load_configs(folder)
    return {c.dag_id: build_dag(c) for c in configs if only_dag_id in (None, c.dag_id)}


def raise_config_errors(folder: Path | str) -> None:
    """Raise one error naming every invalid config file and field (an Airflow import error)."""
    _, errors = load_configs(folder)
    if errors:
        raise ConfigError(Path(folder), [str(e) for e in errors])
