"""The Review view's REST API (``envsound serve DB``, DB an embeddings store): thin routes over
:class:`envsound.agile.review.Review`.

- ``GET /api/review``: the store (windows, model, labels given so far, the round's size);
- ``GET /api/review/next?label=NAME&k=K``: the next K candidates (``needs_example`` when there are none);
- ``POST /api/review/search``: form fields ``label``, ``k`` and an example: ``file`` (audio) or ``window`` (an id);
- ``GET /api/review/audio/{window}`` (WAV of the window's span) and ``GET /api/review/spectrogram/{window}`` (PNG);
- ``POST /api/review/label`` ``{window, label, verdict}``: stored with the reviewer (the token's name, without tokens
  the operating system's user name) and the time;
- ``POST /api/review/learn`` ``{label}``: a learning round, its summary (with ``again``: how many reviewed windows
  disagree with the head out of fold, in words); ``GET /api/review/counts?label=NAME``;
- ``GET /api/review/model?label=NAME``: the model the view reviews with: the store's network (name, file, digest)
  and each label's learned model (its file, threshold, expected precision or why it is not calibrated);
- ``POST /api/review/check`` ``{label, sample}``: ``envsound check``'s random sample of the windows at or above the
  label's threshold (:mod:`envsound.app.review_models`), its precision so far and its windows not yet reviewed;
- ``POST /api/review/again`` ``{label, k}``: answers to look at again, the K reviewed windows farthest from their
  verdicts out of fold (:mod:`envsound.app.review_again`), each with its verdict and score.

Reading (``next``, ``counts``, ``model``, the sound and the picture) needs a token that may ``read``; giving
verdicts, searching, learning, checking and listing answers to look at again one that may ``review`` (a reviewer or
an admin). A window not in the store, or whose audio file is missing, answers 404; a bad label or verdict, or a file
that cannot be read, 422; a store that refuses a write, 503.
"""

from __future__ import annotations

import asyncio

from fastapi import Depends, FastAPI, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from envsound.agile.review import MAX_CANDIDATES, ROUND, NotFound, Review, page_reviewer
from envsound.app.answers import STORE_ERRORS, audio_upload, private_copy
from envsound.app.auth import Caller, Guard
from envsound.app.review_again import AGAIN, disagreeing_line, look_again
from envsound.app.review_models import MAX_SAMPLE, SAMPLE, check_sample, learned_labels
from envsound.errors import EnvsoundError, StoreError
from envsound.inference.api import SUPPORTED

class VerdictIn(BaseModel):
    window: int = Field(description="the store's id of the window")
    label: str = Field(max_length=200)
    verdict: str = Field(description="yes, no or unsure")


class LearnIn(BaseModel):
    label: str = Field(max_length=200)


class CheckIn(BaseModel):
    label: str = Field(max_length=200)
    sample: int = Field(SAMPLE, ge=1, le=MAX_SAMPLE, description="windows drawn at random from those at or above "
                                                                 "the threshold (a new size draws a new sample)")


class AgainIn(BaseModel):
    label: str = Field(max_length=200)
    k: int = Field(AGAIN, ge=1, le=MAX_CANDIDATES, description="reviewed windows to list, farthest from their "
                                                                "verdicts first")


