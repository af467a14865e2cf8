"""Stopping a long run so that it can go on, the light half (no torch, no Lightning: it stands on the ground floor
with ``errors`` and ``fileio``): SIGTERM (a cluster's time limit, a shutdown) stops a run as Ctrl-C does, raising
:class:`KeyboardInterrupt`, which the CLI turns into its one ``--resume`` line.

The Lightning half, a fit that stops at a batch's end and keeps its state there (``fit_until_stopped``, ``KeepState``,
``CHECKPOINT_EVERY_S``), is :mod:`envsound.fitting`; those names are still found here for one release, with a
``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import signal
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["STOPPED", "sigterm_as_interrupt", "stops_at_a_batch_end"]

STOPPED = "stopped; the training done so far is kept: run it again with resume=True (--resume) to go on"

_fits_stopping_themselves = 0  # fits running now whose own handler stops them at a batch's end (Lightning's)

# moved to envsound.fitting (the Lightning half); found here for one release
_MOVED = {"CHECKPOINT_EVERY_S", "fit_until_stopped", "KeepState"}


@contextmanager
def sigterm_as_interrupt(reason: str | None = STOPPED) -> Iterator[None]:
    """SIGTERM raises :class:`KeyboardInterrupt` (``reason`` its message: by default a training's; None, none) in the
    block, as Ctrl-C does, except while a fit that stops itself runs (:func:`stops_at_a_batch_end`: Lightning stops
    that one at the end of a batch, so a checkpoint it is writing is not cut off). Only where a handler can be set
    (the main thread); the previous handler comes back after the block.

    >>> with sigterm_as_interrupt():
    ...     train()  # a SIGTERM raises KeyboardInterrupt, and the finally blocks run
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        if not _fits_stopping_themselves:
            raise KeyboardInterrupt() if reason is None else KeyboardInterrupt(reason)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextmanager
def stops_at_a_batch_end() -> Iterator[None]:
    """In the block a fit stops itself at a batch's end (:func:`envsound.fitting.fit_until_stopped`), so an enclosing
    :func:`sigterm_as_interrupt` leaves a SIGTERM to it instead of raising in the middle of the batch."""
    global _fits_stopping_themselves
    _fits_stopping_themselves += 1
    try:
        yield
    finally:
        _fits_stopping_themselves -= 1


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(f"envsound.stopping.{name} moved to envsound.fitting.{name} (the Lightning half of stopping); "
                      "the old name goes in the next release", DeprecationWarning, stacklevel=2)
        # by name, not an import statement: the ground floor imports no stage; this path lives one release
        return getattr(importlib.import_module("envsound.fitting"), name)
    raise AttributeError(f"module 'envsound.stopping' has no attribute {name!r}")
