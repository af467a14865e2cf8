"""A missing optional dependency is named with the extra that installs it, read from the package's own metadata,
and the CLI's choices are the library's constants (no second list to forget)."""

from importlib import metadata

import pytest

from envsound.cli import extras
from envsound.cli.commands import models
from envsound.cli.extras import extra_for

# every optional dependency the CLI or the server imports, by the extra pyproject.toml lists it in
NEEDED = {"torch": "train", "torch.nn": "train", "sklearn": "train", "librosa": "train", "pandas": "train",
          "fastapi": "serve", "multipart": "serve", "sqlalchemy": "serve", "alembic": "serve", "psycopg": "serve",
          "websockets": "serve", "pyarrow": "scan", "ray": "cluster", "ray.data": "cluster", "onnxscript": "export"}


@pytest.fixture
def fresh_extras():
    extras.extras.cache_clear()
    yield
    extras.extras.cache_clear()


def test_every_extra_is_named_from_the_metadata(fresh_extras):
    # the table written by hand named none of sqlalchemy, alembic, psycopg, websockets, pyarrow or ray
    assert {module: extra_for(module) for module in NEEDED} == NEEDED
    assert extra_for("numpy") is None and extra_for("envsound") is None


def test_without_installed_metadata_pyproject_toml_says(fresh_extras, monkeypatch):
    pytest.importorskip("tomllib")  # Python 3.11+; on 3.10 an uninstalled tree names no extra

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "requires", not_installed)
    assert {module: extra_for(module) for module in NEEDED} == NEEDED


def test_a_missing_ray_names_the_cluster_extra(monkeypatch, envsound_main):
    def needs_ray(args):
        raise ModuleNotFoundError("No module named 'ray'", name="ray")

    monkeypatch.setattr(models, "models", needs_ray)
    ran = envsound_main("models")
    assert ran.returncode == 1 and ran.stderr.strip() == (
        "envsound models: error: this needs ray, which comes with the 'cluster' extra: pip install "
        "'envsound[cluster]'"), ran.stderr


def test_the_choices_are_the_library_constants():
    import argparse

    from envsound.audio.stream import ENCODINGS
    from envsound.cli.main import build_parser
    from envsound.config.sections import ACCELERATORS, PRECISIONS
    from envsound.deploy.tokens import ROLES
    from envsound.inference.scan import ENGINES
    from envsound.inference.scan.tables import FORMATS

    parser = build_parser()
    commands_ = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    def choices(command, flag):
        return list(next(a for a in commands_[command]._actions if flag in a.option_strings).choices)

    assert choices("predict", "--format") == list(FORMATS)
    assert choices("predict", "--engine") == list(ENGINES)
    assert choices("predict", "--device") == list(ACCELERATORS)
    assert choices("predict", "--precision") == list(PRECISIONS)
    assert choices("listen", "--encoding") == list(ENCODINGS)
    assert choices("token", "--role") == list(ROLES)
