"""What a label may be called (:func:`check_label`) and the file name it gets (:func:`file_name`): one check for CSV
rows, ``learn`` and the page, and one safe name for what is written after a label. Light: no store is opened."""

from __future__ import annotations

import hashlib
import re

from envsound.deploy.schema import LABEL_LENGTH
from envsound.errors import ConfigError


def check_label(name) -> str:
    """``name`` if it can name a label: 1-200 printable characters, no comma (a CSV's separator), no surrounding
    spaces; raises ConfigError (naming it) otherwise. The one check of a label's name: CSV rows, ``learn``, the page.

    >>> check_label("chainsaw")
    'chainsaw'
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"label {name!r}: give a label's name (1-{LABEL_LENGTH} characters)")
    if "," in name:
        raise ConfigError(f"label {name!r} holds a comma: a label's name cannot")
    if name != name.strip() or len(name) > LABEL_LENGTH or not name.isprintable():
        raise ConfigError(f"label {name[:60]!r}: a label is 1-{LABEL_LENGTH} printable characters without "
                          "surrounding spaces")
    return name


def file_name(label: str) -> str:
    """``label`` as a file or folder name that stays where it is put: itself when it is one (letters, digits, ``.``,
    ``_``, ``-``, no leading dot), else its other characters replaced and 8 hex digits of its hash added (``a/b`` ->
    ``a_b-<hash>``: never a path, whatever a reviewer typed)."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", label) and len(label) <= 100:
        return label
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", label).lstrip(".") or "label"
    return f"{safe[:60]}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"
