"""Shared by the cluster benchmarks: a CeleryExecutor cluster of airflow_config/cluster.py
(its own home, Postgres databases, Redis db and api-server port, always torn down), its REST
API, and the timings read off a DAG run's task instances."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from statistics import quantiles

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from _report import REPO  # noqa: E402

CLUSTER = REPO / "airflow_config" / "cluster.py"
DAGS = REPO / "bench" / "cluster_dags"
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/{db}"
REDIS_DBS = (11, 12, 13, 14)  # one per cluster brought up in turn; each must be empty at start

# A kill (SIGTERM) unwinds like Ctrl-C, so every cluster still comes down.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def past(hhmm: str | None) -> bool:
    """Whether the UTC time of day ``hhmm`` (e.g. "12:20") has passed today; never when None."""
    return hhmm is not None and datetime.now(timezone.utc).strftime("%H:%M") >= hhmm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


TICK = os.sysconf("SC_CLK_TCK")


def _proc_stats() -> list[tuple[int, str, int, float]]:
    """(pid, command, session, CPU seconds of it and of its children it has waited for) of every process."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        comm, rest = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        # fields after the command: state ppid pgrp session ... utime(11) stime cutime cstime
        out.append((int(entry.name), comm, int(rest[3]), sum(int(x) for x in rest[11:15]) / TICK))
    return out


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores) since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in
                                                               Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


def cpu_seconds(home: Path) -> dict[str, float]:
    """CPU seconds so far per cluster service (its session: every process it started, task processes
    included, and the ones they waited for), the machine's PostgreSQL and Redis, and the machine.

    Take it before and after and subtract: a process that ended in between counts through the
    parent that waited for it (cutime), so the difference misses only orphans."""
    sessions = {int(p.read_text()): p.stem for p in (home / "pids").glob("*.pid")}
    seconds = {name: 0.0 for name in sessions.values()} | {"postgres": 0.0, "redis": 0.0}
    for _pid, comm, session, cpu in _proc_stats():
        if session in sessions:
            seconds[sessions[session]] += cpu
        elif comm.startswith(("postgres", "postmaster")):
            seconds["postgres"] += cpu
        elif comm.startswith("redis-server"):
            seconds["redis"] += cpu
    seconds["machine"] = machine_busy_seconds()
    return seconds


class Cluster:
    """``with Cluster(workers=2) as c:`` starts the stack on bench/cluster_dags and stops it afterwards."""

    def __init__(self, workers: int, airflow_defaults: bool = False, redis_db: int = REDIS_DBS[0],
                 extra_env: dict[str, str] | None = None, dags: Path = DAGS, search_slots: int | None = None):
        """``extra_env``: more settings (AIRFLOW__...) for every service; cluster.py's own win over them.
        ``search_slots``: the size of the search pool (cluster.py's default: one slot per core)."""
        self.workers, self.airflow_defaults, self.redis_db = workers, airflow_defaults, redis_db
        self.extra_env = extra_env or {}
        self.dags, self.search_slots = Path(dags), search_slots
        self.home = Path(tempfile.mkdtemp(prefix="dagml-bench-cluster-"))
        self.prefix = f"dagml_b{os.getpid()}_{redis_db}_"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._token = None

    def _redis(self, *command: str) -> str:
        out = subprocess.run(["redis-cli", "-n", str(self.redis_db), *command], capture_output=True, text=True)
        return out.stdout.strip()

    def __enter__(self) -> Cluster:
        if self._redis("dbsize") != "0":
            sys.exit(f"Redis db {self.redis_db} is not empty: somebody else uses it")
        args = ["--home", str(self.home), "--workers", str(self.workers), "--redis", REDIS.format(db=self.redis_db),
                "--prefix", self.prefix, "--api-port", str(self.port), "--dags", str(self.dags),
                *(["--search-slots", str(self.search_slots)] if self.search_slots else [])]
        try:
            up = subprocess.run([sys.executable, str(CLUSTER), "up", *args,
                                 *(["--airflow-defaults"] if self.airflow_defaults else [])],
                                capture_output=True, text=True, env={**os.environ, **self.extra_env})
            if up.returncode:
                logs = "".join(f"--- {p.name}\n{p.read_text()[-1500:]}\n" for p in (self.home / "logs").glob("*.log"))
                raise RuntimeError(f"cluster did not start: {up.stdout}{up.stderr}\n{logs}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run([sys.executable, str(CLUSTER), "down", "--home", str(self.home)], capture_output=True)
        engine = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in ("airflow", "results"):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.prefix}{name}" WITH (FORCE)'))
        engine.dispose()
        self._redis("flushdb")  # checked empty at start: only this cluster's keys
        if not exc or exc[0] is None:
            shutil.rmtree(self.home, ignore_errors=True)
        else:
            print(f"cluster logs kept in {self.home}/logs", file=sys.stderr)

    # --- REST API (what tests/cluster/conftest.py does)
    def request(self, method: str, path: str, body=None, auth: bool = True):
        headers = {"Content-Type": "application/json"}
        if auth:
            if self._token is None:
                password = json.loads((self.home / "passwords.json").read_text())["admin"]
                self._token = self.request("POST", "/auth/token", {"username": "admin", "password": password},
                                           auth=False)["access_token"]
            headers["Authorization"] = f"Bearer {self._token}"
        req = urllib.request.Request(self.base + path, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    def unpause(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while True:  # until the dag-processor has parsed the file
            try:
                self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.time() > deadline:
                    raise
                time.sleep(1)

    def run(self, dag_id: str, conf: dict | None = None, timeout: float = 1200) -> dict:
        """Trigger ``dag_id``, wait for it to finish; the run with its task instances and upstream map."""
        self.unpause(dag_id)
        run_id = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})[
            "dag_run_id"]
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
        deadline = time.time() + timeout
        while (run := self.request("GET", path))["state"] not in ("success", "failed"):
            if time.time() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {run['state']} after {timeout} s")
            time.sleep(1)
        if run["state"] != "success":
            raise RuntimeError(f"{dag_id} {run_id} {run['state']}; logs in {self.home}")
        tis = self.request("GET", f"{path}/taskInstances?limit=1000")["task_instances"]
        upstream: dict[str, set[str]] = {}
        for task in self.request("GET", f"/api/v2/dags/{dag_id}/tasks")["tasks"]:
            upstream.setdefault(task["task_id"], set())
            for down in task["downstream_task_ids"]:
                upstream.setdefault(down, set()).add(task["task_id"])
        return {"run": run, "upstream": upstream, "tis": [
            {"task_id": t["task_id"], "map_index": t["map_index"], "label": t.get("rendered_map_index"),
             "host": t["hostname"], "try": t["try_number"],
             "queued": when(t["queued_when"]), "start": when(t["start_date"]), "end": when(t["end_date"])}
            for t in tis]}

    def results(self, query: str, **params) -> list:
        """Rows of a query on this cluster's dagml results database."""
        engine = sa.create_engine(POSTGRES.rsplit("/", 1)[0] + f"/{self.prefix}results")
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(query), params).fetchall()
        finally:
            engine.dispose()

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.request("GET", path + "?deserialize=true")["value"]


