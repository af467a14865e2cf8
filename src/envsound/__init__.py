"""envsound: environmental sound classification.

Data flows one way: audio -> data -> features -> models -> training -> evaluation -> inference -> cli.
Nothing is read, downloaded or configured at import time.
"""

__version__ = "0.1.0"
__all__ = ["load_model", "__version__"]


def __getattr__(name: str):
    if name == "load_model":  # imported on first use, so that `import envsound` stays light (no torch)
        from envsound.inference.api import load_model

        return load_model
    raise AttributeError(f"module 'envsound' has no attribute {name!r}")
