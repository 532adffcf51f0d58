"""Recurring retraining: one active champion per dataset (its own keyed table), promotion
decisions and failures on the run row, hyperopt's raw point and warm-start flag on each trial.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("dagml_runs") as batch:
        batch.add_column(sa.Column("failed_task", sa.String(250)))
        batch.add_column(sa.Column("promotion_reason", sa.Text))
        batch.add_column(sa.Column("champion_family", sa.String(100)))
        batch.add_column(sa.Column("champion_partition", sa.String(250)))
    with op.batch_alter_table("dagml_trials") as batch:
        batch.add_column(sa.Column("vals", sa.JSON))
        batch.add_column(sa.Column("warm_start", sa.Boolean))
    op.create_table(
        "dagml_active_champions",
        sa.Column("dag_id", sa.String(250), primary_key=True),  # the key makes a second active champion impossible
        sa.Column("champion_id", sa.Integer, nullable=False),
        sa.Column("partition", sa.String(250), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
    )
    # the newest unretired champion of each dataset becomes its active one; any other is retired
    conn = op.get_bind()
    champions = sa.table("dagml_champions", sa.column("id"), sa.column("dag_id"), sa.column("partition"),
                         sa.column("promoted_at"), sa.column("retired_at"))
    rows = conn.execute(sa.select(champions.c.id, champions.c.dag_id, champions.c.partition, champions.c.promoted_at)
                        .where(champions.c.retired_at.is_(None)).order_by(champions.c.id)).fetchall()
    active = {}
    for row in rows:
        if row.dag_id in active:
            conn.execute(champions.update().where(champions.c.id == active[row.dag_id].id)
                         .values(retired_at=row.promoted_at))
        active[row.dag_id] = row
    table = sa.table("dagml_active_champions", sa.column("dag_id"), sa.column("champion_id"),
                     sa.column("partition"), sa.column("updated_at"))
    for row in active.values():
        conn.execute(table.insert().values(dag_id=row.dag_id, champion_id=row.id, partition=row.partition,
                                           updated_at=row.promoted_at))


def downgrade() -> None:
    op.drop_table("dagml_active_champions")
    with op.batch_alter_table("dagml_trials") as batch:
        batch.drop_column("warm_start")
        batch.drop_column("vals")
    with op.batch_alter_table("dagml_runs") as batch:
        for column in ("champion_partition", "champion_family", "promotion_reason", "failed_task"):
            batch.drop_column(column)
