"""The loop behind the page's Review view (``envsound serve DB``): the candidates of a label to review next, a verdict
given on one, the counts toward the next round, a learning round, and a window's sound and picture.

Where candidates come from, in this order: the suggestions of the label's last learning round (:meth:`Review.learn`:
:func:`envsound.agile.learn.learn` into ``DB/learned/<label>/``, the least certain windows spread over files, each with
the learned head's score); the windows found by an example (:meth:`Review.search`: an audio file or a window of the
store, :func:`envsound.inference.embeddings.search.search`, each with its cosine similarity); when those run out, the
windows most like the label's ``yes`` windows (their stored embeddings, no model run). A label with no ``yes`` and no
candidates left needs an example first. Windows already reviewed for the label are never candidates.

A round is :data:`ROUND` verdicts: the counts say how many were given since the label was last learned (by anyone,
from the labels store, so two pages or a restarted server agree) and how many are left to the next round.

What a request reads (a store of ten million windows answers in milliseconds): a label's verdicts are read from the
labels store once and kept; each request asks the store one indexed question (:meth:`Labels.mark
<envsound.deploy.labels.Labels.mark>`: how many verdicts of the label, the highest id) and reads only the verdicts
stored since, by this server or another reviewer's (PostgreSQL). A window's ``file``, ``start`` and ``end`` come from
the candidates already offered, else from the one part of ``windows/`` that holds it (its row group, ``file``
dictionary-encoded); a store that ``embed`` changes meanwhile (its journal) is opened again and what was kept is
dropped. The store's model, for an example's embedding, is loaded once. The windows and their verdicts are read
through the one labelled view of the store (:class:`~envsound.agile.labelled.LabelledStore`: which window a verdict
names, each window's current verdict), as ``label``, ``learn`` and ``check`` read them.

A relative ``file`` (``embed`` run with relative inputs) is found as the store finds every name it holds
(:meth:`EmbeddingsStore.resolve <envsound.inference.embeddings.store.EmbeddingsStore.resolve>`): against the
directory ``embed`` ran in, which the store records (``cwd``), else beside the store.
"""

from __future__ import annotations

import bisect
import io
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from envsound.agile.labelled import CurrentVerdicts, LabelledStore, Verdicts
from envsound.agile.labels import default_reviewer
from envsound.agile.names import check_label, file_name
from envsound.deploy.schema import VERDICTS
from envsound.deploy.store import Store
from envsound.errors import AudioLoadError, ConfigError
from envsound.inference.archive.journal import JOURNAL_NAME
from envsound.inference.embeddings.store import EmbeddingsStore, StoredWindow

log = logging.getLogger(__name__)

ROUND = 10  # verdicts a round: then the page learns and asks for the next round's suggestions
LEARNED = "learned"  # DB/learned/<label>/model.ckpt: a label's last learning round
MAX_CANDIDATES = 100  # candidates one request may ask for
DB_RANGE = 80.0  # dB below the loudest cell drawn in a spectrogram; quieter cells are the floor
KEPT_ROWS = 100_000  # windows' file, start and end kept between requests (the candidates offered, windows read)


class NotFound(ConfigError):
    """A window that is not in the store, or the audio file of a window that is not there (the page: 404)."""


@dataclass(frozen=True)
class Candidate(StoredWindow):
    """A window to review for a label: ``window`` (the store's id), ``file``, ``start``, ``end`` (seconds), ``score``
    (the learned head's probability for ``source="learned"``, a cosine similarity for ``"search"``)."""

    score: float
    source: str


@dataclass(frozen=True)
class Counts:
    """A label's current verdicts (``yes``, ``no``, ``unsure``: windows whose latest verdict it is), the verdicts
    given since it was last learned (``since_learn``; all of them before a first learning) and whether it was."""

    label: str
    yes: int
    no: int
    unsure: int
    since_learn: int
    learned: bool

    @property
    def to_next(self) -> int:
        """Verdicts left to the next round (0: learn now)."""
        return max(ROUND - self.since_learn, 0)

    def to_dict(self) -> dict:
        return {**asdict(self), "round": ROUND, "to_next": self.to_next}


@dataclass
class _Label:
    """What a server keeps of one label's verdicts: the labels store's :meth:`~envsound.deploy.labels.Labels.mark`
    when they were read, the time of every verdict (sorted: the counts since a learning round) and each window's
    current verdict (:class:`~envsound.agile.labelled.CurrentVerdicts`, as ``label`` and ``learn`` decide it)."""

    mark: tuple[int, int] = (0, 0)
    given: list[datetime] = field(default_factory=list)
    current: CurrentVerdicts = field(default_factory=CurrentVerdicts)


