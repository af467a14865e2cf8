"""Times in a deployment: UTC, written ISO 8601 with ``Z`` to the microsecond, and a stream's clock. The standard
library only: the sensor (light install) and the server share it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

UTC = timezone.utc


def as_utc(moment: datetime) -> datetime:
    """A time read back (SQLite keeps no zone: its times are UTC) or given (any zone) -> aware UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """``2026-11-27T19:00:00.000000Z``: times as the API writes them (to the microsecond, as stored: a page's cursor
    is the last onset, and a shorter one would skip events that share its millisecond)."""
    return as_utc(moment).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as the API writes and takes it (``...Z`` included, which Python 3.10's parser refuses);
    raises ValueError."""
    text = str(text).strip()
    return datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)


class StreamClock:
    """A stream whose second 0 is ``start`` (UTC, the sensor's clock): a hop's ended events at UTC times, and what
    the stream hears now (the last hop's top label: the end record has none)."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.hearing: dict = {}

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=float(seconds))

    def ended(self, hop: dict) -> list[dict]:
        """``hop`` (:meth:`~envsound.inference.live.Hop.to_dict`) -> its ended events, ``onset`` and ``offset`` as
        datetimes; notes its top label."""
        if hop.get("top"):
            self.hearing = hop["top"][0]
        return [{"label": e["label"], "onset": self.at(e["onset"]), "offset": self.at(e["offset"]),
                 "score": e["score"]} for e in hop.get("events", ())]
