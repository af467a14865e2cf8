"""The options of listen, serve and token: the live and deployment commands (cli/main.py says which command takes
which)."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.audio.stream import ENCODINGS
from envsound.deploy.tokens import ROLES


def add_listen_options(parser: argparse.ArgumentParser) -> None:
    """``listen``'s input, output and sensor options (the model, device and precision are added by the caller)."""
    parser.add_argument("--input", default="mic", metavar="-|mic|FILE",
                        help="-: stdin (a WAV, FLAC, Ogg Vorbis or MP3 stream, or raw PCM with --rate); mic: the "
                             "default microphone (needs sounddevice); FILE: an audio file (with --realtime: at the "
                             "speed it plays)")
    parser.add_argument("--rate", type=int, metavar="HZ", help="stdin is raw PCM at this sample rate (no WAV header)")
    parser.add_argument("--channels", type=int, default=1, help="channels of raw PCM on stdin")
    parser.add_argument("--encoding", default="pcm16", choices=list(ENCODINGS),
                        help="samples of raw PCM on stdin (little-endian)")
    parser.add_argument("--realtime", action="store_true", help="play --input FILE at its own speed, as a live source")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="give up on stdin after this long without audio (0: wait for ever)")
    parser.add_argument("--top-k", type=int, default=3, help="labels in each --json object")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object a hop: {"time" (s heard so far), "start", "top": [{"label", "score"}], '
                             '"active": events under way, "events": events that ended, "model_ms", "end"}; multi-label '
                             'models add "labels": every label at or above its threshold')
    group = parser.add_argument_group("a sensor of a deployment: send what it hears to a server (no audio leaves); "
                                      "the last line says 'N events: D delivered, Q queued' (on stderr with --json; "
                                      "'N events and B queued before: ...' when an earlier run left B in the queue; "
                                      "', S set aside' when the server refused some as malformed); exit 1 while any "
                                      "is queued or set aside")
    group.add_argument("--report", metavar="URL", help="the server's base address, e.g. http://127.0.0.1:8000: each "
                                                       "event and a heartbeat go to its POST /v1/report")
    group.add_argument("--token", metavar="T", help="a sensor token for --sensor (default: $ENVSOUND_TOKEN, which "
                                                    "keeps it out of the process list)")
    group.add_argument("--sensor", metavar="NAME", help="this sensor's name (its token's name)")
    group.add_argument("--queue", type=Path, metavar="PATH",
                       help="what could not be delivered yet waits here, for this run or the next (default: "
                            "queue-NAME.sqlite in the user's data folder)")
    group.add_argument("--deliver-seconds", type=float, default=60.0,
                       help="at the end of the input, keep trying to deliver what is queued this long")
    group.add_argument("--heartbeat-seconds", type=float, default=30.0, help="between two heartbeats")


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
    group = parser.add_argument_group("a deployment: sensors' reports kept, tokens")
    group.add_argument("--store", metavar="PATH_OR_URL",
                       help="where events and tokens are kept: a SQLite file, or postgresql://USER@HOST/DB; omitted, "
                            "a plain page and REST API open no store, while --auth, --keep-days or a --host beyond "
                            "loopback use events.sqlite in the user's data folder (printed at start); serving an "
                            "embeddings store DB: its labels and tokens (default DB/review.sqlite)")
    group.add_argument("--auth", action="store_true",
                       help="require tokens on 127.0.0.1 too (always required on any other address)")
    group.add_argument("--keep-days", type=float, metavar="DAYS", help="delete events older than this")
    group.add_argument("--rate-limit", type=float, default=20.0, help="requests a second a token may make")
    group.add_argument("--streams-per-token", type=int, default=4, help="live streams one token may hold at once")
    group.add_argument("--auth-failures", type=int, default=10, metavar="N",
                       help="unknown or revoked tokens one client address may send a minute; beyond them all its "
                            "requests get 429 until the minute has passed")


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """``token``'s action, name, role, id and store."""
    parser.add_argument("action", choices=["create", "list", "revoke"])
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="a sensor token's name is its sensor's (create, revoke)")
    parser.add_argument("--role", choices=ROLES,
                        help="create: sensor (reports and streams as NAME), viewer (reads), reviewer (reads and "
                             "labels an embeddings store's windows), admin (all of it)")
    parser.add_argument("--id", type=int, help="revoke: only this token of NAME's (token list shows ids)")
    parser.add_argument("--store", metavar="PATH_OR_URL",
                        help="the server's --store (omitted: the file serve uses when it is given none); it must "
                             "exist: a missing one is an error, never made")
    parser.add_argument("--new-store", action="store_true",
                        help="create: make the store when --store names none yet (the first token of a deployment)")
