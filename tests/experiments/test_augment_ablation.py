"""experiments/augment_ablation.py: every row is a valid configuration that switches on what its name says."""

import importlib.util
import sys
from pathlib import Path

import pytest

from envsound.recipes.config import resolve

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "augment_ablation.py"
OFFLINE = ("pitch_shift", "time_stretch", "gain", "noise", "background", "shift")


def _rows() -> dict[str, list[str]]:
    if str(SCRIPT.parent) not in sys.path:  # the script imports its sibling esc10_cv, as when run from experiments/
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("augment_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ROWS


def _switched_on(overrides: list[str]) -> set[str]:
    config = resolve(overrides=overrides)  # as `envsound cv --set ...` makes it
    on = {name for name in OFFLINE if config.augment.copies > 0 and getattr(config.augment, name) > 0}
    aug = config.augment
    on |= {name for name, active in (("time_roll", aug.time_roll), ("spec_augment", aug.spec_augment),
                                      ("mixup", aug.mixup_alpha > 0)) if active}
    return on


@pytest.mark.parametrize("row", [r for r in _rows() if r not in ("none", "all")])
def test_an_alone_row_switches_on_exactly_its_augmentation(row):
    assert _switched_on(_rows()[row]) == {row}


def test_none_is_no_augmentation_and_all_is_the_default():
    rows = _rows()
    assert _switched_on(rows["none"]) == set()
    assert rows["all"] == [] and {"pitch_shift", "time_stretch", "gain", "time_roll", "spec_augment",
                                  "mixup"} <= _switched_on([])
