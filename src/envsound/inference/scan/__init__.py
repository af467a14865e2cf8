"""Archives at scale: ``envsound predict MODEL INPUTS... --out DIR`` and :func:`envsound.scan`, on the one archive
driver (:mod:`envsound.inference.archive`) that the embeddings store runs on too: the results tables (:mod:`.tables`,
:mod:`.results`) and the ranking of an embeddings store (:mod:`.rank`). The archive machinery's old paths here
(``envsound.inference.scan.journal`` ...) still import, with a DeprecationWarning."""

from envsound.inference.archive.engines import ENGINES

__all__ = ["ENGINES", "ScanOptions", "ScanSummary", "Tables", "scan"]


def __getattr__(name: str):
    # imported on first use: the scan loads torch, and the CLI's parser reads ENGINES and tables.FORMATS without it
    if name in ("ScanOptions", "ScanSummary", "Tables", "scan"):
        from envsound.inference.scan import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
