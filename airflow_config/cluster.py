"""The CeleryExecutor cluster, natively on one machine: `make cluster-up` / `make cluster-down`.

Postgres holds Airflow's metadata and dagml's results, Redis is the broker; the api-server,
scheduler, dag-processor, triggerer and N Celery workers each run in their own process
group (so a test can kill -9 one worker without touching the rest), log to
<home>/logs/<service>.log and record their pid in <home>/pids/. `up` waits until every
service is healthy and writes <home>/env, which points the airflow and dagml CLIs at the
cluster: `. .cluster/env; airflow dags list`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
QUEUES = "default,r,spark"
# Every search takes slots of this pool (dagml.factory.search_pool): 1, or N for a family with
# `threads: N`. `up` sizes it to the machine's cores (--search-slots), so the searches running at
# once never ask for more threads than there are cores, whatever the number of worker slots.
SEARCH_POOL = "dagml_search"
# A worker's native thread pools (OpenMP, BLAS), read by each library when it loads: 1 thread per
# task, as a search is one worker slot; a family with `threads: N` raises its own limit (dagml.threads).
WORKER_THREADS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# What dagml's cluster changes from Airflow's defaults to cut scheduling gaps
# (docs/benchmarks.md, cluster_overhead; `--airflow-defaults` leaves these out to compare).
TUNING = {
    # the scheduler loop sleeps this long when it found nothing to do (default 1 s): it bounds
    # the gap between one task's end and the next one's queueing. Each idle loop is a few
    # queries: at 0.1 s the scheduler and PostgreSQL took ~13 core-seconds per backfilled
    # partition, CPU the searches lose when slots = cores; 0.5 s took ~5 and backfilled as fast
    # (docs/benchmarks.md, backfill_throughput)
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    # a worker's supervisor may notice that its task process ended only at its next heartbeat
    # (default every 5 s), holding the slot that long: ~5 s hand-offs between tasks
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
}
# Airflow's metrics and dagml's (dagml.telemetry) as StatsD, to the port where statsd-exporter listens
# (docker-compose.yaml publishes its UDP 9125: `docker compose up statsd-exporter prometheus grafana`
# shows them in Grafana). Nothing listening costs nothing: UDP packets are fire and forget. Your
# environment's own AIRFLOW__METRICS__* settings replace these (e.g. STATSD_ON=False, or OTEL_ON=True).
METRICS = {
    "AIRFLOW__METRICS__STATSD_ON": "True",
    "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
    "AIRFLOW__METRICS__STATSD_PORT": "9125",
    "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
}


def _env(home: Path, args) -> dict[str, str]:
    pg = args.postgres.rstrip("/")
    dags = Path(args.dags).resolve()
    secret_file = home / "jwt_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
    return {
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "dagml.settings.worker_hostname",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{args.api_port}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/{args.prefix}airflow",
        "AIRFLOW__CELERY__BROKER_URL": args.redis,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/{args.prefix}airflow",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__API__PORT": str(args.api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{args.api_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(args.heartbeat_timeout),
        # Airflow 3.3 fails a task queued for longer than this, and its token expires then too:
        # it must outlast a search's wait for a worker slot (see --queued-timeout)
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(args.queued_timeout),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "task-logs"),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(args.api_port + 800),
        "AIRFLOW_CONN_DAGML_RESULTS": f"postgres://{pg}/{args.prefix}results",
        "DAGML_ARTIFACTS_ROOT": str(home / "artifacts"),
        "DAGML_CONFIGS": str(dags / "configs"),
        "DAGML_SEARCH_POOL": SEARCH_POOL,  # read when the DAGs are parsed: every service sees the same
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        # a setting the caller's environment already gives wins over dagml's tuning
        **({} if args.airflow_defaults else {k: v for k, v in TUNING.items() if k not in os.environ}),
        # metrics on, unless the caller's environment has a [metrics] of its own (then it is kept whole)
        **({} if any(k.startswith("AIRFLOW__METRICS__") for k in os.environ) else METRICS),
    }


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _postgres_engine(args):
    import sqlalchemy as sa

    return sa.create_engine(f"postgresql+psycopg2://{args.postgres.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT")


def _start_local_postgres(home: Path, args) -> None:
    """Start the machine's own PostgreSQL cluster (Debian's pg_ctlcluster); `down` stops it again."""
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
    host = args.postgres.rsplit("@", 1)[-1].rsplit(":", 1)[0]
    if host not in LOOPBACK or not versions or not shutil.which("pg_ctlcluster"):
        sys.exit(f"cannot reach PostgreSQL at {args.postgres}, and no local PostgreSQL cluster to start "
                 "(Debian: apt-get install postgresql). Start one or pass --postgres user@host:port")
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    subprocess.run(cmd, check=False, capture_output=True)
    (home / "started-postgres").write_text(versions[-1])
    print(f"started PostgreSQL {versions[-1]} ({' '.join(cmd)}); make cluster-down stops it")


def _create_databases(home: Path, args) -> None:
    import sqlalchemy as sa

    for attempt in range(30):
        try:
            with _postgres_engine(args).connect() as conn:
                have = {r[0] for r in conn.execute(sa.text("SELECT datname FROM pg_database"))}
                for name in (f"{args.prefix}airflow", f"{args.prefix}results"):
                    if name not in have:
                        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            return
        except sa.exc.OperationalError as exc:
            if attempt == 0:
                _start_local_postgres(home, args)
            error = exc.orig
        time.sleep(1)
    sys.exit(f"cannot reach PostgreSQL at {args.postgres}: {error}")


def _redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _warn_if_volatile(url: str) -> None:
    import redis

    try:
        persisted = redis.Redis.from_url(url).config_get("appendonly").get("appendonly") == "yes"
    except redis.RedisError:  # CONFIG may be disabled on a managed Redis
        return
    if not persisted:
        print(f"warning: the Redis at {url} keeps no append-only file: if it restarts, the tasks queued in it "
              "are lost and wait out --queued-timeout before Airflow fails and retries them")


def _ensure_redis(home: Path, args) -> None:
    """Use the Redis at --redis; on loopback, start one (kept on disk) when none answers."""
    host, port = args.redis.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    if _redis_ping(host, int(port)):
        _warn_if_volatile(args.redis)
        return
    if host not in LOOPBACK or not shutil.which("redis-server"):
        sys.exit(f"cannot reach Redis at {args.redis}, and redis-server is not installed to start one "
                 "(Debian: apt-get install redis-server); or pass --redis redis://host:port/db")
    (home / "redis").mkdir(exist_ok=True)
    _start(home, "redis", ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                           "--dir", str(home / "redis")], {}, args.api_port)
    for _ in range(50):
        if _redis_ping(host, int(port)):
            print(f"started Redis on port {port} (append-only file in {home}/redis); make cluster-down stops it")
            return
        time.sleep(0.2)
    sys.exit(f"Redis did not start on port {port}; see {home}/logs/redis.log")


def _services(workers: int) -> dict[str, list[str]]:
    services = {
        "api-server": ["airflow", "api-server"],
        "scheduler": ["airflow", "scheduler"],
        "dag-processor": ["airflow", "dag-processor"],
        "triggerer": ["airflow", "triggerer"],
    }
    for i in range(1, workers + 1):
        services[f"worker-{i}"] = ["airflow", "celery", "worker", "--queues", QUEUES, "--concurrency", "1",
                                   "--celery-hostname", f"worker-{i}@%h"]
    return services


def _start(home: Path, name: str, cmd: list[str], env: dict, api_port: int) -> None:
    (home / "logs").mkdir(exist_ok=True)
    (home / "pids").mkdir(exist_ok=True)
    extra = {}
    if name.startswith("worker"):  # each worker serves its task logs on a port of its own
        port = api_port + 800 + int(name.rsplit("-", 1)[1])
        extra = {"DAGML_WORKER_NAME": name, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port),
                 **WORKER_THREADS_ENV}
    with open(home / "logs" / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, **env, **extra}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=REPO)
    (home / "pids" / f"{name}.pid").write_text(str(proc.pid))


def _alive(pid: int) -> bool:
    """Running: a zombie is not. A service outlives the `up` that started it, so once it exits it
    waits for the machine's init to reap it, and an init that never does (a container's) would keep
    it "alive" for every later check."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no procfs: the signal's answer stands
        return True


