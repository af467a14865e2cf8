"""Command handlers: each calls one library function and prints its result. Imports are lazy so --help is fast."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

import yaml

from envsound.cli.options import (build_config, feature_cache, run_context, run_options, show_progress,
                                  unlabelled_manifest)
from envsound.errors import ConfigError

log = logging.getLogger("envsound")


def _data(args: argparse.Namespace, *, rotate: bool = False):
    """The :class:`~envsound.recipes.dataset.Dataset` the flags name (--dataset, --root, --classes,
    --exclude-classes, --subset, --group-by, --skip-bad, --folds), listed here (it keeps the listing for the run):
    folds made where it has none, its classes narrowed; ``rotate`` (cv, grid): a set that cannot be given folds
    stops here, naming the classes too small. Files left out with --skip-bad are reported once, at the end, by
    :func:`_report_skipped`."""
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


def _dataset(args: argparse.Namespace, *, rotate: bool = False):
    """The clips of :func:`_data`, every fold (the commands that take a Manifest)."""
    return _data(args, rotate=rotate).load()


def train(args: argparse.Namespace) -> int:
    from envsound.recipes import api

    config = build_config(args)
    unlabelled = unlabelled_manifest(args)
    run = api.train(_data(args), out=args.out, init=args.init, config=config, options=run_options(args),
                    unlabelled=unlabelled)
    if run.model_path is None:  # another process of a multi-process run: process 0 reports
        return 0
    metrics = run.metrics
    semi = f" and {metrics['n_unlabelled']} unlabelled ({config.semi.method})" if metrics["n_unlabelled"] else ""
    print(f"trained {config.model.name} on {metrics['n_train']} clips ({metrics['n_val']} for validation){semi}, "
          f"{metrics['epochs']} epochs, {metrics['seconds']:.0f} s -> {run.model_path}")
    print(_score_line(args, config, run))
    return _report_skipped(args, run.skipped)


def _score_line(args: argparse.Namespace, config, run) -> str:
    """The run's validation score when it took a validation split, else how to get an honest one."""
    metrics = run.metrics
    if metrics["n_val"] and metrics["best_score"] is not None:
        return (f"validation {config.train.monitor} {metrics['best_score']:.4f} on {metrics['n_val']} held-out clips "
                "of the training folds (the epoch kept); a test score needs folds the model never saw")
    tuned = metrics.get("events_tuned")
    if tuned:  # a frame model's validation clips chose how its frames become events, not an epoch
        return (f"validation event F1 {tuned['event_f1']:.4f} on {tuned['clips']} held-out clips of the training "
                "folds, which chose the events' decoding (so it flatters); a test score needs folds the model never "
                "saw" + (f": {_evaluate_command(args, run)}" if metrics["held_out_folds"] else ""))
    if metrics["held_out_folds"]:
        kept = "the validation clips chose no epoch" if metrics["n_val"] else "nothing was held out for validation"
        return f"no accuracy yet: {kept}; score it on the folds it never saw: {_evaluate_command(args, run)}"
    return (f"no accuracy: every clip was used for training; for an honest estimate run 'envsound cv --dataset "
            f"{args.dataset} --root {shlex.quote(str(args.root))} ...' (cross-validation), or take a validation "
            "split: --set train.val_fraction=0.1")


def _evaluate_command(args: argparse.Namespace, run) -> str:
    folds = ",".join(str(f) for f in run.metrics["held_out_folds"])
    return (f"envsound evaluate {shlex.quote(str(run.model_path))} --dataset {args.dataset} --root "
            f"{shlex.quote(str(args.root))} --folds {folds}")


def cv(args: argparse.Namespace) -> int:
    from envsound.recipes import api

    config = build_config(args)
    unlabelled = unlabelled_manifest(args)
    data = _data(args, rotate=True)

    def show(fold: dict, score: str) -> None:  # each fold's result once, on stdout, as it finishes
        print(f"fold {fold['fold']}: {score} {fold[score]:.4f} ({fold['n_test']} clips){_event_scores(fold)}",
              flush=True)

    run = api.cross_validate(data, out=args.out, init=args.init, config=config, options=run_options(args),
                             unlabelled=unlabelled, on_fold=show)
    summary = run.metrics
    score = summary["score"]
    print(f"mean {score} {summary[f'mean_{score}']:.4f} ± {summary[f'std_{score}']:.4f} over "
          f"{summary['n_folds']} folds ({summary['seconds']:.0f} s) -> {args.out / 'cv.json'}")
    if "mean_event_f1" in summary:
        print("mean " + ", ".join(f"{name} {summary[f'mean_{name}']:.4f} ± {summary[f'std_{name}']:.4f}"
                                  for name in ("segment_f1", "event_f1", "psds")))
    return _report_skipped(args, run.skipped)


