"""docs/architecture.md against the order ``tests/test_layering.py`` enforces (issue 74: the doc had left out three
packages, put event decoding in the wrong one and claimed the app imported only two stages). The doc's diagram and
package table list every package, in :data:`ORDER`; every import rule it states cites a test of test_layering.py
that exists, every such test is cited, and what a rule says a package may import is what the test allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import test_layering
from test_layering import EXTRA_FORBIDDEN, ORDER, ONLY, stages_on_disk

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
NOT_IMPORT_RULES = {"test_the_version_in_pyproject_is_the_packages"}  # in test_layering.py, about no import


def plan(text: str | None = None) -> str:
    """The doc above its ``# Details``: the diagram, the rules, the walk through a run and the package table."""
    text = DOC.read_text() if text is None else text
    return text.split("\n# Details", 1)[0]


def diagram(text: str) -> list[str]:
    block = re.search(r"```\n(.*?)```", text, re.S).group(1)
    return [name for name in re.findall(r"[\w]+", block) if name in ORDER]


def table(text: str) -> list[str]:
    return re.findall(r"^\| `envsound\.(\w+)` \|", text, re.M)


def rules(text: str) -> list[str]:
    """The bullets of the list of import rules (those that cite a ``test_...``)."""
    bullets = re.split(r"\n(?=- )", text)
    return [" ".join(b.split()) for b in bullets if re.search(r"`test_\w+`", b)]


def layering_tests() -> set[str]:
    tree = ast.parse(Path(test_layering.__file__).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def check(text: str) -> list[str]:
    """What in ``text`` (the doc) disagrees with test_layering.py, one line each."""
    text = plan(text)
    wrong = []
    if diagram(text) != ORDER:
        wrong.append(f"the diagram's order {diagram(text)} is not ORDER {ORDER}")
    if table(text) != ORDER:
        wrong.append(f"the package table's rows {table(text)} are not ORDER {ORDER}")
    missing = stages_on_disk() - set(diagram(text)) - set(table(text))
    if missing:
        wrong.append(f"packages missing from the doc: {sorted(missing)}")
    cited = set(re.findall(r"`(test_\w+)`", " ".join(rules(text))))
    if cited - layering_tests():
        wrong.append(f"rules cite tests that test_layering.py does not have: {sorted(cited - layering_tests())}")
    if layering_tests() - NOT_IMPORT_RULES - cited:
        wrong.append(f"rules enforced but not in the doc: {sorted(layering_tests() - NOT_IMPORT_RULES - cited)}")
    prose = " ".join(text.split())
    for here, allowed in re.findall(r"`(\w+)` imports only ((?:`\w+`(?:, | and )?)+)", prose):
        if set(re.findall(r"`(\w+)`", allowed)) != ONLY.get(here):
            wrong.append(f"the doc says {here} imports only {allowed}; the test allows {sorted(ONLY.get(here, ()))}")
    for here in re.findall(r"`(\w+)` imports no stage", prose):
        if ONLY.get(here) != set():
            wrong.append(f"the doc says {here} imports no stage; the test does not check it")
    for here, there in re.findall(r"`(\w+)` never imports `(\w+)`", prose):
        if (here, there) not in EXTRA_FORBIDDEN:
            wrong.append(f"the doc says {here} never imports {there}; the test does not check it")
    return wrong


def test_the_architecture_doc_agrees_with_the_layering_test():
    assert not check(DOC.read_text()), "\n".join(check(DOC.read_text()))


@pytest.mark.parametrize("edit, complaint", [
    (lambda t: t.replace("events -> audio", "audio -> events"), "the diagram's order"),
    (lambda t: re.sub(r"^\| `envsound\.agile` .*\n", "", t, flags=re.M), "the package table's rows"),
    (lambda t: t.replace("`app` imports only `inference`, `deploy`, `agile`", "`app` imports only `inference` and "
                         "`deploy`"), "the doc says app imports only"),
    (lambda t: t.replace("(`test_the_training_loop_imports_no_recipe`)", "(`test_the_loop_is_fast`)"),
     "rules cite tests"),
    (lambda t: t.replace("`test_no_stage_imports_the_top_package`", "the top package"), "rules enforced but not"),
    (lambda t: t.replace("`models` never imports\n  `data`", "`models` never imports\n  `audio`"),
     "the doc says models never imports audio"),
])
def test_a_doc_that_strays_from_the_layering_test_fails(edit, complaint):
    """The check itself: each way the doc went wrong before is caught."""
    edited = edit(DOC.read_text())
    assert edited != DOC.read_text()
    assert any(line.startswith(complaint) for line in check(edited)), check(edited)