def learned_folder(db: str | os.PathLike, label: str) -> Path:
    """``db/learned/<label>``: where :meth:`Review.learn` writes a label's model (the label made a safe folder name:
    :func:`~envsound.agile.names.file_name`)."""
    return Path(db) / LEARNED / file_name(label)


class Review:
    """The review of one embeddings store ``db`` with its labels in ``store`` (an opened
    :class:`~envsound.deploy.store.Store`; ``spec``: its path or URL as given, None: ``db/review.sqlite``);
    ``device`` runs an example through the store's model. Safe to call from several threads.

    >>> review = Review("archive.db", store=store_of("archive.db"))
    >>> review.candidates("chainsaw", 10)
    """

    def __init__(self, db: str | os.PathLike, *, store: Store, spec: str | os.PathLike | None = None,
                 device: str = "auto") -> None:
        self.db = Path(db)
        self.store, self.spec, self.device = store, spec, device
        self.queues: dict[str, list[Candidate]] = {}  # a label's candidates, best first
        self.summaries: dict[str, dict] = {}  # a label's last learning round, as learn() answered it
        self.lock = threading.Lock()
        self.learning = threading.Lock()  # one learning round at a time
        self.reading = threading.Lock()  # the kept verdicts and windows: one request updates them at a time
        self.loading = threading.Lock()  # the store's model: loaded once; one example embedded at a time
        self._predictor = None
        self._open_windows()

    def _open_windows(self) -> None:
        """(Re)open the store and drop what was kept of it: window ids may mean other windows after ``embed``."""
        self._journal = _journal_state(self.db)
        self.windows = EmbeddingsStore(self.db)
        self.labelled = LabelledStore(self.windows, self.store)  # the store's windows with their verdicts
        self._kept_rows: OrderedDict[int, dict] = OrderedDict()
        self._labels: dict[str, _Label] = {}
        with self.lock:
            self.queues.clear()  # their ids too

    def _follow_store(self) -> None:
        """Open the store again if ``embed`` changed it since (its journal's size or time)."""
        if _journal_state(self.db) != self._journal:
            with self.reading:
                if _journal_state(self.db) != self._journal:
                    log.info("review: %s changed; opened again", self.db)
                    self._open_windows()

    # ------------------------------------------------------------------ windows

    def row(self, window: int) -> dict:
        """``{"window", "file", "start", "end"}`` of window ``window``; raises NotFound for an id not in the store."""
        self._follow_store()
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or not (
                0 <= window < self.windows.windows):
            raise NotFound(f"window {window} is not in {self.db} (its windows are 0-{self.windows.windows - 1})")
        return self._rows(np.array([window], dtype=np.int64))[0]

    def _rows(self, ids: np.ndarray) -> list[dict]:
        """The rows of window ids ``ids`` (all in the store): those kept, the others read from the store."""
        with self.reading:
            missing = np.unique([i for i in ids.tolist() if i not in self._kept_rows]).astype(np.int64)
        read = {row["window"]: row for row in (self.windows.rows(missing) if len(missing) else [])}
        with self.reading:
            self._keep(read.values())
            # a row kept before may have gone meanwhile (the store opened again, the oldest dropped): read it again
            gone = np.array([i for i in ids.tolist() if i not in self._kept_rows and i not in read], dtype=np.int64)
        if len(gone):
            read |= {row["window"]: row for row in self.windows.rows(gone)}
        with self.reading:
            return [dict(self._kept_rows.get(int(i)) or read[int(i)]) for i in ids.tolist()]

    def _keep(self, rows) -> None:
        """Keep these rows (``window``, ``file``, ``start``, ``end``), the oldest dropped past :data:`KEPT_ROWS`;
        the caller holds ``self.reading``."""
        for row in rows:
            self._kept_rows[int(row["window"])] = {key: row[key] for key in ("window", "file", "start", "end")}
            self._kept_rows.move_to_end(int(row["window"]))
        while len(self._kept_rows) > KEPT_ROWS:
            self._kept_rows.popitem(last=False)

    def audio_path(self, file: str) -> Path:
        """Where the audio of a window's ``file`` is (:meth:`EmbeddingsStore.resolve`)."""
        return self.windows.resolve(file)

    def samples(self, window: int) -> tuple[np.ndarray, int]:
        """The window's audio, ``(samples,)`` float32 mono (channels averaged) at the file's own rate, and that
        rate: only the window's span is read from its file.

        Raises:
            NotFound: the window is not in the store, or its file is not there (moved or deleted since embedding).
            AudioLoadError: the file cannot be read, or it ends before the window starts.
        """
        import soundfile as sf

        row = self.row(window)
        path = self.audio_path(row["file"])
        if not path.is_file():
            where = "" if str(path) == row["file"] else f" (looked for {path})"
            raise NotFound(f"{row['file']}: the audio file of window {window} is missing{where}; moved or deleted "
                           f"since {self.db} was embedded (the store keeps embeddings, not sound)")
        try:
            info = sf.info(path)
            first = max(int(round(row["start"] * info.samplerate)), 0)
            last = min(int(round(row["end"] * info.samplerate)), info.frames)
            if first >= last:
                raise AudioLoadError(f"{row['file']}: window {window} at {row['start']:g}-{row['end']:g} s lies past "
                                     f"its end ({info.frames / info.samplerate:.3f} s); it changed since it was "
                                     "embedded")
            data, rate = sf.read(path, start=first, stop=last, dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as exc:  # soundfile's LibsndfileError is a RuntimeError
            raise AudioLoadError(f"{row['file']}: cannot read window {window} ({' '.join(str(exc).split())})") from None
        return data.mean(axis=1), int(rate)

    def wav(self, window: int) -> bytes:
        """The window's audio as a 16-bit mono WAV file at the file's rate (raises as :meth:`samples`)."""
        import soundfile as sf

        samples, rate = self.samples(window)
        out = io.BytesIO()
        sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
        return out.getvalue()

    def spectrogram(self, window: int, features) -> bytes:
        """The window's log-mel spectrogram as a small PNG (one pixel a mel band and frame, low bands at the bottom,
        :data:`DB_RANGE` dB shown), drawn with ``features``' mel settings (a
        :class:`~envsound.config.FeatureConfig`: the store's model's) at its sample rate; raises as :meth:`samples`."""
        import soxr
        from matplotlib.image import imsave

        from envsound.inference.overview import display_features
        from envsound.features.melbank import picture_logmel

        samples, rate = self.samples(window)
        settings = display_features(features)
        if rate != settings.sample_rate:
            samples = soxr.resample(samples, rate, settings.sample_rate).astype(np.float32)
        decibels = picture_logmel(samples, settings)
        cells = np.clip((decibels - (float(decibels.max()) - DB_RANGE)) / DB_RANGE, 0.0, 1.0)
        out = io.BytesIO()
        imsave(out, cells, cmap="magma", vmin=0.0, vmax=1.0, origin="lower", format="png")
        return out.getvalue()

    # ------------------------------------------------------------------ candidates

    def candidates(self, label: str, k: int = ROUND) -> list[Candidate]:
        """The next ``k`` (1-100) windows to review for ``label``, none reviewed for it yet (the module says where
        they come from); an empty list: the label needs an example (:meth:`search`)."""
        return self.next(label, k)[0]

    def next(self, label: str, k: int = ROUND) -> tuple[list[Candidate], Counts]:
        """:meth:`candidates` and :meth:`counts` of ``label`` from one read of its verdicts (the page's request)."""
        name = check_label(label)
        if not 1 <= k <= MAX_CANDIDATES:
            raise ConfigError(f"k={k}: ask for 1-{MAX_CANDIDATES} candidates")
        verdicts, counts = self._state(name)
        reviewed = set(verdicts.windows.tolist())
        with self.lock:
            queue = [c for c in self.queues.get(name, []) if c.window not in reviewed]
        yes = verdicts.windows[verdicts.verdicts == "yes"]
        found: list[Candidate] = []
        if len(queue) < k and len(yes):
            have = reviewed | {c.window for c in queue}
            for collapse in (True, False):  # one window a stretch of a file, then any (a store of few files)
                new = self._unreviewed(have, k - len(queue) - len(found), windows=yes, collapse=collapse)
                found += [Candidate(h.window, h.file, h.start, h.end, h.score, "search") for h in new]
                have |= {h.window for h in new}
                if len(queue) + len(found) >= k:
                    break
        self._offer(found)
        with self.lock:  # the queue as it is now (a learning round or a search may have set it meanwhile), then these
            current = [c for c in self.queues.get(name, []) if c.window not in reviewed]
            known = {c.window for c in current}
            self.queues[name] = current + [c for c in found if c.window not in known]
            return self.queues[name][:k], counts

    def search(self, label: str, *, example: str | os.PathLike | None = None, window: int | None = None,
               k: int = ROUND) -> list[Candidate]:
        """The ``k`` windows most like ``example`` (an audio file, run through the store's model, loaded once) or the
        stored ``window``, not yet reviewed for ``label``: they become the label's candidates (before any other).

        Raises:
            ConfigError: neither or both of ``example`` and ``window``; a bad label or ``k``; the store's model file
                is missing or changed.
            NotFound: ``window`` is not in the store.
            AudioLoadError: the example cannot be read.
        """
        from envsound.inference.embeddings.search import search

        name = check_label(label)
        if (example is None) == (window is None):
            raise ConfigError("search by an example: give an audio file or a window of the store (one of them)")
        if not 1 <= k <= MAX_CANDIDATES:
            raise ConfigError(f"k={k}: ask for 1-{MAX_CANDIDATES} candidates")
        if window is not None:
            self.row(window)
        reviewed = set(self._state(name)[0].windows.tolist())
        if example is None:
            hits = self._unreviewed(reviewed, k, windows=[window])
        else:  # asked once (each search runs the example through the model): as many as may be reviewed, and k
            predictor = self.predictor()
            with self.loading:  # one example through the model at a time
                hits = search(self.db, example, top=k + len(reviewed), device=self.device, model=predictor)
        found = [Candidate(h.window, h.file, h.start, h.end, h.score, "search") for h in hits
                 if h.window not in reviewed][:k]
        self._offer(found)
        with self.lock:
            chosen = {c.window for c in found}
            self.queues[name] = found + [c for c in self.queues.get(name, []) if c.window not in chosen]
        return found

    def _unreviewed(self, have: set[int], k: int, **query) -> list:
        """The best ``k`` hits of :func:`~envsound.inference.embeddings.search.search` ``(db, **query)`` whose
        windows are not in ``have``: asked for ``4 k`` first, then four times as many while too many of those are in
        ``have``, up to ``k + len(have)``, which always holds ``k`` others (a search's cost grows with the hits it
        reads: a thousand reviewed windows made every round's search read ten thousand rows)."""
        from envsound.inference.embeddings.search import search

        most = k + len(have)
        top = min(4 * k, most)
        while True:
            hits = search(self.db, top=top, device=self.device, **query)
            new = [h for h in hits if h.window not in have]
            if len(new) >= k or top >= most or len(hits) < top:
                return new[:k]
            top = min(4 * top, most)

    def predictor(self):
        """The store's model (:class:`~envsound.inference.predictor.Predictor`), loaded on first use and kept: its
        file (``model_file``, a relative name resolved as a window's file) must be the one the store was made with.

        Raises:
            ConfigError: the model file is missing or is another model (by digest).
        """
        with self.loading:
            if self._predictor is None:
                self._predictor = self.windows.network(device=self.device, needed_for="searching by an example")
            return self._predictor

    def _offer(self, candidates: list[Candidate]) -> None:
        """Keep the candidates' rows: the page asks for their sound and picture, and gives them verdicts."""
        with self.reading:
            self._keep([asdict(c) for c in candidates])

    # ------------------------------------------------------------------ verdicts, counts, rounds

    def give(self, window: int, label: str, verdict: str, *, reviewer: str | None = None) -> Counts:
        """Store ``verdict`` (yes, no, unsure) on ``window`` for ``label``, given by ``reviewer`` (default: the
        operating system's user name) now; returns the label's counts.

        Raises:
            ConfigError: a bad label, verdict or reviewer name.
            NotFound: the window is not in the store.
            StoreError: the store refused the write (nothing stored).
        """
        name = check_label(label)
        if verdict not in VERDICTS:
            raise ConfigError(f"verdict {verdict!r} is not {', '.join(VERDICTS[:-1])} or {VERDICTS[-1]}")
        row = self.row(window)
        self.labelled.add([{**row, "label": name, "verdict": verdict}], reviewer=reviewer or default_reviewer())
        with self.lock:
            self.queues[name] = [c for c in self.queues.get(name, []) if c.window != window]
        return self._state(name)[1]

    def counts(self, label: str) -> Counts:
        """``label``'s verdicts now and since its last learning round (:class:`Counts`)."""
        return self._state(check_label(label))[1]

    def _state(self, name: str) -> tuple[Verdicts, Counts]:
        """``name``'s current verdicts and counts: what is kept of them, brought up to date with the verdicts stored
        since (by anyone); all of them read again when the store holds fewer or other ones than that (a verdict
        that committed late in another server's transaction, a store emptied)."""
        self._follow_store()
        labels = self.labelled.labels
        mark = labels.mark(name)
        model = learned_folder(self.db, name) / "model.ckpt"
        since = datetime.fromtimestamp(model.stat().st_mtime, timezone.utc) if model.is_file() else None
        with self.reading:
            known = self._labels.get(name)
            if known is None or known.mark != mark:
                rows = labels.read(label=name, after=known.mark[1]) if known is not None else []
                if known is None or known.mark[0] + len(rows) != mark[0] or mark[1] < known.mark[1]:
                    known, rows = _Label(), labels.read(label=name)
                self._add(known, rows)
                self._labels[name] = known
            verdicts = known.current.verdicts
            after = len(known.given) - (0 if since is None else bisect.bisect_right(known.given, since))
        current = verdicts.verdicts
        return verdicts, Counts(name, int((current == "yes").sum()), int((current == "no").sum()),
                                int((current == "unsure").sum()), after, since is not None)

    def _add(self, known: _Label, rows: list[dict]) -> None:
        """Add verdicts read from the store to ``known`` (the caller holds ``self.reading``): each names the window
        :meth:`LabelledStore.match <envsound.agile.labelled.LabelledStore.match>` finds (the rows kept first)."""
        if not rows:
            return
        for row in rows:
            bisect.insort(known.given, row["given"])
        known.current.add(rows, self.labelled.match(rows, kept=self._kept_rows))
        known.mark = (known.mark[0] + len(rows), max(known.mark[1], max(row["id"] for row in rows)))

    def learn(self, label: str) -> dict:
        """A learning round: :func:`envsound.agile.learn.learn` of ``label`` into :func:`learned_folder`, whose
        :data:`ROUND` suggestions become the label's next candidates. Returns its summary: ``label``,
        ``positives``, ``negatives``, ``unsure``, ``threshold``, ``calibrated``, ``precision`` (None when not
        calibrated), ``expected`` (one line: the expected precision, or "not calibrated" and why), ``model``,
        ``seconds`` and the ``counts`` after it.

        Raises:
            ConfigError: the label has no ``yes``; the store's model file is missing or changed.
        """
        from envsound.agile.learn import learn

        name = check_label(label)
        with self.learning:
            result = learn(self.db, name, out=learned_folder(self.db, name), store=self.spec, suggest=ROUND,
                           progress=False)
        found = result.labels[0]
        calibration = found.calibration
        with self.lock:
            self.queues[name] = [Candidate(s.window, s.file, s.start, s.end, s.score, "learned")
                                 for s in result.suggestions]
        summary = {**found.to_dict(), "expected": _expected(calibration), "model": str(result.model),
                   "seconds": round(result.seconds, 2)}
        self.summaries[name] = summary
        log.info("review: %s", result.line())
        return {**summary, "counts": self.counts(name).to_dict()}

    def labels(self) -> list[str]:
        """The names of the labels given on this store's windows, in the order they were first given."""
        return self.labelled.labels.names()  # not every verdict of every label read to name them


def _journal_state(db: Path) -> tuple:
    """The size and time of the store's journal (and its write-ahead log): they change when ``embed`` commits."""
    out = []
    for name in (JOURNAL_NAME, JOURNAL_NAME + "-wal"):
        try:
            stat = (db / name).stat()
            out.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def page_reviewer() -> str:
    """Who gives a verdict from the page without tokens: the operating system's user name, else ``"page"``."""
    name = default_reviewer()
    return "page" if name == "unknown" else name


def _expected(calibration) -> str:
    if not calibration.calibrated:
        return f"not calibrated ({calibration.why()}); review {calibration.wanted()} to calibrate it"
    low, high = calibration.precision_interval
    return (f"precision {calibration.precision:.2f} ({low:.2f}-{high:.2f}) at threshold {calibration.threshold:.3f}"
            f"{'' if calibration.reached else f', below the target {calibration.target:.2f}'}")
