"""The commands of ``envsound``, one module each (or one a small group: train, cv and grid).

A module has ``register(command)``: ``command(name, help)`` gives it a sub-parser, to which it adds its options and
``set_defaults(run=HANDLER)``; the handler parses nothing, calls one library function and prints its result. Its
imports of the library are inside the handler, so that ``envsound --help`` stays light (no torch). A new command is
one new module and its name in :data:`MODULES`, whose order is the order ``envsound --help`` lists them in.
"""

from __future__ import annotations

from importlib import import_module
from typing import Callable


MODULES = ("training", "stages", "pretrain", "evaluate", "predict", "listen", "serve", "token", "fleet", "export",
           "embed", "search", "label", "learn", "check", "mix", "download", "demo", "datasets", "models", "config")


def register_all(command: Callable) -> None:
    """Each module of :data:`MODULES` adds its commands through ``command(name, help) -> ArgumentParser``."""
    for name in MODULES:
        import_module(f"{__name__}.{name}").register(command)
