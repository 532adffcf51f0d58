"""The results database: runs, trials, leaderboard rows and champions, through SQLAlchemy.

One code path for SQLite (embedded default), Postgres and MySQL. Leaderboard and trial
writes are upserts keyed on (dag_id, partition, family[, trial]) so re-running a date
replaces its rows instead of duplicating them; champions are never deleted, only retired.
The schema is owned by Alembic (``migrations/``); ``migrate()`` brings a DB to head.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()
# MySQL/MariaDB keep whole seconds unless told otherwise; runs are ordered by these times.
Timestamp = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

runs = sa.Table(
    "dagml_runs", metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("partition", sa.String(250), primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("task", sa.String(20)),
    sa.Column("metric", sa.String(40)),
    sa.Column("profile", sa.JSON),
    sa.Column("selected_family", sa.String(100)),
    sa.Column("promoted", sa.Boolean),
    sa.Column("report_uri", sa.String(1000)),
    sa.Column("error", sa.Text),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp),
)

leaderboard = sa.Table(
    "dagml_leaderboard", metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("partition", sa.String(250), primary_key=True),
    sa.Column("family", sa.String(100), primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("metric", sa.String(40)),
    sa.Column("params", sa.JSON),
    sa.Column("val_score", sa.Float),
    sa.Column("test_score", sa.Float),
    sa.Column("fit_seconds", sa.Float),
    sa.Column("search_seconds", sa.Float),
    sa.Column("n_trials", sa.Integer),
    sa.Column("n_failed_trials", sa.Integer),
    sa.Column("model_uri", sa.String(1000)),
    sa.Column("model_sha256", sa.String(64)),
    sa.Column("updated_at", Timestamp, nullable=False),
)

trials = sa.Table(
    "dagml_trials", metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("partition", sa.String(250), primary_key=True),
    sa.Column("family", sa.String(100), primary_key=True),
    sa.Column("trial", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("params", sa.JSON),
    sa.Column("loss", sa.Float),
    sa.Column("seconds", sa.Float),
    sa.Column("error", sa.Text),
)

champions = sa.Table(
    "dagml_champions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dag_id", sa.String(250), nullable=False, index=True),
    sa.Column("partition", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("family", sa.String(100), nullable=False),
    sa.Column("metric", sa.String(40), nullable=False),
    sa.Column("test_score", sa.Float),
    sa.Column("model_uri", sa.String(1000), nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("promoted_at", Timestamp, nullable=False),
    sa.Column("retired_at", Timestamp),
    sa.Column("reason", sa.Text),
)


def _now():
    return datetime.now(timezone.utc)


def _plain(row) -> dict:
    return dict(row._mapping)


class ResultsStore:
    def __init__(self, url: str):
        self.url = url
        args = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        self.engine = sa.create_engine(url, **args)

    def migrate(self) -> None:
        import logging

        from alembic import command
        from alembic.config import Config

        logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per command otherwise

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    # runs
    def start_run(self, dag_id: str, partition: str, run_id: str, **info) -> None:
        values = {"run_id": run_id, "status": "running", "started_at": _now(), "finished_at": None,
                  "selected_family": None, "promoted": None, "report_uri": None, "error": None, **info}
        self._upsert(runs, {"dag_id": dag_id, "partition": partition}, values)

    def update_run(self, dag_id: str, partition: str, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.dag_id == dag_id, runs.c.partition == partition).values(**values))

    def run(self, dag_id: str, partition: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(runs.select().where(runs.c.dag_id == dag_id, runs.c.partition == partition)).first()
        return _plain(row) if row else None

    def latest_run(self, dag_id: str) -> dict | None:
        query = runs.select().where(runs.c.dag_id == dag_id).order_by(runs.c.started_at.desc(), runs.c.partition.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _plain(row) if row else None

    # leaderboard and trials
    def record_family(self, dag_id: str, partition: str, family: str, run_id: str, **values) -> None:
        values = {"run_id": run_id, "updated_at": _now(), **values}
        self._upsert(leaderboard, {"dag_id": dag_id, "partition": partition, "family": family}, values)

    def record_trials(self, dag_id: str, partition: str, family: str, run_id: str, rows: list[dict]) -> None:
        key = {"dag_id": dag_id, "partition": partition, "family": family}
        with self.engine.begin() as conn:
            conn.execute(trials.delete().where(*(trials.c[k] == v for k, v in key.items())))
            if rows:
                conn.execute(trials.insert(), [{**key, "run_id": run_id, **r} for r in rows])

    def leaderboard(self, dag_id: str, partition: str, run_id: str | None = None) -> list[dict]:
        """The rows of one partition's run (its latest run unless ``run_id`` is given)."""
        if run_id is None:
            run = self.run(dag_id, partition)
            if run is None:
                return []
            run_id = run["run_id"]
        query = leaderboard.select().where(
            leaderboard.c.dag_id == dag_id, leaderboard.c.partition == partition, leaderboard.c.run_id == run_id
        )
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(query)]

    def trials(self, dag_id: str, partition: str, family: str) -> list[dict]:
        query = trials.select().where(
            trials.c.dag_id == dag_id, trials.c.partition == partition, trials.c.family == family
        ).order_by(trials.c.trial)
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(query)]

    # champions
    def champion(self, dag_id: str) -> dict | None:
        query = champions.select().where(champions.c.dag_id == dag_id, champions.c.retired_at.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(champions.c.id.desc())).first()
        return _plain(row) if row else None

    def champion_history(self, dag_id: str) -> list[dict]:
        query = champions.select().where(champions.c.dag_id == dag_id).order_by(champions.c.id)
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(query)]

    def promote(self, dag_id: str, partition: str, run_id: str, family: str, metric: str, test_score: float,
                model_uri: str, model_sha256: str, reason: str) -> None:
        """Retire the current champion and crown a new one, in one transaction."""
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(champions.update().where(champions.c.dag_id == dag_id, champions.c.retired_at.is_(None))
                         .values(retired_at=now))
            conn.execute(champions.insert().values(
                dag_id=dag_id, partition=partition, run_id=run_id, family=family, metric=metric,
                test_score=test_score, model_uri=model_uri, model_sha256=model_sha256, promoted_at=now,
                reason=reason))

    def _upsert(self, table: sa.Table, key: dict, values: dict) -> None:
        # delete + insert in one transaction: the same statement on SQLite, Postgres and MySQL
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(*(table.c[k] == v for k, v in key.items())))
            conn.execute(table.insert().values(**key, **values))
