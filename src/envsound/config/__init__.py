"""Typed configuration: dataclasses, set by YAML files and ``--set section.key=value`` overrides.

The package: :mod:`.sections` (one dataclass per section: fields, defaults, range checks), :mod:`.schema` (the whole
:class:`Config` and the ``--set`` text it takes), :mod:`.migrate` (keys that moved or went away), :mod:`.files`
(YAML, presets, the copy beside every run), :mod:`.values` (one value checked and coerced), :mod:`.flags` (the
command-line flags that stand for keys). Unknown sections or keys are a :class:`~envsound.errors.ConfigError`. The
resolved config is saved next to every run and inside every checkpoint, so a checkpoint loads with no flags retyped.

What a run trains with is made in one place, :func:`envsound.recipes.config.resolve` (also ``envsound.resolve``):
defaults -> the model's preset -> an ``init`` checkpoint's features and model -> a named preset -> a YAML file ->
the model name -> ``--set`` overrides -> flags. The layering under it (``files.bare_config``: no model preset, no
check of the model against its input) is not exported: a config made without ``resolve`` is not one the CLI would
build. :meth:`Config.with_overrides` gives a copy of a config with ``--set`` overrides on top.
"""

from envsound.config.files import check_same_input, load_preset, load_yaml, preset_names, write_config
from envsound.config.migrate import BATCH_AUGMENT_KEYS, RENAMED_KEYS, RUNTIME_KEYS
from envsound.config.schema import Config, parse_override
from envsound.config.sections import (ACCELERATORS, FRONTENDS, NOISY_LOSSES, OFFLINE_TRANSFORMS, PRECISIONS,
                                      SEMI_METHODS, STAGE_SEMI, SWITCHES, TRANSFER_MODES, WARMUP_SETS, AugmentConfig,
                                      EventsConfig, FeatureConfig, LeakageConfig, ModelConfig, NoisyConfig,
                                      RuntimeConfig, SemiConfig, StagesConfig, TrainConfig, TransferConfig)

__all__ = ["ACCELERATORS", "BATCH_AUGMENT_KEYS", "FRONTENDS", "NOISY_LOSSES", "OFFLINE_TRANSFORMS", "PRECISIONS",
           "RENAMED_KEYS", "RUNTIME_KEYS", "SEMI_METHODS", "STAGE_SEMI", "SWITCHES", "TRANSFER_MODES", "WARMUP_SETS",
           "AugmentConfig", "Config", "EventsConfig", "FeatureConfig", "LeakageConfig", "ModelConfig", "NoisyConfig",
           "RuntimeConfig", "SemiConfig", "StagesConfig", "TrainConfig", "TransferConfig", "check_same_input",
           "load_preset", "load_yaml", "parse_override", "preset_names", "write_config"]
