"""The old path of a module that moved keeps working for a release: a module left at the old path sets
``__getattr__ = moved_to(__name__, NEW)``, and each name read through it is the new module's, with a
DeprecationWarning that says where it lives now."""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def moved_to(old: str, new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for the module ``old`` that moved to ``new``: ``name`` is ``new``'s, read
    with a DeprecationWarning at the line that asked for it (``from OLD import name`` or ``OLD.name``).

    Raises:
        AttributeError: ``new`` has no ``name``, or ``name`` is a dunder (``__path__``, ``__all__`` ...: what tools
            probe for, which the old module does not pretend to have).
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(new), name)  # AttributeError as the new module raises it
        warnings.warn(f"{old} is deprecated and goes after the next release: import {name} from {new}",
                      DeprecationWarning, stacklevel=2)
        return value

    return __getattr__
