"""The trigger form: its fields (JSON Schema, fixed when the DAG is parsed) and the one place a
run's form values replace the config's for that run only.

Airflow validates a conf against the schema on the server (types, bounds, the metric's enum).
What depends on dagml (a family this config does not allow, a metric that does not fit the
task) is checked by ``apply`` in the run's first task, which fails naming the param. Nothing
here imports more than the config: it runs at parse time.
"""

from __future__ import annotations

from pydantic import ValidationError

from dagml.config import BASELINE_FAMILY, REFIT_SHARE, Budget, DatasetConfig, Split
from dagml.errors import DataError
from dagml.metrics import DEFAULT_METRIC, METRICS, TASKS

PARTITION_PATTERN = r"^[A-Za-z0-9_.=:+-]{1,200}$"  # dagml.partitions.KEY, which is not imported at parse time
BUDGET_KEYS = ("total_seconds", "max_evals", "seconds")
_DATA, _MODELS, _BUDGET, _RUN = "Data", "Families and metric", "Search budget", "About this run"
_MAX_SECONDS = 7 * 24 * 3600  # as config.Budget


def _tasks_of(config: DatasetConfig) -> set[str]:
    """The tasks this dataset can turn out to be: its own, or what its metric allows."""
    if config.task:
        return {config.task}
    return set(METRICS[config.metric].tasks) if config.metric else set(TASKS)


def metric_choices(config: DatasetConfig) -> list[str]:
    tasks = _tasks_of(config)
    return [name for name, m in METRICS.items() if m.tasks & tasks]


def _label(family: str) -> str:
    kind, name = family.split(":", 1)
    return f"{name.replace('_', ' ')} ({kind})" + (" — the baseline, always searched" if family == BASELINE_FAMILY
                                                   else "")


def form(config: DatasetConfig) -> dict[str, dict]:
    """Each trigger-form field as keyword arguments of ``airflow.sdk.Param`` (plain data)."""
    families = [f.name for f in config.families]
    metrics = metric_choices(config)
    metric = config.metric or (DEFAULT_METRIC[config.task] if config.task else None)
    return {
        "partition": dict(default=None, type=["null", "string"], pattern=PARTITION_PATTERN, section=_DATA,
                          title="Partition", description=(
                              "The partition to train on, e.g. 2026-01-05 (blank: the schedule's latest completed "
                              "interval)")),
        "test_size": dict(default=config.split.test_size, type="number", exclusiveMinimum=0, exclusiveMaximum=0.9,
                          section=_DATA, title="Test share",
                          description="Share of the rows held out to report the test score (never used to choose)"),
        "seed": dict(default=config.seed, type="integer", minimum=0, maximum=2**32 - 1, section=_DATA, title="Seed",
                     description="Seeds the split, the searches and the samples of this run"),
        "families": dict(default=families, type="array", items={"type": "string"}, minItems=1, uniqueItems=True,
                         examples=families, values_display={f: _label(f) for f in families}, section=_MODELS,
                         title="Families", description=(
                             "The model families to search in this run: any of this dataset's configured ones "
                             f"({BASELINE_FAMILY} is always added)")),
        "metric": dict(default=metric, type="string" if metric else ["null", "string"],
                       enum=metrics if metric else [None, *metrics], section=_MODELS, title="Metric", description=(
                           "Chooses among families (validation rows) and decides promotion (test rows)"
                           + ("" if metric else "; blank: the default of the task inferred from the data"))),
        "total_seconds": dict(default=None, type=["null", "number"], exclusiveMinimum=0, maximum=_MAX_SECONDS,
                              section=_BUDGET, title="Search seconds for the whole run", description=(
                                  f"Shared by its families; on a holdout-validated partition {REFIT_SHARE:.0%} pay "
                                  "for the refit on all rows (blank: the config's budget)")),
        "max_evals": dict(default=None, type=["null", "integer"], minimum=1, maximum=10_000, section=_BUDGET,
                          title="Evaluations per family",
                          description="Evaluations per family for this run (blank: the config's budget)"),
        "seconds": dict(default=None, type=["null", "number"], exclusiveMinimum=0, maximum=_MAX_SECONDS,
                        section=_BUDGET, title="Seconds per family",
                        description="Seconds per family search for this run (blank: the config's budget)"),
        "note": dict(default=None, type=["null", "string"], maxLength=1000, section=_RUN, title="Note",
                     description="Why this run was started; shown with its leaderboard"),
    }


def _invalid(param: str, message: str) -> DataError:
    return DataError(f"trigger param {param!r}: {message}")


def _families(config: DatasetConfig, chosen: list) -> list:
    allowed = {f.name: f for f in config.families}
    names = [c if ":" in str(c) else f"sklearn:{c}" for c in chosen]  # a bare name means scikit-learn
    unknown = [c for c, n in zip(chosen, names) if n not in allowed]
    if unknown:
        raise _invalid("families", f"{', '.join(map(repr, unknown))} not among this config's families "
                                   f"({', '.join(allowed)})")
    if not names:
        raise _invalid("families", "choose at least one family")
    if BASELINE_FAMILY not in names:  # every leaderboard carries the baseline row
        names.append(BASELINE_FAMILY)
    return [allowed[n] for n in dict.fromkeys(names)]


def _metric(config: DatasetConfig, metric: str) -> str:
    if metric not in METRICS:
        raise _invalid("metric", f"unknown metric {metric!r}; valid: {', '.join(sorted(METRICS))}")
    if not METRICS[metric].tasks & _tasks_of(config):
        raise _invalid("metric", f"{metric!r} does not fit this dataset's {' or '.join(sorted(_tasks_of(config)))} "
                                 f"task; valid: {', '.join(metric_choices(config))}")
    return metric


def _checked(model, values: dict):
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _invalid(str(first["loc"][0]), first["msg"]) from None


def apply(config: DatasetConfig, params: dict) -> DatasetConfig:
    """The config as this run uses it: the form's values in place of the config's (a blank field,
    or a value equal to the config's, changes nothing). Raises ``DataError`` naming the param."""
    update = {}
    budget = {k: params[k] for k in BUDGET_KEYS if params.get(k) is not None}
    families = config.families
    if params.get("families") is not None:
        families = _families(config, list(params["families"]))
    if budget:
        update["budget"] = _checked(Budget, {**config.budget.model_dump(), **budget})
        # a form's per-family budget replaces the config's per-family entries too
        per_family = {k: None for k in budget if k != "total_seconds"}
        families = [f.model_copy(update=per_family) for f in families]
    if families != config.families:
        update["families"] = families
    if params.get("metric") is not None and params["metric"] != config.metric:
        update["metric"] = _metric(config, params["metric"])
    if params.get("test_size") is not None and params["test_size"] != config.split.test_size:
        update["split"] = _checked(Split, {**config.split.model_dump(), "test_size": params["test_size"]})
    if params.get("seed") is not None and params["seed"] != config.seed:
        if not isinstance(params["seed"], int) or not 0 <= params["seed"] <= 2**32 - 1:
            raise _invalid("seed", f"{params['seed']!r} is not an integer from 0 to {2**32 - 1}")
        update["seed"] = params["seed"]
    return config.model_copy(update=update) if update else config


def recorded(params: dict) -> dict:
    """The form's values as the run records them (JSON): only the form's own fields."""
    fields = ("partition", "families", "metric", "test_size", "seed", *BUDGET_KEYS, "note")
    return {k: params.get(k) for k in fields if k in params}
