"""How an archive run goes (:class:`ScanOptions`) and what it did (:class:`ScanSummary`), shared by ``scan``
(:mod:`.run`) and the embeddings store (:mod:`envsound.inference.embeddings.archive`), both of which run on the one
archive driver (:mod:`.driver`); and their old keywords, still taken for a release."""

from __future__ import annotations

import difflib
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from envsound.errors import ConfigError
from envsound.inference.archive.engine import FILE_TIMEOUT, PART_FILES


@dataclass
class ScanSummary:
    """What a scan did: ``files`` classified or failed in this run (``failed`` of them; ``changed`` of them done by
    an earlier run but changed since, so classified again), ``skipped`` as already done (or named twice),
    ``audio_seconds`` classified, ``wall_seconds`` of run time; ``total_files`` and ``total_failed`` over the whole
    results folder."""

    out: str
    files: int = 0
    failed: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    total_files: int = 0
    total_failed: int = 0
    startup_seconds: float = 0.0
    settings: dict = field(default_factory=dict)
    changed: int = 0

    @property
    def seconds(self) -> float:
        """Deprecated name of :attr:`audio_seconds` (it read as run time beside ``RunResult.metrics["seconds"]``)."""
        return self.audio_seconds

    @property
    def real_time_factor(self) -> float:
        """Seconds of audio classified per second of wall time."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def line(self) -> str:
        """The last line a scan prints."""
        return self._line(f"{self.files} files ({self.audio_seconds / 3600:.2f} h of audio) in "
                          f"{self.wall_seconds:.1f} s, {self.real_time_factor:.0f}x real time",
                          done="classified", where=f"results in {self.out}")

    def _line(self, head: str, *, done: str, where: str) -> str:
        """``head``, the failed, changed (``done`` again) and skipped files, ``where`` the rows are, the errors."""
        text = f"{head}; {self.failed} failed"
        if self.changed:
            text += f"; {self.changed} changed since the last run, {done} again"
        if self.skipped:
            text += f"; {self.skipped} already done"
        text += f"; {where}"
        if self.total_failed:
            text += f" ({self.total_failed} failed files listed in {Path(self.out) / 'errors'})"
        return text

    def to_dict(self) -> dict:
        return {**asdict(self), "real_time_factor": self.real_time_factor}


@dataclass(frozen=True)
class ScanOptions:
    """How a scan runs: where, how fast and what it shows, never which rows it writes (``precision`` excepted: it
    is part of a results folder's settings).

    Args:
        engine: ``local`` or ``ray`` (a Ray cluster at ``address``: ``auto``, ``host:port``, ``ray://...``; default
            ``RAY_ADDRESS``, else a Ray instance started for the job); either engine resumes the other's folder.
        workers: decoding processes (default: :func:`~envsound.inference.archive.engine.default_workers`), >= 1.
        batch_size: windows a forward (default :func:`~envsound.inference.archive.engine.default_batch_size`), >= 1.
        device: ``auto``, ``cpu``, ``cuda``, ``mps``, as
            :meth:`Predictor.from_checkpoint <envsound.inference.predictor.Predictor.from_checkpoint>` takes it.
        precision: ``auto`` (chosen for the machine) or as ``runtime.precision``.
        progress: a progress bar (a terminal) or a log line every few seconds.
        part_files: commit a part of the tables every this many files, or sooner (every 5 s at first, then every 5 %
            of the run's time, at most every 2 minutes): what a crash can lose.
        file_timeout: seconds a decoding worker may go without progress on one file (no data read, no CPU time, no
            windows sent) before it is ended and the file becomes an error row (a stalled network mount); a long
            file that keeps being read never trips it. Default 300, far above a spun-down disk waking or an NFS
            retransmission; ``None`` or 0: no limit. Either engine (Ray's decoding tasks go on to their next file).
    """

    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True
    part_files: int = PART_FILES
    file_timeout: float | None = FILE_TIMEOUT


def with_legacy(caller: str, values: dict[str, Any], legacy: dict[str, Any], *, also: tuple[str, ...] = ()) -> dict:
    """``values`` (keyword -> a frozen dataclass, e.g. ``{"options": ScanOptions()}``) with the fields ``legacy``
    names (the caller's old keywords, ``workers=2`` ...) replaced in the value holding each, and a DeprecationWarning.
    ``also``: the caller's other keywords, offered for a misspelt one.

    Raises:
        ConfigError: an unknown keyword, the nearest name offered.
    """
    if not legacy:
        return values
    holder = {f.name: keyword for keyword, value in values.items() for f in fields(value)}
    unknown = sorted(set(legacy) - set(holder))
    if unknown:
        near = difflib.get_close_matches(unknown[0], [*also, *values, *holder], n=1)
        hint = f" (did you mean {near[0]}=?)" if near else ""
        takes = [*also, *(f"{keyword}={type(value).__name__}(...) ({', '.join(f.name for f in fields(value))})"
                          for keyword, value in values.items())]
        raise ConfigError(f"{caller}(): unknown keyword {unknown[0]!r}{hint}; it takes {', '.join(takes[:-1])} and "
                          f"{takes[-1]}")
    given = " and ".join(f"{keyword}={type(value).__name__}(...)" for keyword, value in values.items())
    warnings.warn(f"{caller}({', '.join(f'{key}=' for key in legacy)}): give them as {given}; the keywords go in a "
                  "later release", DeprecationWarning, stacklevel=3)
    return {keyword: replace(value, **{key: v for key, v in legacy.items() if holder[key] == keyword})
            for keyword, value in values.items()}
