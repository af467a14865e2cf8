"""What an engine asked for embeddings (``embed=True``: an embeddings store's, :mod:`envsound.inference.embeddings`)
gathers of each file in place of its scores: its windows' times and the network's embedding of each; and
:func:`chunk_embeddings`, a decoded chunk's embeddings whoever cut its windows (the workers, or the model: a frozen
network run by LiteRT cuts its own from the waveform)."""

from __future__ import annotations

import numpy as np

from envsound.inference.archive.decode import Chunk
from envsound.inference.predictor import Prediction, Predictor


def chunk_embeddings(model, chunk: Chunk) -> tuple[np.ndarray, list[int]]:
    """``(n, d)`` embeddings of a chunk's windows and their starts: feature windows cut by the workers
    (``chunk.windows``, :meth:`~envsound.models.clip.ClipModel.window_embeddings`), or a waveform chunk the model
    cuts itself (``chunk.samples``: ``model.waveform_embeddings``, the windows its ``waveform_probs`` scores)."""
    if chunk.windows is not None:
        return model.window_embeddings(chunk.windows), list(chunk.starts)
    return model.waveform_embeddings(chunk.samples, before=chunk.before)


class FileEmbeddings:
    """One file's windows, chunk by chunk: their times (as :class:`~envsound.inference.predictor.FileScores` gives a
    window's) and embeddings (float16); what the engine asks of a file's scores."""

    def __init__(self, predictor: Predictor) -> None:
        self.features, self.step = predictor.features, predictor.step
        self.begins: list[float] = []
        self.vectors: list[np.ndarray] = []

    def add(self, offset: int, shift: int, embeddings: np.ndarray, starts: list[int]) -> None:
        rate = self.features.sample_rate
        self.begins += [(offset + start * self.step + shift) / rate for start in starts]
        self.vectors.append(np.asarray(embeddings, dtype=np.float16))

    def finish(self, name: str, read: int, *, top_k: int) -> Prediction:
        """The windows as a Prediction's ``segments`` (``start``, ``end`` in seconds, within the file)."""
        length = read / self.features.sample_rate
        window = self.features.window_seconds
        segments = []
        for begin in self.begins:
            start = round(max(begin, 0.0), 3)
            segments.append({"start": start, "end": round(max(min(begin + window, length), start), 3)})
        return Prediction(file=name, segments=segments, duration=length)

    def window_probs(self) -> np.ndarray:
        """``(n_windows, d)`` float16: the embeddings, in the order of the segments."""
        return np.concatenate(self.vectors) if self.vectors else np.zeros((0, 0), np.float16)
