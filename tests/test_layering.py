"""The house follows the data: every import points upstream (audio -> data -> features -> augment -> models ->
transfer -> training -> evaluation -> recipes -> inference -> demo/app/cli). Checked on the source text, so a
wrong-way import fails here before review."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "envsound"
ORDER = ["errors", "task", "config", "fileio", "hardware", "audio", "data", "features", "augment", "models", "transfer",
         "training", "evaluation", "recipes", "inference", "demo", "app", "cli",
         "__main__"]  # `python -m envsound`: the console entry point, above everything
BASE = {"errors", "task", "config", "fileio", "hardware", "__init__"}
EXTRA_FORBIDDEN = {("models", "data")}  # a model never imports a dataset


def stage(module_path: Path) -> str:
    part = module_path.relative_to(PACKAGE).parts[0]
    return part.removesuffix(".py")


def imported_stages(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "envsound" and len(parts) > 1:
                yield parts[1], node.lineno


def test_imports_flow_one_way():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        here = stage(path)
        if here in BASE:
            continue
        for target, line in imported_stages(path):
            if target in BASE:
                continue
            if ORDER.index(target) > ORDER.index(here) or (here, target) in EXTRA_FORBIDDEN:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports envsound.{target}")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_the_app_imports_only_inference():
    targets = {t for path in (PACKAGE / "app").rglob("*.py") for t, _ in imported_stages(path)}
    assert targets - BASE <= {"inference", "app"}, targets


def test_base_modules_import_no_stage():
    paths = [PACKAGE / name for name in ("errors.py", "task.py", "fileio.py", "hardware.py")]
    for path in paths + sorted((PACKAGE / "config").glob("*.py")):
        targets = {t for t, _ in imported_stages(path)}
        assert targets <= BASE, (path.name, targets)


def test_the_training_loop_imports_no_recipe():
    """Recipes (train, ensembles, pretraining, semi-supervised) sit on the loop; one with a module of its own hands its
    class to fit_network, which used to import the semi-supervised module itself."""
    wrong = []
    for path in (PACKAGE / "training" / "loop").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]  # from envsound.training import semi
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["envsound", "training"] and len(parts) > 2 and parts[2] != "loop":
                    wrong.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name}")
    assert not wrong, "\n".join(wrong)
