"""What the model registry holds of each run: its version, or why registering failed.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dagml_runs") as batch:
        batch.add_column(sa.Column("registry_version", sa.String(40)))
        batch.add_column(sa.Column("registry_error", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("dagml_runs") as batch:
        batch.drop_column("registry_error")
        batch.drop_column("registry_version")
