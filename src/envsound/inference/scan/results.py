"""The results tables of ``scan`` (:mod:`.tables`) as a sink of the archive driver (:mod:`.driver`)."""

from __future__ import annotations

import os
from pathlib import Path

from envsound.inference.archive.engine import PART_WINDOWS, Finished
from envsound.inference.archive.journal import Journal, Stat
from envsound.inference.checked import carried_precision
from envsound.inference.file_time import Places, time_pattern
from envsound.inference.predictor import Predictor
from envsound.inference.scan.tables import TABLES, Part, rewrite_part


class ResultsSink:
    """The results tables as the archive driver (:mod:`.driver`) fills them: a :class:`~.tables.Part` at a time in
    ``fmt`` (with per-file ``event_tables``), an older part written again without some files' rows by
    :func:`~.tables.rewrite_part`. ``predictor``: the model, for its labels, calibrated precision and sample rate;
    ``roots``: the input folders (a file's site is its folder under them) and ``time_from``: where a file's name
    carries its start time (:mod:`envsound.inference.file_time`; None: the recorders' forms)."""

    tables = TABLES
    max_windows = PART_WINDOWS
    renumbers = False

    def __init__(self, out: str | os.PathLike, predictor: Predictor, *, fmt: str, top_k: int, window_scores: bool,
                 event_tables: tuple[str, ...] = (), roots: list[str | os.PathLike] = (),
                 time_from: str | None = None) -> None:
        self.out, self.fmt, self.event_tables = Path(out), fmt, event_tables
        self.predictor, self.top_k, self.window_scores = predictor, top_k, window_scores
        self.precision = carried_precision(predictor)  # check's sheets read once, when the run starts
        self.places = Places(list(roots), time_pattern(time_from))
        self.part = self._new_part()

    def _new_part(self) -> Part:
        return Part(labels=self.predictor.labels, top_k=self.top_k, window_scores=self.window_scores,
                    precision=self.precision, where=self.places,
                    learned=self.predictor.learned, rejects=self.predictor.rejects)

    @property
    def finished(self) -> list[tuple[str, bool, float]]:
        return self.part.finished

    def start(self, journal: Journal) -> None:
        pass  # a part's rows need nothing of the parts before it

    def add(self, finished: Finished, stat: Stat | None) -> None:
        if finished.error is not None:
            self.part.add_error(finished.name, finished.error)
        else:
            self.part.add(finished.prediction, finished.window_probs, stat=stat)

    def windows(self) -> int:
        return self.part.rows("windows")

    def size(self) -> int:
        return self.part.size(self.fmt)

    def write(self, number: int, stale: list[int]) -> None:
        self.part.write(self.out, number, self.fmt)
        if self.event_tables:
            self.part.write_event_tables(self.out, self.event_tables,
                                         high_hz=self.predictor.features.sample_rate / 2)

    def rewrite(self, old: int, new: int, drop: set[str]) -> bool:
        return rewrite_part(self.out, old, new, self.fmt, drop)

    def committed(self) -> None:
        self.part = self._new_part()
