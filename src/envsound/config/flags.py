"""The command-line flags that stand for a config key: one table, from which the CLI builds those options and which
:func:`envsound.recipes.config.resolve` takes as keywords (``resolve(shots=5)`` is ``envsound train --shots 5``), so
a request made either way gives the same config. Everything else is ``--set section.key=value``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsound.config.sections import SEMI_METHODS, TRANSFER_MODES


@dataclass(frozen=True)
class Flag:
    option: str  # the CLI spelling, e.g. "--shots"; its keyword in resolve() is the same without dashes
    key: str  # the config key it sets
    group: str  # the CLI option group it is listed in: "training", "transfer" or "semi"
    help: str
    metavar: str | None = None
    type: Any = None  # None: a switch (store_true) that sets the key to true
    choices: tuple[str, ...] | None = None

    @property
    def keyword(self) -> str:
        return self.option.removeprefix("--").replace("-", "_")

    def override(self, value: Any) -> str | None:
        """``key=value`` for the value given, or ``None`` for a flag not given (``None``, or a switch left off)."""
        if value is None or value is False:
            return None
        return f"{self.key}={'true' if value is True else value}"


FLAGS: tuple[Flag, ...] = (
    Flag("--devices", "runtime.devices", "training", metavar="N", type=int,
         help="train on N processes (CPU) or N GPUs, data-parallel through Lightning (train and pretrain)"),
    Flag("--allow-overlap", "leakage.allow_overlap", "training",
         help="use background or unlabelled audio even where it sounds like a validation or test clip (the overlaps "
              "are still listed in a warning)"),
    Flag("--transfer", "transfer.mode", "transfer", choices=TRANSFER_MODES, type=str,
         help="how to train from --init: full (everything trains), gradual (trunk frozen for transfer.freeze_epochs, "
              "then trained), probe (logistic regression on the frozen trunk's embeddings), probe_full (the probe's "
              "head, then full); auto: the best measured (docs/guide/transfer.md)"),
    Flag("--label-map", "transfer.label_map", "transfer", metavar="FILE.csv", type=Path,
         help="two columns source,target: source classes whose head rows start the target classes (default: classes "
              "with the same name)"),
    Flag("--freeze-encoder-epochs", "train.freeze_encoder_epochs", "transfer", metavar="N", type=int,
         help="older spelling of --transfer gradual --set transfer.freeze_epochs=N"),
    Flag("--shots", "train.shots", "semi", metavar="K", type=int,
         help="keep K labelled clips per class of the training folds, grouped by source and chosen from train.seed "
              "(excludes --label-fraction); the rest become unlabelled data"),
    Flag("--label-fraction", "train.label_fraction", "semi", metavar="P", type=float,
         help="keep a stratified share P (0 < P <= 1) of the training clips labelled, grouped by source and chosen "
              "from train.seed; the rest become unlabelled data. Such a run, with --semi or without, makes at least "
              "train.min_steps (1,500) optimizer steps"),
    Flag("--semi", "semi.method", "semi", choices=SEMI_METHODS, type=str,
         help="semi-supervised method (its settings are semi.*, see 'envsound config')"),
)
FLAG_KEYWORDS = {flag.keyword: flag for flag in FLAGS}


def flag_overrides(values: dict[str, Any]) -> list[str]:
    """The ``key=value`` overrides of the flags in ``values`` (``{keyword: value}``), in table order."""
    return [text for flag in FLAGS if (text := flag.override(values.get(flag.keyword))) is not None]
