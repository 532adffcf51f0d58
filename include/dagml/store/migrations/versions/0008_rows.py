"""The training rows a family's search and its model used (row caps, sampled searches).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dagml_leaderboard") as batch:
        batch.add_column(sa.Column("search_rows", sa.Integer))
        batch.add_column(sa.Column("fit_rows", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("dagml_leaderboard") as batch:
        batch.drop_column("fit_rows")
        batch.drop_column("search_rows")
