"""dagml's metrics reach a real StatsD server during a dag.test() run with Airflow's metrics on.

Airflow decides on its metrics client once per process, when it is first imported, from the
[metrics] settings; so the run is a subprocess started with the StatsD settings in its
environment, as a worker would be."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dagml import settings, telemetry
from dagml.store.results import ResultsStore
from tests.statsd_listener import StatsdListener

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.dag

DATASET = "metrics_iris"
DAG_ID = f"automl__{DATASET}"
# a knn whose first point cannot fit (more neighbours than rows): a trial that fails in the
# forked child, to be counted where its result comes back; knn searched as 2 shards, whose
# merged row's score is the family's gauge
DAG_FILE = textwrap.dedent("""
    \"\"\"Airflow DAGs of the configs beside this file (Airflow's safe mode reads files that say so).\"\"\"
    from pathlib import Path

    from dagml.factory import dags_from_folder
    from dagml.families.sklearn import KNearestNeighbours


    class FailingFirstKnn(KNearestNeighbours):
        name = "failing_first_knn"

        def init_points(self, task):
            return [{"n_neighbors": 100_000, "weights": 0, "p": 1}, *super().init_points(task)]


    globals().update(dags_from_folder(Path(__file__).parent / "configs"))
""")
CONFIG = textwrap.dedent("""
    source: {uri: "sklearn://iris"}
    target: target
    families: [{name: knn, shards: 2}, failing_first_knn]
    budget: {max_evals: 4, seconds: 600}
    ensemble: false
    retries: 0
""")
RUN = f"""
from airflow.dag_processing.dagbag import DagBag
run = DagBag(dag_folder={{dags!r}}).dags[{DAG_ID!r}].test()
print("RUN STATE", run.state)
"""


def _name(template, **fields):
    return "airflow." + telemetry.name(template, DATASET, **fields)


def test_a_run_sends_dagml_metrics_to_statsd(airflow_db, tmp_path):
    dags = tmp_path / "dags"
    (dags / "configs").mkdir(parents=True)
    (dags / "metrics_dags.py").write_text(DAG_FILE)
    (dags / "configs" / f"{DATASET}.yaml").write_text(CONFIG)
    listener = StatsdListener()
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "DAGML_CONFIGS": str(dags / "configs"),
           "AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
           "AIRFLOW__METRICS__STATSD_PORT": str(listener.port)}
    try:
        proc = subprocess.run([sys.executable, "-c", RUN.format(dags=str(dags))], env=env, capture_output=True,
                              text=True, timeout=900)
    finally:
        listener.close()
    assert "RUN STATE success" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]

    results = ResultsStore(settings.results_url())
    partition = results.latest_run(DAG_ID)["partition"]
    rows = {r["family"]: r for r in results.leaderboard(DAG_ID, partition)}
    assert set(rows) == {"sklearn:knn", "sklearn:failing_first_knn", "sklearn:dummy"}
    assert rows["sklearn:failing_first_knn"]["n_failed_trials"] >= 1  # the run did have a failed trial
    searches = {family: 2 if family == "sklearn:knn" else 1 for family in rows}
    for family, row in rows.items():
        assert row["status"] == "ok", row
        # as many trials counted as the leaderboard recorded, failed ones too, each with its seconds
        assert listener.counter(_name(telemetry.COUNTERS["trials_done"], family=family)) == row["n_trials"], family
        assert listener.counter(_name(telemetry.COUNTERS["trials_failed"], family=family)) == row["n_failed_trials"]
        trial_ms = listener.timings(_name(telemetry.TIMERS["trial_seconds"], family=family))
        assert len(trial_ms) == row["n_trials"] and all(0 < ms < 1000 * row["search_seconds"] for ms in trial_ms)
        assert listener.counter(_name(telemetry.COUNTERS["searches_done"], family=family)) == searches[family]
        # one gauge per family: the merged row's score, not each shard's
        assert listener.gauges(_name(telemetry.GAUGES["best_val_score"], family=family)) == [row["val_score"]]
        search_ms = listener.timings(_name(telemetry.TIMERS["search_seconds"], family=family))
        assert len(search_ms) == searches[family]
        assert sum(search_ms) == pytest.approx(1000 * row["search_seconds"], rel=1e-4)
    assert listener.counter("airflow.dagml.trials_done.metrics_iris.sklearn.knn") == rows["sklearn:knn"]["n_trials"]

    champion = results.champion(DAG_ID)
    assert listener.gauge(_name(telemetry.GAUGES["champion_score"])) == champion["test_score"]
    assert listener.counter(_name(telemetry.COUNTERS["promotions"])) == 1  # the dataset's first champion
    for stage in ("load", "profile", "prepare", "select", "promote", "report"):
        assert len(listener.timings(_name(telemetry.TIMERS["stage_seconds"], stage=stage))) == 1, stage
    assert len(listener.timings(_name(telemetry.TIMERS["stage_seconds"], stage="search"))) == sum(searches.values())
    # Airflow's own task metrics travel the same way (the dashboard reads some of them)
    assert listener.counter(f"airflow.ti.finish.{DAG_ID}.promote.success") == 1
