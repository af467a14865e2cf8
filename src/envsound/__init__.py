"""envsound: environmental sound classification.

Data flows one way: audio -> data -> features -> models -> training -> evaluation -> recipes -> inference -> cli.
Nothing is read, downloaded or configured at import time: ``import envsound`` loads neither torch nor numpy, and
``load_model`` is imported on first use.

>>> from envsound import load_model, EnvsoundError
>>> model = load_model("runs/esc50/model.ckpt")   # or a model.onnx, or efficientat-mn04
>>> from envsound import resolve                  # the config `envsound train --model piczak --shots 5` trains with
>>> config = resolve(model="piczak", shots=5)
"""

from envsound.errors import (AudioLoadError, CheckpointError, ConfigError, DatasetLayoutError, DownloadError,
                             EnvsoundError)

from envsound._version import __version__
__all__ = ["load_model", "resolve", "EnvsoundError", "AudioLoadError", "CheckpointError", "ConfigError",
           "DatasetLayoutError", "DownloadError", "__version__"]


def __getattr__(name: str):
    if name == "load_model":  # imported on first use, so that `import envsound` stays light (no torch)
        from envsound.inference.api import load_model

        return load_model
    if name == "resolve":  # likewise: it reads the model registry, which imports torch
        from envsound.recipes.config import resolve

        return resolve
    raise AttributeError(f"module 'envsound' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
