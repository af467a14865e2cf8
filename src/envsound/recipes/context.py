"""How a recipe runs, as opposed to what it trains: one object for the settings every recipe passes down.

``train_model``, ``run_cv``, ``grid_search``, ``run_stages`` and ``pretrain_autoencoder`` take a
:class:`RunContext` and hand it on, so a new run setting is one field here rather than a keyword in five signatures.
:class:`RunOptions` is its face in the Python API (``envsound.train(..., options=RunOptions(resume=True))``): a
cache folder rather than a cache object, and no ``on_error`` (the dataset's ``skip_bad`` says that).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from envsound.data.validate import check_on_error
from envsound.features.cache import FeatureCache


@dataclass(frozen=True)  # frozen: one instance is the default of every recipe, and recipes pass it on unchanged
class RunContext:
    """Where features are cached, what to do with an existing run folder, progress bars and bad audio.

    Args:
        cache: feature cache, or ``None`` to compute features afresh.
        resume: continue an interrupted run in the same folder (finished parts are reused).
        overwrite: replace a finished model already in the run folder.
        progress: show progress bars.
        on_error: ``"raise"`` (stop at the first unusable audio file) or ``"skip"`` (leave it out, counted).

    Raises:
        ConfigError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.

    >>> context = RunContext(cache=FeatureCache(), on_error="skip")
    >>> summary = run_cv(manifest, Config(), out_dir="runs/cv", context=context)
    """

    cache: FeatureCache | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    on_error: str = "raise"

    def __post_init__(self) -> None:
        check_on_error(self.on_error)  # a typo fails here, not after the first clips are decoded


@dataclass(frozen=True)
class RunOptions:
    """How :func:`envsound.train`, :func:`envsound.cross_validate` and :func:`envsound.evaluate` run, besides what
    they train: the feature cache, an existing run folder, progress bars.

    Args:
        cache: ``True``: cache features in ``$ENVSOUND_CACHE`` (default ``~/.cache/envsound/features``); a folder:
            cache them there; ``False``: compute them afresh.
        resume: continue an interrupted run in the same ``out`` (finished parts are reused).
        overwrite: replace a finished model already in ``out``.
        progress: show progress bars (on stderr).

    >>> envsound.train(data, out="runs/mine", options=envsound.RunOptions(resume=True, progress=True))
    """

    cache: bool | str | os.PathLike = True
    resume: bool = False
    overwrite: bool = False
    progress: bool = False

    def context(self, *, on_error: str = "raise") -> RunContext:
        """The :class:`RunContext` a recipe takes, with ``on_error`` (the dataset's)."""
        cache = None
        if self.cache is not False and self.cache is not None:
            cache = FeatureCache(None if self.cache is True else self.cache)
        return RunContext(cache=cache, resume=self.resume, overwrite=self.overwrite, progress=self.progress,
                          on_error=on_error)
