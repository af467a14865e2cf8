"""A scan's progress: files, hours of audio, x real time and ETA; a tqdm bar in a terminal, a log line every 30 s
without one. The total comes from a second, cheap walk of the inputs in a thread of its own (a name costs a
microsecond; the ETA appears once it is known)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger(__name__)
LOG_EVERY_SECONDS = 30.0


class ScanProgress:
    """Counts what a scan did (files, failures, skipped, seconds of audio) and shows it (see the module)."""

    def __init__(self, count_names: Callable[[], Iterator[str]] | None, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self.files = self.skipped = self.failed = 0
        self.seconds = 0.0  # audio classified
        self.total: int | None = None
        self.bar = None
        self.last_log = self.started
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(unit="file", dynamic_ncols=True, file=sys.stderr)
        if enabled and count_names is not None:
            threading.Thread(target=self._count, args=(count_names,), daemon=True,
                             name="envsound-scan-counter").start()

    def _count(self, count_names: Callable[[], Iterator[str]]) -> None:
        self.total = sum(1 for _ in count_names())
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def skip(self, n: int = 1) -> None:
        self.skipped += n
        self._update(n)

    def file(self, seconds: float, *, failed: bool) -> None:
        self.files += 1
        self.failed += failed
        self.seconds += seconds
        self._update(1)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        elapsed = max(self.elapsed, 1e-9)
        text = (f"{self.files} files ({self.seconds / 3600:.2f} h of audio), {self.failed} failed, "
                f"{self.seconds / elapsed:.0f}x real time")
        done = self.files + self.skipped
        if self.total and self.files:
            left = max(self.total - done, 0) * elapsed / self.files
            text += f", {done}/{self.total}, ETA {_clock(left)}"
        return text

    def _update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix_str(f"{self.seconds / 3600:.2f} h audio, "
                                     f"{self.seconds / max(self.elapsed, 1e-9):.0f}x rt, {self.failed} failed",
                                     refresh=False)
        elif self.enabled and time.monotonic() - self.last_log >= LOG_EVERY_SECONDS:
            self.last_log = time.monotonic()
            log.info("scan: %s", self.line())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
