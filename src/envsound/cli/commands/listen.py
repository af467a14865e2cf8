"""Classify audio as it arrives (stdin, the microphone, or a file played in real time): a line whenever the top label
changes or an event starts or ends, each with its time."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from envsound.audio.stream import ENCODINGS
from envsound.cli.options import add_device_option, add_json_option, add_model_argument
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("listen", __doc__)
    add_model_argument(p, onnx=True, frozen=True, note="; or the folder export makes of a head learned over one "
                                                        "(a sensor runs it without torch)")
    add_listen_options(p)
    add_device_option(p, precision=True)
    p.set_defaults(run=listen)


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
    add_json_option(parser, 'one JSON object a hop: {"time" (s heard so far), "start", "top": [{"label", "score"}], '
                            '"active": events under way, "events": events that ended, "model_ms", "end"}; multi-label '
                            'models add "labels": every label at or above its threshold')
    group = parser.add_argument_group("a sensor of a deployment: send what it hears to a server (no audio leaves "
                                      "unless --snippets); "
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
    group.add_argument("--snippets", nargs="?", const="", metavar="LABELS",
                       help="send each event's sound too (the event with half a second each side, at least a window "
                            "of the model, at most 10 s; Ogg Opus, about 30 KB for 5 s), after its event: of every "
                            "label, or only of these (a comma list); the last line adds 'snippets: S sent, Q queued, "
                            "D dropped'")
    group.add_argument("--snippets-except", metavar="LABELS",
                       help="never send the sound of these labels (a comma list, e.g. speech); implies --snippets")
    group.add_argument("--snippet-budget-mb", type=float, default=100.0, metavar="MB",
                       help="snippets waiting in the queue take at most this much disk; beyond it the oldest are "
                            "dropped (counted in the heartbeat and the last line)")
    add_follow_options(parser)


def add_follow_options(parser: argparse.ArgumentParser) -> None:
    """``--follow`` and its options: run the model version the server assigns to this sensor."""
    group = parser.add_argument_group(
        "a sensor of a fleet: run the model version its server assigns it (envsound fleet publish), checked against "
        "the server's signature and swapped in at a window boundary (no audio skipped or heard twice); a corrupt, "
        "unsigned or foreign file is refused and reported, and the running model kept")
    group.add_argument("--follow", nargs="?", const=True, metavar="URL",
                       help="follow the server at URL (alone: --report's), with --sensor and its token; versions are "
                            "downloaded beside the queue (QUEUE-models/)")
    group.add_argument("--follow-seconds", type=float, default=60.0, help="between two asks for the assignment")
    group.add_argument("--server-key", type=Path, metavar="FILE",
                       help="the server's public key (PEM, the fleet folder's signing-key.pub) that every version "
                            "must be signed with; omitted, the key the server gives at first contact is pinned in "
                            "QUEUE-models/server-key.pub and trusted from then on (delete it to trust another)")



def listen(args: argparse.Namespace) -> int:
    from envsound.audio.stream import open_input
    from envsound.inference.live import LiveListener
    from envsound.inference.predictor import Predictor

    if args.rate is not None and args.input != "-":
        raise ConfigError("--rate describes raw PCM on stdin: use it with --input -")
    if args.report and not args.sensor:
        raise ConfigError("--report needs --sensor NAME (and --token T when the server requires tokens)")
    if args.deliver_seconds < 0 or args.heartbeat_seconds <= 0:
        raise ConfigError("--deliver-seconds must be >= 0 and --heartbeat-seconds > 0")
    if (args.snippets is not None or args.snippets_except) and not args.report:
        raise ConfigError("--snippets sends events' sound to a server: use it with --report URL")
    if args.snippet_budget_mb <= 0:
        raise ConfigError(f"--snippet-budget-mb {args.snippet_budget_mb}: must be > 0")
    if args.follow and (not args.sensor or (args.follow is True and not args.report) or args.follow_seconds <= 0):
        raise ConfigError("--follow needs --sensor NAME, the server's address (--follow URL or --report URL) and "
                          "--follow-seconds > 0")
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    rate, blocks = open_input(args.input, rate=args.rate, channels=args.channels, encoding=args.encoding,
                              realtime=args.realtime, idle_seconds=args.idle_seconds or None)
    listener = LiveListener(predictor, sample_rate=rate, top_k=args.top_k)
    show = (lambda hop: print(json.dumps(hop.to_dict()), flush=True)) if args.json else _LiveLines()
    reporting = _reporting(args, predictor, rate) if args.report else None
    follower = _follower(args, listener, reporting, predictor) if args.follow else None
    try:
        for block in blocks:
            if reporting:
                reporting.hear(block)
            for hop in listener.push(block):
                show(hop)
                if reporting:
                    reporting.hop(hop.to_dict())
    except KeyboardInterrupt:  # Ctrl-C ends a live session: what was heard is still reported
        pass
    finally:  # a stream that broke off (AudioLoadError) still gets its end, then its one-line error
        if follower:
            follower.stop()
        for hop in listener.finish():
            show(hop)
            if reporting:
                reporting.hop(hop.to_dict())
        if reporting:
            summary = reporting.finish(args.deliver_seconds)
            # with --json, stdout stays one JSON object a line: the summary goes with the log lines
            print(summary.line(), flush=True, file=sys.stderr if args.json else sys.stdout)
    return 1 if reporting and (summary.queued or summary.set_aside or (summary.snippets or (0, 0))[1]) else 0


def _reporting(args: argparse.Namespace, predictor, rate: int):
    """``listen --report``'s outbox and delivery thread for ``args.sensor`` (and its snippets' cutter, of a stream
    at ``rate`` Hz)."""
    from envsound.deploy.outbox import Outbox, default_queue_path
    from envsound.deploy.reporter import Reporting
    from envsound.deploy.tokens import check_name

    check_name(args.sensor)
    outbox = Outbox(args.queue or default_queue_path(args.sensor))
    return Reporting(outbox, args.report, sensor=args.sensor, token=args.token or os.environ.get("ENVSOUND_TOKEN"),
                     model=predictor.model.config.model.name, fingerprint=predictor.source.short_digest,
                     heartbeat_seconds=args.heartbeat_seconds, snipper=_snipper(args, predictor, rate),
                     snippet_budget=int(args.snippet_budget_mb * 1e6))


def _snipper(args: argparse.Namespace, predictor, rate: int):
    """What cuts each event's snippet with ``--snippets`` or ``--snippets-except`` (None: without)."""
    from envsound.deploy.snippets import Snipper, SnippetRules, SnippetSettings

    if args.snippets is None and not args.snippets_except:
        return None
    return Snipper(SnippetSettings(rules=SnippetRules.parse(args.snippets, args.snippets_except)), stream_rate=rate,
                   **_cutting(predictor))


