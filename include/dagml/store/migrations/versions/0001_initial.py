"""Initial schema: runs, leaderboard, trials, champions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "dagml_runs",
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
        sa.Column("started_at", _TZ, nullable=False),
        sa.Column("finished_at", _TZ),
    )
    op.create_table(
        "dagml_leaderboard",
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
        sa.Column("updated_at", _TZ, nullable=False),
    )
    op.create_table(
        "dagml_trials",
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
    op.create_table(
        "dagml_champions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dag_id", sa.String(250), nullable=False, index=True),
        sa.Column("partition", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("family", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("test_score", sa.Float),
        sa.Column("model_uri", sa.String(1000), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("promoted_at", _TZ, nullable=False),
        sa.Column("retired_at", _TZ),
        sa.Column("reason", sa.Text),
    )


def downgrade() -> None:
    for table in ("dagml_champions", "dagml_trials", "dagml_leaderboard", "dagml_runs"):
        op.drop_table(table)
