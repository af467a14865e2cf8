"""Dataset name -> loader. A new dataset is one module with ``prepare_<name>(root, *, on_error, ...)`` and one line here.

Loaders are imported on first use, so importing this module (and ``envsound --help``) stays fast.
"""

from __future__ import annotations

import difflib

import importlib
import os
from pathlib import Path
from typing import Any, Callable

from envsound.data.records import Manifest
from envsound.data.validate import check_on_error
from envsound.errors import ConfigError, DatasetLayoutError

ENV_DATA = "ENVSOUND_DATA"


class _LazyLoader:
    """A loader imported from ``module`` on first call (``attr`` is its ``prepare_<name>`` function)."""

    def __init__(self, module: str, attr: str) -> None:
        self.module, self.attr = module, attr

    def resolve(self) -> Callable[..., Manifest]:
        return getattr(importlib.import_module(self.module), self.attr)

    def __call__(self, root: str | os.PathLike, **kwargs: Any) -> Manifest:
        return self.resolve()(root, **kwargs)

    def __repr__(self) -> str:
        return f"<loader {self.module}.{self.attr}>"


DATASETS: dict[str, _LazyLoader] = {
    "esc50": _LazyLoader("envsound.data.esc50", "prepare_esc50"),
    "esc10": _LazyLoader("envsound.data.esc50", "prepare_esc10"),
    "urbansound8k": _LazyLoader("envsound.data.urbansound8k", "prepare_urbansound8k"),
    "fsdkaggle2018": _LazyLoader("envsound.data.fsdkaggle2018", "prepare_fsdkaggle2018"),
    "fsdkaggle2019": _LazyLoader("envsound.data.fsdkaggle2019", "prepare_fsdkaggle2019"),
    "folder": _LazyLoader("envsound.data.folder", "prepare_folder"),
    "csv": _LazyLoader("envsound.data.csv_manifest", "prepare_csv"),
    "synthetic": _LazyLoader("envsound.data.synthetic", "prepare_synthetic"),
    "unlabelled": _LazyLoader("envsound.data.unlabelled", "prepare_unlabelled"),
}

# Datasets read from another dataset's folder: ESC-10 lives inside ESC-50.
_ROOT_ALIASES = {"esc10": ("esc10", "esc50")}


DOWNLOADABLE = ("esc50", "esc10", "urbansound8k", "fsdkaggle2018", "fsdkaggle2019")  # envsound download NAME

def dataset_names() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(DATASETS)


def check_dataset_name(name: str) -> str:
    """``name`` when it is a registered dataset, without importing its loader.

    Raises:
        ConfigError: an unknown ``name`` (the nearest is offered and the valid ones listed).
    """
    _loader(name)
    return name


def load_dataset(name: str, root: str | os.PathLike | None = None, *, on_error: str = "raise",
                 **options: Any) -> Manifest:
    """List dataset ``name`` under ``root`` (see :func:`dataset_root` for the default).

    Args:
        name: one of :func:`dataset_names`.
        root: the dataset folder (or CSV file for ``"csv"``); ``None`` uses the environment (see :func:`dataset_root`).
        on_error: ``"raise"`` (stop at the first missing or unreadable file) or ``"skip"`` (leave bad files out,
            counted in ``Manifest.skipped`` and logged).
        options: the loader's own keyword options, e.g. ``verified_only=True`` for ``fsdkaggle2018`` or
            ``n_folds=5`` for ``folder``.

    Raises:
        ConfigError: unknown ``name`` (lists the valid ones), bad ``on_error``, an option the loader does not take.
        DatasetLayoutError: no root given or configured, a root that does not exist, or a malformed dataset.
        AudioLoadError: bad audio with ``on_error="raise"``.

    >>> manifest = load_dataset("esc10", "data/ESC-50")
    >>> len(manifest), manifest.labels[:2]
    """
    loader = _loader(name)
    check_on_error(on_error)
    import inspect  # only when a dataset is loaded

    function = loader.resolve()
    params = inspect.signature(function).parameters
    unknown = sorted(set(options) - {p for p in params if p not in ("root", "on_error")})
    if unknown:
        valid = [p for p in params if p not in ("root", "on_error")]
        raise ConfigError(f"dataset {name!r} takes no option(s) {', '.join(unknown)}; "
                          f"its options: {', '.join(valid) or 'none'}")
    return function(dataset_root(name, root), on_error=on_error, **options)


def dataset_root(name: str, root: str | os.PathLike | None = None, *, must_exist: bool = True) -> Path:
    """Where dataset ``name`` lives: ``root`` if given, else ``$ENVSOUND_DATA_<NAME>``, else ``$ENVSOUND_DATA/<name>``.

    ESC-10 also looks for ESC-50's variables and folder (it is read from the ESC-50 tree).

    Raises:
        ConfigError: unknown ``name``.
        DatasetLayoutError: no root given and neither variable set (says to pass --root), or, with ``must_exist``,
            a root that does not exist.
    """
    _loader(name)
    names = _ROOT_ALIASES.get(name, (name,))
    if root is None:
        root = next((os.environ[_env_name(n)] for n in names if os.environ.get(_env_name(n))), None)
    if root is None and os.environ.get(ENV_DATA):
        base = Path(os.environ[ENV_DATA]).expanduser()
        root = next((base / n for n in names if (base / n).exists()), base / names[0])
    if root is None:
        raise DatasetLayoutError(f"no root folder for dataset {name!r}: pass --root PATH, or set "
                                 f"{_env_name(name)} or {ENV_DATA} (the folder holding {name}/)")
    root = Path(root).expanduser()
    if must_exist and not root.exists():
        # only the public corpora can be downloaded: your own folder or CSV cannot
        fetch = f", or run 'envsound download {name} --root {root}'" if name in DOWNLOADABLE else ""
        raise DatasetLayoutError(f"{root}: dataset root for {name!r} does not exist; check --root "
                                 f"(or {_env_name(name)} / {ENV_DATA}){fetch}")
    return root


def _env_name(name: str) -> str:
    return f"{ENV_DATA}_{name.upper()}"


def _loader(name: str) -> _LazyLoader:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        near = difflib.get_close_matches(str(name), dataset_names(), n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"unknown dataset {name!r}{hint}; valid: {', '.join(dataset_names())}") from None
