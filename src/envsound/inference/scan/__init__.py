"""Archives at scale: ``envsound predict MODEL INPUTS... --out DIR`` and :func:`envsound.scan`, on the one archive
driver (:mod:`.driver`) that the embeddings store runs on too."""

from envsound.inference.scan.engines import ENGINES

__all__ = ["ENGINES", "ScanOptions", "ScanSummary", "Tables", "scan"]


def __getattr__(name: str):
    # imported on first use: the scan loads torch, and the CLI's parser reads ENGINES and tables.FORMATS without it
    if name in ("ScanOptions", "ScanSummary", "Tables", "scan"):
        from envsound.inference.scan import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