def _listed(label: str) -> str:
    """A label as an item of a comma-separated list: quoted (CSV-style) when it holds a comma itself, as AudioSet's
    "Domestic animals, pets" does, so that `Dog, "Domestic animals, pets", Bark` reads as three labels."""
    return '"' + label.replace('"', '""') + '"' if "," in label or '"' in label else label


def _event_scores(fold: dict) -> str:
    """A fold's event metrics, when its set has strong labels."""
    if "event_f1" not in fold:
        return ""
    return (f"; segment F1 {fold['segment_f1']:.4f}, event F1 {fold['event_f1']:.4f}, PSDS {fold['psds']:.4f} "
            f"(--segments baseline: event F1 {fold['sed']['baseline']['event_f1']:.4f})")


def grid(args: argparse.Namespace) -> int:
    from envsound.recipes.grid import grid_search, split_grid_overrides

    fixed, axes = split_grid_overrides(args.overrides)
    config = build_config(args, overrides=fixed)
    init = args.init
    unlabelled = unlabelled_manifest(args)
    manifest = _dataset(args, rotate=True)
    result = grid_search(manifest, config, axes, folds=args.folds, out_dir=args.out, context=run_context(args),
                         init=init, unlabelled=unlabelled)
    print(result.markdown, end="")
    print(f"{len(result.points)} point(s) ({result.n_run} run now, {len(result.points) - result.n_run} reused) -> "
          f"{args.out / 'grid.md'}, {args.out / 'grid.json'}")
    skipped = list(manifest.skipped)
    for point in result.points:  # each point's cv.json lists what its folds left out (decoding happens there)
        summary = json.loads((Path(point["dir"]) / "cv.json").read_text(encoding="utf-8"))
        skipped += [(s["file"], s["reason"]) for s in summary.get("skipped", [])]
    return _report_skipped(args, skipped)


def stages(args: argparse.Namespace) -> int:
    from envsound.data.registry import dataset_root
    from envsound.recipes.stages import read_mixture_truth, run_stages

    config = build_config(args)
    args.subset = args.subset or "all"  # the stages use both origins
    manifest = _dataset(args)
    summary = run_stages(manifest, config, folds=args.folds, out_dir=args.out, context=run_context(args),
                         truth=read_mixture_truth(dataset_root(args.dataset, args.root)))
    for row in summary["stages"]:
        print(f"{row['title']:<34} lwlrap {row['lwlrap']:.4f} ± {row['std_lwlrap']:.4f}  mAP {row['mAP']:.4f}")
    for row in summary["filter"]:
        precision = "" if row["label_precision"] is None else f", {row['label_precision']:.1%} of their labels right"
        print(f"fold {row['fold']}: kept {row['kept']} of {row['noisy']} noisy clips{precision}")
    print(f"{summary['seconds']:.0f} s -> {args.out / 'stages.json'}")
    return _report_skipped(args, manifest.skipped)


def pretrain(args: argparse.Namespace) -> int:
    from envsound.evaluation.reconstructions import plot_reconstructions
    from envsound.recipes.pretrain import pretrain_autoencoder

    config = build_config(args)
    manifest = _dataset(args)
    if args.folds:
        manifest = manifest.select_folds(args.folds)
    if args.exclude_folds:
        manifest.select_folds(args.exclude_folds)  # a fold the dataset does not have is an error
        manifest = manifest.subset([r for r in manifest.records if r.fold not in set(args.exclude_folds)])
    result = pretrain_autoencoder(manifest, config, decoder=args.decoder, out_dir=args.out,
                                  context=run_context(args))
    if result.examples is None:  # another process of a multi-process run: process 0 reports
        return 0
    figure = plot_reconstructions(result.checkpoint, result.examples, path=args.out / "reconstructions.png")
    best = "n/a" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
    print(f"pre-trained the {config.model.name} autoencoder ({args.decoder}) on {result.n_train} clips "
          f"({result.n_val} held out, reconstruction error {best}), {result.epochs} epochs, {result.seconds:.0f} s "
          f"-> {result.checkpoint}, {figure}")
    return _report_skipped(args, manifest.skipped + result.skipped)


def evaluate(args: argparse.Namespace) -> int:
    from envsound.evaluation.metrics import format_report_text
    from envsound.recipes import api

    _check_threshold(args)
    run = api.evaluate(args.checkpoint, _data(args), out=args.out, label_map=args.label_map, threshold=args.threshold,
                       device=args.device, precision=args.precision, options=run_options(args))
    print(json.dumps(run.metrics) if args.json else format_report_text(run.metrics))
    return _report_skipped(args, run.skipped)


