"""A deployment: sensors that report what they hear, tokens, and a store that keeps every detection.

``schema``, ``store`` and ``tokens`` are the server's side (SQLAlchemy, Alembic); ``outbox`` and ``reporter`` are the
sensor's (the standard library only, so ``envsound listen --report`` runs on the light install). Nothing is imported
here: a sensor must not pull in SQLAlchemy.
"""
