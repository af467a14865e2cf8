"""Classify audio files or folders (recursively) of any length and format; with --out, an archive into a results
folder, batched and resumable."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from envsound.cli.options import (add_archive_options, add_device_option, add_json_option, add_model_argument,
                                  add_threshold_option, check_threshold, scan_options)
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("predict", __doc__)
    add_model_argument(p, onnx=True, frozen=True, note="; or the folder export makes of a head learned over one")
    p.add_argument("inputs", nargs="*", metavar="FILE_OR_FOLDER",
                   help="audio files, folders or globs; with --out, also one embeddings store folder (envsound "
                        "embed --out DB), ranked from its stored embeddings: no audio decoded")
    p.add_argument("--top-k", type=int, default=3, help="labels to show per file")
    add_json_option(p, 'one JSON object per input: {"file", "top": [{"label", "score"}], "error"}; multi-label '
                       'models add "labels": every label at or above the threshold')
    p.add_argument("--segments", action="store_true",
                   help="add a per-window timeline (start, end, top label, score)")
    p.add_argument("--events", action="store_true",
                   help='add when each class sounds: events (label, onset, offset, score; --json: "events") from the '
                        "window timeline, median-filtered and thresholded (events.* of the checkpoint's config; the "
                        "time resolution is features.eval_hop_seconds)")
    add_threshold_option(p)
    add_device_option(p, precision=True)
    add_filter_options(p.add_argument_group("class filters (printed results; docs/guide/networks.md)"))
    add_scan_options(p)
    p.set_defaults(run=predict)


def add_filter_options(group) -> None:
    """BirdNET's filters, for printed results: a species list (any model), or BirdNET's species-range model."""
    group.add_argument("--species-list", type=Path, metavar="FILE",
                       help="report only the classes FILE lists (a folder: its species_list.txt), one a line as "
                            "the model's labels write them (BirdNET: 'Latin name_Common name', as "
                            "BirdNET-Analyzer's --slist); any model")
    group.add_argument("--lat", type=float, help="with --lon: report only the classes BirdNET V2.4's species-range "
                                                 "model expects at this latitude (degrees, -90 to 90)")
    group.add_argument("--lon", type=float, help="longitude (degrees, -180 to 180), with --lat")
    group.add_argument("--week", type=int, help="week of the year for --lat/--lon, 1-48 (four a month); default -1: "
                                                "the whole year")
    group.add_argument("--sf-thresh", type=float, metavar="P",
                       help="the occurrence probability a class needs at --lat/--lon to be kept (default 0.03, as "
                            "BirdNET-Analyzer's --sf_thresh)")


def _filtered(predictor, args: argparse.Namespace):
    """``predictor`` narrowed to the classes --species-list or --lat/--lon keep (itself without either)."""
    from envsound.models.birdnet_range import SF_THRESH, WHOLE_YEAR, range_classes

    if args.species_list is not None:
        return predictor.only(args.species_list)
    if args.lat is None:
        return predictor
    week = WHOLE_YEAR if args.week is None else args.week
    threshold = SF_THRESH if args.sf_thresh is None else args.sf_thresh
    names = range_classes(predictor.labels, args.lat, args.lon, week, threshold=threshold,
                          near=predictor.source.path if predictor.source else None)
    if not args.quiet:  # as BirdNET-Analyzer says how long its species list is
        print(f"envsound predict: {len(names):,} of {len(predictor.labels):,} classes expected at --lat {args.lat:g} "
              f"--lon {args.lon:g} --week {week} (--sf-thresh {threshold:g})", file=sys.stderr)
    return predictor.only(names)


def _check_filters(args: argparse.Namespace) -> None:
    from envsound.models.birdnet_range import check_place, check_sf_thresh

    place = args.lat is not None or args.lon is not None
    if (args.week is not None or args.sf_thresh is not None) and not place:
        raise ConfigError("--week and --sf-thresh go with --lat and --lon (BirdNET's species-range filter)")
    if place and args.species_list is not None:
        raise ConfigError("--species-list and --lat/--lon are two filters: give one (BirdNET-Analyzer ignores its "
                          "list when given a place)")
    if place and (args.lat is None or args.lon is None):
        raise ConfigError("--lat and --lon go together: give both (and --week, default the whole year)")
    if place:
        check_place(args.lat, args.lon, -1 if args.week is None else args.week)
    if args.sf_thresh is not None:
        check_sf_thresh(args.sf_thresh)
    if args.out is not None and (place or args.species_list is not None):
        raise ConfigError("--species-list and --lat/--lon filter printed results; a results folder (--out) keeps "
                          "every class (its windows/ tables with --window-scores)")


def add_scan_options(p: argparse.ArgumentParser) -> None:
    """``predict --out DIR``: a results folder, its tables and how the archive runs."""
    from envsound.inference.scan.tables import FORMATS

    group = p.add_argument_group("archives (--out)")
    group.add_argument("--out", type=Path, metavar="DIR",
                       help="write the results to DIR instead of printing them: tables files/ (one row per file), "
                            "windows/, events/ (with --events), errors/ and counts/ (windows and events per file, "
                            "hour and label, by site and date), in parts; running the same command again resumes, "
                            "skipping the files already done (docs/guide/archives.md)")
    add_archive_options(group, verb="classify", folder="results folder")
    group.add_argument("--format", default="parquet", choices=list(FORMATS),
                       help="the tables' format (parquet needs pyarrow: pip install 'envsound[scan]')")
    group.add_argument("--window-scores", action="store_true",
                       help="windows/ gets one column per class (p:LABEL) with its probability")
    group.add_argument("--event-tables", metavar="raven,audacity", type=lambda v: [k for k in v.split(",") if k],
                       help="with --events, per-file event tables: Raven selection tables (DIR/raven/) "
                            "and/or Audacity label tracks (DIR/audacity/)")
    group.add_argument("--file-timeout", type=float, metavar="SECONDS",
                       help="list a file in errors/ once reading it makes no progress (no data read, no CPU time) "
                            "for this long (a stalled network mount), on either engine; a long file that keeps being "
                            "read never trips it (default 300; 0: no limit)")
    group.add_argument("--time-from", metavar="REGEX",
                       help="where each file's path carries its start time, for counts/' date, time and hour_of_day: "
                            "a regular expression with the named groups year, month, day and optionally hour, minute, "
                            "second, e.g. '(?P<year>\\d{4})-(?P<month>\\d\\d)-(?P<day>\\d\\d)/(?P<hour>\\d\\d)' "
                            "(default: the AudioMoth name YYYYMMDD_HHMMSS and the Wildlife Acoustics "
                            "NAME_YYYYMMDD_HHMMSS; docs/guide/archives.md)")
    group.add_argument("--resume", action="store_true",
                       help="say that DIR is expected to hold results already (the same command resumes anyway)")


def predict(args: argparse.Namespace) -> int:
    from envsound.inference.predictor import Predictor

    check_threshold(args)
    _check_filters(args)
    if args.out is not None:
        return _scan(args)
    if args.files_from or args.resume or args.engine != "local" or args.address or args.event_tables or \
            args.time_from is not None:
        raise ConfigError("--files-from, --resume, --engine, --address, --event-tables and --time-from are for a "
                          "results folder: add --out DIR")
    if not args.inputs:
        raise ConfigError("name the audio files or folders to classify")
    predictor = _filtered(Predictor.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision,
                                                    threshold=args.threshold), args)
    failed = 0
    for prediction in predictor.predict_paths(args.inputs, top_k=args.top_k, segments=args.segments,
                                              events=args.events):
        failed += prediction.error is not None
        _show(prediction, as_json=args.json)
    if failed:
        print(f"envsound predict: {failed} input(s) could not be classified", file=sys.stderr)
    return 1 if failed else 0


def _show(prediction, *, as_json: bool) -> None:
    """One input's prediction: a JSON line, an error line on stderr, or its top labels, segments and events."""
    if as_json:
        print(json.dumps(prediction.to_dict()), flush=True)
    elif prediction.error:  # the reason usually starts with the path already: name it once
        reason = prediction.error.removeprefix(f"{prediction.file}: ")
        print(f"{prediction.file}: error: {reason}", file=sys.stderr, flush=True)
    else:
        closed = ", ".join(f"{_listed(t['label'])} {t['score']:.3f}" for t in prediction.closed or [])
        best = ", ".join(f"{_listed(t['label'])} {t['score']:.3f}" for t in prediction.top) or \
            "none of the model's classes" + (f" (without the open-set gate: {closed})" if closed else "")
        tagged = "" if prediction.labels is None else \
            f"  [labels: {', '.join(_listed(t['label']) for t in prediction.labels) or 'none above threshold'}]"
        print(f"{prediction.file}: {best}{tagged}", flush=True)
        for seg in prediction.segments or []:
            print(f"  {seg['start']:8.2f}-{seg['end']:8.2f} s  {seg['label']} {seg['score']:.3f}")
        for event in prediction.events or []:
            print(f"  event {event['onset']:8.2f}-{event['offset']:8.2f} s  {event['label']} {event['score']:.3f}")