def _health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3) as resp:
            return json.load(resp)
    except OSError:
        return None


def _wait(home: Path, args, services) -> None:
    """Until the api-server reports every component healthy and every worker logged ready, saying
    which became ready when (start-up takes most of a minute)."""
    start = time.time()
    deadline = start + args.timeout
    components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    workers = [n for n in services if n.startswith("worker")]
    seen: set[str] = set()
    while time.time() < deadline:
        dead = [n for n in services if not _alive(int((home / "pids" / f"{n}.pid").read_text()))]
        if dead:
            sys.exit(f"service(s) {', '.join(dead)} exited; see {home}/logs/")
        health = _health(args.api_port)
        ready = {"api-server"} if health is not None else set()
        ready |= {c for c in components if (health or {}).get(c, {}).get("status") == "healthy"}
        ready |= {n for n in workers if b" ready." in (home / "logs" / f"{n}.log").read_bytes()}
        for name in sorted(ready - seen):
            print(f"   {name} ready after {time.time() - start:.0f} s", flush=True)
        seen |= ready
        if seen >= {"api-server", *components, *workers}:
            return
        time.sleep(1)
    missing = sorted({"api-server", *components, *workers} - seen)
    sys.exit(f"the cluster did not become healthy within {args.timeout} s (not ready: {', '.join(missing)}); "
             f"see {home}/logs/")


