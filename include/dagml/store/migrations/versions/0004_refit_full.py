"""A champion refit on all its partition's rows: the rows it was fit on, why a refit failed, and
the model that was compared on the test rows (the stored one is the refit).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dagml_champions") as batch:
        batch.add_column(sa.Column("refit_rows", sa.Integer))
        batch.add_column(sa.Column("refit_error", sa.Text))
        batch.add_column(sa.Column("compared_model_uri", sa.String(1000)))
        batch.add_column(sa.Column("compared_model_sha256", sa.String(64)))
    with op.batch_alter_table("dagml_runs") as batch:
        batch.add_column(sa.Column("refit_rows", sa.Integer))
        batch.add_column(sa.Column("refit_error", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("dagml_runs") as batch:
        batch.drop_column("refit_error")
        batch.drop_column("refit_rows")
    with op.batch_alter_table("dagml_champions") as batch:
        batch.drop_column("compared_model_sha256")
        batch.drop_column("compared_model_uri")
        batch.drop_column("refit_error")
        batch.drop_column("refit_rows")
