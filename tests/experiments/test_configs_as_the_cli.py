"""Experiments and benchmarks build their configs as the CLI does, with ``resolve()`` (the model's own preset
included), never with the bare layering under it (issue 55)."""

import importlib.util
import re
from pathlib import Path

from envsound.cli.main import build_parser
from envsound.cli.options import build_config

REPO = Path(__file__).resolve().parents[2]


def test_experiments_and_benchmarks_build_their_configs_with_resolve():
    bare = re.compile(r"\b(resolve_config|bare_config)\b|envsound\.config\.files")
    scripts = sorted([*REPO.glob("experiments/*.py"), *REPO.glob("benchmarks/*.py")])
    assert scripts
    calls = [f"{path.relative_to(REPO)}:{n}" for path in scripts
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if bare.search(line)]
    assert calls == []


def test_noisy_stages_builds_the_config_envsound_stages_builds(tmp_path):
    """It skipped the model's preset: piczak's runs had 128 mel bands, `envsound stages --model piczak` 60."""
    spec = importlib.util.spec_from_file_location("noisy_stages", REPO / "experiments" / "noisy_stages.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    sets = ["stages.warmup_on=all", "stages.tune_lr_scale=0.2"]
    args = build_parser().parse_args(["stages", "--dataset", "fsdkaggle2019", "--root", str(tmp_path), "--out",
                                      str(tmp_path / "out"), "--model", "piczak", "--set", "stages.warmup_epochs=18",
                                      *(a for s in sets for a in ("--set", s))])
    config = script.stage_config("piczak", ["warmup=18"], sets)
    assert config == build_config(args)
    assert config.features.n_mels == 60 and config.stages.warmup_epochs == 18
