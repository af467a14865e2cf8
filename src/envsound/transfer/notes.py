"""Transfer's notes, said once per run: a cross-validation starts every fold from the same ``--init``, and the lines
that describe it (the mode ``auto`` chose, the leakage check's note, what was loaded, what became of the head) would
otherwise repeat for each fold."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

_SAID: ContextVar[set[str] | None] = ContextVar("envsound_transfer_said", default=None)


@contextmanager
def once_per_run() -> Iterator[None]:
    """Within the block, each distinct :func:`note` is logged at INFO once, its repeats at DEBUG (a block inside
    another shares the outer one's record).

    >>> with once_per_run():
    ...     for fold in folds: train_model(...)
    """
    if _SAID.get() is not None:
        yield
        return
    token = _SAID.set(set())
    try:
        yield
    finally:
        _SAID.reset(token)


def note(logger: logging.Logger, message: str, *args: object) -> None:
    """``logger.info(message, *args)``, or ``logger.debug`` for a text already said inside :func:`once_per_run`."""
    text = message % args if args else message
    said = _SAID.get()
    if said is not None and text in said:
        logger.debug("%s", text)
        return
    if said is not None:
        said.add(text)
    logger.info("%s", text)
