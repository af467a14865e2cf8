"""The house follows the data: every import points upstream, in the order of :data:`ORDER` (the ground floor first,
the console entry point last). Checked on the source text, so a wrong-way import fails here before review.
docs/architecture.md's diagram, package table and import rules are checked against this file by
``tests/test_architecture_doc.py``: change the order here, and the doc with it."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "envsound"
ORDER = ["errors", "task", "config", "fileio", "stopping", "cores", "hardware",  # the ground floor (BASE), then the stages
         "events", "audio", "data", "features", "augment", "models", "fitting", "transfer", "training", "evaluation",
         "recipes", "inference", "deploy", "agile", "demo", "app", "cli",
         "__main__"]  # `python -m envsound`: the console entry point, above everything
BASE = {"errors", "task", "config", "fileio", "stopping", "cores", "hardware", "_version", "__init__"}
LIGHT_BASE = ["errors", "task", "config", "fileio", "stopping", "cores", "_version"]  # all the ground floor but hardware
EXTRA_FORBIDDEN = {("models", "data")}  # a model never imports a dataset
# stage -> the only stages (beside the ground floor and itself) it may import
ONLY = {"app": {"inference", "deploy", "agile"},  # the web app: what it serves, where it stores, the labels' loop
        "deploy": set()}  # a sensor (deploy.outbox, deploy.reporter) runs on the light install


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


def stages_on_disk() -> set[str]:
    """Every package and top-level module of ``envsound`` but ``__init__`` and ``_version``."""
    found = {path.stem for path in PACKAGE.glob("*.py")} | {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    return found - {"__init__", "_version"}


def test_every_package_has_its_place_in_the_order():
    assert stages_on_disk() == set(ORDER), (stages_on_disk() - set(ORDER), set(ORDER) - stages_on_disk())


def test_the_app_and_the_deployment_import_only_what_they_may():
    """The app imports only inference, the deployment and the agile loop; the deployment no stage at all (a sensor
    runs on the light install: no stage of training below it)."""
    for here, allowed in ONLY.items():
        targets = {t for path in (PACKAGE / here).rglob("*.py") for t, _ in imported_stages(path)}
        assert targets - BASE <= allowed | {here}, (here, targets - BASE)


def test_base_modules_import_no_stage():
    paths = [PACKAGE / name for name in ("errors.py", "task.py", "fileio.py", "stopping.py", "cores.py", "hardware.py")]
    for path in paths + sorted((PACKAGE / "config").glob("*.py")):
        targets = {t for t, _ in imported_stages(path)}
        assert targets <= BASE, (path.name, targets)


def test_the_ground_floor_loads_no_lightning_and_all_but_hardware_no_torch():
    """Imported, not read: ``stopping`` (SIGTERM as Ctrl-C) imported Lightning until its Lightning half moved to
    ``fitting``; ``hardware`` measures torch's devices, so it alone loads torch."""
    code = ("import sys, importlib\n"
            "for name in sys.argv[1:]:\n"
            "    importlib.import_module('envsound.' + name)\n"
            "    print(name, *sorted(m for m in ('torch', 'lightning') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code, *LIGHT_BASE, "hardware"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [*LIGHT_BASE, "hardware torch"], out


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


def test_no_stage_imports_the_top_package():
    """``envsound/__init__.py`` sits above every stage (it re-exports load_model and resolve): a stage that imported it
    for ``__version__`` made an arrow back up the layers (three did); the version lives in ``envsound._version``."""
    wrong = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in PACKAGE.rglob("*.py")
             if path != PACKAGE / "__init__.py" for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "envsound"
             or isinstance(node, ast.Import) and any(alias.name == "envsound" for alias in node.names)]
    assert not wrong, "imports of the top package envsound:\n" + "\n".join(wrong)


def test_the_version_in_pyproject_is_the_packages():
    from envsound._version import __version__

    with open(PACKAGE.parents[1] / "pyproject.toml", "rb") as handle:
        assert tomllib.load(handle)["project"]["version"] == __version__


def module_imports(path: Path) -> set[str]:
    """Every ``envsound`` module ``path`` imports, at its top or inside a function (``from envsound.x import y`` names
    ``envsound.x`` and, when that is a package, ``envsound.x.y``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name.startswith("envsound.")}


def source_of(module: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def test_inference_reaches_no_training_or_recipe():
    """Serving a model needs no training code: nothing inference imports, directly or through the modules it imports
    (lazy imports included), is in ``envsound.training`` or ``envsound.recipes``. Loading a model file goes through
    ``envsound.models.files``, which ``resolve(init=)`` (recipes) and ``--init`` (transfer) share."""
    start = [f"envsound.inference.{p.stem}" for p in (PACKAGE / "inference").glob("*.py")]
    seen, todo, via = set(start), list(start), {}
    while todo:
        module = todo.pop()
        path = source_of(module)
        for name in module_imports(path) if path else ():
            if name not in seen and source_of(name) is not None:
                seen.add(name)
                via[name] = module
                todo.append(name)
    wrong = []
    for name in sorted(seen):
        if name.split(".")[1] in ("training", "recipes"):
            chain, here = [name], name
            while here in via:
                here = via[here]
                chain.append(here)
            wrong.append(" <- ".join(chain))
    assert not wrong, "inference reaches training or recipes:\n" + "\n".join(wrong)