def up(args) -> None:
    home = Path(args.home).resolve()
    if (home / "pids").exists() and any(_alive(int(p.read_text())) for p in (home / "pids").glob("*.pid")):
        sys.exit(f"a cluster already runs from {home}: make cluster-down first")
    home.mkdir(parents=True, exist_ok=True)
    _create_databases(home, args)
    _ensure_redis(home, args)
    env = _env(home, args)
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({"admin": password}))
    (home / "env").write_text("".join(f"export {k}={json.dumps(v)}\n" for k, v in env.items()))
    slots = args.search_slots or os.cpu_count() or 1
    for what, cmd in (("migrating Airflow's metadata DB", ["airflow", "db", "migrate"]),
                      ("migrating dagml's results DB", ["dagml", "db", "upgrade"]),
                      (f"creating pool {SEARCH_POOL} ({slots} slots)",
                       ["airflow", "pools", "set", SEARCH_POOL, str(slots),
                        "dagml searches: one slot per native thread (a family's `threads`), one per core"])):
        print(f"== {what}", flush=True)
        done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, cwd=REPO)
        if done.returncode:
            sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    services = _services(args.workers)
    print(f"== starting {', '.join(services)} (logs in {home}/logs/); waiting for each to be ready", flush=True)
    for name, cmd in services.items():
        _start(home, name, cmd, env, args.api_port)
    _wait(home, args, services)
    print(f"dagml cluster is up: {len(services)} services, {args.workers} Celery worker(s) on queues {QUEUES}, "
          f"searches in pool {SEARCH_POOL} ({slots} slots)\n"
          f"  UI:    http://127.0.0.1:{args.api_port}  (user admin, password {password})\n"
          f"  CLIs:  . {home}/env; airflow dags list; dagml list\n"
          f"  logs:  {home}/logs/   stop: make cluster-down")


def down(args) -> None:
    home = Path(args.home).resolve()
    pids = sorted((home / "pids").glob("*.pid")) if (home / "pids").exists() else []
    for path in pids:
        pid = int(path.read_text())
        if _alive(pid):
            os.killpg(pid, signal.SIGTERM)  # each service leads its own process group
    deadline = time.time() + 30
    for path in pids:
        pid = int(path.read_text())
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        path.unlink()
    print(f"stopped {len(pids)} service(s) started from {home}")
    if (home / "started-postgres").exists():  # `up` started the machine's PostgreSQL: stop it again
        version = (home / "started-postgres").read_text()
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop"], check=False)
        (home / "started-postgres").unlink()
        print(f"stopped PostgreSQL {version}, which make cluster-up had started")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--home", default=str(REPO / ".cluster"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", 2)))
    parser.add_argument("--postgres", default="postgres@127.0.0.1:5432", help="user[:password]@host:port")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--prefix", default="dagml_", help="prefix of the two Postgres database names")
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--heartbeat-timeout", type=int, default=60)
    parser.add_argument("--queued-timeout", type=int, default=3600,
                        help="seconds a task may wait for a worker slot before Airflow fails it (also the life of "
                             "its token); above families / slots x budget.seconds of the runs queued at once")
    parser.add_argument("--search-slots", type=int, default=int(os.environ.get("SEARCH_SLOTS", 0)),
                        help=f"slots of the pool {SEARCH_POOL} every search takes (a family's `threads` of them); "
                             "default: the machine's cores")
    parser.add_argument("--timeout", type=int, default=180)
    parser.add_argument("--dags", default=str(REPO / "dags"), help="the DAG folder (its configs/ holds the datasets)")
    parser.add_argument("--airflow-defaults", action="store_true",
                        help="leave out dagml's scheduler tuning (to measure what it changes)")
    args = parser.parse_args(argv)
    if shutil.which("airflow", path=str(VENV_BIN)) is None:
        sys.exit(f"run with the venv's python ({VENV_BIN}/airflow not found): make cluster-up")
    up(args) if args.command == "up" else down(args)


if __name__ == "__main__":
    main()
