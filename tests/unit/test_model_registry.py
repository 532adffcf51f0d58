"""dagml's winners in a real MLflow registry (a SQLite store, no server), through the task bodies:
one version per run whatever is run again, aliases put back, a champion whose own run never
registered, a tampered archive refused through the pyfunc, the connection's tracking URI."""

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from dagml import model_registry, tasks
from dagml.config import DatasetConfig
from dagml.errors import ChecksumMismatch, ConnectionNotFound
from tests.pipeline import run_tasks


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One MLflow SQLite store for the module (creating its tables takes seconds), as the Airflow
    connection ``mlflow``; each test registers a dataset of its own name."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_MLFLOW", uri)
        yield uri


def _config(name, uri, **extra):
    return DatasetConfig.model_validate({
        "name": name, "source": {"uri": str(uri)}, "target": "y", "families": ["elastic_net"],
        "budget": {"max_evals": 2}, "ensemble": False, "registry": {"kind": "mlflow"}, **extra})


def _data(tmp_path, n=160, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    df = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.where(x.sum(axis=1) > 0, "yes", "no")})
    df.to_csv(tmp_path / "d.csv", index=False)
    return tmp_path / "d.csv"


def _register(config, stores, keys, promotion):
    return tasks.register(config, promotion, keys, stores)


def _versions(client, name):
    return sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))


def test_registering_again_adds_no_version_and_puts_missing_aliases_back(tracking_uri, tmp_path, stores):
    config = _config("again", _data(tmp_path))
    keys, _, _, promotion = run_tasks(config, stores)
    first = _register(config, stores, keys, promotion)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    assert first["version"] == 1 and first["champion_version"] == 1
    assert client.get_registered_model("dagml.again").aliases == {"challenger": 1, "champion": 1}

    assert _register(config, stores, keys, promotion)["version"] == 1  # a retry after everything was done
    # a retry after the version was created but before its aliases were set
    client.delete_registered_model_alias("dagml.again", "challenger")
    client.delete_registered_model_alias("dagml.again", "champion")
    assert _register(config, stores, keys, promotion)["version"] == 1
    assert client.get_registered_model("dagml.again").aliases == {"challenger": 1, "champion": 1}

    (version,) = _versions(client, "dagml.again")
    champion = stores.results.champion(config.dag_id)
    assert version.tags["dagml.run_id"] == keys.run_id and version.tags["dagml.dag_id"] == config.dag_id
    assert version.tags["dagml.sha256"] == champion["model_sha256"]  # the stored champion (a refit here)
    assert version.tags["dagml.refit_rows"] == str(champion["refit_rows"])
    run = client.get_run(version.run_id)
    row = stores.results.leaderboard(config.dag_id, keys.partition)
    winner = next(r for r in row if r["family"] == champion["family"])
    # the winner's hyperparameters, and the pyfunc's model_config (MLflow logs it as params)
    assert run.data.params == {**{k: str(v) for k, v in winner["params"].items()}, "sha256": champion["model_sha256"]}
    assert run.data.metrics == {"validation_score": winner["val_score"], "test_score": champion["test_score"]}
    board = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/leaderboard.json")
    assert [(r["family"], r["selected"]) for r in board["rows"]] == [("sklearn:elastic_net", True),
                                                                    ("sklearn:dummy", False)]


def test_a_champion_whose_own_run_never_registered_is_registered_by_a_later_run(tracking_uri, tmp_path, stores):
    data = _data(tmp_path)
    run_tasks(_config("late", data), stores, partition="2026-01-01", run_id="r1")  # its register never ran
    config = _config("late", data, promotion={"margin": 0.5})  # r2 cannot win
    keys, _, _, promotion = run_tasks(config, stores, partition="2026-01-02", run_id="r2")
    assert not promotion["promoted"]
    done = _register(config, stores, keys, promotion)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    by_run = {v.tags["dagml.run_id"]: v.version for v in _versions(client, "dagml.late")}
    assert by_run == {"r2": done["version"], "r1": done["champion_version"]} and len(set(by_run.values())) == 2
    assert client.get_registered_model("dagml.late").aliases == {"challenger": by_run["r2"], "champion": by_run["r1"]}
    assert client.get_model_version("dagml.late", str(by_run["r1"])).tags["dagml.crowned"] == "true"
    assert client.get_model_version("dagml.late", str(by_run["r2"])).tags["dagml.crowned"] == "false"


def test_a_tampered_archive_is_refused_through_the_pyfunc(tracking_uri, tmp_path, stores):
    config = _config("tampered", _data(tmp_path))
    keys, _, _, promotion = run_tasks(config, stores)
    _register(config, stores, keys, promotion)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    model = mlflow.pyfunc.load_model("models:/dagml.tampered@champion")  # loads while the archive is intact
    assert list(model.predict(pd.read_csv(tmp_path / "d.csv").head(3)).columns) == ["prediction", "proba_no",
                                                                                    "proba_yes"]
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    folder = Path(client.get_model_version_download_uri("dagml.tampered", "1"))
    archive = folder / "artifacts" / model_registry.ARCHIVE
    archive.write_bytes(archive.read_bytes() + b"x")
    recorded = stores.results.champion(config.dag_id)["model_sha256"]
    refused = rf"/artifacts/model\.tar: SHA-256 [0-9a-f]{{64}} does not match the recorded {recorded}; not loading it"
    with pytest.raises(ChecksumMismatch, match=refused):
        mlflow.pyfunc.load_model("models:/dagml.tampered@champion")


def test_the_tracking_uri_comes_from_the_connection_and_a_missing_one_is_named(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_SERVER", "http://mlflow.internal:5000")
    assert model_registry.tracking("mlflow_server")[0] == "http://mlflow.internal:5000"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DB", "postgres://ml@127.0.0.1:5432/mlflow")
    assert model_registry.tracking("mlflow_db")[0] == "postgresql+psycopg2://ml@127.0.0.1:5432/mlflow"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_FTP", "ftp://files.internal")
    with pytest.raises(ConnectionNotFound, match="'mlflow_ftp' .* is no MLflow tracking URI"):
        model_registry.tracking("mlflow_ftp")
    assert "AIRFLOW_CONN_NO_SUCH_MLFLOW" not in os.environ
    with pytest.raises(ConnectionNotFound, match="the Airflow connection 'no_such_mlflow' .* is not defined"):
        model_registry.tracking("no_such_mlflow")
