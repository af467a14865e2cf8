"""Serve a model: a web page that classifies a sound (file, drag and drop, or microphone) and a REST API (POST
/v1/predict, GET /v1/model, GET /healthz; schema at /docs), and live classification of a stream (WebSocket
/v1/listen; the page's Live button). Given an embeddings store (envsound embed MODEL INPUTS --out DB), the page also
has a Review view: one key a verdict on its windows, a learning round every 10 (REST under /api/review)."""

from __future__ import annotations

import argparse

from envsound.cli.options import add_device_option, add_model_argument, add_store_option
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("serve", __doc__)
    add_model_argument(p, onnx=True, frozen=True,
                       note="; or the folder export makes of a head learned over one; or an embeddings store folder "
                            "DB (its model is served, its labels and tokens kept in DB/review.sqlite unless --store "
                            "names another)")
    add_serve_options(p)
    add_device_option(p, precision=True)
    p.set_defaults(run=serve)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """``serve``'s address, limits, HTTPS and deployment options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 opens the server to the network")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="larger request bodies get 413")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="longer recordings get 413")
    parser.add_argument("--body-seconds", type=float, default=300.0, metavar="SECONDS",
                        help="a request body not all there this long after the request began gets 408 and its "
                             "connection is closed (a body sent a byte at a time); raise it for large uploads over "
                             "slow links")
    parser.add_argument("--workers", type=int, default=1, help="predictions run at once; more requests wait in line")
    parser.add_argument("--max-streams", type=int, default=16, help="live streams at once; more are refused")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="close a live stream silent this long")
    parser.add_argument("--ssl-keyfile", help="serve HTTPS (browsers allow the microphone only on localhost or HTTPS)")
    parser.add_argument("--ssl-certfile", help="certificate for --ssl-keyfile")
    parser.add_argument("--access-log", action="store_true",
                        help="log a line per request (and per live stream opened or closed); off by default, so the "
                             "console says what the server does, not every request the page makes")
    group = parser.add_argument_group("a deployment: sensors' reports kept, tokens")
    add_store_option(group, help="where events and tokens are kept: a SQLite file, or postgresql://USER@HOST/DB; "
                                 "omitted, a plain page and REST API open no store, while --auth, --keep-days or a "
                                 "--host beyond loopback use events.sqlite in the user's data folder (printed at "
                                 "start); serving an embeddings store DB: its labels and tokens (default "
                                 "DB/review.sqlite)")
    group.add_argument("--auth", action="store_true",
                       help="require tokens on 127.0.0.1 too (always required on any other address)")
    group.add_argument("--keep-days", type=float, metavar="DAYS", help="delete events older than this")
    group.add_argument("--rate-limit", type=float, default=20.0, help="requests a second a token may make")
    group.add_argument("--streams-per-token", type=int, default=4, help="live streams one token may hold at once")
    group.add_argument("--auth-failures", type=int, default=10, metavar="N",
                       help="unknown or revoked tokens one client address may send a minute; beyond them all its "
                            "requests get 429 until the minute has passed")
    group.add_argument("--keep-snippets", type=float, metavar="DAYS",
                       help="delete the sound of events (snippets sensors sent with listen --snippets) that ended "
                            "longer ago than this (checked at start and hourly; default: kept until purged)")
    group.add_argument("--snippet-quota", type=float, metavar="GB",
                       help="keep at most this many gigabytes of snippets, the oldest events' deleted first")
    group.add_argument("--fleet-dir", metavar="DIR",
                       help="the fleet's folder, where snippets are kept (snippets/SENSOR/EVENT.ogg); default: "
                            "NAME-fleet beside a store NAME.sqlite, fleet in the user's data folder for PostgreSQL")


def serve(args: argparse.Namespace) -> int:
    from envsound.app.run import serve as run_server
    from envsound.app.server import ServerLimits

    if (min(args.max_upload_mb, args.max_seconds, args.idle_seconds, args.body_seconds) <= 0
            or min(args.workers, args.max_streams) < 1):
        raise ConfigError("--max-upload-mb, --max-seconds, --idle-seconds and --body-seconds must be > 0, --workers "
                          "and --max-streams >= 1")
    if bool(args.ssl_keyfile) != bool(args.ssl_certfile):
        raise ConfigError("HTTPS needs both --ssl-keyfile and --ssl-certfile")
    if (args.rate_limit <= 0 or min(args.streams_per_token, args.auth_failures) < 1
            or (args.keep_days is not None and args.keep_days <= 0)):
        raise ConfigError("--rate-limit and --keep-days must be > 0, --streams-per-token and --auth-failures >= 1")
    if any(value is not None and value <= 0 for value in (args.keep_snippets, args.snippet_quota)):
        raise ConfigError("--keep-snippets and --snippet-quota must be > 0")
    limits = ServerLimits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds, workers=args.workers,
                          max_streams=args.max_streams, idle_seconds=args.idle_seconds,
                          body_seconds=args.body_seconds)
    return run_server(args.checkpoint, host=args.host, port=args.port, limits=limits, device=args.device,
                      precision=args.precision, ssl_keyfile=args.ssl_keyfile, ssl_certfile=args.ssl_certfile,
                      quiet=args.quiet, store=args.store, auth=args.auth, keep_days=args.keep_days,
                      rate=args.rate_limit, streams_per_token=args.streams_per_token,
                      auth_failures=args.auth_failures, access_log=args.access_log, keep_snippets=args.keep_snippets,
                      snippet_quota=None if args.snippet_quota is None else int(args.snippet_quota * 1e9),
                      fleet_dir=args.fleet_dir)
