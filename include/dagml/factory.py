"""build_dag(config) -> an Airflow DAG of the shape in ARCHITECTURE.md, using TaskFlow.

Only the DAG's shape is built here, at parse time: the task callables import
``dagml.tasks`` (and through it pandas, scikit-learn, hyperopt) when they run.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import yaml

from dagml.config import ConfigError, DatasetConfig, load_configs, load_one

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: doc_md is built at every parse
QUEUES = {"sklearn": "default", "r": "r", "spark": "spark"}
SEARCH_KINDS = tuple(QUEUES)


def _partition(context) -> str:
    """The data partition a run trains on: its logical date, or its run id when it has none."""
    from dagml.store.artifacts import safe_part

    return context.get("ds") or safe_part(context["run_id"])


# The validated config of every DAG this process built. A task process parses its DAG file
# before running the task, so tasks read their config here instead of taking it as an
# argument, which would be serialised (and stored as rendered fields) once per task.
_CONFIGS: dict[str, DatasetConfig] = {}


def _effective_config(config: DatasetConfig, params: dict) -> DatasetConfig:
    """The config as validated at parse time, with any budget the trigger form overrode."""
    override = {k: params[k] for k in ("max_evals", "seconds") if params.get(k) is not None}
    if not override:
        return config
    families = [f.model_copy(update={k: None for k in override}) for f in config.families]
    return config.model_copy(update={"budget": config.budget.model_copy(update=override), "families": families})


def _run(step: str, **kwargs):
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from dagml import tasks

    context = get_current_context()
    dag_id = context["dag"].dag_id
    keys = tasks.RunKeys(dag_id, _partition(context), context["run_id"])
    try:
        return getattr(tasks, step)(_effective_config(_CONFIGS[dag_id], context["params"]), keys=keys,
                                    stores=tasks.Stores.from_settings(), **kwargs)
    except tasks.PERMANENT_ERRORS as exc:  # bad data or a family that cannot fit: retrying cannot help
        raise AirflowFailException(str(exc)) from exc


def _load(source_uri: str) -> dict:
    return _run("load", source_uri=source_uri)


def _profile(loaded: dict) -> dict:
    return _run("profile", loaded=loaded)


def _prepare(loaded: dict, summary: dict) -> dict:
    return _run("prepare", loaded=loaded, summary=summary)


def _search(prepared: dict, family: str) -> dict:
    from airflow.sdk import get_current_context

    get_current_context()["family"] = family  # labels the mapped instance in the UI
    return _run("search_family", family_key=family, prepared=prepared)


def _select() -> dict:
    return _run("select")


def _promote(selection: dict, prepared: dict) -> dict:
    return _run("promote", selection=selection, prepared=prepared)


def _report(promotion: dict) -> str:
    return _run("report", promotion=promotion)


def _doc(config: DatasetConfig) -> str:
    data = config.model_dump(mode="json")
    families = ", ".join(f"`{f.name}`" for f in config.families)
    return (f"# {config.name}\n\n{config.description}\n\nAutoML over {families}, chosen by "
            f"`{config.metric or 'the task default metric'}` on validation rows.\n\n"
            f"```yaml\n{yaml.dump(data, Dumper=_Dumper, sort_keys=False)}```\n")


def build_dag(config: DatasetConfig):
    from airflow.sdk import DAG, Param, TriggerRule, task

    start = datetime.combine(config.start_date, datetime.min.time(), tzinfo=timezone.utc)
    with DAG(
        dag_id=config.dag_id,
        description=config.description or f"AutoML for {config.name}",
        doc_md=_doc(config),
        schedule=config.schedule,
        start_date=start,
        catchup=config.catchup,
        max_active_runs=config.max_active_runs,
        tags=["dagml", *config.tags],
        default_args={"owner": config.owner, "retries": config.retries, "retry_delay": config.retry_delay},
        params={
            "max_evals": Param(None, type=["null", "integer"], minimum=1,
                               description="Evaluations per family for this run (blank: the config's budget)"),
            "seconds": Param(None, type=["null", "number"], exclusiveMinimum=0,
                             description="Seconds per family search for this run (blank: the config's budget)"),
        },
        render_template_as_native_obj=False,
    ) as dag:
        loaded = task(task_id="load")(_load)(config.source.uri)
        summary = task(task_id="profile")(_profile)(loaded)
        prepared = task(task_id="prepare")(_prepare)(loaded, summary)
        searches = [
            task(task_id=f"search_{kind}", queue=QUEUES[kind], map_index_template="{{ family }}")(_search)
            .partial(prepared=prepared)
            .expand(family=[f.name for f in config.families if f.kind == kind])
            for kind in config.kinds()
        ]
        selection = task(task_id="select", trigger_rule=TriggerRule.ALL_DONE)(_select)()
        searches >> selection
        promotion = task(task_id="promote")(_promote)(selection, prepared)
        task(task_id="report")(_report)(promotion)
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
