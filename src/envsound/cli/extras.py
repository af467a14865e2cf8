"""Which extra installs a missing module: read from the package's own metadata (pyproject.toml's
``[project.optional-dependencies]``), so a new optional dependency is named the day it is added there.

>>> extra_for("ray.data")
'cluster'
"""

from __future__ import annotations

import functools
import re
from importlib import metadata
from pathlib import Path

# Distributions whose top-level modules are not their names (normalised); audiomentations pulls in librosa at run time
MODULES = {"scikit-learn": ("sklearn",), "python-multipart": ("multipart", "python_multipart"),
           "audiomentations": ("audiomentations", "librosa"), "faiss-cpu": ("faiss",)}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def extra_for(module: str) -> str | None:
    """The extra whose packages provide ``module`` (``torch.nn`` -> ``train``, ``ray`` -> ``cluster``), or None."""
    top = module.split(".")[0]
    return next((extra for extra, modules in extras().items() if top in modules), None)


@functools.cache
def extras() -> dict[str, tuple[str, ...]]:
    """Each extra -> the top-level modules of the packages it lists itself (not those of the extras it includes),
    in pyproject.toml's order, so a module listed by two extras belongs to the first (``librosa``: ``train``, not
    ``dev``). From the installed metadata; from the source tree's pyproject.toml where envsound is not installed;
    empty where neither is found."""
    try:
        lines = metadata.requires("envsound") or []
    except metadata.PackageNotFoundError:
        lines = _requirements_from_pyproject()
    found: dict[str, list[str]] = {}
    for line in lines:
        name, extra = _NAME.match(line), _EXTRA.search(line)
        if not name or not extra:
            continue  # a core dependency
        dist = re.sub(r"[-_.]+", "-", name.group(1)).lower()
        modules = found.setdefault(extra.group(1), [])
        if dist != "envsound":  # envsound[scan]: an extra that includes another
            modules += MODULES.get(dist, (dist.replace("-", "_"),))
    return {extra: tuple(modules) for extra, modules in found.items()}


def _requirements_from_pyproject() -> list[str]:
    """The optional dependencies of the pyproject.toml beside the source tree, as metadata writes them
    (``torch==2.13.0; extra == "train"``); none where there is no such file (or no tomllib: Python 3.10)."""
    path = Path(__file__).resolve().parents[3] / "pyproject.toml"
    try:
        import tomllib

        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (ImportError, OSError, ValueError):
        return []
    if project.get("name") != "envsound":
        return []
    return [f'{spec}; extra == "{extra}"' for extra, specs in project.get("optional-dependencies", {}).items()
            for spec in specs]
