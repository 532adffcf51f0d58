"""The native threads each family's fits used (threadpoolctl's report) on its leaderboard row.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dagml_leaderboard") as batch:
        batch.add_column(sa.Column("threads", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("dagml_leaderboard") as batch:
        batch.drop_column("threads")