def _check_threshold(args: argparse.Namespace) -> None:
    """--threshold out of (0, 1) refused in the flag's own name, before a model loads."""
    if args.threshold is not None:
        from envsound.task import check_threshold

        check_threshold(args.threshold, name="--threshold")


def predict(args: argparse.Namespace) -> int:
    from envsound.inference.predictor import Predictor

    _check_threshold(args)
    if args.out is not None:
        return _scan(args)
    if args.files_from or args.resume or args.engine != "local" or args.address or args.event_tables:
        raise ConfigError("--files-from, --resume, --engine, --address and --event-tables are for a results folder: "
                          "add --out DIR")
    if not args.inputs:
        raise ConfigError("name the audio files or folders to classify")

    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision,
                                          threshold=args.threshold)
    failed = 0
    for prediction in predictor.predict_paths(args.inputs, top_k=args.top_k, segments=args.segments,
                                              events=args.events):
        failed += prediction.error is not None
        if args.json:
            print(json.dumps(prediction.to_dict()), flush=True)
        elif prediction.error:  # the reason usually starts with the path already: name it once
            reason = prediction.error.removeprefix(f"{prediction.file}: ")
            print(f"{prediction.file}: error: {reason}", file=sys.stderr, flush=True)
        else:
            best = ", ".join(f"{_listed(t['label'])} {t['score']:.3f}" for t in prediction.top) or \
                "none of the model's classes"
            tagged = "" if prediction.labels is None else \
                f"  [labels: {', '.join(_listed(t['label']) for t in prediction.labels) or 'none above threshold'}]"
            print(f"{prediction.file}: {best}{tagged}", flush=True)
            for seg in prediction.segments or []:
                print(f"  {seg['start']:8.2f}-{seg['end']:8.2f} s  {seg['label']} {seg['score']:.3f}")
            for event in prediction.events or []:
                print(f"  event {event['onset']:8.2f}-{event['offset']:8.2f} s  {event['label']} {event['score']:.3f}")
    if failed:
        print(f"envsound predict: {failed} input(s) could not be classified", file=sys.stderr)
    return 1 if failed else 0


def _scan(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from envsound.inference.scan import ScanOptions, Tables, scan
    from envsound.inference.scan.journal import JOURNAL_NAME

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
                    event_tables=args.event_tables or (), threshold=args.threshold)
    options = ScanOptions(engine=args.engine, address=args.address, workers=args.workers, batch_size=args.batch_size,
                          device=args.device, precision=args.precision, progress=not args.quiet)
    if args.file_timeout is not None:
        options = replace(options, file_timeout=args.file_timeout)
    summary = scan(args.checkpoint, args.inputs, out=args.out, files_from=args.files_from, tables=tables,
                   options=options)
    print(summary.line())
    return 1 if summary.total_failed else 0


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
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    rate, blocks = open_input(args.input, rate=args.rate, channels=args.channels, encoding=args.encoding,
                              realtime=args.realtime, idle_seconds=args.idle_seconds or None)
    listener = LiveListener(predictor, sample_rate=rate, top_k=args.top_k)
    show = (lambda hop: print(json.dumps(hop.to_dict()), flush=True)) if args.json else _LiveLines()
    reporting = _reporting(args, predictor) if args.report else None
    try:
        for block in blocks:
            for hop in listener.push(block):
                show(hop)
                if reporting:
                    reporting.hop(hop.to_dict())
    except KeyboardInterrupt:  # Ctrl-C ends a live session: what was heard is still reported
        pass
    finally:  # a stream that broke off (AudioLoadError) still gets its end, then its one-line error
        for hop in listener.finish():
            show(hop)
            if reporting:
                reporting.hop(hop.to_dict())
        if reporting:
            summary = reporting.finish(args.deliver_seconds)
            # with --json, stdout stays one JSON object a line: the summary goes with the log lines
            print(summary.line(), flush=True, file=sys.stderr if args.json else sys.stdout)
    return 1 if reporting and (summary.queued or summary.set_aside) else 0


