"""Where the results DB and the artifact root are, for tasks and for the CLI alike.

Results: the Airflow connection ``dagml_results`` (any SQLAlchemy-supported DB:
sqlite, postgres, mysql), else ``DAGML_RESULTS_URL``, else SQLite under AIRFLOW_HOME.
Spark master: the Airflow connection ``dagml_spark``, else ``DAGML_SPARK_MASTER``, else local[*].
Artifacts: ``DAGML_ARTIFACTS_ROOT`` (a folder or s3://bucket/prefix), else a folder
under AIRFLOW_HOME; an object store's credentials and endpoint come from the Airflow
connection ``dagml_artifacts`` (type aws), else from the usual AWS_* variables.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def results_url() -> str:
    try:
        from airflow.sdk import BaseHook

        return _connection_url(BaseHook.get_connection(RESULTS_CONN_ID))
    except Exception:  # no Airflow here, or no such connection: fall back
        pass
    if url := os.environ.get("DAGML_RESULTS_URL"):
        return url
    path = airflow_home() / "dagml" / "results.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def spark_master() -> str:
    """The Airflow connection ``dagml_spark`` (host ``spark://h`` + port, ``yarn``, ``local[4]``), else local[*]."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(SPARK_CONN_ID)
    except Exception:  # no Airflow here, or no such connection
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
    except Exception:  # no Airflow here, or no such connection: s3fs reads AWS_* itself
        return {}


def storage_options(conn_id: str) -> dict:
    """fsspec options from an Airflow connection of type aws: login and password are the access
    key and secret; extra may hold ``endpoint_url`` (an S3-compatible server such as MinIO) and
    ``region_name``. Raises when there is no such connection."""
    from airflow.sdk import BaseHook

    return _storage_options(BaseHook.get_connection(conn_id))


def _storage_options(conn) -> dict:
    extra = conn.extra_dejson
    client = {k: extra[k] for k in ("endpoint_url", "region_name") if extra.get(k)}
    options = {"key": conn.login, "secret": conn.password} if conn.login else {}
    return options | ({"client_kwargs": client} if client else {})


def configs_dir() -> Path:
    """Where dataset configs live: DAGML_CONFIGS, else dags/configs beside the DAG file."""
    if env := os.environ.get("DAGML_CONFIGS"):
        return Path(env)
    return Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", airflow_home() / "dags")) / "configs"


def worker_hostname() -> str:
    """``[core] hostname_callable`` for a cluster on one machine: two Celery workers on one host
    would otherwise record the same hostname on their task instances."""
    import socket

    name = os.environ.get("DAGML_WORKER_NAME")
    return f"{socket.getfqdn()}-{name}" if name else socket.getfqdn()
