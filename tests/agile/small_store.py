"""One small embeddings store for the agile stage's tests: 24 synthetic clips embedded by the shared trained model.
A test module imports the fixtures it uses (module-scoped: one store a module). Not a conftest.py: the suite imports
``conftest`` by name (``from conftest import ...``), which a second conftest.py would shadow."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import envsound
from envsound.inference.embeddings import embed_archive

TARGET = "siren"


@pytest.fixture(scope="module")
def archive(tmp_path_factory, synthetic_manifest) -> Path:
    """24 synthetic clips (1.5 s, two windows each), one a file: 6 sirens and 2 of each other class."""
    root = tmp_path_factory.mktemp("learn-archive")
    taken: dict[str, int] = {}
    for record in synthetic_manifest.records:
        wanted = 6 if record.label == TARGET else 2
        if taken.get(record.label, 0) < wanted:
            taken[record.label] = taken.get(record.label, 0) + 1
            shutil.copy(record.path, root / f"{record.label}-{taken[record.label]}.wav")
    return root


@pytest.fixture(scope="module")
def db(tmp_path_factory, trained_run, archive) -> Path:
    out = tmp_path_factory.mktemp("learn-stores") / "archive.db"
    embed_archive(trained_run.checkpoint, archive, out=out,
                  options=envsound.ScanOptions(workers=1, precision="32", progress=False))
    return out


@pytest.fixture(scope="module")
def windows(db) -> pd.DataFrame:
    """The store's windows with the class of their file (``kind``)."""
    table = pd.read_parquet(db / "windows").sort_values("window").reset_index(drop=True)
    table["kind"] = [Path(f).stem.rsplit("-", 1)[0] for f in table["file"]]
    return table


@pytest.fixture(scope="module")
def learned(tmp_path_factory, db, windows) -> Path:
    """A siren detector learned from 2 siren windows and 4 others (not calibrated: it decides at 0.5)."""
    from envsound.agile.learn import learn_verdicts
    from envsound.inference.embeddings import EmbeddingsStore

    positive = windows[windows["kind"] == TARGET]["window"].to_numpy()[:2]
    negative = windows[windows["kind"] != TARGET]["window"].to_numpy()[:4]
    out = tmp_path_factory.mktemp("learned-model")
    learn_verdicts(EmbeddingsStore(db), {TARGET: (np.r_[positive, negative], np.array(["yes"] * 2 + ["no"] * 4))},
                   out=out, progress=False)
    return out / "model.ckpt"


@pytest.fixture
def model(tmp_path, learned) -> Path:
    """The learned detector in a folder of this test's own: each test's sheets beside it."""
    (tmp_path / "model").mkdir()
    return Path(shutil.copy(learned, tmp_path / "model" / "model.ckpt"))
