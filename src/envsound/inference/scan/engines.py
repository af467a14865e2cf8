"""The names of the scan engines, in a module of their own: the CLI's parser reads them without loading the scan
(which loads torch), and the scan imports them without importing its own package's ``__init__``."""

ENGINES = ("local", "ray")
"""Where a scan runs: ``local`` (:class:`~envsound.inference.scan.engine.LocalEngine`, this machine), ``ray``
(:class:`~envsound.inference.scan.ray_engine.RayEngine`, a Ray cluster)."""
