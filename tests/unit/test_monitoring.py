"""The monitoring pieces hold together: dagml's declared metric names, the statsd-exporter mapping,
Prometheus's scrape config, Grafana's provisioning and the dagml dashboard, and the compose services
and cluster settings that connect them. No Docker engine here: each file is parsed and checked
against the others, and the exporter's mapping against the exporter's own rules."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from dagml import telemetry

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "airflow_config" / "monitoring"
MAPPING = yaml.safe_load((MONITORING / "statsd_mapping.yaml").read_text())
PROMETHEUS = yaml.safe_load((MONITORING / "prometheus.yaml").read_text())
DASHBOARD = json.loads((MONITORING / "grafana" / "dashboards" / "dagml.json").read_text())
DATASOURCES = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
PROVIDERS = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "dashboards" / "dagml.yaml").read_text())
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
PREFIX = "airflow"  # Airflow's default [metrics] statsd_prefix, which compose and the cluster set
MAPS = [m for m in MAPPING["mappings"] if m.get("action", "map") == "map"]
DROPS = {m["match"] for m in MAPPING["mappings"] if m.get("action") == "drop"}

# The statsd-exporter's own checks of a mapping file (its pkg/mapper: a glob line, a metric name, label names)
_SEGMENT = r"[a-zA-Z_](-?[a-zA-Z0-9_])+"
GLOB_LINE = re.compile(rf"^(\*\.|{_SEGMENT}\.)+(\*|{_SEGMENT})$")
METRIC_NAME = re.compile(r"^([a-zA-Z_]|(\$\{?\d+\}?))([a-zA-Z0-9_]|(\$\{?\d+\}?))*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
CAPTURE = re.compile(r"\$\{?(\d+)\}?")

# The Airflow metrics the mapping names, by their registry name, with where Airflow 3.3's installed
# source emits each (file, text in it). `task.queued_duration` is not among them: it is registered,
# but only TaskInstance.check_and_change_state_before_execution sends it, which nothing calls in 3.3.
AIRFLOW_EMITTED = {
    "ti.finish": ("airflow/sdk/execution_time/task_runner.py", 'stats.incr("ti.finish"'),
    "ti.start": ("airflow/sdk/execution_time/task_runner.py", 'stats.incr("ti.start"'),
    "task.duration": ("airflow/sdk/execution_time/task_runner.py", '"task.duration"'),
    "task.scheduled_duration": ("airflow/models/taskinstance.py", 'metric_name = "scheduled_duration"'),
    "ti.queued": ("airflow/jobs/scheduler_job_runner.py", 'f"ti.{state}"'),
    "ti.running": ("airflow/jobs/scheduler_job_runner.py", 'f"ti.{state}"'),
    "pool.queued_slots": ("airflow/jobs/scheduler_job_runner.py", 'stats.gauge("pool.queued_slots"'),
    "pool.open_slots": ("airflow/jobs/scheduler_job_runner.py", 'stats.gauge("pool.open_slots"'),
    "pool.running_slots": ("airflow/jobs/scheduler_job_runner.py", 'stats.gauge("pool.running_slots"'),
    "pool.starving_tasks": ("airflow/jobs/scheduler_job_runner.py", 'stats.gauge("pool.starving_tasks"'),
    "dagrun.duration.success": ("airflow/models/dagrun.py", "dagrun.duration."),
    "dagrun.duration.failed": ("airflow/models/dagrun.py", "dagrun.duration."),
}


def _site_packages() -> Path:
    import airflow

    return Path(airflow.__file__).resolve().parents[1]


def _registry() -> list[dict]:
    path = _site_packages() / "airflow/sdk/_shared/observability/metrics/metrics_template.yaml"
    return yaml.safe_load(path.read_text())["metrics"]


def _apply(mapping: dict, statsd_name: str) -> tuple[str, dict] | None:
    """(Prometheus name, labels) when the glob mapping matches the StatsD name, else None."""
    pattern, parts = mapping["match"].split("."), statsd_name.split(".")
    if len(pattern) != len(parts) or any(p != "*" and p != s for p, s in zip(pattern, parts)):
        return None
    captures = [s for p, s in zip(pattern, parts) if p == "*"]

    def expand(template: str) -> str:
        return CAPTURE.sub(lambda m: captures[int(m.group(1)) - 1], template)

    return expand(mapping["name"]), {k: expand(v) for k, v in mapping.get("labels", {}).items()}


def _mapped(statsd_name: str) -> tuple[str, dict]:
    """What the exporter makes of a name: the first mapping that matches it (one, and only one, here)."""
    found = [r for r in (_apply(m, statsd_name) for m in MAPS) if r is not None]
    assert len(found) == 1, f"{statsd_name}: {len(found)} mappings match"
    return found[0]


def _prometheus_metrics() -> dict[str, set[str]]:
    """Every metric the mapping produces (with a timer's histogram series) and its label names."""
    declared_timers = {f"{PREFIX}.{t.split('.{')[0]}" for t in telemetry.TIMERS.values()}
    timers = {m["name"] for m in MAPS if m["name"].endswith("_seconds") or
              any(m["match"].startswith(t + ".") for t in declared_timers)}
    metrics = {}
    for m in MAPS:
        labels = set(m.get("labels", {}))
        metrics[m["name"]] = labels
        if m["name"] in timers:
            metrics.update({f"{m['name']}_sum": labels, f"{m['name']}_count": labels,
                            f"{m['name']}_bucket": labels | {"le"}})
    return metrics


def test_the_mapping_follows_the_exporters_rules():
    assert MAPPING["defaults"]["observer_type"] == "histogram"
    names = {}
    for m in MAPPING["mappings"]:
        assert GLOB_LINE.match(m["match"]) and m["match"].startswith(f"{PREFIX}."), m["match"]
        assert METRIC_NAME.match(m["name"]), m["name"]
        assert all(LABEL_NAME.match(label) for label in m.get("labels", {})), m
        stars = m["match"].count("*")
        for value in [m["name"], *m.get("labels", {}).values()]:
            assert all(1 <= int(n) <= stars for n in CAPTURE.findall(value)), (m["match"], value)
        if m.get("action", "map") == "map":  # one name, one label set: the exporter refuses anything else
            assert names.setdefault(m["name"], set(m.get("labels", {}))) == set(m.get("labels", {})), m["name"]


@pytest.mark.parametrize("key", sorted({**telemetry.COUNTERS, **telemetry.GAUGES, **telemetry.TIMERS}))
def test_every_dagml_metric_becomes_a_labelled_prometheus_metric(key):
    template = {**telemetry.COUNTERS, **telemetry.GAUGES, **telemetry.TIMERS}[key]
    statsd_name = f"{PREFIX}.{telemetry.name(template, 'churn', family='sklearn:knn', stage='search')}"
    name, labels = _mapped(statsd_name)
    assert name.startswith("dagml_") and labels["dataset"] == "churn"
    if "{family}" in template:
        assert labels["family"] == "sklearn:knn"  # as the leaderboard names it
    if "{stage}" in template:
        assert labels["stage"] == "search"
    assert name.endswith("_total") == (key in telemetry.COUNTERS)
    assert name.endswith("_seconds") == (key in telemetry.TIMERS)


def test_airflows_mapped_metrics_are_names_airflow_registers_and_emits():
    registry = {m["name"]: m for m in _registry()}
    legacy = {re.sub(r"\{\w+\}", "*", m["legacy_name"]): m["name"] for m in registry.values()
              if m.get("legacy_name", "-") != "-"}
    used = set()
    for m in MAPS:
        if m["match"].startswith(f"{PREFIX}.dagml."):
            continue
        pattern = m["match"].removeprefix(f"{PREFIX}.")
        # dagrun.duration.{success,failed}.{dag_id}: one mapping for both, the state as a label
        matched = [name for glob, name in legacy.items() if glob == pattern or
                   (pattern == "dagrun.duration.*.*" and glob.startswith("dagrun.duration."))]
        assert matched, f"{m['match']} is no legacy name of Airflow's metrics registry"
        used.update(matched)
    assert used == set(AIRFLOW_EMITTED)
    for name, (path, text) in AIRFLOW_EMITTED.items():
        assert text in (_site_packages() / path).read_text(), (name, path)


def test_airflows_tagless_twins_that_would_collide_are_dropped():
    """Airflow sends each metric under its plain name too; unmapped, the exporter names it by replacing
    dots with underscores, and with counters `_total` may follow (OpenMetrics): it must not be a name
    mapped here with labels."""
    mapped = {m["name"].removesuffix("_total") for m in MAPS}
    for metric in _registry():
        if "{" in metric["name"]:
            continue
        default = re.sub(r"[^a-zA-Z0-9_]", "_", f"{PREFIX}.{metric['name']}")
        if default.removesuffix("_total") in mapped:
            assert f"{PREFIX}.{metric['name']}" in DROPS, metric["name"]
    for drop in DROPS:
        assert drop.removeprefix(f"{PREFIX}.") in {m["name"] for m in _registry()}, drop


def _queries():
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def test_every_dashboard_query_reads_a_metric_dagml_or_airflow_emits():
    metrics = _prometheus_metrics()
    seen = set()
    for title, expr in _queries():
        names = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr)
        assert names, (title, expr)
        for name in names:
            assert name in metrics, f"panel {title!r} reads {name}, which nothing emits"
            selector_labels = set(re.findall(r"(\w+)\s*=~?", re.search(rf"{name}\{{([^}}]*)\}}", expr).group(1)))
            assert selector_labels <= metrics[name], (title, name, selector_labels)
            seen.add(name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count"))
        grouped = {label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")}
        assert grouped <= set.union(*(metrics[n] for n in names)), (title, grouped)
    variable = DASHBOARD["templating"]["list"][0]
    name, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"]).groups()
    assert label in metrics[name]
    # the panels the brief asks for, each on a metric of its own
    titles = {p["title"] for p in DASHBOARD["panels"]}
    assert {"Searches per family", "Trials per second", "Queue wait", "Champion score over partitions",
            "Failures"} <= titles
    assert {"dagml_searches_done_total", "dagml_trials_done_total", "airflow_task_scheduled_duration_seconds",
            "dagml_champion_score", "dagml_trials_failed_total", "airflow_ti_finish_total"} <= seen


def test_the_dashboard_and_its_data_source_are_provisioned_where_compose_mounts_them():
    grafana, prometheus, exporter = (COMPOSE["services"][s] for s in ("grafana", "prometheus", "statsd-exporter"))
    [source] = DATASOURCES["datasources"]
    uids = {p["datasource"]["uid"] for p in DASHBOARD["panels"]} | \
        {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p["targets"]}
    assert uids == {source["uid"]} and source["type"] == "prometheus"
    prom_port = prometheus["ports"][0].split(":")[-1]
    assert source["url"] == f"http://prometheus:{prom_port}"  # 9090, Prometheus's own listen port
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./airflow_config/monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    [provider] = PROVIDERS["providers"]
    assert mounts["./airflow_config/monitoring/grafana/dashboards"] == provider["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/dagml.json"

    # Prometheus reads its config where compose puts it, and scrapes the exporter's web port
    flags = dict(f.removeprefix("--").split("=", 1) for f in prometheus["command"])
    assert dict(v.split(":")[:2] for v in prometheus["volumes"])["./airflow_config/monitoring/prometheus.yaml"] == \
        flags["config.file"]
    exporter_flags = dict(f.removeprefix("--").split("=", 1) for f in exporter["command"])
    [job] = PROMETHEUS["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"statsd-exporter{exporter_flags['web.listen-address']}"]
    assert dict(v.split(":")[:2] for v in exporter["volumes"])["./airflow_config/monitoring/statsd_mapping.yaml"] == \
        exporter_flags["statsd.mapping-config"]


def test_airflow_services_and_the_cluster_send_statsd_where_the_exporter_listens():
    exporter = COMPOSE["services"]["statsd-exporter"]
    flags = dict(f.removeprefix("--").split("=", 1) for f in exporter["command"])
    udp_port = flags["statsd.listen-udp"].removeprefix(":")
    env = COMPOSE["x-airflow"]["environment"]
    assert env["AIRFLOW__METRICS__STATSD_ON"] == "True"
    assert (env["AIRFLOW__METRICS__STATSD_HOST"], env["AIRFLOW__METRICS__STATSD_PORT"]) == ("statsd-exporter", udp_port)
    assert env["AIRFLOW__METRICS__STATSD_PREFIX"] == PREFIX
    for name, service in COMPOSE["services"].items():  # the workers' own environment too
        if service.get("image") == "dagml:local":
            service_env = service.get("environment", env)
            assert service_env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter", name
    assert f"{udp_port}:{udp_port}/udp" in exporter["ports"]  # so the native cluster can send to it

    cluster = _cluster_script()
    assert cluster.METRICS["AIRFLOW__METRICS__STATSD_ON"] == "True"
    assert cluster.METRICS["AIRFLOW__METRICS__STATSD_PORT"] == udp_port
    assert cluster.METRICS["AIRFLOW__METRICS__STATSD_PREFIX"] == PREFIX


def _cluster_script():
    spec = importlib.util.spec_from_file_location("cluster_script", REPO / "airflow_config" / "cluster.py")
    cluster = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cluster)
    return cluster


def test_the_cluster_turns_metrics_on_unless_the_environment_has_its_own(tmp_path, monkeypatch):
    cluster = _cluster_script()
    args = cluster.argparse.Namespace(postgres="postgres@127.0.0.1:5432", dags=str(REPO / "dags"), prefix="t_",
                                      api_port=8080, redis="redis://127.0.0.1:6379/5", heartbeat_timeout=60,
                                      queued_timeout=3600, airflow_defaults=False)
    for name in [k for k in cluster.os.environ if k.startswith("AIRFLOW__METRICS__")]:
        monkeypatch.delenv(name)
    env = cluster._env(tmp_path, args)
    assert {k: v for k, v in env.items() if k.startswith("AIRFLOW__METRICS__")} == cluster.METRICS
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_ON", "True")  # a [metrics] of the user's own is kept whole
    env = cluster._env(tmp_path, args)
    assert not any(k.startswith("AIRFLOW__METRICS__") for k in env)


def test_the_embedded_setup_keeps_metrics_off(tmp_path):
    import subprocess

    out = subprocess.run(["bash", "-c", ". airflow_config/embedded.env && echo $AIRFLOW__METRICS__STATSD_ON"],
                         cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "DAGML_HOME": str(tmp_path)}).stdout.strip()
    assert out == "False"
