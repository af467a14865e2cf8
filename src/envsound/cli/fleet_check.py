"""``envsound fleet check``: each sensor's precision per label, from the verdicts reviewers gave its random sample of
detections (the Review page's fleet mode, sample order), with its 95 % interval."""

from __future__ import annotations

import argparse
import json

from envsound.cli.options import add_json_option, add_store_option
from envsound.errors import ConfigError


def add_check_options(parser: argparse.ArgumentParser) -> None:
    """``fleet check``'s filters, the server's store and fleet folder."""
    parser.add_argument("--sensor", metavar="NAME", help="only this sensor")
    parser.add_argument("--label", metavar="LABEL", help="only this label")
    parser.add_argument("--since", metavar="TIME", help="events sounding at or after this ISO 8601 time")
    parser.add_argument("--until", metavar="TIME", help="events sounding before this ISO 8601 time")
    add_store_option(parser, help="the server's --store (omitted: the file serve uses when it is given none)")
    parser.add_argument("--fleet-dir", metavar="DIR",
                        help="the server's --fleet-dir (default: NAME-fleet beside a SQLite store NAME.sqlite)")
    add_json_option(parser, "one JSON object a sensor and label: sensor, label, events, reviewed, sampled, yes, no, "
                            "unsure, precision, low, high")


def check(args: argparse.Namespace) -> int:
    """Each sensor's precision per label, from the verdicts on its random sample of events heard."""
    from envsound.agile.fleet_review import Filters, FleetReview, precision_line
    from envsound.deploy.fleet_files import fleet_dir
    from envsound.deploy.store import Store
    from envsound.deploy.times import as_utc, parse_time
    from envsound.errors import NoStoreError

    times = {}
    for name in ("since", "until"):
        text = getattr(args, name)
        try:
            times[name] = None if text is None else as_utc(parse_time(text))
        except ValueError:
            raise ConfigError(f"--{name} {text!r}: not an ISO 8601 time (e.g. 2026-11-29T06:00:00Z)") from None
    try:
        store = Store.open(args.store, create=False)
    except NoStoreError as exc:
        raise ConfigError(f"{exc.where}: no store there; give the --store the server uses") from None
    try:
        review = FleetReview(store, fleet_dir(args.store, args.fleet_dir))
        found = review.precision(Filters(label=args.label, sensor=args.sensor, **times))
    finally:
        store.close()
    if not found:
        print(f"no events with their sound kept in {store.shown}" + (" for these filters" if any(
            (args.sensor, args.label, args.since, args.until)) else "") + ": sensors send it with listen --snippets")
    for item in found:
        print(json.dumps(item) if args.json else precision_line(item))
    return 0

