"""The register task in real DAG runs (dag.test()) against a real MLflow registry on SQLite: the
aliases over three partitions, predictions through the alias equal `dagml score`'s, and a retry
after the registry could not be written registers once."""

import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from typer.testing import CliRunner

from dagml import settings
from dagml.cli import app
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag

CONFIG = """
source: {{uri: "{folder}/{{{{ ds }}}}.csv"}}
target: y
families: [elastic_net]
budget: {{max_evals: 2}}
ensemble: false
registry: {{kind: mlflow, conn_id: {conn_id}}}
schedule: "@daily"
start_date: 2026-01-01
retries: {retries}
retry_delay: 1
"""
BASELINE_ONLY = {"families": ["sklearn:dummy"]}  # the trigger form: a run whose winner is the baseline
# dag.test() keeps an earlier run's conf as the DAG's params, so the full run names its families too
ALL_FAMILIES = {"families": ["sklearn:elastic_net", "sklearn:dummy"]}


def _partitions(folder: Path, days: list[str]) -> None:
    rng = np.random.default_rng(7)
    for day in days:
        x = rng.normal(size=(120, 2))
        pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": np.where(x.sum(axis=1) > 0, "yes", "no")}).to_csv(
            folder / f"{day}.csv", index=False)


def _dag(tmp_path, monkeypatch, name, retries=0, conn_id="mlflow"):
    dag = dag_of(tmp_path, monkeypatch, name, CONFIG.format(folder=tmp_path, retries=retries, conn_id=conn_id))
    assert dag.task_dict["register"].upstream_task_ids == {"promote", "report"}
    return dag


