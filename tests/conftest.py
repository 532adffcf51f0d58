"""Test environment: an embedded Airflow (SQLite) in a temporary AIRFLOW_HOME, set before
anything imports Airflow, so tests never touch the checkout's .airflow or a user's setup."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="dagml-tests-"))
os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW_CONN_DAGML_RESULTS": f"sqlite:///{_HOME}/results.db",
    "DAGML_ARTIFACTS_ROOT": str(_HOME / "artifacts"),
    # as in a task (dagml.threads.limit): tests that fit outside a task must not spin one OpenMP
    # thread per core against each other (8x slower on a busy 2-core machine)
    "OMP_NUM_THREADS": "1",
})


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata DB, migrated once per session (dag.test() needs it)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env=os.environ.copy())
    return _HOME


@pytest.fixture
def stores(tmp_path):
    from dagml.store.artifacts import ArtifactStore
    from dagml.store.results import ResultsStore
    from dagml.tasks import Stores

    s = Stores(ArtifactStore(str(tmp_path / "artifacts")), ResultsStore(f"sqlite:///{tmp_path}/results.db"))
    s.results.migrate()
    return s


def pytest_sessionfinish(session, exitstatus):
    """Stop a Spark session the tests started while logging still has somewhere to write."""
    import logging

    for name in ("py4j", "rpy2", "dagml.r"):  # they log at interpreter exit, after pytest closed its streams
        logging.getLogger(name).setLevel(logging.ERROR)
    spark = sys.modules.get("dagml.families.spark")
    if spark is not None and spark.session.cache_info().currsize:
        spark.session().stop()
