"""Where the results DB and the artifact root are, for tasks and for the CLI alike.

Results: ``DAGML_RESULTS_URL`` if set, else the Airflow connection ``dagml_results`` (any
SQLAlchemy-supported DB: sqlite, postgres, mysql); with neither, an error naming the
connection (never a silent local file, where a worker would write results no one reads).
Spark master: the Airflow connection ``dagml_spark``, else ``DAGML_SPARK_MASTER``, else local[*].
Artifacts: ``DAGML_ARTIFACTS_ROOT`` (a folder or s3://bucket/prefix), else a folder
under AIRFLOW_HOME; an object store's credentials and endpoint come from the Airflow
connection ``dagml_artifacts`` (type aws), else from the usual AWS_* variables.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagml.errors import ConnectionNotFound

RESULTS_CONN_ID = "dagml_results"
SPARK_CONN_ID = "dagml_spark"
ARTIFACTS_CONN_ID = "dagml_artifacts"
_DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))


def _connection_url(conn) -> str:
    if conn.conn_type == "sqlite":
        return f"sqlite:///{conn.schema or conn.host}"  # Airflow puts a sqlite URI's path in schema
    from sqlalchemy.engine import URL

    driver = _DRIVERS.get(conn.conn_type, conn.conn_type)
    return URL.create(driver, username=conn.login or None, password=conn.password or None,
                      host=conn.host or None, port=conn.port or None, database=conn.schema or None).render_as_string(
        hide_password=False)


def get_connection(conn_id: str, needed_for: str):
    """The Airflow connection ``conn_id``; ``ConnectionNotFound`` naming it when it is not defined.
    Other errors (a secrets backend or API server that does not answer) go on, to be retried."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConnectionNotFound(
            f"the Airflow connection {conn_id!r} ({needed_for}) is not defined: add it in the UI or with "
            f"`airflow connections add {conn_id} --conn-uri ...`, or set AIRFLOW_CONN_{conn_id.upper()}") from None


def sqlalchemy_url(conn_id: str, needed_for: str) -> str:
    return _connection_url(get_connection(conn_id, needed_for))


def results_url() -> str:
    return os.environ.get("DAGML_RESULTS_URL") or sqlalchemy_url(RESULTS_CONN_ID, "dagml's results database")


def spark_master() -> str:
    """The Airflow connection ``dagml_spark`` (host ``spark://h`` + port, ``yarn``, ``local[4]``), else local[*]."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(SPARK_CONN_ID)
    except AirflowNotFoundException:
        return os.environ.get("DAGML_SPARK_MASTER", "local[*]")
    host = conn.host or "local[*]"
    if "://" not in host and not host.startswith(("local", "yarn")):
        host = f"spark://{host}"  # the URI form spark://host:7077 leaves only "host" in the host field
    return f"{host}:{conn.port}" if conn.port else host


def artifacts_root() -> str:
    return os.environ.get("DAGML_ARTIFACTS_ROOT") or str(airflow_home() / "dagml" / "artifacts")


def artifacts_storage_options() -> dict:
    """fsspec options for an object-store root, from the connection ``dagml_artifacts``."""
    try:
        return storage_options(ARTIFACTS_CONN_ID)
    except ConnectionNotFound:  # s3fs then finds credentials as AWS tools do (AWS_* variables, profiles, roles)
        return {}


def storage_options(conn_id: str) -> dict:
    """fsspec options from an Airflow connection of type aws: login and password are the access
    key and secret; extra may hold ``endpoint_url`` (an S3-compatible server such as MinIO) and
    ``region_name``. Raises when there is no such connection."""
    return _storage_options(get_connection(conn_id, "an object store's credentials"))


def _storage_options(conn) -> dict:
    extra = conn.extra_dejson
    client = {k: extra[k] for k in ("endpoint_url", "region_name") if extra.get(k)}
    options = {"key": conn.login, "secret": conn.password} if conn.login else {}
    return options | ({"client_kwargs": client} if client else {})


def configs_dir(dag_folder: Path | str | None = None) -> Path:
    """The folder of dataset configs, one setting for the DAG file and the CLI alike:
    ``DAGML_CONFIGS``, else ``configs/`` in the DAG folder (the DAG file's own folder, or Airflow's
    ``[core] dags_folder`` for the CLI)."""
    if env := os.environ.get("DAGML_CONFIGS"):
        return Path(env)
    if dag_folder is None:
        dag_folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or airflow_home() / "dags"
    return Path(dag_folder) / "configs"


def worker_hostname() -> str:
    """``[core] hostname_callable`` for a cluster on one machine: two Celery workers on one host
    would otherwise record the same hostname on their task instances."""
    import socket

    name = os.environ.get("DAGML_WORKER_NAME")
    return f"{socket.getfqdn()}-{name}" if name else socket.getfqdn()