async def answer(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` off the event loop; envsound's errors as one-line answers (404, 422, 503)."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except StoreError as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None
    except EnvsoundError as exc:
        raise HTTPException(422, str(exc)) from None


def _search_upload(review: Review, upload, name: str, *, label: str, k: int, max_seconds: float) -> list:
    """Search by the uploaded example ``upload`` (a file object), refused over ``max_seconds`` (413); messages name
    the upload ``name``, not its private copy."""
    with private_copy(upload, name, max_seconds=max_seconds) as path:
        return review.search(label, example=path, k=k)


def add_review_routes(app: FastAPI, review: Review, guard: Guard, *, features, max_seconds: float,
                      network: dict | None = None) -> None:
    """Register the Review view's routes on ``app``; ``features``: the store's model's feature settings (its
    spectrograms are drawn with them); an example longer than ``max_seconds`` is refused (413); ``network``: the
    store's model as ``GET /api/review/model`` names it (``name``, ``file``, ``digest``)."""
    reader, reviewer = Depends(guard.needs("read")), Depends(guard.needs("review"))

    @app.get("/api/review", dependencies=[reader], responses=STORE_ERRORS)
    async def about() -> dict:
        """The embeddings store under review: its folder, windows, model file, the labels given so far and the
        number of verdicts a round."""
        labels = await answer(review.labels)
        return {"db": str(review.db), "windows": review.windows.windows,
                "model": review.windows.settings.get("model_file"), "labels": labels, "round": ROUND}

    @app.get("/api/review/next", dependencies=[reader], responses=STORE_ERRORS)
    async def next_candidates(label: str = Query(max_length=200),
                              k: int = Query(ROUND, ge=1, le=MAX_CANDIDATES)) -> dict:
        """The next ``k`` windows to review for ``label`` (from its last learning round's suggestions, then from
        search), none reviewed for it yet, and its counts; ``needs_example``: none to offer until an example is
        searched for."""
        found, counts = await answer(review.next, label, k)
        return {"label": label, "candidates": [c.to_dict() for c in found], "needs_example": not found,
                "counts": counts.to_dict()}

    @app.post("/api/review/search", dependencies=[reviewer], responses=STORE_ERRORS)
    async def search(label: str = Form(max_length=200), k: int = Form(ROUND, ge=1, le=MAX_CANDIDATES),
                     window: int | None = Form(None, description="a window of the store as the example"),
                     file: UploadFile | None = File(None, description="an example: " + SUPPORTED)) -> dict:
        """The ``k`` windows most like the example (an uploaded audio file or a stored ``window``), not yet reviewed
        for ``label``: they become its first candidates."""
        if file is None or window is not None:
            found = await answer(review.search, label, window=window, k=k)
            return {"label": label, "candidates": [c.to_dict() for c in found]}
        name = await audio_upload(file, "example")
        # copied, checked and searched off the event loop (as /v1/predict's upload): a large example does not stall
        # the other requests
        found = await answer(_search_upload, review, file.file, name, label=label, k=k, max_seconds=max_seconds)
        return {"label": label, "candidates": [c.to_dict() for c in found]}

    @app.get("/api/review/audio/{window}", dependencies=[reader], responses=STORE_ERRORS,
             response_class=Response)
    async def audio(window: int) -> Response:
        """The window's sound: a 16-bit mono WAV of its span of the file (only that span is read)."""
        return Response(await answer(review.wav, window), media_type="audio/wav",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/review/spectrogram/{window}", dependencies=[reader], responses=STORE_ERRORS,
             response_class=Response)
    async def spectrogram(window: int) -> Response:
        """The window's log-mel spectrogram as a PNG (one pixel a mel band and frame; low bands at the bottom)."""
        return Response(await answer(review.spectrogram, window, features), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/review/label", responses=STORE_ERRORS)
    async def give(body: VerdictIn, caller: Caller = Depends(guard.needs("review"))) -> dict:
        """Store a verdict (yes, no, unsure) on a window for a label, with who gave it (the token's name; without
        tokens, the operating system's user name) and when; the label's counts after it."""
        counts = await answer(review.give, body.window, body.label, body.verdict,
                             reviewer=caller.name or page_reviewer())
        return {"stored": 1, "counts": counts.to_dict()}

    @app.post("/api/review/learn", dependencies=[reviewer], responses=STORE_ERRORS)
    async def learn(body: LearnIn) -> dict:
        """A learning round of the label (seconds): its model in DB/learned/<label>/, its summary (yes and no
        reviewed, threshold, expected precision or "not calibrated", ``disagreeing`` and ``again``: how many reviewed
        windows the head would decide otherwise out of fold, in words), and its suggestions as the next candidates."""
        summary = await answer(review.learn, body.label)
        return {**summary, "again": disagreeing_line(summary.get("disagreeing", 0))}

    @app.get("/api/review/counts", dependencies=[reader], responses=STORE_ERRORS)
    async def counts(label: str = Query(max_length=200)) -> dict:
        """A label's yes, no and unsure windows, the verdicts since it was last learned and those left to the next
        round (a round is 10 verdicts)."""
        return (await answer(review.counts, label)).to_dict()

    @app.get("/api/review/model", dependencies=[reader], responses=STORE_ERRORS)
    async def models(label: str | None = Query(None, max_length=200, description="one label only")) -> dict:
        """The model the view reviews with: ``network``, the store's (``name``, ``file``, ``digest``: it embedded
        the windows and runs an example), and ``labels``, each label's learned model (``model``, ``learned``,
        ``threshold``, ``calibrated``, ``precision``, ``precision_interval``, ``recall``, ``positives``,
        ``negatives``; ``why`` it is not calibrated and the reviews ``wanted`` to calibrate it)."""
        learned = await answer(learned_labels, review.db, label)
        return {"network": network or {"file": review.windows.settings.get("model_file")}, "labels": learned}

    @app.post("/api/review/check", dependencies=[reviewer], responses=STORE_ERRORS)
    async def check_round(body: CheckIn) -> dict:
        """``envsound check`` of the label's learned model: ``sample`` windows drawn at random from those at or
        above its threshold (kept while the threshold stays), ``check`` (their verdicts so far, the precision and
        its interval, the windows above), its ``line``, and ``candidates``: the sample's windows not yet reviewed
        (``source`` ``check``), whose verdicts (``POST /api/review/label``) count toward the precision. 404: the
        label was never learned here."""
        return await answer(check_sample, review, body.label, sample=body.sample)

    @app.post("/api/review/again", dependencies=[reviewer], responses=STORE_ERRORS)
    async def again(body: AgainIn) -> dict:
        """Answers to look at again (seconds: the label is learned from its current verdicts, as ``envsound learn
        --disagreements K``, into a folder thrown away; its learned model is left as it is): ``candidates``, the ``k``
        reviewed windows whose out-of-fold score is farthest from their ``verdict``, farthest first (``source``
        ``again``, ``score`` out of fold, ``disagrees``: the head would decide otherwise), ``disagreeing`` (how many
        of all its reviewed windows) and its ``line``; none when the label is not calibrated (``why``). A new verdict
        on one (``POST /api/review/label``) is the window's verdict from then on. 422: a bad label or ``k``, a label
        with no ``yes``."""
        return await answer(look_again, review, body.label, k=body.k)
