"""The documentation site and its API reference build with no warnings, as `make docs` does (mkdocs.yml is strict).

A docstring griffe cannot read, a `:::` target that moved, a broken link between pages or to a file outside docs/
fails the build. A few seconds (the site builds in about 3 s on a 2-core CPU).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None,
    reason="mkdocs and mkdocstrings-python are not installed (pip install -e '.[dev]')")


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=config.parent, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_and_its_api_reference_build_with_no_warnings(tmp_path):
    built = _build(REPO / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stderr[-4000:]
    assert "WARNING" not in built.stderr, built.stderr[-4000:]
    scan_page = (tmp_path / "site" / "api" / "envsound" / "index.html").read_text()
    assert 'id="envsound.inference.scan.run.scan"' in scan_page  # shown as envsound.scan
    assert "files_from" in scan_page  # one of its parameters, from its docstring
    assert 'href="guide/python/"' in (tmp_path / "site" / "index.html").read_text()  # the README is the home page


@pytest.mark.parametrize("target, fails", [("../tools/mkdocs_hooks.py", False), ("../tools/no_such_script.py", True)])
def test_a_link_to_a_file_outside_docs_fails_the_build_only_when_the_file_is_missing(tmp_path, target, fails):
    """MkDocs calls every link out of docs/ "not found"; the hooks keep the ones whose file exists, as their text."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "mkdocs_hooks.py").write_text((REPO / "tools" / "mkdocs_hooks.py").read_text())
    (tmp_path / "README.md").write_text("# Home\n\n[the page](docs/page.md)\n")
    (tmp_path / "docs" / "page.md").write_text(f"# Page\n\nMade by [`the script`]({target}).\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\nstrict: true\nhooks: [tools/mkdocs_hooks.py]\n"
                                         "validation:\n  links:\n    not_found: warn\n")
    built = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    if fails:
        assert built.returncode != 0
        assert "links to '../tools/no_such_script.py', which does not exist" in built.stderr
    else:
        assert built.returncode == 0, built.stderr[-4000:]
        page = (tmp_path / "site" / "page" / "index.html").read_text()
        assert "<code>the script</code>" in page and "mkdocs_hooks.py" not in page
