"""How a recipe runs, as opposed to what it trains: one object for the settings every recipe passes down.

``train_model``, ``cross_validate``, ``grid_search``, ``run_stages`` and ``pretrain_autoencoder`` take a
:class:`RunContext` and hand it on, so a new run setting is one field here rather than a keyword in five signatures.
"""

from __future__ import annotations

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
    >>> summary = cross_validate(manifest, Config(), out_dir="runs/cv", context=context)
    """

    cache: FeatureCache | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    on_error: str = "raise"

    def __post_init__(self) -> None:
        check_on_error(self.on_error)  # a typo fails here, not after the first clips are decoded
