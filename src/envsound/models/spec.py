"""Your own network without code: an ONNX or TFLite file and a small spec beside it, installed with ``envsound
download --from FILE --spec SPEC`` (:mod:`envsound.transfer.install_spec`) as a member of the ``spec`` family, then
used by name wherever a frozen network goes (predict, embed, search, learn, ``cv --init``).

A spec is YAML (or JSON)::

    name: my-tagger            # the name it is installed and used under
    licence: Apache-2.0        # the terms of its weights; travels with every model learned on it
    sample_rate: 16000         # Hz
    window: 15600              # samples a window
    hop: 7680                  # samples between windows (default: the window)
    input: batch,samples       # optional: samples | batch,samples | batch,1,samples (default: the file's own)
    embedding: embed           # the output or inner tensor holding a window's embedding
    logits: scores             # optional: the output with one column a class
    activation: sigmoid        # with logits: sigmoid (logits), softmax, none (already probabilities)
    labels: labels.txt         # with logits: one class name a line (or a CSV with a display_name column),
                               # a path relative to the spec

What the file must agree with (the tensors named, the window its input takes, the rate its ONNX metadata states, one
label a logit) is checked at install, in one line naming the spec's field. The installed folder
(``<models>/<name>/``) holds the file, the label file and :data:`SPEC_FILE`: the spec resolved (the runtime, the
embedding's width, the class count, the file's sha256), from which :func:`installed_specs` makes a
:class:`~envsound.models.frozen.FrozenRelease` the frozen networks' code reads as it reads BirdNET's row. A file is a
spec member when such a spec sits beside it and names it (:func:`spec_beside`): its structure is not looked at.

No runtime here (pure data): the runners are :class:`~envsound.models.litert.LiteRTNetwork` (TFLite) and
:class:`~envsound.models.onnx_network.OnnxNetwork` (ONNX).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from envsound.errors import CheckpointError, ConfigError
from envsound.models.frozen import FrozenRelease, is_tflite

SPEC_FILE = "envsound-spec.json"
"""The resolved spec in an installed member's folder."""

FAMILY = "spec"
LAYOUTS = ("samples", "batch,samples", "batch,1,samples")
"""The input layouts a spec may name: one window's samples, a batch of them, a batch of one-channel windows."""
ACTIVATIONS = ("sigmoid", "softmax", "none")
FIELDS = ("name", "licence", "sample_rate", "window", "hop", "input", "embedding", "logits", "activation", "labels")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class NetworkSpec:
    """A spec as its user wrote it, checked on its own (:func:`read_spec`); ``labels`` is resolved against the
    spec's folder. Window and hop are in samples at ``sample_rate``."""

    name: str
    licence: str
    sample_rate: int
    window: int
    hop: int
    embedding: str
    input: str = ""
    logits: str = ""
    activation: str = "none"
    labels: Path | None = None
    source: Path = Path()

    def field_error(self, field: str, problem: str) -> ConfigError:
        """A one-line refusal naming the spec file and ``field``."""
        return ConfigError(f"{self.source}: {field}: {problem}")


def read_spec(path: str | Path) -> NetworkSpec:
    """The spec at ``path`` (YAML or JSON), each field checked for itself (the file it describes is checked at
    install).

    Raises:
        ConfigError: one line naming the file and the field: unreadable, not a mapping, an unknown or missing field,
            a value of the wrong kind (a name envsound's networks already use, a rate or window not a positive
            integer, a hop longer than the window, an unknown layout or activation, logits without labels or
            labels without logits, a label file missing).
    """
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path}: not a readable spec ({reason[:160]})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a spec is a mapping of {', '.join(FIELDS)}")
    unknown = sorted(set(map(str, raw)) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: not a spec field; the fields are {', '.join(FIELDS)}")
    for required in ("name", "licence", "sample_rate", "window", "embedding"):
        if raw.get(required) in (None, ""):
            raise ConfigError(f"{path}: {required}: missing; a spec names at least name, licence, sample_rate, "
                              "window and embedding")
    rate, window = _positive(path, "sample_rate", raw), _positive(path, "window", raw)
    hop = _positive(path, "hop", raw) if raw.get("hop") is not None else window
    if hop > window:
        raise ConfigError(f"{path}: hop: {hop} samples, longer than the window ({window}): samples would go unheard")
    name = str(raw["name"])
    if not NAME.match(name):
        raise ConfigError(f"{path}: name: {name!r}; use lowercase letters, digits, '.', '-', '_' (64 at most)")
    if name in _taken() or name.startswith("efficientat"):
        raise ConfigError(f"{path}: name: {name!r} is one of envsound's own networks; choose another")
    layout = str(raw.get("input") or "").replace(" ", "")
    if layout and layout not in LAYOUTS:
        raise ConfigError(f"{path}: input: {raw['input']!r}; one of {', '.join(LAYOUTS)}")
    activation = str(raw.get("activation") or ("sigmoid" if raw.get("logits") else "none"))
    if activation not in ACTIVATIONS:
        raise ConfigError(f"{path}: activation: {activation!r}; one of {', '.join(ACTIVATIONS)}")
    logits, labels = str(raw.get("logits") or ""), raw.get("labels")
    if bool(logits) != bool(labels):
        have, lack = ("logits", "labels") if logits else ("labels", "logits")
        raise ConfigError(f"{path}: {lack}: missing; {have} without {lack} (a class's name goes with its column)")
    label_path = None
    if labels:
        label_path = (path.parent / str(labels)).resolve()
        if not label_path.is_file():
            raise ConfigError(f"{path}: labels: {label_path} is not there")
    return NetworkSpec(name=name, licence=str(raw["licence"]), sample_rate=rate, window=window, hop=hop,
                       embedding=str(raw["embedding"]), input=layout, logits=logits, activation=activation,
                       labels=label_path, source=path)


def _taken() -> set[str]:
    """The names envsound's own networks go by: the built-in frozen ones and the registry's (when torch is here:
    without it, none of those can be trained or loaded anyway)."""
    from envsound.models.frozen import BUILT_IN

    try:
        from envsound.models.registry import MODELS
    except ImportError:
        return set(BUILT_IN)
    return set(BUILT_IN) | set(MODELS)


def _positive(path: Path, field: str, raw: Mapping[str, Any]) -> int:
    value = raw.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{path}: {field}: {value!r}; a positive whole number "
                          f"({'Hz' if field == 'sample_rate' else 'samples'})")
    return value


