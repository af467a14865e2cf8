"""The dataset a command's flags name, and the exit status of every command that reads one: what ``--skip-bad``
left out, each file named once, then one summary line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("envsound")


def data_of(args: argparse.Namespace, *, rotate: bool = False):
    """The :class:`~envsound.recipes.dataset.Dataset` the flags name (--dataset, --root, --classes,
    --exclude-classes, --subset, --group-by, --skip-bad, --folds), listed here (it keeps the listing for the run):
    folds made where it has none, its classes narrowed; ``rotate`` (cv, grid): a set that cannot be given folds
    stops here, naming the classes too small. Files left out with --skip-bad are reported once, at the end, by
    :func:`report_skipped`."""
    from envsound.recipes.dataset import dataset

    keep, exclude = getattr(args, "classes", None), getattr(args, "exclude_classes", None)
    data = dataset(args.dataset, root=args.root, classes=keep, exclude_classes=exclude,
                   subset=getattr(args, "subset", None), group_by=getattr(args, "group_by", None),
                   skip_bad=args.skip_bad, folds=getattr(args, "folds", None))
    manifest = data.load(rotate=rotate)
    args.listed = len(manifest) + len(manifest.skipped)  # the "of N files" of the closing summary
    if keep or exclude:
        log.info("%d classes, %d clips of %s (--classes/--exclude-classes)", len(manifest.labels), len(manifest),
                 args.dataset)
    return data


def manifest_of(args: argparse.Namespace, *, rotate: bool = False):
    """The clips of :func:`data_of`, every fold (the commands that take a Manifest)."""
    return data_of(args, rotate=rotate).load()


def report_skipped(args: argparse.Namespace, skipped: list[tuple[Path, str]], *, listed: int | None = None) -> int:
    """The exit status of every command that reads a dataset: 0 when nothing was left out; else each file left out
    (--skip-bad) named once, though listing and every fold's decoding may each have met it, then one summary as
    the last line, and 1, so that scripts notice."""
    reasons: dict[str, str] = {}
    for path, reason in skipped:
        reasons.setdefault(str(path), reason)
    if not reasons:
        return 0
    for path, reason in reasons.items():  # a reason usually starts with its path already: name it once
        print(f"skipped {path}: {reason.removeprefix(f'{path}: ')}", file=sys.stderr)
    listed = getattr(args, "listed", None) if listed is None else listed
    of = f" of {listed}" if listed else ""
    print(f"envsound {args.command}: {len(reasons)}{of} file(s) left out as unusable (--skip-bad; each named above); "
          "the rest ran: exit status 1", file=sys.stderr)
    return 1
