"""Each run's winner in an MLflow model registry; the alias ``champion`` follows dagml's champion.

The registered model ``dagml.<name>`` gets one version per run (its winner: the model dagml
stores, so the refit when the run crowned a refit), aliased ``challenger``; ``champion`` points to
the version of the champion in dagml's results DB, which stays the source of truth. A version is
an MLflow pyfunc that carries dagml's model archive and, when loaded, verifies its SHA-256 and
loads it through ``dagml.predictors``, so its predictions are ``dagml score``'s.

``register`` can be run again at any point: every version is tagged with the dag_id, partition
and run_id it came from, and one is created only when no version carries them. It imports
mlflow, so only a task body (``dagml.tasks.register``) and a process loading the model import it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from dagml.errors import DataError

log = logging.getLogger("dagml.model_registry")

CHALLENGER, CHAMPION = "challenger", "champion"
ARCHIVE = "model.tar"
DATABASES = ("sqlite", "postgres", "postgresql", "mysql")
TAG_DAG_ID, TAG_PARTITION, TAG_RUN_ID = "dagml.dag_id", "dagml.partition", "dagml.run_id"
# MLflow's "models from code": the version's python_model is this file, so loading imports dagml's
# class instead of unpickling an object
MODEL_CODE = "import mlflow\nfrom dagml.model_registry import DagmlArchive\n\nmlflow.models.set_model(DagmlArchive())\n"


def model_name(config) -> str:
    return f"dagml.{config.name}"


class DagmlArchive(mlflow.pyfunc.PythonModel):
    """A dagml model archive as an MLflow pyfunc: ``predict(df)`` is ``Predictor.predictions(df)``
    (``prediction``, and ``proba_<class>`` per class), the frame ``dagml score`` appends to its input."""

    def load_context(self, context):
        from dagml.predictors import load_verified
        from dagml.store.artifacts import ArtifactStore

        archive = Path(context.artifacts["archive"])
        self.predictor = load_verified(ArtifactStore(str(archive.parent)), str(archive),
                                       context.model_config["sha256"], Path(tempfile.mkdtemp(prefix="dagml-mlflow-")))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.predictor.predictions(model_input)


@dataclass(frozen=True)
class Winner:
    """What one run's version carries, read from the results DB."""

    dag_id: str
    partition: str
    run_id: str
    family: str
    metric: str
    params: dict
    val_score: float | None
    test_score: float | None
    model_uri: str
    model_sha256: str
    refit_rows: int | None
    crowned: bool
    leaderboard: list[dict]

    @property
    def tags(self) -> dict[str, str]:
        tags = {TAG_DAG_ID: self.dag_id, TAG_PARTITION: self.partition, TAG_RUN_ID: self.run_id,
                "dagml.family": self.family, "dagml.sha256": self.model_sha256, "dagml.model_uri": self.model_uri,
                "dagml.crowned": str(self.crowned).lower(), "dagml.metric": self.metric,
                "dagml.validation_score": self.val_score, "dagml.test_score": self.test_score,
                "dagml.refit_rows": self.refit_rows}
        return {k: str(v) for k, v in tags.items() if v is not None}


def winner(results, dag_id: str, partition: str, run_id: str) -> Winner:
    """The run's winner as dagml stores it: the model it crowned (a refit, maybe) when it became the
    champion, else the leaderboard row select chose."""
    from dagml import leaderboard as board

    crowned = [c for c in results.champion_history(dag_id) if c["run_id"] == run_id and c["partition"] == partition]
    run = results.run(dag_id, partition)
    rows = results.leaderboard(dag_id, partition, run_id)
    family = crowned[-1]["family"] if crowned else (run or {}).get("selected_family")
    row = next((r for r in rows if r["family"] == family), None)
    if row is None and not crowned:
        raise DataError(f"{dag_id} run {run_id} (partition {partition}) has no winner in the results DB: "
                        "nothing to register")
    champion, row = (crowned[-1] if crowned else {}), row or {}
    metric = champion.get("metric") or row["metric"]
    return Winner(dag_id, partition, run_id, family, metric, row.get("params") or {}, row.get("val_score"),
                  champion.get("test_score", row.get("test_score")),
                  champion.get("model_uri") or row["model_uri"], champion.get("model_sha256") or row["model_sha256"],
                  champion.get("refit_rows"), bool(crowned), board.entries(rows, metric, family) if rows else [])


def tracking(conn_id: str):
    """The tracking URI an Airflow connection names, and the connection. A database connection (sqlite,
    postgres, mysql) is MLflow's SQL store itself; an http(s) one is a tracking server; extra
    ``tracking_uri`` overrides both. ``ConnectionNotFound`` naming it when it is not defined."""
    from dagml import settings
    from dagml.errors import ConnectionNotFound

    conn = settings.get_connection(conn_id, "the MLflow tracking server or database")
    extra = conn.extra_dejson
    if extra.get("tracking_uri"):
        return extra["tracking_uri"], conn
    if conn.conn_type in DATABASES:
        return settings._connection_url(conn), conn
    if conn.conn_type in ("http", "https") and conn.host:
        port = f":{conn.port}" if conn.port else ""
        path = f"/{conn.schema}" if conn.schema else ""
        return f"{conn.conn_type}://{conn.host}{port}{path}", conn
    raise ConnectionNotFound(f"the Airflow connection {conn_id!r} (type {conn.conn_type!r}, host {conn.host!r}) is "
                             "no MLflow tracking URI: give an http(s):// server or a sqlite/postgres/mysql database")


