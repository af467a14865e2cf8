"""The package version, in a module of its own so that any stage can read it without importing the top package
(``envsound/__init__.py``), which sits above every stage. pyproject.toml's ``version`` says the same
(tests/test_layering.py checks that they agree)."""

__version__ = "0.1.0"
