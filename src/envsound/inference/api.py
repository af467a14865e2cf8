"""The Python entry point for programmers: load a checkpoint once, classify files or waveforms.

    >>> from envsound import load_model
    >>> model = load_model("runs/esc10/model.ckpt")
    >>> model.predict("dog.wav").top                      # [{"label": "dog", "score": 0.97}, ...]
    >>> model.predict(waveform, sample_rate=44100).to_dict()  # the object `envsound predict --json` prints
    >>> load_model("model.onnx")  # made by `envsound export`: onnxruntime and numpy, torch is never imported

A bad file or waveform raises an :class:`~envsound.errors.EnvsoundError` subclass with a one-line message;
:meth:`Model.predict_many` goes on past bad files and returns their reason in ``Prediction.error``, as the CLI does.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from envsound.audio.load import AUDIO_EXTENSIONS, audio_info
from envsound.audio.sniff import SNIFF_BYTES, SUPPORTED, sniff_audio
from envsound.errors import ConfigError
from envsound.inference.class_filter import ClassNames
from envsound.inference.overview import overview
from envsound.inference.predictor import Prediction, Predictor
from envsound.models.files import ModelFile
from envsound.task import Task

# public names; sniff_audio and its constants are for the app (what an upload is): it imports nothing below inference
__all__ = ["Model", "load_model", "audio_duration", "SUPPORTED_EXTENSIONS", "SNIFF_BYTES", "SUPPORTED", "sniff_audio"]
SUPPORTED_EXTENSIONS = tuple(sorted(AUDIO_EXTENSIONS))
"""The file suffixes every entry point reads (CLI, Python API, the page and REST API): libsndfile's formats."""


class Model:
    """A trained classifier ready to predict (made by :func:`load_model`)."""

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor

    @property
    def labels(self) -> list[str]:
        return list(self._predictor.labels)

    @property
    def task(self) -> Task:
        return self._predictor.model.task

    @property
    def config(self):
        """The resolved :class:`~envsound.config.Config` the model was trained with (features included)."""
        return self._predictor.model.config

    @property
    def file(self) -> ModelFile | None:
        """The model file it was loaded from (:class:`~envsound.models.files.ModelFile`: ``path``, ``kind`` and the
        cached ``digest``), None for a model built in memory."""
        return self._predictor.source

    @property
    def runtime(self):
        """Where and how the model runs: :class:`~envsound.hardware.Runtime` (device, precision, memory format) for a
        checkpoint, :class:`~envsound.inference.onnx_model.OnnxRuntime` for an exported model."""
        return self._predictor.model.runtime

    def predict(self, audio: str | os.PathLike | np.ndarray, *, sample_rate: int | None = None, top_k: int = 3,
                segments: bool = False, events: bool = False) -> Prediction:
        """Classify one file (any length, any format ``envsound predict`` reads) or one waveform (``(frames,)`` or
        ``(frames, channels)``, float or integer PCM, at ``sample_rate``); ``events``: when each class sounds
        (``Prediction.events``)."""
        if isinstance(audio, (str, os.PathLike)):
            if sample_rate is not None:
                raise ConfigError("sample_rate is for waveforms only: a file's own rate is read from the file")
            return self._predictor.predict_file(Path(audio), top_k=top_k, segments=segments, events=events)
        if sample_rate is None:
            raise ConfigError("a waveform needs its sample_rate: model.predict(samples, sample_rate=44100)")
        return self._predictor.predict_waveform(audio, sample_rate=sample_rate, top_k=top_k, segments=segments,
                                                events=events)

    def listen(self, *, sample_rate: int, top_k: int = 3):
        """A :class:`~envsound.inference.live.LiveListener` for a stream at ``sample_rate``: push audio as it
        arrives, get a result a hop (``listener.push(samples)``, ``listener.finish()``)."""
        from envsound.inference.live import LiveListener

        return LiveListener(self._predictor, sample_rate=sample_rate, top_k=top_k)

    def describe(self) -> dict:
        """What ``GET /v1/model`` answers: the model's name, labels, task, feature settings, where it runs and the
        training metadata its checkpoint recorded (dataset, folds, versions, date); ``licence`` when the weights carry
        one (BirdNET's CC BY-NC-SA 4.0, and every head learned over it)."""
        model = self._predictor.model
        licence = {"licence": model.meta["licence"]} if model.meta.get("licence") else {}
        return {"model": model.config.model.name, "labels": self.labels, "task": self.task.to_dict(),
                "features": asdict(self.config.features), "runtime": self.runtime.to_dict(), **licence,
                "training": dict(model.meta)}

    def overview(self, path: str | os.PathLike, *, columns: int = 800) -> dict:
        """The page's picture of a file: waveform envelope and log-mel spectrogram (see :func:`overview`)."""
        return overview(path, self.config.features, columns=columns, block_seconds=self._predictor.block_seconds)

    def predict_many(self, inputs: str | os.PathLike | Iterable[str | os.PathLike], *, top_k: int = 3, segments: bool = False,
                     events: bool = False) -> Iterator[Prediction]:
        """Classify one path or a list of files, folders (searched recursively) and globs; a bad file yields a Prediction with ``error`` set."""
        return self._predictor.predict_paths(inputs, top_k=top_k, segments=segments, events=events)


def audio_duration(path: str | os.PathLike) -> float:
    """Seconds of audio in the file at ``path``, from its header (nothing decoded); raises AudioLoadError."""
    return audio_info(path).duration


def load_model(path: str | os.PathLike, *, device: str = "auto", precision: str = "auto",
               classes: ClassNames | None = None) -> Model:
    """Load a model on ``device`` (``auto``: CUDA, then MPS, else the CPU) at ``precision`` (``auto``: what is fast on
    this machine; ``"32"``: fp32 everywhere): an envsound ``model.ckpt``, an AudioSet release ``.pt`` or the name of an
    installed one (``efficientat-mn04``), a ``model.onnx`` (see :func:`~envsound.models.files.open_model_file`), or a
    frozen network LiteRT runs on the CPU, by file or installed name (``birdnet-v2.4``, ``yamnet``:
    ``load_model("birdnet-v2.4").predict("dawn.wav").top``, BirdNET's labels ``Latin name_Common name``).

    A ``model.onnx`` written by ``envsound export`` runs with onnxruntime in float32 (on
    ``auto`` or ``cpu``; ``cuda`` with onnxruntime-gpu) and gives the same predictions without importing torch.

    ``classes``: report only these of the model's classes, in its label order (names, or the path of a species-list
    file, one label a line; BirdNET's species-range model gives such names:
    ``load_model("birdnet-v2.4", classes=species_at(50.8, 4.4, week=20))``, see
    :mod:`envsound.models.birdnet_range`).

    Raises:
        CheckpointError: not an envsound checkpoint, or one it cannot use (the message says why).
        ConfigError: ``device`` is not on this machine (or not one an ONNX model runs on); ``classes`` names a class
            the model does not have.
    """
    return Model(Predictor.from_checkpoint(path, device=device, precision=precision, classes=classes))
