"""docs/cli.md and docs/config.md are generated from the code (envsound.cli.reference); these fail when they are stale."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from envsound.cli.reference import cli_markdown, config_markdown, field_comments

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = "regenerate them: python -m envsound.cli.reference docs/"


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="argparse's layout differs between Python versions")
def test_the_command_line_reference_is_current():
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == cli_markdown(), REGENERATE


def test_the_config_reference_is_current_and_lists_every_key():
    text = config_markdown()
    assert (DOCS / "config.md").read_text(encoding="utf-8") == text, REGENERATE
    assert "| `features.frontend` | `str` | `'envsound'` | how a log-mel is computed" in text
    assert "| `transfer.mode` |" in text and "probe_full" in text


def test_field_comments_take_the_comment_beside_and_above_a_field():
    from envsound.config import FeatureConfig

    comments = field_comments(FeatureConfig)
    assert comments["sample_rate"] == "Hz, 4000..192000"
    assert comments["eval_crops"].startswith("N > 0: N windows evenly spaced")
