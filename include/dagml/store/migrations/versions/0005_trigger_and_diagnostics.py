"""The trigger form's values a run used, and the champion diagnostics each run computes once
(curves, confusion matrix, predicted vs actual, permutation importance) in a table of their own,
so listing runs never reads them.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("dagml_runs") as batch:
        batch.add_column(sa.Column("trigger", sa.JSON))
    op.create_table(
        "dagml_diagnostics",
        sa.Column("dag_id", sa.String(250), primary_key=True),
        sa.Column("partition", sa.String(250), primary_key=True),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("family", sa.String(100), nullable=False),
        sa.Column("diagnostics", sa.JSON, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dagml_diagnostics")
    with op.batch_alter_table("dagml_runs") as batch:
        batch.drop_column("trigger")