def _cutting(predictor) -> dict:
    """What a snippet's cut takes from the network that hears (:meth:`~envsound.deploy.snippets.Snipper.tune`)."""
    features, decoding = predictor.features, predictor.decoding
    return {"network_rate": features.sample_rate, "window": features.window_seconds,
            "hop": features.eval_hop_seconds, "median": decoding.median_seconds, "gap": decoding.gap_seconds}


def _follower(args: argparse.Namespace, listener, reporting, own):
    """``listen --follow``'s thread: the assigned version checked, loaded and handed to ``listener`` (``own``: the
    model it was started with, for an assignment of none); its first ask is made before the stream starts."""
    from envsound.deploy.follow import Follower, models_folder
    from envsound.deploy.outbox import default_queue_path
    from envsound.inference.predictor import Predictor

    def load(path):
        return own if path is None else Predictor.from_checkpoint(path, device=args.device, precision=args.precision)

    def swap(model, version: dict | None) -> None:
        # the report's model and fingerprint stay the starting model's: an event carries the version that heard it,
        # which the server names by its own record (an event of the starting model, delivered after the swap, too)
        listener.replace(model, version=None if version is None else version["id"])
        if reporting and reporting.snipper:  # its snippets: at least one of its windows, at its rate
            reporting.snipper.tune(**_cutting(model))

    follower = Follower(args.report if args.follow is True else args.follow, sensor=args.sensor,
                        token=args.token or os.environ.get("ENVSOUND_TOKEN"),
                        folder=models_folder(args.queue or default_queue_path(args.sensor)), load=load, swap=swap,
                        server_key=args.server_key, every=args.follow_seconds)
    if reporting:
        reporting.refusal = lambda: follower.refused
    follower.check_once()
    follower.start()
    return follower


class _LiveLines:
    """``listen``'s text: a line when the top label changes, an event starts or one ends."""

    def __init__(self) -> None:
        self.top, self.active = None, set()

    def __call__(self, hop) -> None:
        if hop.top and hop.top[0]["label"] != self.top:
            self.top = hop.top[0]["label"]
            print(f"{hop.time:9.2f} s  {self.top} {hop.top[0]['score']:.3f}", flush=True)
        for event in hop.active:
            if event["label"] not in self.active:
                print(f"{hop.time:9.2f} s  event {event['label']} from {event['onset']:.2f} s", flush=True)
        for event in hop.ended:
            print(f"{hop.time:9.2f} s  event {event['label']} {event['onset']:.2f}-{event['offset']:.2f} s "
                  f"{event['score']:.3f}", flush=True)
        self.active = {event["label"] for event in hop.active}
        if hop.end:
            print(f"{hop.time:9.2f} s  end of stream", flush=True)