def _reporting(args: argparse.Namespace, predictor):
    """``listen --report``'s outbox and delivery thread for ``args.sensor``."""
    from envsound.deploy.outbox import Outbox, default_queue_path
    from envsound.deploy.reporter import Reporting
    from envsound.deploy.tokens import check_name

    check_name(args.sensor)
    outbox = Outbox(args.queue or default_queue_path(args.sensor))
    return Reporting(outbox, args.report, sensor=args.sensor, token=args.token or os.environ.get("ENVSOUND_TOKEN"),
                     model=predictor.model.config.model.name, fingerprint=predictor.source.short_digest,
                     heartbeat_seconds=args.heartbeat_seconds)


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
    limits = ServerLimits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds, workers=args.workers,
                          max_streams=args.max_streams, idle_seconds=args.idle_seconds,
                          body_seconds=args.body_seconds)
    return run_server(args.checkpoint, host=args.host, port=args.port, limits=limits, device=args.device,
                      precision=args.precision, ssl_keyfile=args.ssl_keyfile, ssl_certfile=args.ssl_certfile,
                      quiet=args.quiet, store=args.store, auth=args.auth, keep_days=args.keep_days,
                      rate=args.rate_limit, streams_per_token=args.streams_per_token,
                      auth_failures=args.auth_failures)


def token(args: argparse.Namespace) -> int:
    from envsound.deploy.store import Store
    from envsound.deploy.tokens import ROLES
    from envsound.errors import NoStoreError

    if args.action != "list" and not args.name:
        raise ConfigError(f"token {args.action} needs a NAME")
    if args.action == "create" and not args.role:
        raise ConfigError(f"token create needs --role {'|'.join(ROLES)}")
    if args.new_store and args.action != "create":
        raise ConfigError(f"--new-store is for token create: token {args.action} reads the store that is there")
    try:  # only `create --new-store` makes a store: a mistyped --store is not a second, empty one
        store = Store.open(args.store, create=args.new_store)
    except NoStoreError as exc:
        where = f"{exc.where}{' (the default store)' if args.store is None else ''}: no store there"
        if args.action == "create":
            raise ConfigError(f"{where}; add --new-store to make one (or give the --store the server uses)") from None
        raise ConfigError(f"{where}, so no tokens; give the --store the server uses") from None
    if args.action == "create":
        made, secret = store.create_token(args.name, args.role)
        print(f"token {made.id} for {made.name} ({made.role}) in {'a new store, ' if store.new else ''}{store.shown}; "
              "it is shown this once:", flush=True)
        print(secret)
    elif args.action == "list":
        tokens = store.tokens()
        if not tokens:
            print(f"no tokens in {store.shown}")
        for made in tokens:
            state = f"revoked {made.revoked:%Y-%m-%d %H:%M}" if made.revoked else "active"
            print(f"{made.id:5d}  {made.name:24s} {made.role:7s} created {made.created:%Y-%m-%d %H:%M}  {state}")
    else:
        revoked = store.revoke(args.name, args.id)
        if not revoked:
            raise ConfigError(f"{args.name}: no active token{'' if args.id is None else f' {args.id}'} to revoke in "
                              f"{store.shown}")
        print(f"{revoked} token(s) of {args.name} revoked")
    store.close()
    return 0


def export(args: argparse.Namespace) -> int:
    from envsound.inference.onnx_export import export_onnx, parity_check

    if args.out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out {args.out}: name the file *.onnx (predict, serve and load_model tell an exported "
                          "model by that suffix)")
    out = export_onnx(args.checkpoint, args.out)
    size = out.stat().st_size / 2 ** 20
    print(f"wrote {out} ({size:.1f} MiB): envsound predict {out} FILE, or envsound serve {out}")
    if args.check:
        diff = parity_check(args.checkpoint, out)
        print(f"check: largest probability difference from the checkpoint in fp32 on noise: {diff:.2e}")
    return 0


def embed(args: argparse.Namespace) -> int:
    from envsound.cli.embeddings import embed_store, is_store
    from envsound.inference.embed import embed_inputs, save_embeddings

    if is_store(args.out):
        return embed_store(args)
    if args.engine != "local" or args.address:
        from envsound.errors import ConfigError

        raise ConfigError(f"--engine and --address are for a store folder, not {args.out}: give --out DB (a folder)")
    manifest = _dataset(args) if args.dataset else None
    if manifest is not None and args.folds:
        manifest = manifest.select_folds(args.folds)
    if manifest is None and not args.inputs:
        from envsound.errors import ConfigError

        raise ConfigError("embed needs audio: FILES/FOLDERS, or --dataset NAME (with --root)")
    result = embed_inputs(args.checkpoint, args.inputs, manifest=manifest, device=args.device,
                          cache=feature_cache(args), progress=show_progress(args))
    save_embeddings(args.out, result)
    print(f"embedded {len(result.files)} clip(s) ({result.embeddings.shape[1]}-d) -> {args.out}")
    skipped = (manifest.skipped if manifest is not None else []) + result.skipped
    return _report_skipped(args, skipped, listed=len(result.files) + len(skipped))


