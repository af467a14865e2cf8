"""Archives at scale: ``envsound predict MODEL INPUTS... --out DIR`` and :func:`envsound.scan`."""

from envsound.inference.scan.run import ScanSummary, scan

__all__ = ["ScanSummary", "scan"]
