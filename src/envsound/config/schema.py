"""The whole config of a run (:class:`Config`): its sections, set key by key from mappings and ``--set`` text,
validated as a whole."""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from envsound.config.migrate import check_given_once, current_key, keep_old_meanings
from envsound.config.sections import (AugmentConfig, EventsConfig, FeatureConfig, LeakageConfig, ModelConfig,
                                      NoisyConfig, RuntimeConfig, SemiConfig, StagesConfig, TrainConfig,
                                      TransferConfig)
from envsound.config.values import check_value, coerce_value
from envsound.errors import ConfigError


@dataclass
class Config:
    """The whole resolved configuration of a run."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    semi: SemiConfig = field(default_factory=SemiConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    leakage: LeakageConfig = field(default_factory=LeakageConfig)
    noisy: NoisyConfig = field(default_factory=NoisyConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    events: EventsConfig = field(default_factory=EventsConfig)

    def validate(self) -> "Config":
        for section in self._sections():
            getattr(self, section).validate()
        check_value(not self.augment.between_class or self.features.kind == "waveform", "augment.between_class",
                    self.augment.between_class, "false unless features.kind is 'waveform' (it mixes waveforms)")
        for name in ("fmin_shift_hz", "fmax_shift_hz"):
            check_value(getattr(self.augment, name) == 0 or self.features.kind == "logmel", f"augment.{name}",
                        getattr(self.augment, name), "0 unless features.kind is 'logmel' (it moves mel bands)")
        if self.semi.fixmatch.guesser == "ema":  # the method of a semi run, or of the last stage of envsound stages
            for key, method in (("semi.method", self.semi.method), ("stages.pseudo_label", self.stages.pseudo_label)):
                if method not in ("none", "fixmatch"):
                    raise ConfigError(f"semi.fixmatch.guesser=ema is for fixmatch; {key}={method} guesses by its own "
                                      "rule")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        """Build a config from nested mappings; unknown sections or keys raise :class:`ConfigError`."""
        config = cls()
        config.update(data)
        return config.validate()

    def update(self, data: Mapping[str, Any], *, source: str = "config") -> None:
        """Set every ``section: {key: value}`` of ``data`` (a sub-section, e.g. ``semi: {fixmatch: {...}}``, as a
        mapping). A renamed key (:data:`~envsound.config.migrate.RENAMED_KEYS`) given with its new name is refused; a
        mapping written before checkpoint format 13 (``between_class: true`` under ``train``, no ``bc_gain``) keeps
        the RMS gain it mixed with."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
        given = set(_dotted_keys(data))
        check_given_once(given, source=source)
        for section, values in data.items():
            if section not in self._sections():
                raise ConfigError(f"{source}: unknown section {section!r}; valid: {', '.join(self._sections())}")
            if not isinstance(values, Mapping):
                raise ConfigError(f"{source}: section {section!r} must be a mapping, got {values!r}")
            for key, value in values.items():
                self.set(f"{section}.{key}", value, source=source)
        keep_old_meanings(self, given)

    def set(self, dotted_key: str, value: Any, *, source: str = "--set") -> None:
        """Set ``section.key`` to ``value`` (a string is parsed as YAML, then coerced to the field's type).

        A key that moved or went away is handled by :func:`~envsound.config.migrate.current_key`."""
        dotted_key = current_key(self, dotted_key, value, source=source)
        if dotted_key is None:
            return
        section, _, key = dotted_key.partition(".")
        if section not in self._sections() or not key:
            raise ConfigError(f"{source}: unknown key {dotted_key!r}; keys look like "
                              f"'train.lr' with sections {', '.join(self._sections())}")
        target = getattr(self, section)
        if section == "model" and key.startswith("options."):  # one option of the model: model.options.hidden=32
            target.set_option(key.removeprefix("options."), value, source=source)
            return
        prefix = section
        while "." in key and dataclasses.is_dataclass(getattr(target, key.split(".")[0], None)):
            part, _, key = key.partition(".")  # a sub-section: semi.fixmatch.threshold
            target, prefix = getattr(target, part), f"{prefix}.{part}"
        hints = typing.get_type_hints(type(target))
        if key not in hints:
            valid = ", ".join(f"{prefix}.{f.name}" for f in dataclasses.fields(target))
            raise ConfigError(f"{source}: unknown key {dotted_key!r}; valid keys: {valid}")
        if dataclasses.is_dataclass(getattr(target, key)):  # a whole sub-section given as a mapping
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {dotted_key} is a section; give its keys ({dotted_key}.KEY=VALUE)")
            for sub, sub_value in value.items():
                self.set(f"{prefix}.{key}.{sub}", sub_value, source=source)
            return
        setattr(target, key, coerce_value(value, hints[key], dotted_key, source))

    def with_overrides(self, overrides: Sequence[str]) -> "Config":
        """A validated copy with ``overrides`` (``['train.lr=0.01', ...]``, as ``--set`` takes them) set over this
        config's values; this one is left as it was.

        >>> Config().with_overrides(["train.lr=0.01"]).train.lr
        0.01

        Raises:
            ConfigError: an override that is not ``section.key=value``, an unknown key or an invalid value.
        """
        config = copy.deepcopy(self)
        for text in overrides:
            config.set(*parse_override(text))
        return config.validate()

    @classmethod
    def _sections(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _dotted_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every ``section.key`` (and ``section.sub.key``) a nested mapping gives."""
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if prefix:
            keys.append(dotted)
        if isinstance(value, Mapping):
            keys += _dotted_keys(value, f"{dotted}.")
    return keys


def parse_override(text: str) -> tuple[str, str]:
    """Split ``'train.lr=0.01'`` into ``('train.lr', '0.01')``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.lr=0.001")
    return key.strip(), value.strip()