def when(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_wall(result: dict) -> float:
    """The DAG run's own start_date to end_date, as Airflow records them."""
    return when(result["run"]["end_date"]) - when(result["run"]["start_date"])


def _slot_free(tis: list[dict], ti: dict) -> list[float]:
    """When the worker that ran ``ti`` ended its task before (it has one slot: a mapped search waits)."""
    return [t["end"] for t in tis if t["host"] == ti["host"] and t is not ti and t["end"] <= ti["start"]]


def queue_waits(result: dict) -> list[float]:
    """queued -> running: each task instance's start_date minus its queued_when, or minus the end
    of the task instance before it on the same worker if that is later (waiting for a slot)."""
    return [t["start"] - max([t["queued"], *_slot_free(result["tis"], t)]) for t in result["tis"]]


def handoff_gaps(result: dict) -> list[float]:
    """end -> next start: each task instance's start minus the moment it could have started, the
    later of the latest end among its upstream tasks' instances and the end of the task instance
    before it on the same worker."""
    tis, gaps = result["tis"], []
    for ti in tis:
        ups = [t["end"] for t in tis if t["task_id"] in result["upstream"][ti["task_id"]]]
        if ups:
            gaps.append(ti["start"] - max(ups + _slot_free(tis, ti)))
    return gaps


def critical_path(result: dict, slots: int | None = None) -> tuple[float, int]:
    """Seconds and serial stages along the longest path of task durations. A mapped task counts
    its longest instance (slots=None: as many slots as instances), or with ``slots`` worker
    slots its instances list-scheduled longest first, as ceil(instances / slots) stages."""
    by_task: dict[str, list[float]] = {}
    for t in result["tis"]:
        by_task.setdefault(t["task_id"], []).append(t["end"] - t["start"])
    done: dict[str, tuple[float, int]] = {}

    def finish(task_id: str) -> tuple[float, int]:
        if task_id not in done:
            durations = sorted(by_task[task_id], reverse=True)
            if slots is None:
                own = (durations[0], 1)
            else:
                loads = [0.0] * min(slots, len(durations))
                for d in durations:
                    loads[loads.index(min(loads))] += d
                own = (max(loads), math.ceil(len(durations) / slots))
            before = max((finish(u) for u in result["upstream"][task_id]), default=(0.0, 0))
            done[task_id] = (before[0] + own[0], before[1] + own[1])
        return done[task_id]

    return max(finish(t) for t in by_task)


def p95(values: list[float]) -> float:
    return quantiles(values, n=20, method="inclusive")[-1]
