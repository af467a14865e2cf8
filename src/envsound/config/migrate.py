"""Keys that moved or went away: config files, ``--set``, checkpoints and ONNX exports written before still load,
or fail with a line saying what to write instead."""

from __future__ import annotations

from typing import Any

from envsound.config.values import check_value, coerce_value
from envsound.errors import ConfigError

# Keys that moved (config files, --set, checkpoints and ONNX exports written before load with them): the transfer
# section (checkpoint format 3), the runtime section and the on-the-fly augmentation (format 13), the semi-supervised
# methods' own settings (format 16).
RUNTIME_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "precision", "channels_last", "num_workers")
BATCH_AUGMENT_KEYS = ("time_roll", "spec_augment", "mixup_alpha", "between_class", "bc_gain")
# Each method's own semi settings moved into its sub-section (format 16).
SEMI_METHOD_KEYS = {"fixmatch": ("threshold", "threshold_mode", "guesser"),
                    "mixmatch": ("views", "temperature", "mix_alpha"),
                    "self_training": ("rounds", "round_budget", "round_init")}
RENAMED_KEYS = {"train.freeze_encoder_epochs": "transfer.freeze_epochs",
                "train.encoder_lr_scale": "transfer.trunk_lr_scale",
                **{f"train.{key}": f"runtime.{key}" for key in RUNTIME_KEYS},
                **{f"train.{key}": f"augment.{key}" for key in BATCH_AUGMENT_KEYS},
                **{f"semi.{key}": f"semi.{method}.{key}" for method, keys in SEMI_METHOD_KEYS.items() for key in keys}}


def check_given_once(given: set[str], *, source: str) -> None:
    """Refuse a mapping that gives a key of :data:`RENAMED_KEYS` together with its new name."""
    for old in sorted(given & set(RENAMED_KEYS)):
        if RENAMED_KEYS[old] in given:
            raise ConfigError(f"{source}: {old} and {RENAMED_KEYS[old]} are the same setting (the first is its "
                              "name before); give it once")


def current_key(config: Any, dotted_key: str, value: Any, *, source: str) -> str | None:
    """The key ``dotted_key`` is called today, or ``None`` where setting it was done here:
    ``train.freeze_encoder_epochs`` N > 0 (before the transfer section) means ``transfer.mode=gradual`` with
    ``transfer.freeze_epochs=N``, and 0 what it always did (no freezing)."""
    if dotted_key == "train.freeze_encoder_epochs":
        epochs = coerce_value(value, int, dotted_key, source)
        check_value(epochs >= 0, dotted_key, epochs, ">= 0")
        if epochs > 0:
            config.set("transfer.mode", "gradual", source=source)
            config.set("transfer.freeze_epochs", epochs, source=source)
        return None
    if dotted_key == "semi.rampup_epochs":  # before checkpoint format 7; its meaning depends on train.max_epochs
        raise ConfigError(f"{source}: semi.rampup_epochs is gone: set semi.rampup, the share of the run's "
                          "optimizer steps the ramp-up takes (rampup_epochs / train.max_epochs)")
    return RENAMED_KEYS.get(dotted_key, dotted_key)


def keep_old_meanings(config: Any, given: set[str]) -> None:
    """A mapping written before checkpoint format 13 (``between_class: true`` under ``train``, no ``bc_gain``) keeps
    the RMS gain it mixed with."""
    if "train.between_class" in given and "augment.bc_gain" not in given and config.augment.between_class:
        config.augment.bc_gain = "rms"
