"""A real CeleryExecutor cluster for these tests: its own Redis on a port of its own, its own
Postgres databases, its own api-server port and home; torn down afterwards.

Its DAG folder is the repo's dags/ plus the test-only DAGs of tests/cluster/dags/ (a model
family that always raises)."""

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.services import ensure

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "airflow_config" / "cluster.py"
TEST_DAGS = Path(__file__).parent / "dags"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A Redis of the tests' own, so a test may restart it without touching the machine's."""
    if not shutil.which("redis-server"):
        raise RuntimeError("redis-server is not installed (Debian: redis-server)")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    # A broker keeps its queue on disk (append-only file), so a restart loses no queued task.
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
           "--appendfsync", "always", "--dir", str(folder)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    server = {"port": port, "url": f"redis://127.0.0.1:{port}/0", "proc": proc, "cmd": cmd}
    yield server
    # the running one: a test that restarts Redis replaces server["proc"]
    server["proc"].terminate()
    server["proc"].wait(10)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return
    raise RuntimeError(f"a Redis still listens on 127.0.0.1:{port} after the tests' teardown: a test left one")


class Cluster:
    def __init__(self, home: Path, api_port: int, prefix: str):
        self.home, self.api_port, self.prefix = home, api_port, prefix
        self.base = f"http://127.0.0.1:{api_port}"

    def env(self) -> dict:
        out = {}
        for line in (self.home / "env").read_text().splitlines():
            key, value = line.removeprefix("export ").split("=", 1)
            out[key] = json.loads(value)
        return out

    def token(self) -> str:
        password = json.loads((self.home / "passwords.json").read_text())["admin"]
        return self.request("POST", "/auth/token", {"username": "admin", "password": password}, auth=False)[
            "access_token"]

    def request(self, method: str, path: str, body=None, auth=True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(self.base + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    def results(self):
        """dagml's results store of this cluster."""
        from airflow.models.connection import Connection

        from dagml.settings import _connection_url
        from dagml.store.results import ResultsStore

        return ResultsStore(_connection_url(Connection(uri=self.env()["AIRFLOW_CONN_DAGML_RESULTS"])))

    def unpause(self, dag_id: str, timeout: float = 120) -> None:
        """A paused DAG starts no run; the dag-processor may not have parsed its file yet (404)."""
        deadline = time.time() + timeout
        while True:
            try:
                self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.time() > deadline:
                    raise
                time.sleep(1)

    def trigger(self, dag_id: str, conf: dict) -> str:
        self.unpause(dag_id)
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def warehouse_insert(self, table: str, rows: list[dict], create: bool = False) -> None:
        """Rows (day, x1, x2, y) into a table of the cluster's warehouse (the connection `warehouse`)."""
        import sqlalchemy as sa
        from airflow.models.connection import Connection

        from dagml.settings import _connection_url

        engine = sa.create_engine(_connection_url(Connection(uri=self.warehouse_url)))
        with engine.begin() as conn:
            if create:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
                conn.execute(sa.text(f"CREATE TABLE {table} (day DATE NOT NULL, x1 DOUBLE PRECISION, "
                                     "x2 DOUBLE PRECISION, y TEXT)"))
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (:day, :x1, :x2, :y)"), rows)
        engine.dispose()

    def wait(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise TimeoutError(f"{dag_id} {run_id} still running after {timeout} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]


def _create_database(name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, redis_server):
    ensure("postgres")
    home = tmp_path_factory.mktemp("cluster")
    prefix = f"dagml_t{uuid.uuid4().hex[:8]}_"
    api_port = _free_port()
    dags = home / "dags"
    shutil.copytree(REPO / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    for path in TEST_DAGS.glob("*.py"):
        shutil.copy(path, dags)
    for path in (TEST_DAGS / "configs_extra").glob("*.yaml"):  # test-only datasets (e.g. sales, SQL-sourced)
        # @CLUSTER_HOME@: a folder of this cluster's own, e.g. for a scoring DAG's output
        (dags / "configs" / path.name).write_text(path.read_text().replace("@CLUSTER_HOME@", str(home)))
    # A scratch warehouse database for the SQL-sourced configs, as the Airflow connection `warehouse`
    # of every service (the tests fill it); dropped with the cluster's own databases.
    warehouse_url = f"postgres://postgres@127.0.0.1:5432/{prefix}warehouse"
    _create_database(f"{prefix}warehouse")
    args = [sys.executable, str(CLUSTER), "--home", str(home), "--workers", "2", "--redis", redis_server["url"],
            "--prefix", prefix, "--api-port", str(api_port), "--heartbeat-timeout", "20",
            "--dags", str(dags)]
    # The services inherit the `up` process's environment (cluster.py merges os.environ). The
    # scheduler creates no scheduled runs: a test's @daily DAG, unpaused so its backfills run, would
    # otherwise also get a run of today's interval. In Airflow 3.3 this also stops asset-triggered
    # runs, so the asset tests turn it back on for themselves (restart_scheduler); manual and
    # backfill runs are unaffected.
    up_env = {**os.environ, "AIRFLOW_CONN_WAREHOUSE": warehouse_url, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    up = subprocess.run([*args[:2], "up", *args[2:]], capture_output=True, text=True, env=up_env)
    if up.returncode:
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((home / "logs").glob("*.log")))
        raise RuntimeError(f"cluster did not start: {up.stdout}{up.stderr}\n{logs}")
    running = Cluster(home, api_port, prefix)
    running.warehouse_url = warehouse_url
    # what `up` gave the services on top of the env file, for a service a test starts again
    running.extra_env = {k: up_env[k] for k in ("AIRFLOW_CONN_WAREHOUSE", "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE")}
    yield running
    subprocess.run([*args[:2], "down", "--home", str(home)], capture_output=True)
    import sqlalchemy as sa

    engine = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in ("airflow", "results", "warehouse"):
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{prefix}{name}" WITH (FORCE)'))


def kill_worker_running(cluster, dag_id: str, run_id: str, task_id: str, timeout: float = 300) -> dict:
    """kill -9 the process group of the Celery worker that runs ``task_id`` (worker and task)."""
    import os
    import signal

    deadline = time.time() + timeout
    while time.time() < deadline:
        running = [ti for ti in cluster.task_instances(dag_id, run_id)
                   if ti["task_id"] == task_id and ti["state"] == "running" and ti["hostname"]]
        if running:
            ti = running[0]
            worker = ti["hostname"].rsplit("-", 2)[-2:]  # <fqdn>-worker-<n>
            pid = int((cluster.home / "pids" / f"{'-'.join(worker)}.pid").read_text())
            os.killpg(pid, signal.SIGKILL)
            return ti
        time.sleep(0.5)
    raise TimeoutError(f"no {task_id} instance started running within {timeout} s")


def _stop_service(cluster, name: str, timeout: float = 30) -> None:
    """SIGTERM a service's process group (it leads one), SIGKILL it if it outlives ``timeout``."""
    import os
    import signal

    alive = cluster_script()._alive
    pid = int((cluster.home / "pids" / f"{name}.pid").read_text())
    if alive(pid):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while alive(pid) and time.time() < deadline:
        time.sleep(0.2)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)


@functools.cache
def cluster_script():
    """airflow_config/cluster.py as a module (it is a script, not a package's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dagml_cluster_script", CLUSTER)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


# Run in a short-lived process of its own, as `up` runs it: the service is no child of the tests'
# process, which would never reap it (cluster.py's `_alive` takes a zombie for dead all the same).
_START = """
import importlib.util, json, sys
from pathlib import Path
a = json.loads(sys.argv[1])
spec = importlib.util.spec_from_file_location("dagml_cluster_script", a["script"])
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)
number = int(a["name"].rsplit("-", 1)[1]) if a["name"].startswith("worker-") else 0
script._start(Path(a["home"]), a["name"], script._services(number)[a["name"]], a["env"], a["api_port"])
"""


def start_service(cluster, name: str, extra_env: dict | None = None) -> None:
    """(Re)start the service ``name`` (``scheduler``, ``worker-1``...) as `up` started it, through
    cluster.py's own helper (same env, log and pid files), ``extra_env`` on top; does not wait."""
    args = {"script": str(CLUSTER), "home": str(cluster.home), "name": name, "api_port": cluster.api_port,
            "env": {**cluster.env(), **cluster.extra_env, **(extra_env or {})}}
    subprocess.run([sys.executable, "-c", _START, json.dumps(args)], check=True, cwd=REPO)


def restart_scheduler(cluster, extra_env: dict | None = None, timeout: float = 180) -> None:
    """Stop the scheduler and start it again with ``extra_env`` (e.g. a setting it reads only at
    start); wait until a heartbeat of the new one shows in the health endpoint."""
    from datetime import datetime, timezone

    _stop_service(cluster, "scheduler")
    started = datetime.now(timezone.utc)
    start_service(cluster, "scheduler", extra_env)
    deadline = time.time() + timeout
    while True:
        health = cluster.request("GET", "/api/v2/monitor/health", auth=False)["scheduler"]
        beat = health.get("latest_scheduler_heartbeat")
        if health.get("status") == "healthy" and beat and datetime.fromisoformat(beat.replace("Z", "+00:00")) > started:
            return
        if time.time() > deadline:
            raise TimeoutError(f"the restarted scheduler was not healthy within {timeout} s; see "
                               f"{cluster.home}/logs/scheduler.log")
        time.sleep(0.5)


def worker_ready_count(cluster, name: str) -> int:
    log = cluster.home / "logs" / f"{name}.log"
    return log.read_bytes().count(b" ready.") if log.exists() else 0


def wait_worker_ready(cluster, name: str, readies_before: int, timeout: float = 180) -> None:
    """Wait until the worker's log (appended to by each start) says ready once more than before."""
    deadline = time.time() + timeout
    while worker_ready_count(cluster, name) <= readies_before:
        if time.time() > deadline:
            raise TimeoutError(f"{name} was not ready again within {timeout} s; see {cluster.home}/logs/{name}.log")
        time.sleep(0.5)

