"""The web app: one page that classifies a sound, and a small REST API (``/v1/predict``, ``/v1/model``, ``/healthz``;
``/v1/listen``, a WebSocket for live audio: :mod:`envsound.app.live`). Given a detections store, also a deployment's
API (``/v1/report``, ``/v1/events``, ``/v1/sensors``: :mod:`envsound.app.monitor`) and tokens
(:mod:`envsound.app.auth`).

Thin by design: every answer comes from :class:`envsound.inference.api.Model`. What the server adds is what a server
facing any browser or script needs: size limits (:class:`~envsound.app.limits.BodyLimit`, ``max_seconds``), content
sniffing before decoding, uploads in a private temporary file that is always removed, one JSON error shape
(``{"error": "<one line>"}`` with a 4xx status, never a traceback), and a bounded pool of prediction threads, so slow
requests queue instead of exhausting memory while the page and ``/healthz`` stay responsive.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from envsound._version import __version__
from envsound.errors import EnvsoundError
from envsound.inference.api import SUPPORTED, SUPPORTED_EXTENSIONS, Model
from envsound.app.answers import ERRORS, audio_upload, private_copy
from envsound.app.auth import Guard
from envsound.app.limits import BodyLimit
from envsound.app.live import add_live_route

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class ServerLimits:
    """What one request may cost: upload size, decoded length, and how many predictions run at once."""

    max_upload_mb: float = 50.0
    max_seconds: float = 600.0
    workers: int = 1
    max_streams: int = 16  # live streams (/v1/listen) at once
    idle_seconds: float = 30.0  # a live stream silent this long is closed
    max_message_bytes: int = 1 << 20  # one WebSocket message of PCM (a second of 48 kHz float32 is 192 KB)
    body_seconds: float | None = 300.0  # a request body not all there this long after the request began: 408


class Score(BaseModel):
    label: str
    score: float


class Segment(BaseModel):
    start: float
    end: float
    label: str | None  # None: none of the model's classes (its open-set gate)
    score: float


class EventOut(BaseModel):
    label: str
    onset: float  # seconds
    offset: float
    score: float


class PredictionOut(BaseModel):
    """One line of ``envsound predict --json``; ``overview`` only when asked for."""

    file: str
    top: list[Score]  # empty: a model with an open-set gate heard none of its classes
    error: str | None = None
    labels: list[Score] | None = None
    segments: list[Segment] | None = None
    events: list[EventOut] | None = None
    overview: dict | None = None


class Health(BaseModel):
    status: str
    running: int
    queued: int
    auth: bool  # whether calls need a token (the page asks for one)


class _Pool:
    """A fixed number of prediction threads; requests beyond them wait in line (counted for ``/healthz``)."""

    def __init__(self, workers: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="envsound-predict")
        self.lock = threading.Lock()
        self.running = self.queued = 0

    async def run(self, fn, *args):
        with self.lock:
            self.queued += 1

        def job():
            with self.lock:
                self.queued -= 1
                self.running += 1
            try:
                return fn(*args)
            finally:
                with self.lock:
                    self.running -= 1

        return await asyncio.wrap_future(self.executor.submit(job))


class _Classifier:
    """Copy an upload to a private temporary file, check it, classify it, remove it."""

    def __init__(self, model: Model, limits: ServerLimits) -> None:
        self.model = model
        self.limits = limits

    def __call__(self, upload, name: str, top_k: int, segments: bool, overview: bool, events: bool = False) -> dict:
        try:
            with private_copy(upload, name, max_seconds=self.limits.max_seconds) as path:
                result = self.model.predict(path, top_k=top_k, segments=segments, events=events).to_dict()
                if overview:
                    result["overview"] = self.model.overview(path)
        except EnvsoundError as exc:  # the same one-line reason `predict` gives, naming the upload, not the path
            raise HTTPException(422, str(exc)) from None
        result["file"] = name
        return result


def model_summary(described: dict) -> dict:
    """``Model.describe()`` as ``GET /v1/model`` answers it: a transfer's ``loaded`` list of tensor names (310 of
    them, 12 KB, for a model started from efficientat-mn04) becomes their count, ``loaded_tensors``."""
    transfer = described.get("training", {}).get("transfer")
    if not isinstance(transfer, dict) or not isinstance(transfer.get("loaded"), list):
        return described
    counted = {("loaded_tensors" if k == "loaded" else k): (len(v) if k == "loaded" else v)
               for k, v in transfer.items()}
    return {**described, "training": {**described["training"], "transfer": counted}}


def create_app(model: Model, *, limits: ServerLimits = ServerLimits(), store=None, guard: Guard | None = None,
               keep_days: float | None = None, online_seconds: float = 120.0,
               fingerprint: str | None = None, review=None, snippets=None) -> FastAPI:
    """The ASGI app serving ``model``; run it with uvicorn (:func:`envsound.app.run.serve` does).

    ``store`` (an :class:`envsound.deploy.store.Store`) adds the deployment's routes and keeps what sensors report and
    stream; ``guard`` says who may call what (default: anyone, no tokens); ``keep_days`` prunes older events;
    a sensor is ``online`` while it reported within ``online_seconds``; ``fingerprint`` (of the model file) marks
    the events the server itself detects in a sensor's stream; ``review`` (an
    :class:`envsound.agile.review.Review` of an embeddings store) adds the Review view's routes
    (:mod:`envsound.app.review`); ``snippets`` (a :class:`envsound.deploy.snippet_files.SnippetFiles` of ``store``)
    adds the routes of events' sound (:mod:`envsound.app.snippets`) and of reviewing them
    (:mod:`envsound.app.fleet_review`).
    """
    guard = guard or Guard(store)
    # FastAPIOffline serves /docs and /redoc from its own copies of their scripts: no CDN, the page works offline
    app = FastAPIOffline(title="envsound", version=__version__, favicon_url="/static/favicon.svg",
                  description=f"Classify a sound with the model {model.describe()['model']!r} "
                              f"({len(model.labels)} labels). Errors are {{\"error\": \"<one line>\"}} with a 4xx.")
    pool, classify = _Pool(limits.workers), _Classifier(model, limits)
    app.state.pool, app.state.guard = pool, guard
    app.add_middleware(BodyLimit, max_bytes=int(limits.max_upload_mb * 1e6), hint=" (serve --max-upload-mb)",
                       body_seconds=limits.body_seconds, time_hint=" (serve --body-seconds)")
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # the file picker offers what the server reads: the one list of envsound.inference.api
    accept = "audio/*," + ",".join(SUPPORTED_EXTENSIONS)
    html = re.sub(r'accept="[^"]*"', f'accept="{accept}"', (STATIC / "index.html").read_text(encoding="utf-8"),
                  count=1)
    if review is not None:  # the Review tab shows on a server of an embeddings store only
        html = html.replace('data-testid="tab-review" hidden', 'data-testid="tab-review"', 1)
    if snippets is not None:  # the sensors' detections to review, on a server keeping their sound
        html = html.replace('data-testid="tab-fleet" hidden', 'data-testid="tab-fleet"', 1)

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(html)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict:
        """Liveness, with the number of predictions running and waiting."""
        return {"status": "ok", "running": pool.running, "queued": pool.queued, "auth": guard.required}

    reader = Depends(guard.needs("read"))

    @app.get("/v1/model", dependencies=[reader], responses=ERRORS)
    async def model_info() -> dict:
        """The model's name, labels, task, feature settings, runtime and training metadata (a transfer's loaded
        tensors counted, not named)."""
        return model_summary(model.describe())

    @app.post("/v1/predict", response_model=PredictionOut, responses=ERRORS, dependencies=[reader])
    async def predict(file: UploadFile = File(description="an audio file: " + SUPPORTED),
                      top_k: int = Query(3, ge=1, le=1000, description="how many labels to rank"),
                      segments: bool = Query(False, description="add the top label of every window"),
                      overview: bool = Query(False, description="add the waveform envelope and spectrogram"),
                      events: bool = Query(False, description="add when each class sounds: label, onset, offset, "
                                                              "score (seconds)")):
        """Classify one uploaded file: the same object as one line of ``envsound predict --json``."""
        name = await audio_upload(file, "upload")
        result = await pool.run(classify, file.file, name, top_k, segments, overview, events)
        return JSONResponse(result)

    writer = None
    if store is not None:
        from envsound.app.monitor import Writer, add_monitor_routes

        writer = Writer(store, keep_days)
        add_monitor_routes(app, store, guard, writer, online_seconds=online_seconds)
        from envsound.app.fleet import add_fleet_routes

        add_fleet_routes(app, store, guard, online_seconds=online_seconds,
                         folder=None if snippets is None else snippets.folder)
        if snippets is not None:
            from envsound.app.fleet_review import add_fleet_review_routes
            from envsound.app.snippets import add_snippet_routes

            add_snippet_routes(app, guard, writer, snippets)
            add_fleet_review_routes(app, store, snippets.folder, guard)
    else:
        _add_storeless_routes(app)
    if review is not None:
        from envsound.app.review import add_review_routes

        file = model.file
        network = {"name": model.describe()["model"], "file": str(file.path) if file else None,
                   "digest": file.digest if file else None}
        add_review_routes(app, review, guard, features=model.config.features, max_seconds=limits.max_seconds,
                          network=network)
    add_live_route(app, model, pool, limits, guard=guard, writer=writer, fingerprint=fingerprint)
    return app


NO_STORE = ("this server runs without a detections store, so it keeps no sensors' reports or events; start it "
            "with 'envsound serve MODEL --store PATH' (or --auth) for a deployment")


def _add_storeless_routes(app: FastAPI) -> None:
    """Without a store, the deployment's routes answer 404 with :data:`NO_STORE` (not a bare "Not Found"), so a
    sensor pointed at a plain page, or the page's Monitor view, says why; they stay out of the schema."""

    async def no_store() -> None:
        raise HTTPException(404, NO_STORE)

    app.add_api_route("/v1/report", no_store, methods=["POST"], include_in_schema=False)
    for path in ("/v1/events", "/v1/sensors"):
        app.add_api_route(path, no_store, methods=["GET"], include_in_schema=False)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is ``{"error": "<one line>"}``: HTTP errors, validation errors, and (never expected) crashes."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": _one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
                            for e in exc.errors())
        return JSONResponse({"error": _one_line(reasons or "invalid request")}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error; the server's log has the details"}, status_code=500)


def _one_line(text) -> str:
    return " ".join(str(text).split())
