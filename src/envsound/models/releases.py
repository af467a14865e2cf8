"""The EfficientAT AudioSet release files envsound knows, and where ``envsound download`` installs them: a table and
paths, no torch, so that naming the installed models (in a message, in ``envsound models``) costs nothing.
:mod:`envsound.models.pretrained` reads the files themselves; :mod:`envsound.models.families` lists this table as
the ``efficientat`` family's (another family's table is rows of the same :class:`Pretrained`), and
:mod:`envsound.models.files` turns an installed name into its file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

RELEASE_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
LABELS_FILE = "class_labels_indices.csv"
LABELS_URL = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/class_labels_indices.csv"
MODELS_ENV = "ENVSOUND_MODELS"


@dataclass(frozen=True)
class Pretrained:
    """One official file: its release file name, AudioSet mAP, parameter count, sha256 (``None``: not known here;
    the file is then checked by its tensor shapes alone), its family (:mod:`envsound.models.families`), the
    ``model.options`` that build its network (EfficientAT: ``{"width": 0.4}``) and where it is published."""

    name: str
    file: str
    audioset_map: float
    parameters: int
    sha256: str | None = None
    family: str = "efficientat"
    options: Mapping[str, Any] = field(default_factory=dict)
    base_url: str = RELEASE_URL

    @property
    def url(self) -> str:
        return self.base_url + self.file

    @property
    def download_name(self) -> str:
        """``efficientat-mn04``: the name ``envsound download`` and ``--init`` accept."""
        return f"{self.family}-{self.name.removesuffix('_as')}"


PRETRAINED = {p.name: p for p in (
    Pretrained("mn01_as", "mn01_as_mAP_298.pt", 0.298, 126_402, options={"width": 0.1}),
    Pretrained("mn02_as", "mn02_as_mAP_378.pt", 0.378, 329_733, options={"width": 0.2}),
    Pretrained("mn04_as", "mn04_as_mAP_432.pt", 0.432, 993_485,
               "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c", options={"width": 0.4}),
    Pretrained("mn05_as", "mn05_as_mAP_443.pt", 0.443, 1_443_637, options={"width": 0.5}),
    Pretrained("mn10_as", "mn10_as_mAP_471.pt", 0.471, 4_901_277, options={"width": 1.0}),
    Pretrained("mn20_as", "mn20_as_mAP_478.pt", 0.478, 17_958_133, options={"width": 2.0}),
    Pretrained("mn30_as", "mn30_as_mAP_482.pt", 0.482, 39_159_613, options={"width": 3.0}),
    Pretrained("mn40_as", "mn40_as_mAP_484.pt", 0.484, 68_524_949, options={"width": 4.0}),
)}
"""The ``mn`` family's AudioSet files (EfficientAT release v0.0.1); ``parameters`` counts every tensor of the file."""


def models_dir() -> Path:
    """``$ENVSOUND_MODELS`` if set, else ``~/.cache/envsound/models`` (read when called)."""
    env = os.environ.get(MODELS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "envsound" / "models"


def by_download_name(name: str) -> Pretrained | None:
    """The file ``efficientat-mn04`` (or ``mn04_as``, ``mn04``) names; ``None`` for any other string."""
    key = name.removeprefix("efficientat-")
    key = key if key.endswith("_as") else key + "_as"
    return PRETRAINED.get(key)


def installed_path(spec: Pretrained) -> Path | None:
    """Where ``envsound download`` put ``spec``'s file, when it did."""
    path = models_dir() / spec.file
    return path if path.is_file() else None


def installed_names() -> list[str]:
    """``efficientat-mn01`` ...: every name ``envsound download`` and a model argument accept, from the table."""
    return [spec.download_name for spec in PRETRAINED.values()]
