"""The trigger form through real DAG runs (dag.test() with a conf, as the form or the REST API
sends it): its values are used for that run, recorded, and shown with its leaderboard; a value
that depends on dagml and does not fit fails the first task, naming the param."""

import json

import pytest
from typer.testing import CliRunner

from dagml import settings
from dagml.cli import app
from dagml.store.artifacts import ArtifactStore
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag
CONFIG = """
source: {uri: sklearn://breast_cancer}
target: target
task: binary
metric: roc_auc
families: [elastic_net, knn, random_forest]
budget: {max_evals: 4, seconds: 60}
ensemble: false
retries: 0
"""


def _dag(tmp_path, monkeypatch, name):
    return dag_of(tmp_path, monkeypatch, name, CONFIG)


def test_a_confs_values_are_used_for_the_run_recorded_and_shown(airflow_db, tmp_path, monkeypatch):
    dag = _dag(tmp_path, monkeypatch, "formed")
    conf = {"partition": "2026-02-01", "families": ["sklearn:knn"], "metric": "accuracy", "test_size": 0.3,
            "seed": 7, "max_evals": 2, "note": "knn only, after the label fix"}
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    searches = {ti.rendered_map_index or ti.map_index: ti.state for ti in run.get_task_instances()
                if ti.task_id == "search_sklearn"}
    assert set(searches.values()) == {"success"}, searches  # the families not chosen search nothing

    results = ResultsStore(settings.results_url())
    recorded = results.run(dag.dag_id, "2026-02-01")
    assert recorded["status"] == "success" and recorded["metric"] == "accuracy"
    assert recorded["trigger"] == {**conf, "total_seconds": None, "seconds": None}
    rows = {r["family"]: r for r in results.leaderboard(dag.dag_id, "2026-02-01")}
    assert set(rows) == {"sklearn:knn", "sklearn:dummy"}  # the baseline is always searched
    assert rows["sklearn:knn"]["n_trials"] == 2 and rows["sklearn:knn"]["metric"] == "accuracy"
    diagnostics = results.diagnostics(dag.dag_id, "2026-02-01")
    assert abs(diagnostics["rows"] - 0.3 * 569) <= 1  # the form's test share

    board = CliRunner().invoke(app, ["leaderboard", "formed", "--json"])
    assert json.loads(board.output)["trigger"]["note"] == "knn only, after the label fix"
    table = CliRunner().invoke(app, ["leaderboard", "formed"], terminal_width=300)
    assert "trigger: partition=2026-02-01, families=[sklearn:knn], metric=accuracy" in table.output
    report = ArtifactStore(settings.artifacts_root()).read_bytes(recorded["report_uri"]).decode()
    assert "note=knn only, after the label fix" in report


def test_a_family_the_config_does_not_allow_fails_the_first_task_naming_it(airflow_db, tmp_path, monkeypatch):
    dag = _dag(tmp_path, monkeypatch, "refused")
    run = dag.test(run_conf={"partition": "2026-02-02", "families": ["knn", "lightgbm"]})
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["load"] == "failed" and states["profile"] == "upstream_failed"
    recorded = ResultsStore(settings.results_url()).run(dag.dag_id, "2026-02-02")
    assert recorded["status"] == "failed" and recorded["failed_task"] == "load"
    assert recorded["error"].startswith("load: trigger param 'families': 'lightgbm' not among this config's families")