def mix(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from envsound.data.mixtures import MixSettings, build_mixtures

    manifest = _dataset(args)
    if args.folds:
        manifest = manifest.select_folds(args.folds)
    given = {f.name: getattr(args, f.name) for f in fields(MixSettings)
             if getattr(args, f.name, None) is not None}
    summary = build_mixtures(manifest, args.out, settings=MixSettings(**given), overwrite=args.overwrite,
                             progress=show_progress(args))
    print("\n".join(summary.lines()))
    return _report_skipped(args, manifest.skipped)


def download(args: argparse.Namespace) -> int:
    from envsound.data.download import download_dataset
    from envsound.errors import DownloadError
    from envsound.models.releases import LABELS_URL, by_download_name
    from envsound.transfer.install import install_pretrained

    spec = by_download_name(args.dataset)
    if spec is not None:
        try:
            path = install_pretrained(args.dataset, source_file=args.from_file, url=args.url,
                                      progress=show_progress(args))
        except DownloadError as exc:
            if args.from_file is not None or "cannot connect" not in str(exc):
                raise
            raise DownloadError(f"{exc}; without a network here: fetch {spec.url} (and {LABELS_URL}) on a machine "
                                f"that has one, then 'envsound download {args.dataset} --from {spec.file}' (the "
                                "labels file beside it)") from exc
        print(f"{args.dataset} is installed at {path}; use it as MODEL ('envsound predict {args.dataset} FILE') "
              f"or as --init {args.dataset}")
        return 0
    if args.root is None or args.from_file is not None:
        raise ConfigError(f"download {args.dataset}: pass --root PATH (where the dataset goes); --from is for "
                          "pre-trained models")
    root = download_dataset(args.dataset, args.root, url=args.url, sha256=args.sha256,
                            progress=show_progress(args))
    print(f"{args.dataset} is ready at {root}")
    return 0


def demo(args: argparse.Namespace) -> int:
    from envsound.demo import run_demo

    result = run_demo(args.out, progress=show_progress(args))
    for fold in result.cv["folds"]:
        print(f"fold {fold['fold']}: accuracy {fold['accuracy']:.4f}")
    print(f"cross-validation: mean accuracy {result.cv['mean_accuracy']:.4f} ± {result.cv['std_accuracy']:.4f}; "
          f"confusion matrix {args.out / 'cv' / 'confusion.png'}")
    print(f"final model: {result.final.checkpoint}")
    print("fresh clips it never saw:")
    correct = 0
    for truth, prediction in result.predictions:
        best = prediction.top[0] if prediction.top else {"label": "none of the classes", "score": 0.0}
        correct += best["label"] == truth
        print(f"  {Path(prediction.file).name}: {best['label']} ({best['score']:.2f}), truly {truth}")
    print(f"{correct}/{len(result.predictions)} fresh clips right")
    return 0


def list_datasets(args: argparse.Namespace) -> int:
    from envsound.data.registry import dataset_names

    if args.action == "list":
        print("\n".join(dataset_names()))
        return 0
    from envsound.errors import ConfigError
    from envsound.features.fingerprint import find_duplicates

    if not args.dataset:
        raise ConfigError("datasets check needs --dataset NAME (and --root PATH)")
    manifest = _dataset(args)
    duplicates = find_duplicates(manifest.records, cache=feature_cache(args))
    for duplicate in duplicates:
        print(duplicate.describe())
    straddling = sum(d.straddles for d in duplicates)
    print(f"{manifest.name}: {len(manifest)} clips, {len(duplicates)} pair(s) of copies or near copies, "
          f"{straddling} straddling folds")
    return max(_report_skipped(args, manifest.skipped), 1 if straddling else 0)


def list_models(args: argparse.Namespace) -> int:
    from envsound.models.pretrained import pretrained_table
    from envsound.models.releases import models_dir
    from envsound.models.registry import model_names

    print("\n".join(model_names()))
    print(f"\npre-trained on AudioSet (EfficientAT; 'envsound download NAME', kept in {models_dir()}):")
    for row in pretrained_table():
        where = f"installed: {row['installed']}" if row["installed"] else "not installed"
        print(f"  {row['name']:<16} {row['parameters'] / 1e6:5.2f} M parameters  {row['megabytes']:6.1f} MB  "
              f"AudioSet mAP {row['audioset_map']:.3f}  {where}")
    return 0


def show_config(args: argparse.Namespace) -> int:
    print(yaml.safe_dump(build_config(args).to_dict(), sort_keys=False), end="")
    return 0


def _report_skipped(args: argparse.Namespace, skipped: list[tuple[Path, str]], *, listed: int | None = None) -> int:
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
