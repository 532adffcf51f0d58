"""What dagml does, as metrics sent through Airflow's own metrics client.

Airflow's ``[metrics]`` section decides where they go (StatsD, its Datadog or InfluxDB formats,
or OpenTelemetry) and its prefix (``airflow.`` by default); dagml only names them. Plain StatsD
drops tags, so the dataset and the family are parts of each name, which every backend keeps:
``dagml.trials_done.<dataset>.<kind>.<family>`` (``sklearn:random_forest`` is ``sklearn.random_forest``).
A name is at most 250 characters of ``[A-Za-z0-9_.-]``: a dataset name is a slug of at most 63.

A metric is never a reason for a task to fail: an error while sending one is logged and
the task goes on. With metrics off (Airflow's default, and the embedded setup's) nothing is
called at all. (``dagml.metrics`` is something else: the scoring metrics, ROC AUC, RMSE...)
"""

from __future__ import annotations

import functools
import logging
import re
import time
from contextlib import contextmanager
from datetime import timedelta

log = logging.getLogger("dagml.telemetry")

# Every metric dagml sends, by kind: the names the StatsD exporter mapping and the Grafana
# dashboard are written against (tests/unit/test_telemetry.py holds them to each other).
COUNTERS = {
    "trials_done": "dagml.trials_done.{dataset}.{family}",  # every trial that ended, failed ones too
    "trials_failed": "dagml.trials_failed.{dataset}.{family}",
    "searches_done": "dagml.searches_done.{dataset}.{family}",  # a search that stored its model
    "searches_failed": "dagml.searches_failed.{dataset}.{family}",
    "promotions": "dagml.promotions.{dataset}",
}
GAUGES = {
    "best_val_score": "dagml.best_val_score.{dataset}.{family}",  # the family's validation score this run
    "champion_score": "dagml.champion_score.{dataset}",  # the champion's recorded test score after promote
}
TIMERS = {
    "trial_seconds": "dagml.trial_seconds.{dataset}.{family}",
    "search_seconds": "dagml.search_seconds.{dataset}.{family}",
    "stage_seconds": "dagml.stage_seconds.{dataset}.{stage}",
}
# dagml.tasks functions as the run's stages
STAGES = {"load": "load", "profile": "profile", "prepare": "prepare", "search_family": "search",
          "select": "select", "promote": "promote", "report": "report"}

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _segment(value: str) -> str:
    """One dot-free part of a name: anything but [A-Za-z0-9_-] becomes ``_``."""
    return _UNSAFE.sub("_", value)


def name(template: str, dataset: str, family: str | None = None, stage: str | None = None) -> str:
    """A metric's name: ``family`` ``kind:name`` becomes the two parts ``kind.name``."""
    fields = {"dataset": _segment(dataset)}
    if family is not None:
        kind, _, family_name = family.partition(":")
        fields["family"] = f"{_segment(kind)}.{_segment(family_name)}" if family_name else _segment(kind)
    if stage is not None:
        fields["stage"] = _segment(stage)
    return template.format(**fields)


@functools.cache
def enabled() -> bool:
    """Whether Airflow's ``[metrics]`` section turns a backend on: Airflow's own choice of client."""
    try:
        from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
        from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

        return get_stats_factory() is not NoStatsLogger
    except Exception as exc:  # no Airflow, or a broken [metrics] section: no metrics, the task goes on
        log.warning("metrics off: cannot read Airflow's [metrics] settings (%s: %s)", type(exc).__name__, exc)
        return False


def _send(method: str, stat: str, *args) -> None:
    if not enabled():
        return
    try:
        from airflow.sdk.observability import stats

        getattr(stats, method)(stat, *args)
    except Exception as exc:  # e.g. a failing stat_name_handler: logged, never the task's failure
        log.warning("metric %s not sent: %s: %s", stat, type(exc).__name__, exc)


def trial(dataset: str, family: str, seconds: float, ok: bool) -> None:
    """One trial of a family's search ended (counted where its result comes back, not in a forked child)."""
    if not enabled():
        return
    _send("incr", name(COUNTERS["trials_done"], dataset, family))
    if not ok:
        _send("incr", name(COUNTERS["trials_failed"], dataset, family))
    _send("timing", name(TIMERS["trial_seconds"], dataset, family), timedelta(seconds=seconds))


def search_ended(dataset: str, family: str, seconds: float | None = None, val_score: float | None = None) -> None:
    """A family's search (or one shard of it) stored its model in ``seconds``, or failed (None). A
    shard gives no ``val_score``: its family's is sent by ``best_score`` when select merges the shards."""
    if not enabled():
        return
    if seconds is None:
        _send("incr", name(COUNTERS["searches_failed"], dataset, family))
        return
    _send("incr", name(COUNTERS["searches_done"], dataset, family))
    _send("timing", name(TIMERS["search_seconds"], dataset, family), timedelta(seconds=seconds))
    if val_score is not None:
        best_score(dataset, family, val_score)


def best_score(dataset: str, family: str, val_score: float) -> None:
    """The family's leaderboard row's validation score (a gauge)."""
    if enabled():
        _send("gauge", name(GAUGES["best_val_score"], dataset, family), float(val_score))


def promotion(dataset: str, promoted: bool, champion_score: float | None) -> None:
    """After promote: a promotion counted when the champion changed, and the champion's test score."""
    if not enabled():
        return
    if promoted:
        _send("incr", name(COUNTERS["promotions"], dataset))
    if champion_score is not None:
        _send("gauge", name(GAUGES["champion_score"], dataset), float(champion_score))


@contextmanager
def stage(dataset: str, step: str):
    """Time one of the run's stages (a ``dagml.tasks`` function); sent only when it succeeds, since
    a failed stage's seconds say nothing about how long the stage takes."""
    if not enabled() or step not in STAGES:
        yield
        return
    started = time.perf_counter()
    yield
    _send("timing", name(TIMERS["stage_seconds"], dataset, stage=STAGES[step]),
          timedelta(seconds=time.perf_counter() - started))
