"""Where a server keeps a fleet's files: the snippets sensors sent (``snippets/SENSOR/EVENT_ID.EXT``), the model
versions it published (``models/``) and its signing key (``signing-key.pem``, readable by its owner only, and
``signing-key.pub``). Files, not database rows, on SQLite and PostgreSQL alike: a snippet is read whole by a browser
and a model by a sensor, and a folder is what a backup, a quota and ``du`` already understand.

The folder is ``serve --fleet-dir DIR``; by default ``NAME-fleet/`` beside a SQLite store ``NAME.sqlite``, and
``fleet/HOST-DATABASE/`` in the user's data folder for a PostgreSQL store (one a database).
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from envsound.deploy.store import store_url


def fleet_dir(store: str | Path | None, override: str | Path | None = None) -> Path:
    """The fleet folder of the store ``store`` (a ``--store`` value; None: the default store), or ``override``.

    >>> fleet_dir("/srv/events.sqlite")
    PosixPath('/srv/events-fleet')
    """
    if override is not None:
        return Path(override).expanduser().absolute()
    url = sa.engine.make_url(store_url(store))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = Path(url.database)
        return database.with_name(database.stem + "-fleet")
    import platformdirs

    # one folder a database: two servers on two databases must not share event ids' files nor a signing key
    where = f"{url.host or 'local'}{f'-{url.port}' if url.port else ''}-{url.database or 'default'}"
    return platformdirs.user_data_path("envsound") / "fleet" / where


def snippet_path(folder: str | Path, sensor: str, event_id: int, media_type: str) -> Path:
    """Where the fleet folder ``folder`` keeps the snippet of event ``event_id`` of ``sensor`` (``media_type``, one of
    :data:`envsound.deploy.snippets.MEDIA_TYPES`): ``snippets/SENSOR/ID.EXT``, an absolute path, as the verdicts on
    it name it."""
    from envsound.deploy.snippets import MEDIA_TYPES

    folder = Path(os.path.normpath(Path(folder).absolute()))  # one name for one file: no ../ in it
    return folder / "snippets" / sensor / f"{int(event_id)}.{MEDIA_TYPES[media_type]}"
