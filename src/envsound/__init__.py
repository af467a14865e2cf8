"""envsound: environmental sound classification.

Data flows one way through the packages, in the order docs/architecture.md draws (tests/test_layering.py checks it).
Nothing is read, downloaded or configured at import time: ``import envsound`` loads neither torch nor numpy; the
functions below are imported on first use.

>>> import envsound
>>> data = envsound.dataset("folder", root="my_sounds")  # a value: nothing is read until a run needs the clips
>>> envsound.cross_validate(data, init="efficientat-mn04", out="runs/cv").metrics
>>> run = envsound.train(data, init="efficientat-mn04", out="runs/mine")
>>> envsound.evaluate(run.model_path, envsound.dataset("folder", root="new_sounds")).metrics["accuracy"]
>>> model = envsound.load_model(run.model_path)   # or a model.onnx, or efficientat-mn04
>>> model.predict("new_recording.wav", top_k=3).top
>>> envsound.scan(run.model_path, ["archive/"], out="scan").line()  # an archive into a results folder, resumable
>>> config = envsound.resolve(model="piczak", shots=5)  # the config `envsound train --model piczak --shots 5` uses
"""

from envsound._version import __version__
from envsound.errors import (AudioLoadError, CheckpointError, ConfigError, DatasetLayoutError, DownloadError,
                             EnvsoundError)

# name -> the module that defines it, imported on first use (torch and the registries load then, not at import)
_LAZY = {"load_model": "envsound.inference.api", "resolve": "envsound.recipes.config",
         "dataset": "envsound.recipes.dataset", "Dataset": "envsound.recipes.dataset",
         "train": "envsound.recipes.api", "cross_validate": "envsound.recipes.api", "evaluate": "envsound.recipes.api",
         "RunOptions": "envsound.recipes.context", "RunResult": "envsound.recipes.api",
         "scan": "envsound.inference.scan", "ScanSummary": "envsound.inference.scan",
         "Tables": "envsound.inference.scan", "ScanOptions": "envsound.inference.scan"}
_LAZY.update({"embed": "envsound.inference.embeddings", "embed_archive": "envsound.inference.embeddings",
              "search": "envsound.inference.embeddings"})
_LAZY.update({"label": "envsound.agile.labels"})
_LAZY.update({"learn": "envsound.agile.learn", "LearnResult": "envsound.agile.learn"})
_LAZY.update({"check": "envsound.agile.check", "CheckResult": "envsound.agile.check"})
__all__ = [*_LAZY, "EnvsoundError", "AudioLoadError", "CheckpointError", "ConfigError", "DatasetLayoutError",
           "DownloadError", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'envsound' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
