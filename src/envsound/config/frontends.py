"""Frontend name -> what a log-mel frontend is (``features.frontend``): the one place the rest of the package asks
instead of comparing names. A frontend is a :class:`Frontend` record: its torch module, its ONNX module, the value
silence becomes (a short window's padding), its mel scale (for band-shift augmentation) and the config it accepts.

Pure data, no torch, and no name of a stage above: it sits with the config, which checks ``features.frontend``
against it before anything else is imported. So the built-in records here hold what the config checks (the name,
the mel scale, the samples lost, whether deltas and ``win_length`` are accepted); their modules and silence value
are registered by ``envsound.features`` (``features/frontends.py``, run whenever a ``features`` module is imported,
and every user of a frontend's modules imports one). A frontend from outside the package is one whole record
(:func:`register_frontend`).

>>> frontend_spec("efficientat").mel_scale
'kaldi'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from envsound.errors import ConfigError

Ref = str | Callable[..., Any] | float
"""A ``"package.module:attribute"`` (``attribute`` may be dotted: ``Class.method``) or the object itself."""


@dataclass(frozen=True)
class Frontend:
    """One log-mel frontend.

    ``module``: a factory ``(FeatureConfig) -> nn.Module`` mapping ``(batch, samples)`` to ``(batch, C, n_mels,
    frames)``; ``onnx_module``: the same as an exportable module (``(1, samples)`` -> ``(C, n_mels, frames)``, no FFT
    operator); ``silence``: the log-mel value of digital silence (a delta channel pads with 0.0); ``mel_scale``:
    ``"slaney"`` or ``"kaldi"`` (where band-shift augmentation puts a band);
    ``lost_samples``: samples the frontend drops before its centred STFT (pre-emphasis: 1); ``deltas`` and
    ``win_length``: whether ``features.deltas`` and ``features.win_length`` are accepted; ``describe``: for
    ``docs/config.md`` and messages."""

    name: str
    describe: str
    module: Ref | None = None
    onnx_module: Ref | None = None
    silence: Ref | None = None
    mel_scale: str = "slaney"
    lost_samples: int = 0
    deltas: bool = True
    win_length: bool = False

    def frames(self, samples: int, *, hop_length: int) -> int:
        """Log-mel frames of a waveform of ``samples`` samples (>= 1): a centred STFT after ``lost_samples``."""
        return 1 + (max(samples, self.lost_samples + 1) - self.lost_samples) // hop_length

    def silence_value(self) -> float:
        return float(self.part("silence"))

    def part(self, field: str) -> Any:
        """The object ``field`` (``"module"``, ``"onnx_module"``, ``"silence"``) names, imported now.

        Raises:
            ConfigError: nothing registered for it (a built-in frontend before ``envsound.features`` is imported,
                or a record registered without it).
        """
        value = getattr(self, field)
        if value is None:
            raise ConfigError(f"frontend {self.name!r} has no {field} registered (the built-in frontends' parts are "
                              "registered by importing envsound.features)")
        return resolve(value)


FRONTENDS: dict[str, Frontend] = {
    "envsound": Frontend("envsound", "Slaney mel, dB; librosa's maths"),
    "efficientat": Frontend("efficientat", "EfficientAT's AudioSet frontend: pre-emphasis, Kaldi mel, natural log, "
                            "fixed normalisation; what its pre-trained networks expect", mel_scale="kaldi",
                            lost_samples=1, deltas=False, win_length=True),
}
"""The built-in frontends as the config knows them; ``envsound.features`` adds their modules and silence value."""


def frontend_spec(name: str) -> Frontend:
    """The frontend registered as ``name``.

    Raises:
        ConfigError: unknown name; the message lists the registered ones.
    """
    try:
        return FRONTENDS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"features.frontend={name!r} is not a registered frontend; valid: "
                          f"{', '.join(map(repr, FRONTENDS))}") from None


def register_frontend(spec: Frontend) -> None:
    """Add ``spec`` under ``spec.name`` (a name taken is replaced: ``envsound.features`` completes the built-in
    records so).

    >>> register_frontend(Frontend("mine", "my log-mel", module=MyMel.from_config, onnx_module=OnnxMyMel, silence=0.0))
    """
    FRONTENDS[spec.name] = spec


def resolve(ref: Ref) -> Any:
    """The object ``ref`` names (imported now), or ``ref`` itself when it is not a string."""
    if not isinstance(ref, str):
        return ref
    module, _, attribute = ref.partition(":")
    found: Any = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found
