"""The three rooms of an archive's run import one way: ``inference.archive`` (the driver and its engines, journal,
options) imports neither of its users; ``inference.embeddings`` (the store) imports the archive, never the scan;
``inference.scan`` (results tables, ranking a store) imports both. The old paths of the moved modules still import,
with a DeprecationWarning; the public names do not warn."""

import ast
import importlib
import warnings
from pathlib import Path

import pytest

INFERENCE = Path(__file__).resolve().parents[2] / "src" / "envsound" / "inference"
FORBIDDEN = {"archive": ("envsound.inference.scan", "envsound.inference.embeddings"),
             "embeddings": ("envsound.inference.scan",)}


def shim_target(path: Path) -> str | None:
    """The new module a module left at an old path points to (``__getattr__ = moved_to(__name__, NEW)``), or None."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "moved_to":
            return node.args[1].value
    return None


def imported_modules(path: Path):
    """Every module ``path`` imports, at its top or inside a function, as a dotted name (``from X import y``: both
    ``X`` and ``X.y``, so ``from envsound.inference import scan`` counts)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved from the module's package
                package = path.relative_to(INFERENCE.parents[1]).with_suffix("").parts[:-node.level]
                base = ".".join([*package, *filter(None, [node.module])])
            yield base, node.lineno
            yield from ((f"{base}.{alias.name}", node.lineno) for alias in node.names)


def test_the_rooms_import_one_way():
    wrong = []
    for room, forbidden in FORBIDDEN.items():
        for path in sorted((INFERENCE / room).glob("*.py")):
            if shim_target(path):
                continue
            wrong += [f"{room}/{path.name}:{line} imports {name}" for name, line in imported_modules(path)
                      if name.startswith(forbidden)]
    assert not wrong, "the archive imports neither user, the store never the scan:\n" + "\n".join(wrong)


SHIMS = sorted(f"envsound.inference.{path.parent.name}.{path.stem}" for room in ("scan", "embeddings")
               for path in (INFERENCE / room).glob("*.py") if shim_target(path))


def test_every_moved_module_has_its_old_path():
    born_here = {"__init__", "frozen_copy"}  # written in the archive after the move (issue 75): no old path
    moved = {f"envsound.inference.scan.{path.stem}" for path in (INFERENCE / "archive").glob("*.py")
             if path.stem not in born_here}
    assert set(SHIMS) == moved | {"envsound.inference.embeddings.rank"}


@pytest.mark.parametrize("old", SHIMS)
def test_an_old_path_gives_the_moved_names_with_a_warning(old):
    new = shim_target(INFERENCE / old.split(".")[2] / f"{old.split('.')[3]}.py")
    module = importlib.import_module(new)
    public = [name for name, value in vars(module).items()
              if not name.startswith("_") and getattr(value, "__module__", None) == new]
    assert public, new
    shim = importlib.import_module(old)
    for name in public:
        with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*import {name} from {new}"):
            assert getattr(shim, name) is getattr(module, name)
    with pytest.raises(AttributeError):
        shim.no_such_name  # noqa: B018


def test_the_public_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        import envsound
        from envsound.inference import embeddings, scan

        for name in scan.__all__:
            getattr(scan, name)
        for name in embeddings.__all__:
            getattr(embeddings, name)
        for name in ("scan", "ScanOptions", "ScanSummary", "Tables", "embed", "embed_archive", "search"):
            getattr(envsound, name)
