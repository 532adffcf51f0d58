"""A real api-server with the dagml plugin, on the tests' embedded SQLite metadata DB, after real
DAG runs (``airflow dags test``): a completed run, a failed one, and one left searching.

Its auth manager is SimpleAuthManager with one refusal added (tests/browser/auth_manager.py):
the user ``outsider`` (a viewer) may not read ``automl__ui_hidden``. Passwords are written to
the passwords file before the server starts, so the tests know them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin": "admin-pass", "outsider": "outsider-pass"}
DONE, FAILED, HIDDEN, SEARCHING = "automl__ui_done", "automl__ui_failed", "automl__ui_hidden", "automl__ui_searching"

CONFIGS = {
    # binary, so the champion gets ROC and precision-recall curves
    "ui_done": "source: {uri: 'sklearn://breast_cancer'}\ntarget: target\ntask: binary\nmetric: roc_auc\n"
               "families: [knn, elastic_net]\nbudget: {max_evals: 4, seconds: 120}\n"
               "split: {test_size: 0.25, validation: holdout}\nschedule: null\nretries: 0\n",
    "ui_hidden": "source: {uri: 'sklearn://iris'}\ntarget: target\nfamilies: [knn]\n"
                 "budget: {max_evals: 2, seconds: 60}\nsplit: {validation: holdout}\nschedule: null\nretries: 0\n",
    "ui_failed": "source: {uri: '/nonexistent/dagml-ui/{{ ds }}.csv'}\ntarget: y\nfamilies: [knn]\n"
                 "schedule: '@daily'\nstart_date: 2026-01-01\nretries: 0\n",
    # many cheap trials, so a browser sees the counter move; stopped by the fixture
    "ui_searching": "source: {uri: 'sklearn://breast_cancer'}\ntarget: target\ntask: binary\nmetric: roc_auc\n"
                    "families: [knn]\nbudget: {max_evals: 5000, seconds: 1800}\n"
                    "split: {test_size: 0.25, validation: holdout}\nschedule: null\nretries: 0\n",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class UIServer:
    base: str
    log: Path
    env: dict
    runs: dict  # dag_id -> run_id

    def token(self, user: str = "admin") -> str:
        req = urllib.request.Request(f"{self.base}/auth/token", method="POST",
                                     data=json.dumps({"username": user, "password": PASSWORDS[user]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)["access_token"]

    def get(self, path: str, token: str | None = None, cookie: str | None = None) -> tuple[int, str]:
        """(status, body) of a GET, with a Bearer token, the UI's ``_token`` cookie, or neither."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if cookie:
            headers["Cookie"] = f"_token={cookie}"
        req = urllib.request.Request(self.base + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def json(self, path: str, user: str = "admin"):
        status, body = self.get(path, token=self.token(user))
        assert status == 200, f"{path}: {status} {body[:500]}"
        return json.loads(body)


def _env(home: Path, dags: Path) -> dict:
    return {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__AUTH_MANAGER": "tests.browser.auth_manager.DagDenyingAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,outsider:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "ui-passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "dagml-ui-tests-only-secret-0123456789abcdef",
        "AIRFLOW__API__SECRET_KEY": "dagml-ui-tests-only-key",
        "DAGML_TEST_DENIED_DAGS": f"outsider:{HIDDEN}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


def _dags_test(env: dict, dag_id: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow", "dags", "test", dag_id, *args], env=env,
                          capture_output=True, text=True, timeout=900)


def _recorded_run(dag_id: str, timeout: float = 300) -> str:
    """The run id dagml recorded for ``dag_id`` (its only run in these tests)."""
    from dagml import settings
    from dagml.store.results import ResultsStore

    results = ResultsStore(settings.results_url())
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            runs = results.runs(dag_id)
        except Exception:  # the table is created by the first run's load task
            runs = []
        if runs:
            return runs[-1]["run_id"]
        time.sleep(1)
    raise TimeoutError(f"no run of {dag_id} recorded after {timeout} s")


@pytest.fixture(scope="session")
def ui_server(airflow_db, tmp_path_factory):
    home = Path(os.environ["AIRFLOW_HOME"])
    dags = tmp_path_factory.mktemp("ui-dags")
    (dags / "configs").mkdir()
    shutil.copy(REPO / "dags" / "automl.py", dags)
    for name, text in CONFIGS.items():
        (dags / "configs" / f"{name}.yaml").write_text(text)
    (home / "ui-passwords.json").write_text(json.dumps(PASSWORDS))
    env = _env(home, dags)

    for dag_id in (DONE, HIDDEN):
        proc = _dags_test(env, dag_id)
        assert proc.returncode == 0, f"{dag_id} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    proc = _dags_test(env, FAILED, "2026-03-01")
    assert proc.returncode != 0, "the run of a missing file should fail"
    # the searching run stays running while the tests look at it; stopped afterwards
    log_dir = tmp_path_factory.mktemp("ui-logs")
    searching = subprocess.Popen([sys.executable, "-m", "airflow", "dags", "test", SEARCHING], env=env,
                                 stdout=open(log_dir / "searching.log", "w"), stderr=subprocess.STDOUT,
                                 start_new_session=True)

    port = _free_port()
    log = log_dir / "api-server.log"
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--workers", "1",
                               "--host", "127.0.0.1"], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the api-server did not come up:\n{log.read_text()[-4000:]}")
                time.sleep(1)
        runs = {dag_id: _recorded_run(dag_id) for dag_id in (DONE, HIDDEN, FAILED, SEARCHING)}
        yield UIServer(base, log, env, runs)
    finally:
        # the searching run is thrown away: stopped at once (it would wait out its trial on SIGTERM)
        if searching.poll() is None:
            os.killpg(searching.pid, signal.SIGKILL)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        searching.wait()
