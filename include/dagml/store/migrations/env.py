"""Alembic environment for dagml's results DB; run through ``ResultsStore.migrate()``."""

from alembic import context

from dagml.store.results import metadata

# Its own version table, so dagml can share a database with Airflow's metadata.
VERSION_TABLE = "dagml_alembic_version"

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run dagml migrations through dagml.store.results.ResultsStore.migrate()")
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
