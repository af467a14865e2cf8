"""What a scan and the embeddings store share around their engine: the names handed out, each once (the inputs, then
the file list; a name the journal has done, or one still in flight, is skipped), the progress meter, and when the
finished files are due to be committed as a part. With ``watch``, a name the journal has done is handed out again
when its size or modification time changed since (a recorder still writing), and each name's are kept for the
journal; a done name whose size and time the journal lacks (written before they were kept) has them recorded as
they are now, so that a change from this run on is seen."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Iterable, Iterator

from envsound.inference.archive.engine import COMMIT_FRACTION, COMMIT_MAX_SECONDS, COMMIT_MIN_SECONDS, Finished
from envsound.inference.archive.journal import Journal, Stat
from envsound.inference.archive.progress import ScanProgress
from envsound.inference.listing import iter_inputs

log = logging.getLogger(__name__)

RECORD_BATCH = 10_000  # stats of an older journal's files recorded a transaction (the lister's memory stays small)


class Handout:
    """The names of ``inputs`` and ``files_from`` for ``journal``'s run (or those ``listing()`` gives: an embeddings
    store's files), and its meter (``progress``: shown); ``watch``: changed files are handed out again (see the
    module's docstring)."""

    def __init__(self, journal: Journal, inputs: list, *, files_from, progress: bool,
                 listing: Callable[[], Iterator[str]] | None = None, watch: bool = False) -> None:
        self.journal, self.inputs, self.files_from, self.watch = journal, inputs, files_from, watch
        if listing is not None:
            self._listed = listing
        # The counter lists the inputs a second time, beside the run: a file list it cannot read twice (standard
        # input, a pipe) would be read half by each, so then the total stays unknown.
        countable = files_from is None or (os.fspath(files_from) != "-" and os.path.isfile(files_from))
        self.meter = ScanProgress(self._listed if countable else None, enabled=progress)
        self.in_flight: set[str] = set()  # handed out, not yet committed: a name listed twice is done once
        self.stats: dict[str, Stat] = {}  # of the names in flight, with watch
        self.changed: set[str] = set()  # names done before, handed out again as changed since
        self.recorded = 0  # done names of an older journal whose size and time were recorded in this run
        self.lock = threading.Lock()
        self.since = time.monotonic()  # the last commit

    def _listed(self) -> Iterator[str]:
        return iter_inputs(self.inputs, files_from=self.files_from)

    def names(self) -> Iterator[str]:
        """The names to do, in the listing's order (runs in the engine's lister thread)."""
        done = self.journal.reader()
        unknown: dict[str, Stat] = {}  # done names whose stat the journal lacks: theirs now, to be recorded
        try:
            for name in self._listed():
                now = _stat(name) if self.watch else None
                listed = done.done(name)
                # changed since it was done: True, False; not done: None
                was = None if listed is None else (now is not None and listed.stat is not None and listed.stat != now)
                if listed is not None and listed.stat is None and now is not None and name not in self.in_flight:
                    unknown[name] = now
                    if len(unknown) >= RECORD_BATCH:
                        self.recorded += done.record(unknown)
                        unknown.clear()
                with self.lock:
                    fresh = name not in self.in_flight and was is not False
                    if fresh:
                        self.in_flight.add(name)
                        if now is not None:
                            self.stats[name] = now
                        if was:
                            self.changed.add(name)
                if fresh:
                    yield name
                else:
                    self.meter.skip()
            self.recorded += done.record(unknown)
            if self.recorded:
                log.info("%d files from an older journal: their size and time are recorded now; changes from "
                         "here on are seen", self.recorded)
        finally:
            done.close()

    def count(self, finished: Finished) -> None:
        """A file finished, classified or failed."""
        if finished.error is not None:
            self.meter.file(0.0, failed=True)
        else:
            self.meter.file(finished.prediction.duration or 0.0, failed=False)

    def due(self) -> bool:
        """Whether the finished files have waited long enough for a commit: 5 s at first, then 5 % of the run's time,
        at most 2 minutes (what a crash can lose)."""
        wait = min(COMMIT_MAX_SECONDS, max(COMMIT_MIN_SECONDS, COMMIT_FRACTION * self.meter.elapsed))
        return time.monotonic() - self.since >= wait

    def committed(self, names: Iterable[str]) -> None:
        with self.lock:
            for name in names:
                self.in_flight.discard(name)
                self.stats.pop(name, None)
        self.since = time.monotonic()

    def run(self, engine, on_file: Callable[[Finished], None], *, commit: Callable[[], None], summary) -> None:
        """``engine`` over :meth:`names`, ``on_file`` called as each file finishes; then (Ctrl-C or SIGTERM too: the
        finished files are committed, then the interrupt goes on) the last ``commit`` and the run's counts into
        ``summary`` (a ScanSummary or a StoreSummary)."""
        stop = threading.Event()
        try:
            engine.run(self.names(), on_file, stop=stop)
        finally:
            stop.set()
            self.meter.close()
            commit()
            summary.files, summary.failed = self.meter.files, self.meter.failed
            summary.skipped, summary.audio_seconds = self.meter.skipped, self.meter.seconds


def _stat(name: str) -> Stat | None:
    """``name``'s size in bytes and modification time in ns; None when it cannot be read (gone, not a path)."""
    try:
        info = os.stat(name)
    except (OSError, ValueError):  # ValueError: a name with a NUL byte
        return None
    return info.st_size, info.st_mtime_ns