def runtime_of(path: Path) -> str:
    """``"litert"`` for a TFLite file, ``"onnx"`` for any other (ONNX Runtime says whether it is one)."""
    return "litert" if is_tflite(path) else "onnx"


def release_of(resolved: Mapping[str, Any]) -> FrozenRelease:
    """The :class:`~envsound.models.frozen.FrozenRelease` of an installed spec (what :data:`SPEC_FILE` holds)."""
    name, rate = resolved["name"], int(resolved["sample_rate"])
    labels = resolved.get("labels") or ""
    return FrozenRelease(
        name, FAMILY, f"{name}/{resolved['file']}", f"{name}/{labels}" if labels else "", url="", labels_url="",
        licence=resolved["licence"], bundled=False, sample_rate=rate, window_seconds=int(resolved["window"]) / rate,
        hop_seconds=int(resolved["hop"]) / rate, embedding_width=int(resolved["embedding_width"]),
        n_classes=int(resolved["n_classes"]), input_samples=int(resolved["window"]),
        embedding_tensor=resolved["embedding"], activation=resolved["activation"],
        label_format="class_map_csv" if str(labels).endswith(".csv") else "lines", sha256=resolved["sha256"],
        source=f"installed from a spec ({resolved.get('spec', '')})", runtime=resolved["runtime"],
        logits_tensor=resolved.get("logits") or "", exact=True)


def read_installed(folder: Path) -> FrozenRelease | None:
    """The member installed in ``folder`` (its :data:`SPEC_FILE`), ``None`` when there is none or it is unreadable
    (a folder of another kind)."""
    try:
        resolved = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
        return release_of(resolved)
    except (OSError, ValueError, KeyError, TypeError):
        return None


class InstalledSpecs(Mapping[str, FrozenRelease]):
    """The spec members installed in :func:`~envsound.models.releases.models_dir`, name -> release, read from the
    folder at each use (installing or removing one shows at once; a few small JSON files)."""

    def _members(self) -> dict[str, FrozenRelease]:
        from envsound.models.releases import models_dir

        root = models_dir()
        if not root.is_dir():
            return {}
        found = (read_installed(folder) for folder in sorted(root.iterdir()) if (folder / SPEC_FILE).is_file())
        return {release.name: release for release in found if release is not None}

    def __getitem__(self, name: str) -> FrozenRelease:
        return self._members()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._members())

    def __len__(self) -> int:
        return len(self._members())


INSTALLED = InstalledSpecs()
"""The ``spec`` family's table: every member installed here."""


def spec_beside(path: str | Path) -> FrozenRelease | None:
    """The spec member ``path`` is: a :data:`SPEC_FILE` in its folder that names this file; else ``None``."""
    path = Path(path)
    release = read_installed(path.parent)
    return release if release is not None and Path(release.file).name == path.name else None


def recognise_spec(release: Any) -> FrozenRelease | None:
    """The ``spec`` family's recogniser: what its runtime read of a file (:func:`spec_beside`) is the member."""
    return release if isinstance(release, FrozenRelease) and release.family == FAMILY else None


def check_no_classes(release: FrozenRelease, path: Path) -> None:
    """Refuse (CheckpointError) scoring with a network that has no classes of its own."""
    if release.n_classes == 0:
        raise CheckpointError(f"{path}: {release.name} has no classes of its own (its spec names no logits); "
                              "embed with it and learn a head: envsound embed, envsound learn")
