"""A recording that changes after it was classified or embedded (issue 68), for the scan's and the store's tests:
a file grown as a recorder still writing leaves it, and a power cut between a rewriting part's files and its
journal commit."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from envsound.inference.archive.journal import Journal


def grow(path: Path, more: Path) -> None:
    """``path`` rewritten longer (``more``'s audio appended), as a recorder still writing leaves it."""
    audio, rate = sf.read(path, dtype="float32")
    sf.write(path, np.concatenate([audio, sf.read(more, dtype="float32")[0]]), rate)


@contextmanager
def power_cut_before_a_rewriting_commit() -> Iterator[None]:
    """In the block, the journal's commit of a part that rewrites others raises ``RuntimeError("power cut")``: the
    rewritten parts are on disk, the journal not yet told."""
    commit = Journal.commit

    def power_cut(self, part, finished, **kwargs):
        if kwargs.get("rewritten"):
            raise RuntimeError("power cut")
        return commit(self, part, finished, **kwargs)

    Journal.commit = power_cut
    try:
        yield
    finally:
        Journal.commit = commit
