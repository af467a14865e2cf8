"""A small embeddings store with a label learned in the Review view, shared by the page-view and review-model tests:
12 synthetic clips (1.5 s, two windows each) embedded by the session's trained model, and ``LABEL`` learned from a
few verdicts (yes on the first window of two clips of one kind, no on six windows of other kinds), so that check's
random sample still holds windows nobody reviewed. Built once a session; each caller gets its own copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import envsound
from envsound.agile.review import Review
from envsound.deploy.store import Store
from envsound.inference.embeddings import embed_archive

LABEL = "target"
_built: dict[str, Path] = {}


def reviewed_store(factory, checkpoint, manifest) -> tuple[Path, Path]:
    """A copy of the store (``pytest``'s ``tmp_path_factory`` makes its folders): ``(db, its labels store)``."""
    if "root" not in _built:
        _built["root"] = _build(factory.mktemp("reviewed-store"), checkpoint, manifest)
    copy = factory.mktemp("reviewed-copy") / "root"
    shutil.copytree(_built["root"], copy, ignore=shutil.ignore_patterns("audio"))  # the audio stays where embedded
    return copy / "archive.db", copy / "review.sqlite"


def _build(root: Path, checkpoint, manifest) -> Path:
    audio = root / "audio"
    audio.mkdir()
    for i, record in enumerate(manifest.records[:12]):
        shutil.copy(record.path, audio / f"{record.label}-{i}.wav")
    db = root / "archive.db"
    embed_archive(checkpoint, audio, out=db, options=envsound.ScanOptions(workers=1, progress=False))
    store = Store.open(root / "review.sqlite")
    review = Review(db, store=store, spec=root / "review.sqlite")
    rows = review.windows.rows(np.arange(review.windows.windows))
    kind = Path(rows[0]["file"]).stem.rsplit("-", 1)[0]
    others = 0
    for row in rows:
        same = Path(row["file"]).stem.rsplit("-", 1)[0] == kind
        if (same and row["start"] == 0) or (not same and others < 6):
            review.give(row["window"], LABEL, "yes" if same else "no", reviewer="ana")
            others += not same
    review.learn(LABEL)
    store.close()
    return root
