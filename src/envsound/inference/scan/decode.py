"""Moved to :mod:`envsound.inference.archive.decode`: this path still works for a release, with a
DeprecationWarning."""

from envsound.inference.moved import moved_to

__getattr__ = moved_to(__name__, "envsound.inference.archive.decode")
