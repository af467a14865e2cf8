"""When and where a recording was made, read from its name and its folder: the ``date``, ``time``, ``hour_of_day``
and ``site`` columns of a scan's ``counts/`` table, ``site`` and ``start`` of its ``files/``
(:mod:`envsound.inference.scan.tables`).

A recording's start time comes from its file name, in either recorder's form:

- AudioMoth: ``20240501_053000.WAV`` (``YYYYMMDD_HHMMSS``; a letter after the seconds, as a triggered recording's
  ``T``, is allowed);
- Wildlife Acoustics (Song Meter): ``SITE1_20240501_053000.wav`` (``NAME_YYYYMMDD_HHMMSS``, also
  ``SITE1_0+1_20240501_053000.wav``);

or from a regular expression of the user's (``predict --time-from REGEX``, :data:`GROUPS`), searched in the file's
path as the ``files/`` table lists it, so that a folder can carry the date. The time is the recorder's clock, in
whatever zone it was set to (an AudioMoth's is UTC unless configured otherwise): no zone is assumed or converted. A
name that carries no time (or an impossible one: month 13) leaves the columns null.

A recording's site is its folder, relative to the input folder it was found under (``archive/siteA/x.wav`` under
``archive``: ``siteA``; ``archive/siteA/2024-05/x.wav``: ``siteA/2024-05``); a file directly in an input folder, named
on its own, listed by ``--files-from`` or ranked from an embeddings store gets the name of the folder holding it.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import PurePath

from envsound.errors import ConfigError

# the named groups a --time-from expression may use: year, month and day are needed; a missing hour, minute or second
# is 0
GROUPS = ("year", "month", "day", "hour", "minute", "second")
RECORDER_TIME = re.compile(r"(?:^|_)(?P<year>\d{4})(?P<month>\d\d)(?P<day>\d\d)_(?P<hour>\d\d)(?P<minute>\d\d)"
                           r"(?P<second>\d\d)(?![0-9])")


def time_pattern(regex: str | None) -> re.Pattern | None:
    """``regex`` compiled, checked to name the groups a time needs (:data:`GROUPS`); None for None.

    >>> time_pattern(r"(?P<year>\\d{4})-(?P<month>\\d\\d)-(?P<day>\\d\\d)/(?P<hour>\\d\\d)(?P<minute>\\d\\d)")

    Raises:
        ConfigError: not a regular expression, without the groups year, month and day, or with a named group not in
            :data:`GROUPS`.
    """
    if regex is None:
        return None
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ConfigError(f"--time-from {regex!r}: not a regular expression ({exc})") from None
    names = set(pattern.groupindex)
    if not {"year", "month", "day"} <= names or names - set(GROUPS):
        raise ConfigError(f"--time-from {regex!r}: name the groups (?P<year>...), (?P<month>...) and (?P<day>...), "
                          f"and optionally hour, minute, second; got {', '.join(sorted(names)) or 'no named group'}")
    return pattern


def start_time(name: str, pattern: re.Pattern | None = None) -> datetime | None:
    """When the recording ``name`` (a path) started, from its file name's recorder form (``pattern`` None) or
    ``pattern`` searched in ``name``; None when it carries no valid time."""
    if pattern is None:
        found = RECORDER_TIME.search(PurePath(name).stem)
    else:
        found = pattern.search(name.replace(os.sep, "/"))
    if found is None:
        return None
    given = found.groupdict()
    try:
        return datetime(*(int(given.get(key) or 0) for key in GROUPS))
    except (TypeError, ValueError):  # month 13, 30 February, a group that matched no digits
        return None


class Places:
    """Each file's start time and site (the module's rules) for the input folders ``roots`` (other inputs, as files
    or globs, are left out) and the ``--time-from`` ``pattern`` (None: the recorders' forms)."""

    def __init__(self, roots: list[str | os.PathLike] = (), pattern: re.Pattern | None = None) -> None:
        folders = {os.path.abspath(os.fspath(root)) for root in roots if os.path.isdir(root)}
        self.roots = sorted(folders, key=len, reverse=True)  # the deepest first: a folder inside another input
        self.pattern = pattern

    def site(self, name: str) -> str:
        """The folder of ``name`` relative to its input folder, ``/``-separated; else the name of its folder."""
        folder = os.path.dirname(os.path.abspath(name))
        for root in self.roots:
            if folder.startswith(root.rstrip(os.sep) + os.sep):
                return os.path.relpath(folder, root).replace(os.sep, "/")
        return os.path.basename(folder) or folder

    def start(self, name: str) -> float | None:
        """When ``name`` began, in seconds since 1970-01-01 with its clock read as UTC (as ``mtime`` is written), or
        None: its name carries no time."""
        started = start_time(name, self.pattern)
        return None if started is None else (started - datetime(1970, 1, 1)).total_seconds()

    def at(self, name: str, hour: int) -> dict:
        """The ``site``, ``time`` (ISO 8601, to the second), ``date`` and ``hour_of_day`` of hour ``hour`` (from 0)
        of the file ``name``: when that hour of the file begins (null when its name carries no time)."""
        started = start_time(name, self.pattern)
        begins = None if started is None else started + timedelta(hours=hour)
        return {"site": self.site(name), "time": begins and begins.isoformat(timespec="seconds"),
                "date": begins and begins.date().isoformat(), "hour_of_day": begins and begins.hour}
