"""Configs on disk: YAML files, the shipped presets, the copy written beside every run, the check that a resumed run
keeps its input settings, and the bare layering of them under :func:`envsound.recipes.config.resolve`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import yaml

from envsound.config.migrate import BATCH_AUGMENT_KEYS
from envsound.config.schema import Config, parse_override
from envsound.errors import ConfigError


def write_config(path: str | Path, config: Config, *, note: str | None = None) -> Path:
    """Write ``config`` as YAML to ``path`` atomically; ``note`` becomes comment lines at the top (e.g. the runtime
    chosen for ``auto`` settings), so the file still loads as ``--config``."""
    from envsound.fileio import write_text_atomic

    header = "".join(f"# {line}\n" for line in note.splitlines()) if note else ""
    return write_text_atomic(path, header + yaml.safe_dump(config.to_dict(), sort_keys=False))


def check_same_input(saved: str | Path, config: Config) -> None:
    """Refuse to resume the run whose ``config.yaml`` is ``saved`` with other features, another model or other
    on-the-fly augmentation than it was started with (its epochs so far would have learned from other input);
    nothing to check when the file is absent or no longer loads (written by an envsound whose keys are gone).

    Raises:
        ConfigError: naming every key of ``features``, ``model`` and :data:`BATCH_AUGMENT_KEYS` that differs, and
            how to resume as started.
    """
    path = Path(saved)
    if not path.exists():
        return
    try:
        before = Config.from_dict(load_yaml(path))
    except ConfigError:
        return
    changed = [(f"{section}.{key}", old, new) for section in ("features", "model")
               for key, old in dataclasses.asdict(getattr(before, section)).items()
               if (new := getattr(getattr(config, section), key)) != old]
    mixing = before.augment.between_class or config.augment.between_class  # bc_gain only acts then
    changed += [(f"augment.{key}", old, new) for key in BATCH_AUGMENT_KEYS if key != "bc_gain" or mixing
                if (new := getattr(config.augment, key)) != (old := getattr(before.augment, key))]
    if changed:
        listed = "; ".join(f"{key} {old!r} there, {new!r} here" for key, old, new in changed)
        sets = [f"{key}={_yaml_scalar(old)}" for key, old, _ in changed]
        flags = " ".join(f"--set {text}" for text in sets)
        raise ConfigError(f"resume: {path} was started with other input settings ({listed}); resume it as started "
                          f"(overrides={sets}; on the command line {flags}), or train into another output folder")


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; a missing or malformed file raises :class:`ConfigError`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def bare_config(
    *,
    preset: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    model: str | None = None,
) -> Config:
    """Defaults -> ``preset`` (config sections) -> ``config_file`` -> ``model`` name -> ``overrides``
    (``['train.lr=0.01', ...]``), validated: the layering alone, without the model's own preset or any check of the
    model against its input. Not public (``envsound.config`` does not export it): a run's config is made by
    :func:`envsound.recipes.config.resolve`, which calls this with the model's preset merged in. Also used where
    ``resolve`` cannot be (an AudioSet release file's config, in ``models``, below ``recipes``) and by tests that
    want a config with exactly the keys they set."""
    config = Config()
    if preset:
        config.update(preset, source="preset")
    if config_file is not None:
        config.update(load_yaml(config_file), source=str(config_file))
    if model is not None:
        config.model.name = model
    for text in overrides:
        key, value = parse_override(text)
        config.set(key, value)
    return config.validate()


def preset_names() -> list[str]:
    """The named presets shipped in ``envsound/presets/*.yaml`` (``--preset NAME``), sorted."""
    from importlib import resources

    return sorted(p.name.removesuffix(".yaml") for p in resources.files("envsound").joinpath("presets").iterdir()
                  if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The config sections of the named preset ``name``, e.g. ``load_preset("dtu2018")["features"]["n_mels"] == 28``.

    Raises:
        ConfigError: ``name`` is not a shipped preset (the message lists the valid names).
    """
    from importlib import resources

    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(names) or 'none'}")
    with resources.as_file(resources.files("envsound").joinpath("presets", f"{name}.yaml")) as path:
        return load_yaml(path)
