"""The one way a run's config is made: :func:`resolve`, called by the CLI, the Python API, the demo and the
experiments alike, so the same request gives the same config however it is made."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Mapping, Sequence

from envsound.config import Config, load_preset, load_yaml
from envsound.config.files import bare_config
from envsound.config.flags import FLAG_KEYWORDS, flag_overrides
from envsound.errors import ConfigError
from envsound.models.frozen import FROZEN
from envsound.models.registry import check_feature_kind, check_model_options, model_preset


def check_keywords(function: str, flags: Mapping[str, Any], *, own: Sequence[str],
                   other: str = "settings={'section.key': value}") -> None:
    """Raise ConfigError for a keyword of ``flags`` that is neither a flag's (:data:`FLAG_KEYWORDS`) nor one of
    ``function``'s ``own``: the message offers the nearest name (``inti`` -> ``init``) and lists the valid ones."""
    unknown = sorted(set(flags) - set(FLAG_KEYWORDS))
    if not unknown:
        return
    near = difflib.get_close_matches(unknown[0], [*own, *FLAG_KEYWORDS], n=1)
    hint = f" (did you mean {near[0]}=?)" if near else ""
    raise ConfigError(f"{function}(): unknown keyword {unknown[0]!r}{hint}; it takes {', '.join(own)}, the flags' "
                      f"keywords {', '.join(FLAG_KEYWORDS)}, and any other config key as {other}")


def resolve(*, model: str | None = None, preset: str | None = None, init: str | Path | None = None,
            config_file: str | Path | None = None, overrides: Sequence[str] = (), **flags: Any) -> Config:
    """The config a run trains with, each layer over the last: the defaults, the model's own preset
    (:func:`~envsound.models.registry.model_preset`), ``init``'s features and model sections (a checkpoint, an
    AudioSet release file or an installed name, as ``--init`` takes), the named ``preset``
    (``envsound/presets/<preset>.yaml``, e.g. ``dtu2018``), ``config_file``, ``model``, ``overrides``
    (``["train.lr=0.01", ...]``), then ``flags``: the keywords of :data:`~envsound.config.flags.FLAGS`, each the
    CLI flag of that name (``shots=5`` is ``--shots 5``, ``allow_overlap=True`` is ``--allow-overlap``). The model
    whose preset is the first layer is ``model``, else the one ``config_file``, the named preset or ``init`` names (in
    that order), else the default.

    >>> resolve(preset="dtu2018", overrides=["train.max_epochs=30"]).features.n_mels
    28
    >>> resolve(model="piczak").features.n_mels   # piczak's own preset, as `envsound train --model piczak`
    60

    Raises:
        ConfigError: an invalid value or key, an unknown preset, model or flag keyword, a model given input it does
            not take (e.g. ``aclnet`` with ``features.kind=logmel``), or options the model does not have.
        CheckpointError: ``init`` cannot be read.
    """
    check_keywords("resolve", flags, own=("model", "preset", "init", "config_file", "overrides"),
                   other="overrides=['section.key=value']")
    inherited = _inherited(init)
    named = load_preset(preset) if preset else {}
    name = model
    if name is None and config_file is not None:
        name = load_yaml(config_file).get("model", {}).get("name")
    for layer in (named, inherited):
        name = name or (layer.get("model") or {}).get("name")
    name = name or Config().model.name
    own = {} if name in FROZEN else model_preset(name)  # a frozen network's sections are its own (inherited)
    sections = _merged(_merged(own, inherited), named)
    config = bare_config(preset=sections, config_file=config_file, model=model,
                         overrides=[*overrides, *flag_overrides(flags)])
    frozen = (inherited.get("model") or {}).get("name")
    if frozen in FROZEN and config.model.name != frozen:
        raise ConfigError(f"--init {init}: the frozen network {frozen}, whose head a run learns; model.name is "
                          f"{config.model.name!r} here: drop --model/--preset/model.name")
    if config.model.name in FROZEN:  # no registered model: plan_frozen checks its settings against the network
        return config
    check_feature_kind(config.model.name, config.features.kind)
    check_model_options(config.model.name, config.model.options)
    return config


def _inherited(init: str | Path | None) -> dict[str, Any]:
    """The sections ``init`` gives the run: a frozen network's (its input and model name), or a model file's
    features and model."""
    if init is None:
        return {}
    from envsound.transfer.frozen_probe import frozen_init, frozen_sections

    frozen = frozen_init(init)
    if frozen is not None:
        return frozen_sections(frozen)
    from envsound.transfer.source import read_source, source_sections

    return source_sections(read_source(init))


def _merged(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` of ``first`` updated key by key with ``second`` (``model.options`` too, so a preset
    that adds an option keeps the ones ``--init`` gave)."""
    merged = {section: dict(values) for section, values in first.items()}
    for section, values in second.items():
        target = merged.setdefault(section, {})
        for key, value in (values or {}).items():
            both = isinstance(value, Mapping) and isinstance(target.get(key), Mapping)
            target[key] = {**target[key], **value} if both and key == "options" else value
    return merged
