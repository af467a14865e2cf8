"""Stopping a long run so that it can go on: SIGTERM (a cluster's time limit, a shutdown) stops it as Ctrl-C does,
and a Lightning fit that either stopped raises :class:`KeyboardInterrupt`, which the CLI turns into its one
``--resume`` line.

Lightning has its own handling of both: inside ``Trainer.fit`` SIGTERM sets a flag and the fit ends at the next
batch's end (``SIGTERMException``, a ``SystemExit``), and Ctrl-C ends in ``sys.exit(1)`` after its shutdown. Either
way the checkpoints written at the epochs' ends so far are kept; :func:`fit_until_stopped` says what happened.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["STOPPED", "sigterm_as_interrupt", "fit_until_stopped"]

STOPPED = "stopped; the epochs finished so far are kept: run it again with resume=True (--resume) to go on"

_lightning_fits = 0  # fits of fit_until_stopped running now: Lightning's own handler stops them


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`KeyboardInterrupt` in the block, as Ctrl-C does, except while a
    :func:`fit_until_stopped` fit runs (Lightning stops that one at the end of a batch, so a checkpoint it is
    writing is not cut off). Only where a handler can be set (the main thread); the previous handler comes back
    after the block.

    >>> with sigterm_as_interrupt():
    ...     train()  # a SIGTERM raises KeyboardInterrupt, and the finally blocks run
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        if not _lightning_fits:
            raise KeyboardInterrupt(STOPPED)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def fit_until_stopped(trainer, *args: Any, **kwargs: Any) -> None:
    """``trainer.fit(*args, **kwargs)`` (a Lightning ``Trainer``), raising :class:`KeyboardInterrupt` when Ctrl-C or
    SIGTERM stopped it, or arrived after its last batch (the run stops there; its last checkpoint is complete)."""
    global _lightning_fits
    _lightning_fits += 1
    try:
        trainer.fit(*args, **kwargs)
    except SystemExit as exc:  # Ctrl-C: sys.exit(1) after Lightning's shutdown; SIGTERM: SIGTERMException
        if trainer.interrupted:
            raise KeyboardInterrupt(STOPPED) from exc
        raise
    finally:
        _lightning_fits -= 1
    if trainer.received_sigterm:
        raise KeyboardInterrupt(STOPPED)
