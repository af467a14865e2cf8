"""``envsound serve``: load a model, build the app, run it under uvicorn and say where it listens."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import uvicorn

from envsound.app.auth import Guard
from envsound.app.server import ServerLimits, create_app
from envsound.errors import ConfigError
from envsound.inference.api import load_model
from envsound.inference.archive.journal import JOURNAL_NAME
from envsound.inference.embeddings.store import EmbeddingsStore


class AppServer(uvicorn.Server):
    """A uvicorn server that knows the port it bound (``port=0`` picks a free one) and prints its address."""

    def __init__(self, config: uvicorn.Config, *, announce: bool = True) -> None:
        super().__init__(config)
        self.announce = announce
        self.port: int | None = None

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.servers:
            self.port = self.servers[0].sockets[0].getsockname()[1]
            if self.announce:
                scheme = "https" if self.config.ssl_keyfile else "http"
                print(f"envsound: serving at {scheme}://{self.config.host}:{self.port}/ (Ctrl+C stops)",
                      file=sys.stderr, flush=True)


def serve(model_path: str | Path, *, host: str = "127.0.0.1", port: int = 8000, limits: ServerLimits = ServerLimits(),
          device: str = "auto", precision: str = "auto", ssl_keyfile: str | None = None,
          ssl_certfile: str | None = None, quiet: bool = False, store: str | Path | None = None,
          auth: bool = False, keep_days: float | None = None, rate: float = 20.0, streams_per_token: int = 4,
          auth_failures: int = 10, access_log: bool = False, keep_snippets: float | None = None,
          snippet_quota: int | None = None, fleet_dir: str | Path | None = None) -> int:
    """Serve ``model_path`` until interrupted; returns the exit status (0). ``rate``, ``streams_per_token`` and
    ``auth_failures`` (a client address's unknown or revoked tokens a minute) are :class:`Guard`'s limits;
    ``access_log``: log a line per request (uvicorn's access log; off, the console says what the server does, not
    every request the page makes).

    A plain page and REST API opens no database. A deployment keeps what sensors report in a detections store:
    ``store`` (a path or URL), or with ``auth``, ``keep_days`` or a ``host`` beyond loopback (which requires tokens)
    and no ``store``, the default file in the user's data folder (see
    :func:`envsound.deploy.store.default_store_path`). A deployment keeps the snippets sensors send in its fleet
    folder (``fleet_dir``, default beside the store: :func:`envsound.deploy.fleet_files.fleet_dir`) for
    ``keep_snippets`` days within ``snippet_quota`` bytes (None: no limit), enforced at start and along with writes.

    ``model_path`` may be an embeddings store folder (``envsound embed MODEL INPUTS --out DB``): the page then has a
    Review view of its windows (:mod:`envsound.app.review`) and runs the store's model; labels and tokens are kept in
    ``store``, by default ``DB/review.sqlite`` (:func:`envsound.agile.labels.store_of`), and sensors' snippets once
    a ``store`` or a snippet option is given (:func:`open_stores`).

    Raises:
        ConfigError: ``host:port`` cannot be bound (in use, or not an address of this machine), or tokens are
            required and the store holds none; checked before the model loads, so the error is one line and comes
            at once. An embeddings store whose model file is not the one it was made with.
        StoreError: the store cannot be opened or migrated.
    """
    check_bindable(host, port)
    auth = auth or not is_loopback(host)
    review = None
    db = model_path if is_embeddings_store(model_path) else None
    opened, model_path, snippets = open_stores(model_path, store=store, auth=auth, host=host, keep_days=keep_days,
                                               keep_snippets=keep_snippets, snippet_quota=snippet_quota,
                                               fleet_dir=fleet_dir)
    model = load_model(model_path, device=device, precision=precision)
    if db is not None:
        from envsound.agile.review import Review

        review = Review(db, store=opened, spec=store, device=device)
        review.windows.check_network(model_path, model.file.digest, fix="serve it with the model that made it")
    app = create_app(model, limits=limits, store=opened, guard=Guard(opened, required=auth, rate=rate,
                                                                     streams=streams_per_token,
                                                                     failures=auth_failures),
                     keep_days=keep_days, fingerprint=model.file.short_digest, review=review, snippets=snippets)
    config = server_config(app, host=host, port=port, ssl_keyfile=ssl_keyfile, ssl_certfile=ssl_certfile,
                           quiet=quiet, access_log=access_log)
    # AppServer says where it listens (with the port it really bound); uvicorn's own line would say it twice
    logging.getLogger("uvicorn.error").addFilter(lambda record: "Uvicorn running on" not in record.getMessage())
    server = AppServer(config)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 3 when startup fails (e.g. the port was taken after the check)
        raise ConfigError(f"the server could not start on {host}:{port}; choose another --port") from exc
    return 0


def open_stores(model_path: str | Path, *, store: str | Path | None = None, auth: bool = False,
                host: str = "127.0.0.1", keep_days: float | None = None, keep_snippets: float | None = None,
                snippet_quota: int | None = None, fleet_dir: str | Path | None = None) -> tuple:
    """What :func:`serve` keeps beside its model: (the store, or None for a plain page; the model file to load: an
    embeddings store's own; the fleet folder's :class:`~envsound.deploy.snippet_files.SnippetFiles`, or None). An
    embeddings store keeps labels and tokens in ``store`` (default ``DB/review.sqlite``) and sensors' snippets once
    a ``store`` or a fleet option is given (a team reviewing an archive and a fleet on one server)."""
    if is_embeddings_store(model_path):
        opened, model_file = _open_review_store(model_path, store, auth=auth, host=host, keep_days=keep_days)
        if store is None and not (keep_snippets or snippet_quota or fleet_dir):
            return opened, model_file, None
        from envsound.agile.labels import REVIEW_STORE

        spec = Path(model_path) / REVIEW_STORE if store is None else store
    elif store is not None or auth or keep_days is not None or keep_snippets or snippet_quota or fleet_dir:
        opened, model_file, spec = _open_store(store, auth=auth, host=host, keep_days=keep_days), model_path, store
    else:
        print("envsound: no detections store: the page and REST API only (--store PATH keeps sensors' reports)",
              file=sys.stderr, flush=True)
        return None, model_path, None
    try:
        return opened, model_file, _snippet_files(opened, spec, fleet_dir, keep_days=keep_snippets,
                                                  quota=snippet_quota)
    except BaseException:
        opened.close()
        raise


def server_config(app, *, host: str, port: int, ssl_keyfile: str | None = None, ssl_certfile: str | None = None,
                  quiet: bool = False, access_log: bool = False) -> uvicorn.Config:
    """uvicorn's settings for ``app``: its records through the caller's handlers (``log_config=None``: the CLI's one
    format, not uvicorn's own "INFO:     ..." handlers, which mixed two formats on one console), at WARNING when
    ``quiet``; a line per request (an HTTP request, a WebSocket opened or closed) only with ``access_log``."""
    config = uvicorn.Config(app, host=host, port=port, ssl_keyfile=ssl_keyfile, ssl_certfile=ssl_certfile,
                            log_level="warning" if quiet else "info", log_config=None, access_log=access_log,
                            timeout_graceful_shutdown=5)
    # uvicorn switches its access logger off for good when access_log is False; a later server (tests, scripts)
    # that wants it must switch it on again
    logging.getLogger("uvicorn.access").propagate = access_log
    streams = logging.getLogger("uvicorn.error")
    if not access_log and _without_stream_lines not in streams.filters:
        streams.addFilter(_without_stream_lines)
    elif access_log:
        streams.removeFilter(_without_stream_lines)
    return config


def _without_stream_lines(record: logging.LogRecord) -> bool:
    """Whether a record of ``uvicorn.error`` is more than a live stream's access line: uvicorn logs each WebSocket
    accepted (``'... - "WebSocket /v1/listen?..." [accepted]'``), opened and closed there, not in its access log."""
    return not (record.levelno == logging.INFO and (str(record.msg).startswith('%s - "WebSocket ')
                                                    or record.getMessage() in ("connection open", "connection closed")))


def _open_store(store: str | Path | None, *, auth: bool, host: str, keep_days: float | None):
    """The deployment's store (``store``, None: the default file), checked to hold tokens when ``auth``, pruned to
    ``keep_days``; its address printed."""
    from envsound.deploy.store import Store

    opened = Store.open(store)
    if auth and not opened.has_tokens():
        where = "" if store is None else f" --store {store}"
        why = "--auth" if is_loopback(host) else f"serving on {host} (beyond this machine)"
        raise ConfigError(f"{why} needs tokens and {opened.shown} holds none: make one with `envsound token create "
                          f"NAME --role admin{where}`")
    if keep_days is not None:
        opened.prune(keep_days)
    print(f"envsound: detections store {opened.shown}{' (tokens required)' if auth else ''}", file=sys.stderr,
          flush=True)
    return opened


def _snippet_files(opened, store: str | Path | None, folder: str | Path | None, *, keep_days: float | None,
                   quota: int | None):
    """The deployment's snippets in its fleet folder, their retention and quota enforced once now; the folder
    printed."""
    from envsound.deploy.fleet_files import fleet_dir
    from envsound.deploy.snippet_files import SnippetFiles

    files = SnippetFiles(opened, fleet_dir(store, folder), keep_days=keep_days, quota=quota)
    files.enforce()
    limits = ", ".join(([f"kept {keep_days:g} days"] if keep_days is not None else [])
                       + ([f"at most {quota / 1e9:g} GB"] if quota is not None else []))
    print(f"envsound: events' snippets in {files.folder / 'snippets'} ({files.total / 1e6:.1f} MB"
          f"{', ' + limits if limits else ''})", file=sys.stderr, flush=True)
    return files


def is_embeddings_store(path: str | Path) -> bool:
    """Whether ``path`` is a folder with a scan's journal: an embeddings store (``envsound embed ... --out DB``), or
    a results folder, which :class:`~envsound.inference.embeddings.store.EmbeddingsStore` refuses in one line."""
    return Path(path).is_dir() and (Path(path) / JOURNAL_NAME).is_file()


def _open_review_store(db: str | Path, store: str | Path | None, *, auth: bool, host: str,
                       keep_days: float | None):
    """The labels and tokens of the embeddings store ``db`` (``store``, None: ``db/review.sqlite``), checked to
    hold tokens when ``auth``; its address printed. Returns it and the store's model file."""
    from envsound.agile.labels import REVIEW_STORE, store_of

    windows = EmbeddingsStore(db)  # a results folder of predict --out is refused here, in one line
    opened = store_of(db, store)
    if auth and not opened.has_tokens():
        why = "--auth" if is_loopback(host) else f"serving on {host} (beyond this machine)"
        where = str(Path(db) / REVIEW_STORE) if store is None else store
        opened.close()
        raise ConfigError(f"{why} needs tokens and {opened.shown} holds none: make one with `envsound token create "
                          f"NAME --role reviewer --store {where}`")
    if keep_days is not None:
        opened.prune(keep_days)
    print(f"envsound: reviewing {db} ({windows.windows} windows); labels and tokens in {opened.shown}"
          f"{' (tokens required)' if auth else ''}", file=sys.stderr, flush=True)
    return opened, windows.resolve(windows.settings["model_file"])  # a relative name: against embed's directory


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


def check_bindable(host: str, port: int) -> None:
    """Raise :class:`ConfigError` unless a TCP socket can bind ``host:port`` now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: not an address of this machine ({exc.strerror})") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); choose another "
                              "--port (or --port 0 for a free one)") from exc


@contextmanager
def running(app, *, host: str = "127.0.0.1", timeout: float = 30.0, quiet: bool = True,
            access_log: bool = False) -> Iterator[str]:
    """Run ``app`` on a free port in a background thread (tests, scripts, benchmarks); yields its base URL.
    ``quiet``: uvicorn logs warnings only; ``access_log``: a line per request (:func:`server_config`)."""
    server = AppServer(server_config(app, host=host, port=0, quiet=quiet, access_log=access_log), announce=False)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while server.port is None:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{server.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