@contextmanager
def _credentials(login: str | None, password: str | None):
    """A tracking server's basic auth, as MLflow reads it (from the environment), for this block only."""
    values = {"MLFLOW_TRACKING_USERNAME": login, "MLFLOW_TRACKING_PASSWORD": password}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Registry:
    """dagml's versions of one registered model, in the registry at ``tracking_uri``."""

    def __init__(self, name: str, tracking_uri: str, artifact_location: str | None = None):
        self.name, self.tracking_uri, self.artifact_location = name, tracking_uri, artifact_location
        mlflow.set_tracking_uri(tracking_uri)  # log_model and register_model are module-level (fluent) calls
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri, registry_uri=tracking_uri)

    def version_of(self, dag_id: str, run_id: str):
        """The version registered for this run, or None. (Airflow run ids hold no quotes.)"""
        found = self.client.search_model_versions(
            f"name = '{self.name}' and tags.`{TAG_DAG_ID}` = '{dag_id}' and tags.`{TAG_RUN_ID}` = '{run_id}'")
        return min(found, key=lambda v: int(v.version)) if found else None

    def ensure_version(self, entry: Winner, artifacts):
        """This run's version: the one already registered, else a new one (an MLflow run holding the
        winner's params, scores and leaderboard, and the pyfunc with dagml's archive)."""
        existing = self.version_of(entry.dag_id, entry.run_id)
        if existing is not None:
            log.info("%s version %s is %s's already", self.name, existing.version, entry.run_id)
            return existing
        with tempfile.TemporaryDirectory(prefix="dagml-register-") as tmp:
            archive = Path(tmp) / ARCHIVE
            archive.write_bytes(artifacts.read_verified(entry.model_uri, entry.model_sha256))
            code = Path(tmp) / "dagml_model.py"
            code.write_text(MODEL_CODE)
            with mlflow.start_run(experiment_id=self._experiment_id(),
                                  run_name=f"{entry.partition} {entry.family}", tags=entry.tags) as run:
                mlflow.log_params({k: _param(v) for k, v in entry.params.items()})
                mlflow.log_metrics({k: v for k, v in (("validation_score", entry.val_score),
                                                      ("test_score", entry.test_score)) if v is not None})
                mlflow.log_dict({"metric": entry.metric, "rows": entry.leaderboard}, "leaderboard.json")
                info = mlflow.pyfunc.log_model(name="model", python_model=str(code),
                                               artifacts={"archive": str(archive)},
                                               model_config={"sha256": entry.model_sha256},
                                               pip_requirements=_requirements())
        version = mlflow.register_model(info.model_uri, self.name, tags=entry.tags)
        description = (f"{entry.family} on partition {entry.partition} (run {entry.run_id}): validation "
                       f"{entry.metric} {entry.val_score}, test {entry.test_score}"
                       + (f"; refit on {entry.refit_rows} rows" if entry.refit_rows else ""))
        self.client.update_model_version(self.name, version.version, description=description)
        log.info("registered %s version %s: %s (MLflow run %s)", self.name, version.version, description,
                 run.info.run_id)
        return version

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(self.name, artifact_location=self.artifact_location)
        except mlflow.exceptions.MlflowException:  # another run created it meanwhile
            experiment = self.client.get_experiment_by_name(self.name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def alias(self, alias: str) -> str | None:
        """The version ``alias`` points to, or None."""
        version = self.client.get_registered_model(self.name).aliases.get(alias)
        return None if version is None else str(version)

    def point(self, alias: str, version) -> None:
        if self.alias(alias) != str(version.version):
            self.client.set_registered_model_alias(self.name, alias, version.version)
            log.info("%s@%s -> version %s", self.name, alias, version.version)


def _param(value) -> str:
    return str(value)[:6000]  # MLflow's limit on a param's value


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("dagml", "mlflow", "scikit-learn", "pandas", "numpy", "joblib"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def register(config, keys, stores, conn_id: str) -> dict:
    """Register the run's winner (alias ``challenger``) and point ``champion`` at the version of
    dagml's current champion, registering that one too if its own run never did."""
    uri, conn = tracking(conn_id)
    location = conn.extra_dejson.get("artifact_location")
    if location is None and uri.split(":", 1)[0].split("+")[0] in DATABASES:
        # a database store has no artifact root of its own: MLflow would use ./mlruns in the worker's cwd
        location = f"{stores.artifacts.root}/mlflow/{config.name}"
    with _credentials(conn.login, conn.password) if uri.startswith("http") else nullcontext():
        registry = Registry(model_name(config), uri, location)
        artifacts = stores.artifacts
        mine = registry.ensure_version(winner(stores.results, keys.dag_id, keys.partition, keys.run_id), artifacts)
        registry.point(CHALLENGER, mine)
        current = stores.results.champion(keys.dag_id)
        champion = None
        if current is not None:
            champion = (mine if current["run_id"] == keys.run_id and current["partition"] == keys.partition else
                        registry.ensure_version(winner(stores.results, keys.dag_id, current["partition"],
                                                       current["run_id"]), artifacts))
            registry.point(CHAMPION, champion)
    return {"model": registry.name, "tracking_uri": uri, "version": mine.version,
            "champion_version": champion.version if champion else None}
