"""Sharded searches (``shards: k``): each shard's own leaderboard row names its family in ``shard_of``;
the family's row, merged by select from its shards, lists them in ``shards``; ``seed`` is the search's.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dagml_leaderboard") as batch:
        batch.add_column(sa.Column("shard_of", sa.String(100)))
        batch.add_column(sa.Column("seed", sa.BigInteger))
        batch.add_column(sa.Column("shards", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("dagml_leaderboard") as batch:
        batch.drop_column("shards")
        batch.drop_column("seed")
        batch.drop_column("shard_of")
