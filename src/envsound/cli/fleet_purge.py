"""``envsound fleet purge``: delete the sound of events (the snippets sensors sent with ``listen --snippets``) by
sensor, label or age, from a server's fleet folder and its store; the events themselves stay. Safe beside a running
server (its next enforcement recounts what is kept)."""

from __future__ import annotations

import argparse

from envsound.cli.options import add_store_option
from envsound.errors import ConfigError


def add_purge_options(parser: argparse.ArgumentParser) -> None:
    """``fleet purge``'s conditions (together: all must hold), store and fleet folder."""
    parser.add_argument("--sensor", metavar="NAME", help="only this sensor's snippets")
    parser.add_argument("--label", metavar="LABEL", help="only the snippets of events of this label (e.g. speech)")
    parser.add_argument("--older-than", type=float, metavar="DAYS",
                        help="only the snippets of events that ended longer ago than this")
    parser.add_argument("--all", action="store_true", help="every snippet (needed when no condition is given)")
    add_store_option(parser, help="the server's --store (omitted: the file serve uses when it is given none)")
    parser.add_argument("--fleet-dir", metavar="DIR", help="the server's --fleet-dir, when it was given one")


def purge(args: argparse.Namespace) -> int:
    """Delete kept snippets by sensor, label or age (their files, then their columns); prints how many.

    Raises:
        ConfigError: no condition and no ``--all``, a negative ``--older-than``, or no store at ``--store``.
    """
    from envsound.deploy.fleet_files import fleet_dir
    from envsound.deploy.snippet_files import purge_snippets
    from envsound.deploy.store import Store
    from envsound.errors import NoStoreError

    if args.sensor is None and args.label is None and args.older_than is None and not args.all:
        raise ConfigError("fleet purge: say which snippets (--sensor, --label, --older-than) or --all")
    if args.older_than is not None and args.older_than < 0:
        raise ConfigError(f"--older-than {args.older_than}: must be >= 0 days")
    try:
        store = Store.open(args.store, create=False)
    except NoStoreError as exc:
        raise ConfigError(f"{exc.where}: no store there; give the --store the server uses") from None
    folder = fleet_dir(args.store, args.fleet_dir)
    try:
        count, size = purge_snippets(store, folder, sensor=args.sensor, label=args.label,
                                     older_than_days=args.older_than)
    finally:
        store.close()
    print(f"{count} snippets deleted ({size / 1e6:.2f} MB) from {folder / 'snippets'} and {store.shown}", flush=True)
    return 0
