"""The results database: runs, trials, leaderboard rows and champions, through SQLAlchemy.

One code path for SQLite (embedded default), Postgres and MySQL. Leaderboard and trial
writes are upserts keyed on (dag_id, partition, family[, trial]) so re-running a date
replaces its rows instead of duplicating them; champions are never deleted, only retired.
Partitions are keys that sort in time order (``2026-01-05``, ``2026-01-05T06:00``), so
"the latest run" is the newest partition, not the last one started (a backfill starts old
ones last). The schema is owned by Alembic (``migrations/``); ``migrate()`` brings a DB to head.
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
    sa.Column("failed_task", sa.String(250)),
    sa.Column("promotion_reason", sa.Text),
    sa.Column("champion_family", sa.String(100)),  # the champion once this run decided
    sa.Column("champion_partition", sa.String(250)),
    sa.Column("refit_rows", sa.Integer),  # the model this run promoted was refit on so many rows
    sa.Column("refit_error", sa.Text),  # why a refit failed (the compared model was kept)
    sa.Column("trigger", sa.JSON),  # the trigger form's values this run used (dagml.trigger.recorded)
    sa.Column("registry_version", sa.String(40)),  # the model registry's version of this run's winner
    sa.Column("registry_error", sa.Text),  # why registering it failed (the run's outcome stands)
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
    sa.Column("predictions_uri", sa.String(1000)),  # the best point's out-of-fold predictions
    # threadpoolctl's report after the family's fits: [{user_api, internal_api, prefix, version, num_threads}]
    sa.Column("threads", sa.JSON),
    # a shard's row (family ``<family>#<i>of<k>``) names its family here; select merges a family's shards
    # into the family's own row, which lists them in ``shards``. Users see family rows only.
    sa.Column("shard_of", sa.String(100)),
    sa.Column("seed", sa.BigInteger),  # the search's seed (a shard's own)
    sa.Column("shards", sa.JSON),
    # training rows of each search trial, and of the family's model (a row cap or a sampled search)
    sa.Column("search_rows", sa.Integer),
    sa.Column("fit_rows", sa.Integer),
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
    sa.Column("vals", sa.JSON),  # hyperopt's own point (hp.choice indices): it re-enters the space
    sa.Column("warm_start", sa.Boolean),
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
    # the stored model (model_uri) is a refit on refit_rows rows; test_score is the compared model's
    sa.Column("refit_rows", sa.Integer),
    sa.Column("refit_error", sa.Text),
    sa.Column("compared_model_uri", sa.String(1000)),
    sa.Column("compared_model_sha256", sa.String(64)),
)

# One row per dataset naming its active champion: its key makes a second one impossible, and a
# promotion is a compare-and-swap on it, so concurrent runs cannot both crown a model.
active_champions = sa.Table(
    "dagml_active_champions", metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("champion_id", sa.Integer, nullable=False),
    sa.Column("partition", sa.String(250), nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)


# A run's search seconds, per family and load (a reprocessed run has a new load): see dagml.budget.
search_budget = sa.Table(
    "dagml_search_budget", metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("partition", sa.String(250), primary_key=True),
    sa.Column("load_id", sa.String(64), primary_key=True),
    sa.Column("family", sa.String(100), primary_key=True),
    sa.Column("spent", sa.Float, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)


# The chosen model's diagnostics on the run's test rows (dagml.diagnostics), computed once by promote.
diagnostics = sa.Table(
    "dagml_diagnostics", metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("partition", sa.String(250), primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("family", sa.String(100), nullable=False),
    sa.Column("diagnostics", sa.JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)


NO_PARTITION = "(no partition)"  # sorts before every date: never "the latest partition"


class _LostRace(Exception):
    pass


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
        """The run of the newest partition."""
        query = runs.select().where(runs.c.dag_id == dag_id).order_by(runs.c.partition.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _plain(row) if row else None

    def runs(self, dag_id: str) -> list[dict]:
        """Every partition's run, oldest partition first."""
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(runs.select().where(runs.c.dag_id == dag_id)
                                                    .order_by(runs.c.partition))]

    def run_by_id(self, dag_id: str, run_id: str) -> dict | None:
        """The run ``run_id`` of ``dag_id``, or None (never recorded, or a re-run of its partition replaced it)."""
        with self.engine.connect() as conn:
            row = conn.execute(runs.select().where(runs.c.dag_id == dag_id, runs.c.run_id == run_id)).first()
        return _plain(row) if row else None

    def dag_ids(self) -> list[str]:
        """Every DAG id with a run recorded, sorted."""
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.select(runs.c.dag_id).distinct().order_by(runs.c.dag_id)))

    def winner_series(self, dag_ids: list[str]) -> list[dict]:
        """Every run of these DAGs, by DAG id then partition, each with the ``val_score`` and
        ``test_score`` of the family it selected (None when it selected none). One query however
        many partitions; the run's data profile is left out (it can be large and no line shows it)."""
        board = leaderboard
        winner = sa.and_(board.c.dag_id == runs.c.dag_id, board.c.partition == runs.c.partition,
                         board.c.run_id == runs.c.run_id, board.c.family == runs.c.selected_family)
        query = (sa.select(*(c for c in runs.c if c.name != "profile"), board.c.val_score, board.c.test_score)
                 .select_from(runs.outerjoin(board, winner))
                 .where(runs.c.dag_id.in_(dag_ids)).order_by(runs.c.dag_id, runs.c.partition))
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(query)]

    def fail_run(self, dag_id: str, run_id: str, task_id: str, error: str, partition: str | None = None) -> bool:
        """Record why a running run failed; the first failure wins, a finished run is left alone.

        A run that failed before its row was written (no partition, a missing connection, a worker
        lost while starting) gets a failed row of its own, under ``partition`` or NO_PARTITION."""
        now = _now()
        failed = {"status": "failed", "failed_task": task_id, "error": error, "finished_at": now}
        with self.engine.begin() as conn:
            done = conn.execute(runs.update().where(runs.c.dag_id == dag_id, runs.c.run_id == run_id,
                                                    runs.c.status == "running").values(**failed))
            if done.rowcount:
                return True
            if conn.execute(runs.select().where(runs.c.dag_id == dag_id, runs.c.run_id == run_id)).first():
                return False
        self._upsert(runs, {"dag_id": dag_id, "partition": partition or NO_PARTITION},
                     {"run_id": run_id, "started_at": now, **failed})
        return True

    def record_registration(self, dag_id: str, run_id: str, version: str | None, error: str | None = None) -> None:
        """The registry's version of run ``run_id``'s winner, or why registering it failed."""
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.dag_id == dag_id, runs.c.run_id == run_id)
                         .values(registry_version=version, registry_error=error))

    # leaderboard and trials
    def record_family(self, dag_id: str, partition: str, family: str, run_id: str, **values) -> None:
        values = {"run_id": run_id, "updated_at": _now(), **values}
        self._upsert(leaderboard, {"dag_id": dag_id, "partition": partition, "family": family}, values)

    def record_trials(self, dag_id: str, partition: str, family: str, run_id: str, rows: list[dict],
                      shard: tuple[int, int] = (0, 1)) -> None:
        """Replace a search's trials. ``shard`` (i, k), for the i-th (from 0) of a family's k shards:
        its trial t is stored as t * k + i, so the family's trials interleave its shards' and each
        shard replaces only its own (together they replace the family's trials of an earlier run)."""
        index, count = shard
        key = {"dag_id": dag_id, "partition": partition, "family": family}
        mine = [*(trials.c[k] == v for k, v in key.items())] + ([trials.c.trial % count == index] if count > 1 else [])
        with self.engine.begin() as conn:
            conn.execute(trials.delete().where(*mine))
            if rows:
                conn.execute(trials.insert(), [{**key, "run_id": run_id, **r, "trial": r["trial"] * count + index}
                                               for r in rows])

    def leaderboard(self, dag_id: str, partition: str, run_id: str | None = None, shards: bool = False) -> list[dict]:
        """The rows of one partition's run (its latest run unless ``run_id`` is given): one per family,
        or with ``shards``, the rows of its sharded families' shards instead."""
        if run_id is None:
            run = self.run(dag_id, partition)
            if run is None:
                return []
            run_id = run["run_id"]
        query = leaderboard.select().where(
            leaderboard.c.dag_id == dag_id, leaderboard.c.partition == partition, leaderboard.c.run_id == run_id,
            leaderboard.c.shard_of.is_not(None) if shards else leaderboard.c.shard_of.is_(None),
        )
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(query)]

    def trial_losses(self, dag_id: str, partition: str, run_id: str) -> list[dict]:
        """Each trial of a run's searches as ``family, trial, status, loss``, by family then trial."""
        query = (sa.select(trials.c.family, trials.c.trial, trials.c.status, trials.c.loss)
                 .where(trials.c.dag_id == dag_id, trials.c.partition == partition, trials.c.run_id == run_id)
                 .order_by(trials.c.family, trials.c.trial))
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(query)]

    def trials(self, dag_id: str, partition: str, family: str) -> list[dict]:
        query = trials.select().where(
            trials.c.dag_id == dag_id, trials.c.partition == partition, trials.c.family == family
        ).order_by(trials.c.trial)
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(query)]

    def best_trials(self, dag_id: str, family: str, before: str, per_partition: int = 2, limit: int = 5) -> list[dict]:
        """The best successful trials of ``family`` on partitions older than ``before``, newest
        partition first, at most ``per_partition`` of each: warm-start points for a new search."""
        query = (trials.select().where(trials.c.dag_id == dag_id, trials.c.family == family,
                                       trials.c.partition < before, trials.c.status == "ok",
                                       trials.c.loss.is_not(None), trials.c.vals.is_not(None))
                 .order_by(trials.c.partition.desc(), trials.c.loss, trials.c.trial))
        out, taken = [], {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                if taken.get(row.partition, 0) < per_partition:
                    taken[row.partition] = taken.get(row.partition, 0) + 1
                    out.append(_plain(row))
                    if len(out) == limit:
                        break
        return out

    # diagnostics of a run's chosen model
    def record_diagnostics(self, dag_id: str, partition: str, run_id: str, family: str, values: dict) -> None:
        self._upsert(diagnostics, {"dag_id": dag_id, "partition": partition},
                     {"run_id": run_id, "family": family, "diagnostics": values, "created_at": _now()})

    def diagnostics(self, dag_id: str, partition: str, run_id: str | None = None) -> dict | None:
        """The diagnostics of the model a partition's run chose (``dagml.diagnostics.compute``'s
        dict), or None when that run recorded none (it failed first, or ran before dagml kept them)."""
        query = diagnostics.select().where(diagnostics.c.dag_id == dag_id, diagnostics.c.partition == partition)
        if run_id is not None:
            query = query.where(diagnostics.c.run_id == run_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return row.diagnostics if row else None

    # the shared search budget
    def budget_start(self, dag_id: str, partition: str, load_id: str, family: str) -> float:
        """Open (or reopen, for a retried search) a family's ledger row; the seconds it already spent."""
        key = {"dag_id": dag_id, "partition": partition, "load_id": load_id, "family": family}
        with self.engine.connect() as conn:
            row = conn.execute(search_budget.select().where(*(search_budget.c[k] == v for k, v in key.items()))).first()
        spent = row.spent if row else 0.0
        self._upsert(search_budget, key, {"spent": spent, "done": False, "updated_at": _now()})
        return spent

    def budget_spend(self, dag_id: str, partition: str, load_id: str, family: str, spent: float,
                     done: bool = False) -> None:
        with self.engine.begin() as conn:
            conn.execute(search_budget.update().where(
                search_budget.c.dag_id == dag_id, search_budget.c.partition == partition,
                search_budget.c.load_id == load_id, search_budget.c.family == family,
            ).values(spent=spent, done=done, updated_at=_now()))

    def budget_rows(self, dag_id: str, partition: str, load_id: str) -> list[dict]:
        query = search_budget.select().where(search_budget.c.dag_id == dag_id, search_budget.c.partition == partition,
                                             search_budget.c.load_id == load_id)
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(query)]

    # champions
    def champion(self, dag_id: str) -> dict | None:
        return self.active_champions([dag_id]).get(dag_id)

    def active_champions(self, dag_ids: list[str]) -> dict[str, dict]:
        """The active champion of each of these DAGs that has one, by DAG id (one query)."""
        query = (champions.select().join(active_champions, active_champions.c.champion_id == champions.c.id)
                 .where(active_champions.c.dag_id.in_(dag_ids)))
        with self.engine.connect() as conn:
            return {r.dag_id: _plain(r) for r in conn.execute(query)}

    def champion_history(self, dag_id: str) -> list[dict]:
        query = champions.select().where(champions.c.dag_id == dag_id).order_by(champions.c.id)
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(query)]

    def replace_champion(self, dag_id: str, expected_id: int | None, partition: str, run_id: str, family: str,
                         metric: str, test_score: float, model_uri: str, model_sha256: str, reason: str,
                         refit_rows: int | None = None, refit_error: str | None = None,
                         compared_model_uri: str | None = None, compared_model_sha256: str | None = None) -> int | None:
        """Crown a new champion if the active one is still ``expected_id`` (None: no champion yet).

        ``model_uri`` is the model to serve; when it is a refit on all ``refit_rows`` rows, the
        ``compared_model_*`` is the one whose ``test_score`` won (and that defends the title).

        One transaction: insert the new champion, swap the active row only where it still names
        ``expected_id``, retire the old one. Returns the new champion's id, or None when another
        run changed the champion meanwhile (nothing is written then; decide again against it).
        """
        now = _now()
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(champions.insert().values(
                    dag_id=dag_id, partition=partition, run_id=run_id, family=family, metric=metric,
                    test_score=test_score, model_uri=model_uri, model_sha256=model_sha256, promoted_at=now,
                    reason=reason, refit_rows=refit_rows, refit_error=refit_error,
                    compared_model_uri=compared_model_uri or model_uri,
                    compared_model_sha256=compared_model_sha256 or model_sha256)).inserted_primary_key[0]
                active = {"champion_id": new_id, "partition": partition, "updated_at": now}
                if expected_id is None:
                    conn.execute(active_champions.insert().values(dag_id=dag_id, **active))
                else:
                    swapped = conn.execute(active_champions.update().where(
                        active_champions.c.dag_id == dag_id, active_champions.c.champion_id == expected_id)
                        .values(**active)).rowcount
                    if swapped != 1:
                        raise _LostRace
                    conn.execute(champions.update().where(champions.c.id == expected_id).values(retired_at=now))
        except (_LostRace, sa.exc.IntegrityError):  # another run crowned first (the key refused a second row)
            return None
        return new_id

    def _upsert(self, table: sa.Table, key: dict, values: dict) -> None:
        """Insert the row ``key`` (the table's primary key) or replace every other column of it.

        One statement, each dialect's own upsert: a delete then an insert took gap locks on
        MariaDB, and two runs writing different partitions at once deadlocked (errno 1213)."""
        row = {c.name: values.get(c.name) for c in table.columns if c.name not in key}  # columns not given: NULL
        dialect = self.engine.dialect.name
        if dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert

            statement = insert(table).values(**key, **row)
            statement = statement.on_duplicate_key_update(**{c: statement.inserted[c] for c in row})
        else:
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(**key, **row)
            statement = statement.on_conflict_do_update(index_elements=list(key),
                                                        set_={c: statement.excluded[c] for c in row})
        with self.engine.begin() as conn:
            conn.execute(statement)