def _listed(label: str) -> str:
    """A label as an item of a comma-separated list: quoted (CSV-style) when it holds a comma itself, as AudioSet's
    "Domestic animals, pets" does, so that `Dog, "Domestic animals, pets", Bark` reads as three labels."""
    return '"' + label.replace('"', '""') + '"' if "," in label or '"' in label else label


def _scan(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from envsound.inference.archive.journal import JOURNAL_NAME
    from envsound.inference.scan import Tables, scan

    if args.json or args.segments:
        raise ConfigError("--out writes every window to DIR/windows/: --json and --segments are for printed results")
    if not args.inputs and not args.files_from:
        raise ConfigError("name the audio files, folders or globs to classify, or --files-from LIST")
    if args.event_tables and not args.events:
        raise ConfigError("--event-tables lists each file's events: add --events")
    if args.resume and not (args.out / JOURNAL_NAME).exists():
        raise ConfigError(f"--resume: {args.out} holds no results to resume (no {JOURNAL_NAME}); drop --resume to "
                          "start")
    tables = Tables(format=args.format, top_k=args.top_k, events=args.events, window_scores=args.window_scores,
                    event_tables=args.event_tables or (), threshold=args.threshold, time_from=args.time_from)
    options = scan_options(args, progress=not args.quiet)
    if args.file_timeout is not None:
        options = replace(options, file_timeout=args.file_timeout)
    summary = scan(args.checkpoint, args.inputs, out=args.out, files_from=args.files_from, tables=tables,
                   options=options)
    print(summary.line())
    return 1 if summary.total_failed else 0
