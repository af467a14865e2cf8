"""Alembic's environment for the detections store: run on the connection :func:`envsound.deploy.store.migrate`
passes in (never from an alembic.ini: the store's URL is the server's ``--store``)."""

from alembic import context

from envsound.deploy.schema import metadata

connection = context.config.attributes["connection"]
# batch mode: SQLite alters a table by copying it, which later migrations will need
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
