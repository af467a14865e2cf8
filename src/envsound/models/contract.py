"""The family contract: what a pre-trained family (:mod:`envsound.models.families`) gives envsound, whatever runs its
files. This docstring is its documentation; :class:`FamilyModel` is its type and the contract tests
(``tests/models/test_family_contract.py``) run the same checks on every runtime.

A family gives:

1. **Recognition.** Its record's ``recognise`` is shown what its runtime reads of a file (:data:`RUNTIMES`:
   ``spec`` the installed spec beside the file, ``torch`` a loaded torch payload, ``litert`` a TFLite file's
   :class:`~envsound.models.frozen.Structure`) and
   answers whether the file is one of its own (truthy: yes). :func:`recognise_file` asks every family, of every
   runtime, in registry order; a file is recognised by what it holds, not by its name or digest (a spec member
   by the installed spec beside it, which names it: its user said what it holds).
2. **Opening.** :func:`open_family_model` opens a file (a path, or an installed name such as ``efficientat-mn04``,
   ``birdnet-v2.4``, ``yamnet``) into a :class:`FamilyModel`, through the family's own opener (its record's
   ``checkpoint``) and envsound's model for its runtime
   (:class:`~envsound.models.clip.ClipModel`, :class:`~envsound.models.litert.FrozenModel`), which it keeps as
   :attr:`FamilyModel.model` for whatever takes that model (``Predictor(model)``).
3. **Answers.** The opened model says:

   - ``labels``: its own class names, in output order (``[]``: a network with no classes of its own, embeddings
     only);
   - ``licence``: the terms its weights come under (``"MIT"``, ``"CC BY-NC-SA 4.0"`` ...), travelling with every
     model learned on it;
   - ``digest``: SHA-256 of its file's bytes (:func:`~envsound.fileio.file_digest`), its identity in stores and
     scans;
   - ``window``: the :class:`Window` it scores: sample rate, window seconds, default hop;
   - ``window_embeddings(windows)``: waveform windows ``(n, window.samples)`` float32 in [-1, 1] at
     ``window.sample_rate`` -> ``(n, d)`` float32 embeddings (the family's frontend, if any, is applied inside);
   - ``window_probs(windows)``: the same windows -> ``(n, len(labels))`` float32 probabilities in [0, 1] of its
     own classes (what ``predict`` scores; BirdNET's sigmoid of its logits, YAMNet's scores), a
     :class:`~envsound.errors.ConfigError` when it has none.

A new runtime is one :class:`FileRuntime` in :data:`RUNTIMES` and one :class:`FamilyModel` subclass, as the ``spec``
runtime is (an ONNX or TFLite file a user installed with a spec, :mod:`envsound.models.spec`:
:class:`SpecFamilyModel`); a new family of an existing runtime is one record in
:data:`~envsound.models.families.FAMILIES`.

>>> model = open_family_model("yamnet")
>>> model.window.samples, model.window_embeddings(windows).shape      # 15600, (len(windows), 1024)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from envsound.config.frontends import resolve
from envsound.errors import CheckpointError, ConfigError
from envsound.fileio import file_digest
from envsound.models.families import FAMILIES, Family, recognise
from envsound.models.files import FROZEN, RELEASE, model_path, open_model_file
from envsound.models.frozen import is_tflite


@dataclass(frozen=True)
class Window:
    """What a model scores at a time: ``sample_rate`` (Hz), ``window_seconds`` and the default ``hop_seconds``
    between windows."""

    sample_rate: int
    window_seconds: float
    hop_seconds: float

    @property
    def samples(self) -> int:
        """Samples in one window at :attr:`sample_rate`."""
        return int(round(self.window_seconds * self.sample_rate))


class FamilyModel(ABC):
    """A family's file, opened (see the module's docstring for the contract). ``family``: its record; ``path``: the
    file; ``model``: envsound's model of it for its runtime; ``labels``, ``licence``, ``window`` as the contract
    says."""

    def __init__(self, family: Family, path: Path, model: Any, *, labels: list[str], licence: str,
                 window: Window) -> None:
        self.family, self.path, self.model = family, Path(path), model
        self.labels, self.licence, self.window = list(labels), licence, window

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the file's bytes, hex (64 digits); read once, on first use."""
        return file_digest(self.path)

    @property
    def has_classes(self) -> bool:
        """True when the network has classes of its own (:meth:`window_probs` answers)."""
        return bool(self.labels)

    def window_embeddings(self, windows: np.ndarray) -> np.ndarray:
        """Waveform windows ``(n, window.samples)`` float32 -> ``(n, d)`` float32 embeddings.

        Raises:
            ConfigError: ``windows`` is not ``(n, window.samples)``.
        """
        return np.asarray(self._embeddings(self._checked(windows)), dtype=np.float32)

    def window_probs(self, windows: np.ndarray) -> np.ndarray:
        """Waveform windows ``(n, window.samples)`` float32 -> ``(n, len(labels))`` float32 probabilities.

        Raises:
            ConfigError: no classes of its own, or ``windows`` is not ``(n, window.samples)``.
        """
        if not self.has_classes:
            raise ConfigError(f"{self.path}: a network with no classes of its own; learn a head on its embeddings")
        return np.asarray(self._probs(self._checked(windows)), dtype=np.float32)

    def _checked(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.window.samples:
            raise ConfigError(f"{self.path}: windows of shape {windows.shape}; it takes (n, {self.window.samples}) "
                              f"samples at {self.window.sample_rate} Hz")
        return windows

    @abstractmethod
    def _embeddings(self, windows: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _probs(self, windows: np.ndarray) -> np.ndarray: ...


class TorchFamilyModel(FamilyModel):
    """A torch family's file as a :class:`~envsound.models.clip.ClipModel`: each waveform window becomes the
    model's input (its family's log-mel frontend, or the waveform itself) as prediction cuts it."""

    def _inputs(self, windows: np.ndarray) -> np.ndarray:
        from envsound.features.extract import waveform_windows  # torch: only for a torch family's file
        from envsound.features.mel import logmel_frontend

        features = self.model.config.features
        if features.kind == "waveform":
            return windows[:, None, :]
        frontend = logmel_frontend(features).eval()
        return np.stack([waveform_windows(window, features, frontend=frontend)[0][0] for window in windows])

    def _embeddings(self, windows: np.ndarray) -> np.ndarray:
        return self.model.window_embeddings(self._inputs(windows))

    def _probs(self, windows: np.ndarray) -> np.ndarray:
        return self.model.window_probs(self._inputs(windows))


class LiteRTFamilyModel(FamilyModel):
    """A litert family's file as a :class:`~envsound.models.litert.FrozenModel`: the windows go in as they are
    (the frontend is inside the network)."""

    def _embeddings(self, windows: np.ndarray) -> np.ndarray:
        return self.model.window_embeddings(windows)

    def _probs(self, windows: np.ndarray) -> np.ndarray:
        probs, _ = self.model.network.scores(windows)
        return probs


class SpecFamilyModel(LiteRTFamilyModel):
    """A network installed from a spec, as a :class:`~envsound.models.litert.FrozenModel` whose network LiteRT or
    ONNX Runtime runs, as its spec says; it may have no classes of its own (embeddings only)."""


def _spec_reads(path: Path) -> Any | None:
    from envsound.models.spec import spec_beside

    return spec_beside(path)


def _spec_opens(family: Family, path: Path, release: Any, *, device: str, precision: str) -> FamilyModel:
    model = resolve(family.checkpoint)(path, device=device, precision=precision)
    return SpecFamilyModel(family, path, model, labels=model.labels, licence=release.licence, window=Window(
        release.sample_rate, release.window_seconds, release.hop_seconds))


def _torch_reads(path: Path) -> Any | None:
    if is_tflite(path):
        return None
    from envsound.models.checkpoint import read_payload  # torch: only for a file that may be a torch file

    try:
        return read_payload(path, expected="")
    except CheckpointError:  # not a torch file: another runtime's, or none
        return None


def _torch_opens(family: Family, path: Path, payload: Any, *, device: str, precision: str) -> FamilyModel:
    from envsound.models.clip import ClipModel

    checkpoint = resolve(family.checkpoint)(payload, path=path, labels_required=True)
    model = ClipModel.from_checkpoint(checkpoint, source=str(path), device=device, precision=precision)
    features = model.config.features
    licence = model.meta.get("licence") or family.licence
    return TorchFamilyModel(family, path, model, labels=model.labels, licence=licence, window=Window(
        features.sample_rate, features.window_seconds, features.eval_hop_seconds))


def _litert_reads(path: Path) -> Any | None:
    if not is_tflite(path):
        return None
    from envsound.models.litert import open_interpreter, structure_of

    return structure_of(open_interpreter(path))


def _litert_opens(family: Family, path: Path, structure: Any, *, device: str, precision: str) -> FamilyModel:
    model = resolve(family.checkpoint)(path, device=device, precision=precision)
    release = model.release
    return LiteRTFamilyModel(family, path, model, labels=model.labels, licence=release.licence, window=Window(
        release.sample_rate, release.window_seconds, release.hop_seconds))


@dataclass(frozen=True)
class FileRuntime:
    """What a runtime does with a file: ``reads`` it into what its families' recognisers are shown (``None``: not
    a file of this runtime), and ``opens`` a recognised one, ``(family, path, what it read, *, device, precision)``
    -> :class:`FamilyModel`."""

    reads: Callable[[Path], Any | None]
    opens: Callable[..., FamilyModel]


RUNTIMES: dict[str, FileRuntime] = {"spec": FileRuntime(_spec_reads, _spec_opens),
                                    "torch": FileRuntime(_torch_reads, _torch_opens),
                                    "litert": FileRuntime(_litert_reads, _litert_opens)}
"""Each family runtime, by the name a :class:`~envsound.models.families.Family` gives as its ``runtime``, in the
order a file is shown to them: a spec installed beside a file first (its user said what it is)."""


def recognise_file(path: str | Path) -> tuple[Family, Any] | None:
    """The family whose file ``path`` is, and what its runtime read of it; ``None`` for a file no family recognises
    (a missing path, a folder, an envsound checkpoint, an ONNX file). Each runtime reads the file once and asks its
    families (:func:`envsound.models.families.recognise`).

    Raises:
        CheckpointError: a TFLite file LiteRT cannot read.
        ConfigError: LiteRT is not installed (a TFLite file).
    """
    path = Path(path)
    if not path.is_file():
        return None
    for name, runtime in RUNTIMES.items():
        read = runtime.reads(path)
        family = None if read is None else recognise(read, runtime=name)
        if family is not None:
            return family, read
    return None


def open_family_model(path_or_name: str | Path, *, device: str = "auto", precision: str = "auto") -> FamilyModel:
    """Open a family's file (a path, or an installed name: ``efficientat-mn04``, ``birdnet-v2.4``, ``yamnet``, a
    spec member's) as
    :class:`FamilyModel`, on ``device`` at ``precision`` (a litert family's: the CPU in float32).

    Raises:
        CheckpointError: one line naming the file: not found or not installed, a file of no family (an envsound
            model.ckpt, an ONNX file, foreign bytes), or a file its family recognises but cannot open (labels
            missing).
        ConfigError: a device or precision its runtime cannot run at; LiteRT is not installed.
    """
    path = model_path(path_or_name)
    found = recognise_file(path)
    if found is None:  # open_model_file says what the file is, in its own words, or why it cannot be read
        open_model_file(path_or_name).require(RELEASE, FROZEN, purpose="a family's model")
        raise CheckpointError(f"{path_or_name}: a model file no family recognises (a TFLite network of other inputs, "
                              f"outputs or embedding tensor); expected "
                              f"{', '.join(family.describe for family in FAMILIES.values())}")
    family, read = found
    return RUNTIMES[family.runtime].opens(family, path, read, device=device, precision=precision)
