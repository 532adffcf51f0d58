"""The machine's database servers for tests: reached on loopback, started when absent.

The start commands are the ones this kind of machine uses; on another machine a test
that needs a server it cannot reach or start fails with a message naming it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306/{db}"


def _start_postgres():
    import glob

    versions = [p.rsplit("/", 1)[-1] for p in glob.glob("/etc/postgresql/*")]
    if not versions or not shutil.which("pg_ctlcluster"):
        raise RuntimeError("PostgreSQL is not reachable on 127.0.0.1:5432 and no cluster is installed to start")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "start"], check=False)


def _start_mariadb():
    if not shutil.which("mariadbd") and not Path("/usr/sbin/mariadbd").exists():
        raise RuntimeError("MariaDB is not reachable on 127.0.0.1:3306 and mariadbd is not installed")
    subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"],
                   check=False)


def _admin_engine(kind: str):
    import sqlalchemy as sa

    url = POSTGRES.format(db="postgres") if kind == "postgres" else MARIADB.format(db="")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def _reachable(kind: str) -> bool:
    import sqlalchemy as sa

    try:
        with _admin_engine(kind).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False


def ensure(kind: str) -> None:
    if _reachable(kind):
        return
    (_start_postgres if kind == "postgres" else _start_mariadb)()
    for _ in range(30):
        if _reachable(kind):
            return
        time.sleep(1)
    raise RuntimeError(f"{kind} did not come up on loopback")


@contextmanager
def scratch_database(kind: str):
    """A new, empty database on the real server; dropped afterwards."""
    import sqlalchemy as sa

    ensure(kind)
    name = f"dagml_test_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine(kind)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield (POSTGRES if kind == "postgres" else MARIADB).format(db=name)
    finally:
        with admin.connect() as conn:
            if kind == "postgres":
                conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE {name}"))
        admin.dispose()


class DroppingProxy:
    """A TCP proxy on loopback that closes the first ``drop`` connections at once (a server that
    drops clients, as a restarting database or a flaky network does) and forwards the rest."""

    def __init__(self, target: tuple[str, int], drop: int = 1):
        import socket

        self.target, self.to_drop, self.dropped = target, drop, 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]

    def __enter__(self):
        import threading

        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.close()

    def _accept(self):
        import socket
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:  # closed
                return
            if self.dropped < self.to_drop:
                self.dropped += 1
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass
