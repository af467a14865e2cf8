"""One small embeddings store for the agile stage's tests: 24 synthetic clips embedded by the shared trained model.
A test module imports the fixtures it uses (module-scoped: one store a module). Not a conftest.py: the suite imports
``conftest`` by name (``from conftest import ...``), which a second conftest.py would shadow."""

import shutil
from pathlib import Path

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
