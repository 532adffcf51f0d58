"""dagml.telemetry through Airflow's real metrics client, to a real StatsD listener on loopback."""

import logging

import pytest

from dagml import telemetry
from tests.statsd_listener import StatsdListener

TEMPLATES = {**telemetry.COUNTERS, **telemetry.GAUGES, **telemetry.TIMERS}
LONGEST_DATASET = "d" * 63  # a config's name is at most 63 characters


def failing_stat_name_handler(name: str) -> str:
    """A user's [metrics] stat_name_handler that breaks: Airflow lets its error through."""
    raise RuntimeError("the handler is broken")


@pytest.fixture
def statsd(monkeypatch):
    """A listener, and a function that sets [metrics] and (re)initialises Airflow's client as a task does."""
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

    listener = StatsdListener()

    def configure(factory=None, **metrics):
        for key, value in {"statsd_host": "127.0.0.1", "statsd_port": listener.port, **metrics}.items():
            monkeypatch.setenv(f"AIRFLOW__METRICS__{key.upper()}", str(value))
        telemetry.enabled.cache_clear()
        stats.initialize(factory=factory or get_stats_factory(), export_legacy_names=True)

    yield listener, configure
    listener.close(settle=0)
    monkeypatch.undo()
    telemetry.enabled.cache_clear()
    stats.initialize(factory=get_stats_factory(), export_legacy_names=True)


def test_every_name_follows_airflow_naming_rules_for_statsd_and_opentelemetry():
    from airflow.sdk._shared.observability.metrics.validators import stat_name_default_handler, stat_name_otel_handler

    family = "sklearn:hist_gradient_boosting"
    for template in TEMPLATES.values():
        name = telemetry.name(template, LONGEST_DATASET, family=family, stage="promote")
        assert stat_name_default_handler(f"airflow.{name}") == f"airflow.{name}"  # <= 250 of [A-Za-z0-9_.-/]
        stat_name_otel_handler("airflow", name)  # raises past OpenTelemetry's limits
    assert telemetry.name(telemetry.COUNTERS["trials_done"], "churn", family="r:glmnet") == \
        "dagml.trials_done.churn.r.glmnet"
    assert telemetry.name(telemetry.TIMERS["stage_seconds"], "churn", stage="search") == "dagml.stage_seconds.churn.search"


def test_metrics_on_reach_statsd_with_their_values(statsd):
    listener, configure = statsd
    configure(statsd_on=True)
    telemetry.trial("churn", "sklearn:knn", 0.25, ok=True)
    telemetry.trial("churn", "sklearn:knn", 0.5, ok=False)
    telemetry.search_ended("churn", "sklearn:knn", seconds=2.0, val_score=0.875)
    telemetry.search_ended("churn", "r:glmnet")
    telemetry.search_ended("churn", "sklearn:svm", seconds=1.0)  # a shard: the merged row's score follows
    telemetry.best_score("churn", "sklearn:svm", 0.75)
    telemetry.promotion("churn", promoted=True, champion_score=0.9)
    with telemetry.stage("churn", "search_family"):
        pass
    listener.close()
    assert listener.counter("airflow.dagml.trials_done.churn.sklearn.knn") == 2
    assert listener.counter("airflow.dagml.trials_failed.churn.sklearn.knn") == 1
    assert listener.timings("airflow.dagml.trial_seconds.churn.sklearn.knn") == [250.0, 500.0]
    assert listener.counter("airflow.dagml.searches_done.churn.sklearn.knn") == 1
    assert listener.gauge("airflow.dagml.best_val_score.churn.sklearn.knn") == 0.875
    assert listener.timings("airflow.dagml.search_seconds.churn.sklearn.knn") == [2000.0]
    assert listener.counter("airflow.dagml.searches_failed.churn.r.glmnet") == 1
    assert listener.counter("airflow.dagml.searches_done.churn.sklearn.svm") == 1
    assert listener.gauges("airflow.dagml.best_val_score.churn.sklearn.svm") == [0.75]
    assert listener.counter("airflow.dagml.promotions.churn") == 1
    assert listener.gauge("airflow.dagml.champion_score.churn") == 0.9
    assert len(listener.timings("airflow.dagml.stage_seconds.churn.search")) == 1


def test_metrics_off_send_nothing_even_to_a_configured_client(statsd):
    """Off is Airflow's default and the embedded setup's: dagml does not call the client at all."""
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics.statsd_logger import get_statsd_logger

    listener, configure = statsd
    configure(factory=get_statsd_logger, statsd_on=False)  # a client that would send, were it called
    assert not telemetry.enabled()
    telemetry.trial("churn", "sklearn:knn", 0.25, ok=False)
    telemetry.search_ended("churn", "sklearn:knn", seconds=2.0, val_score=0.875)
    telemetry.promotion("churn", promoted=True, champion_score=0.9)
    with telemetry.stage("churn", "load"):
        pass
    stats.incr("probe")  # the listener does hear that client
    listener.close()
    assert [line.split(":")[0] for line in listener.lines] == ["airflow.probe"]


def test_a_metric_error_is_logged_and_the_task_goes_on(statsd, caplog):
    listener, configure = statsd
    configure(statsd_on=True, stat_name_handler=f"{__name__}.failing_stat_name_handler")
    with caplog.at_level(logging.WARNING, logger="dagml.telemetry"):
        telemetry.trial("churn", "sklearn:knn", 0.25, ok=True)
        telemetry.promotion("churn", promoted=True, champion_score=0.9)
    assert "metric dagml.trials_done.churn.sklearn.knn not sent: RuntimeError: the handler is broken" in caplog.text
    assert "metric dagml.champion_score.churn not sent" in caplog.text


def test_a_stage_that_fails_raises_its_own_error_and_sends_no_seconds(statsd):
    listener, configure = statsd
    configure(statsd_on=True)
    with pytest.raises(ValueError, match="bad data"):
        with telemetry.stage("churn", "profile"):
            raise ValueError("bad data")
    with telemetry.stage("churn", "profile"):
        pass
    listener.close()
    assert len(listener.timings("airflow.dagml.stage_seconds.churn.profile")) == 1


def test_with_opentelemetry_the_same_names_reach_an_otel_meter(statsd):
    """`otel_on`: Airflow's OpenTelemetry client, on a real OTel SDK meter provider read in memory."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from airflow.sdk._shared.observability.metrics.otel_logger import SafeOtelLogger

    _, configure = statsd
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    configure(factory=lambda: SafeOtelLogger(provider, prefix="airflow"), statsd_on=False, otel_on=True)
    telemetry.trial("churn", "sklearn:knn", 0.25, ok=False)
    telemetry.promotion("churn", promoted=True, champion_score=0.9)
    points = {metric.name: metric.data.data_points[0]
              for resource in reader.get_metrics_data().resource_metrics
              for scope in resource.scope_metrics for metric in scope.metrics}
    assert points["airflow.dagml.trials_done.churn.sklearn.knn"].value == 1
    assert points["airflow.dagml.trials_failed.churn.sklearn.knn"].value == 1
    assert points["airflow.dagml.trial_seconds.churn.sklearn.knn"].sum == pytest.approx(250.0)  # milliseconds
    assert points["airflow.dagml.promotions.churn"].value == 1
    assert points["airflow.dagml.champion_score.churn"].value == 0.9
    provider.shutdown()
