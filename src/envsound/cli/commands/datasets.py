"""List the dataset names, or (datasets check) list the clips of a dataset that are copies or near copies of each
other; exit 1 when a pair straddles folds."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.cli.dataset_flags import manifest_of, report_skipped
from envsound.cli.options import feature_cache
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("datasets", __doc__)
    p.add_argument("action", nargs="?", choices=["list", "check"], default="list")
    p.add_argument("--dataset", metavar="NAME", help="for check: the dataset")
    p.add_argument("--root", type=Path, metavar="PATH", help="for check: its root folder")
    p.add_argument("--skip-bad", action="store_true",
                   help="for check: leave out unreadable audio (each named once; exit status 1)")
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="feature store (fingerprints are kept there)")
    p.add_argument("--no-cache", action="store_true", help="do not keep fingerprints")
    p.set_defaults(run=datasets)


def datasets(args: argparse.Namespace) -> int:
    from envsound.data.registry import dataset_names

    if args.action == "list":
        print("\n".join(dataset_names()))
        return 0
    from envsound.features.fingerprint import find_duplicates  # not for the list: it stays light

    if not args.dataset:
        raise ConfigError("datasets check needs --dataset NAME (and --root PATH)")
    manifest = manifest_of(args)
    duplicates = find_duplicates(manifest.records, cache=feature_cache(args))
    for duplicate in duplicates:
        print(duplicate.describe())
    straddling = sum(d.straddles for d in duplicates)
    print(f"{manifest.name}: {len(manifest)} clips, {len(duplicates)} pair(s) of copies or near copies, "
          f"{straddling} straddling folds")
    return max(report_skipped(args, manifest.skipped), 1 if straddling else 0)
