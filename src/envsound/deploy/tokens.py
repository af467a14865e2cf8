"""Who may do what: token roles and the names of sensors and tokens."""

from __future__ import annotations

import re

from envsound.errors import ConfigError

ROLES = ("sensor", "viewer", "reviewer", "admin")
# what each role may do: a sensor reports and streams (as the sensor it names), a viewer reads, a reviewer reads and
# labels windows of an embeddings store, an admin does all of it
MAY = {"report": {"sensor", "admin"}, "stream": {"sensor", "viewer", "admin"}, "read": {"viewer", "reviewer", "admin"},
       "review": {"reviewer", "admin"}}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name: str) -> str:
    """``name`` if it can name a sensor or token (letters, digits, ``.``, ``_``, ``-``; 1-64, a letter or digit
    first); raises ConfigError otherwise."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"{name!r}: a sensor or token name is 1-64 letters, digits, '.', '_' or '-', starting "
                          "with a letter or digit")
    return name
