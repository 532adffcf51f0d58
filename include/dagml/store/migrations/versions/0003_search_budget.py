"""A whole run's search budget shared by its families (a ledger row per family and load), and
where each family's out-of-fold predictions are kept (for ensembles).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "dagml_search_budget",
        sa.Column("dag_id", sa.String(250), primary_key=True),
        sa.Column("partition", sa.String(250), primary_key=True),
        sa.Column("load_id", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(100), primary_key=True),
        sa.Column("spent", sa.Float, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
    )
    with op.batch_alter_table("dagml_leaderboard") as batch:
        batch.add_column(sa.Column("predictions_uri", sa.String(1000)))


def downgrade() -> None:
    with op.batch_alter_table("dagml_leaderboard") as batch:
        batch.drop_column("predictions_uri")
    op.drop_table("dagml_search_budget")
