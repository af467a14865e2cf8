"""The leakage check of ``--init``: a source model must not have heard the clips the new one is validated or tested
on (fine-tuning a model that heard the test clips inflates every score after it)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from envsound.errors import CheckpointError
from envsound.features.cache import FeatureCache
from envsound.features.fingerprint import seen_in_training
from envsound.transfer.notes import note
from envsound.transfer.source import read_source

log = logging.getLogger(__name__)


def check_init_unseen(init: str | Path, protected: Sequence[str | Path], *, cache: FeatureCache | None,
                      allow_overlap: bool) -> None:
    """Refuse ``init`` when the model in it was fitted on any of ``protected`` (this split's validation and test
    clips), compared by exact audio content.

    Raises:
        CheckpointError: the overlap (its size and the first files), unless ``allow_overlap`` (then a warning).
    """
    source = read_source(init)  # the source plan_init opened: read once per run
    if "pretrained" in source.meta:
        note(log, "%s: an AudioSet network (trained on YouTube clips the file does not list): overlap with this "
                 "split cannot be checked", init)
        return
    if source.trained_on is None:
        note(log, "%s does not record the clips it was trained on (an older checkpoint): whether it saw this split's "
                 "test clips could not be checked", init)
        return
    seen = seen_in_training(protected, source.trained_on, cache=cache)
    if not seen:
        return
    message = (f"{init} was trained on {len(seen)} of this split's {len(protected)} validation/test clips (e.g. "
               f"{', '.join(str(p) for p in seen[:3])})")
    if allow_overlap:
        log.warning("leakage.allow_overlap: %s; used anyway", message)
        return
    raise CheckpointError(f"{message}; train the source without them (--exclude-folds, --folds or --classes), or "
                          "pass --allow-overlap (leakage.allow_overlap=true) if you mean it")