def _midnight(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


def _aliases(client, name) -> dict:
    return client.get_registered_model(name).aliases


def test_champion_follows_promotions_and_predicts_as_dagml_score(airflow_db, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW", uri)
    _partitions(tmp_path, ["2026-01-01", "2026-01-02", "2026-01-03"])
    dag = _dag(tmp_path, monkeypatch, "served")
    client = MlflowClient(uri, registry_uri=uri)
    results = ResultsStore(settings.results_url())

    # 1: the baseline is the first champion; 2: elastic net beats it; 3: the baseline again, worse
    seen = []
    for day, conf in (("2026-01-02", BASELINE_ONLY), ("2026-01-03", ALL_FAMILIES), ("2026-01-04", BASELINE_ONLY)):
        run = dag.test(logical_date=_midnight(day), run_conf=conf)
        assert run.state == "success"
        assert run.get_task_instance("register").state == "success"
        seen.append(_aliases(client, "dagml.served"))
    assert seen == [{"challenger": 1, "champion": 1}, {"challenger": 2, "champion": 2},
                    {"challenger": 3, "champion": 2}]
    versions = {v.version: v.tags for v in client.search_model_versions("name = 'dagml.served'")}
    assert [versions[v]["dagml.family"] for v in (1, 2, 3)] == ["sklearn:dummy", "sklearn:elastic_net",
                                                                "sklearn:dummy"]
    assert [versions[v]["dagml.partition"] for v in (1, 2, 3)] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert [versions[v]["dagml.crowned"] for v in (1, 2, 3)] == ["true", "true", "false"]
    champion = results.champion(dag.dag_id)
    assert (champion["partition"], champion["family"]) == ("2026-01-02", "sklearn:elastic_net")
    assert versions[2]["dagml.sha256"] == champion["model_sha256"]

    # the same raw rows through the alias and through `dagml score`
    rows = tmp_path / "new.csv"
    pd.read_csv(tmp_path / "2026-01-03.csv").drop(columns="y").head(40).to_csv(rows, index=False)
    scored = CliRunner().invoke(app, ["score", "served", str(rows), "--output", str(tmp_path / "scored.csv")])
    assert scored.exit_code == 0, scored.output
    by_cli = pd.read_csv(tmp_path / "scored.csv", float_precision="round_trip")
    from dagml.sources import read_source

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    by_alias = mlflow.pyfunc.load_model("models:/dagml.served@champion").predict(read_source(str(rows)))
    assert list(by_alias.columns) == ["prediction", "proba_no", "proba_yes"]
    pd.testing.assert_frame_equal(by_alias.reset_index(drop=True), by_cli[list(by_alias.columns)], check_exact=True)
    assert by_alias["prediction"].nunique() == 2  # the elastic net, not the baseline


def test_a_retry_after_the_registry_could_not_be_written_registers_once(airflow_db, tmp_path, monkeypatch):
    """The store's folder is a file on the first try (MLflow cannot create its database there); it is
    removed once the register task waits for its retry. Promotion and report are done by then."""
    blocker = tmp_path / "mlflow"
    blocker.write_text("not a folder")
    uri = f"sqlite:///{blocker}/mlflow.db"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW", uri)
    _partitions(tmp_path, ["2026-01-01"])
    dag = _dag(tmp_path, monkeypatch, "outage", retries=1)
    results = ResultsStore(settings.results_url())
    airflow = sa.create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    during = {}

    def repair_when_retrying():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with airflow.connect() as conn:
                states = dict(conn.execute(sa.text(
                    "SELECT task_id, state FROM task_instance WHERE dag_id = :d AND task_id IN ('register', 'report')"),
                    {"d": dag.dag_id}).all())
            if states.get("register") == "up_for_retry":
                during.update(states=states, champion=results.champion(dag.dag_id),
                              run=results.run(dag.dag_id, "2026-01-01"))
                blocker.unlink()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=repair_when_retrying, daemon=True)
    watcher.start()
    run = dag.test(logical_date=_midnight("2026-01-02"))
    watcher.join(timeout=5)
    assert during, "the register task never waited for a retry"
    # an MLflow outage neither blocks nor undoes the promotion: dagml's DB had it before the retry
    assert during["states"]["report"] == "success"
    assert during["champion"]["partition"] == "2026-01-01" and during["run"]["status"] == "success"
    assert run.state == "success"
    register = run.get_task_instance("register")
    assert register.state == "success" and register.try_number == 2
    client = MlflowClient(uri, registry_uri=uri)
    (version,) = client.search_model_versions("name = 'dagml.outage'")
    assert _aliases(client, "dagml.outage") == {"challenger": int(version.version), "champion": int(version.version)}
    assert results.champion(dag.dag_id)["id"] == during["champion"]["id"]
    # dagml's run row says which version the retry registered
    recorded = results.run(dag.dag_id, "2026-01-01")
    assert (recorded["registry_version"], recorded["registry_error"]) == (str(version.version), None)


def test_a_connection_that_is_not_defined_fails_register_at_once_and_keeps_the_promotion(airflow_db, tmp_path,
                                                                                          monkeypatch, capfd):
    _partitions(tmp_path, ["2026-01-01"])
    dag = _dag(tmp_path, monkeypatch, "unnamed", retries=1, conn_id="no_such_mlflow")
    run = dag.test(logical_date=_midnight("2026-01-02"))
    assert run.state == "failed"
    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert states["register"] == ("failed", 1)  # no retry: a retry cannot define the connection
    assert "AirflowFailException: the Airflow connection 'no_such_mlflow' (the MLflow tracking server or database) " \
           "is not defined" in capfd.readouterr().out  # the task's log
    assert states["promote"][0] == states["report"][0] == "success"
    results = ResultsStore(settings.results_url())
    assert results.champion(dag.dag_id)["partition"] == "2026-01-01"
    recorded = results.run(dag.dag_id, "2026-01-01")
    assert recorded["status"] == "success"  # the run's training and promotion stand
    # and its row says the winner is not in the registry, and why
    assert recorded["registry_version"] is None
    assert recorded["registry_error"].startswith("register: the Airflow connection 'no_such_mlflow'")
    history = CliRunner().invoke(app, ["history", "unnamed", "--json"])
    assert history.exit_code == 0, history.output
    (line,) = json.loads(history.output)["partitions"]
    assert (line["registry_version"], line["registry_error"]) == (None, recorded["registry_error"])
    table = CliRunner().invoke(app, ["history", "unnamed"], terminal_width=400)
    assert "registry" in table.output and "not registered" in table.output
