"""The ``envsound`` command: parse arguments, call one library function, print its result.

Every user error (an :class:`EnvsoundError`) becomes one line on stderr and exit status 1; ``--debug`` shows the
traceback. ``predict`` exits 1 when any input failed, after classifying all the others. Every command that reads a
dataset (train, cv, grid, stages, pretrain, evaluate, embed, mix, datasets check) exits 0 when nothing was left out
and 1 when ``--skip-bad`` left files out: each named once, then a one-line summary last.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import warnings
from pathlib import Path

from envsound._version import __version__
from envsound.cli import commands
from envsound.cli.options import (add_config_options, add_dataset_options, add_device_option, add_init_options,
                                  add_mix_options, add_model_argument, add_precision_option, add_semi_options,
                                  add_threshold_option, parse_folds, parse_names)
from envsound.cli.embeddings import add_search_command
from envsound.cli.labels import add_label_command
from envsound.cli.learn import add_check_command, add_learn_command
from envsound.cli.serving_options import add_listen_options, add_serve_options, add_token_options
from envsound.inference.scan import ENGINES
from envsound.inference.scan.tables import FORMATS

log = logging.getLogger("envsound")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)", once: not for flags, unset (None) values, required options, positionals, or help
    that already says its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.default in (None, False, argparse.SUPPRESS)
                or action.nargs == 0 or "default" in text.lower()):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envsound", description="Environmental sound classification: train, cross-validate, evaluate, predict.",
        formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"envsound {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument("-q", "--quiet", action="store_true", help="only warnings and results; no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common],
                              formatter_class=HelpFormatter)

    _training_commands(command)
    _use_commands(command)
    _data_commands(command)
    return parser


def _training_commands(command) -> None:
    """train, cv, grid, stages, pretrain (``command(name, help)`` makes a sub-parser)."""

    def training_command(name: str, help_text: str, *, folds_help: str, out_help: str, run) -> None:
        """train, cv and grid share their options: data, config, --out, --init, semi-supervised."""
        p = command(name, help_text)
        add_dataset_options(p, folds_help=folds_help)
        add_config_options(p)
        p.add_argument("--out", required=True, type=Path, metavar="DIR", help=out_help)
        add_init_options(p)
        add_semi_options(p)
        p.set_defaults(run=run)

    training_command("train", "Train a model on the given folds; writes OUT/model.ckpt and config.yaml, and for a "
                              "network trained over epochs logs/ and curves.png (not for a baseline or a "
                              "transfer.mode=probe run, which fit no epochs).",
                     folds_help="folds to train on (default: all); every clip trains unless train.val_fraction > 0 "
                                "takes a validation split from inside them",
                     out_help="run folder", run=commands.train)
    training_command("cv", "Leave-one-fold-out cross-validation; writes OUT/cv.json, predictions.csv, confusion.png.",
                     folds_help="official folds to rotate over (default: all the dataset has)",
                     out_help="run folder", run=commands.cv)
    training_command("grid", "Grid search: cross-validate every combination of the comma-separated --set values "
                             "(e.g. --set model.filters=16,32,64 --set train.batch_size=16,32); writes OUT/grid.md, "
                             "OUT/grid.json and one cv run per point (a point with a cv.json is not rerun).",
                     folds_help="official folds to rotate over (default: all the dataset has)",
                     out_help="grid folder", run=commands.grid)

    p = command("stages", "The multi-stage schedule for curated + noisy multi-label sets (fsdkaggle2019, 'envsound "
                          "mix' output), leave-one-fold-out: a curated-only baseline with the same epochs, a warm-up "
                          "on the noisy clips, a fine-tune on the curated ones, a filter that keeps the noisy clips "
                          "the model agrees with, a final stage on curated + kept (config section 'stages'); writes "
                          "OUT/stages.json and each stage's model.ckpt (--resume goes on stage by stage).")
    add_dataset_options(p, folds_help="folds to rotate over (default: all the dataset has)")
    add_config_options(p)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder")
    p.set_defaults(run=commands.stages)

    p = command("pretrain", "Pre-train a convolutional autoencoder on audio (labels ignored) for --init; writes "
                            "OUT/autoencoder.ckpt and OUT/reconstructions.png.")
    add_dataset_options(p, folds_help="folds to pre-train on (default: all); 'unlabelled' reads any folder of audio")
    p.add_argument("--exclude-folds", type=parse_folds, metavar="4,5",
                   help="leave these folds out, e.g. the test fold of the evaluation the encoder is meant for")
    add_config_options(p)
    p.add_argument("--decoder", required=True, choices=["unpool", "upsample"],
                   help="unpool: max-unpooling at the encoder's switch positions (dtu only); upsample: each value "
                        "repeated over its pooling window")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder")
    p.set_defaults(run=commands.pretrain)


def add_scan_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("archives (--out)")
    group.add_argument("--out", type=Path, metavar="DIR",
                       help="write the results to DIR instead of printing them: tables files/ (one row per file), "
                            "windows/, events/ (with --events) and errors/, in parts; running the same command "
                            "again resumes, skipping the files already done (docs/guide/archives.md)")
    group.add_argument("--files-from", metavar="LIST",
                       help="also classify the files, folders or globs listed in LIST, one per line (-: stdin)")
    group.add_argument("--format", default="parquet", choices=list(FORMATS),
                       help="the tables' format (parquet needs pyarrow: pip install 'envsound[scan]')")
    group.add_argument("--window-scores", action="store_true",
                       help="windows/ gets one column per class (p:LABEL) with its probability")
    group.add_argument("--event-tables", metavar="raven,audacity", type=lambda v: [k for k in v.split(",") if k],
                       help="with --events, per-file event tables: Raven selection tables (DIR/raven/) "
                                        "and/or Audacity label tracks (DIR/audacity/)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="decoding processes (default: half the cores on a CPU, all but one beside a GPU)")
    group.add_argument("--batch-size", type=int, metavar="N",
                       help="windows scored in one forward (default: 16 in fp32 and 64 in bf16 on a CPU, 256 on a "
                            "GPU); neither this nor --workers changes the results")
    group.add_argument("--file-timeout", type=float, metavar="SECONDS",
                       help="list a file in errors/ once reading it makes no progress (no data read, no CPU time) "
                            "for this long (a stalled network mount), on either engine; a long file that keeps being "
                            "read never trips it (default 300; 0: no limit)")
    group.add_argument("--resume", action="store_true",
                       help="say that DIR is expected to hold results already (the same command resumes anyway)")
    group.add_argument("--engine", default="local", choices=ENGINES,
                       help="local: this machine; ray: a Ray cluster (pip install 'envsound[cluster]'): the same "
                            "results folder, Ray Data decoding on CPU tasks and a pool of model actors (GPUs where "
                            "the cluster has them)")
    group.add_argument("--address", metavar="ADDR",
                       help="--engine ray: the cluster (auto, HOST:PORT, ray://HOST:10001); default RAY_ADDRESS, "
                            "else a Ray instance started for this job")


def _use_commands(command) -> None:
    """evaluate, predict, listen, serve, export, embed: what is done with a trained model."""
    p = command("evaluate", "Score a checkpoint on held-out folds: accuracy, per-class P/R/F1, confusion matrix "
                            "(multi-label: lwlrap, mAP, micro/macro F1, per-class AP).")
    add_model_argument(p, onnx=False, note=" (with --label-map: zero-shot)")
    add_dataset_options(p, folds_help="folds to evaluate on (default: all)")
    p.add_argument("--label-map", type=Path, metavar="FILE.csv",
                   help="zero-shot: score the model's classes paired with the dataset's by this CSV (source,target "
                        "rows, e.g. Dog,dog; quote a name holding a comma; several sources of one target are "
                        "averaged), or audioset-esc10: the ESC-10 map shipped with envsound; every dataset class "
                        "needs one")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="also write report.json, report.txt, predictions.csv and report_confusion.png (multi-label: "
                        "report_per_class_ap.png) here")
    add_threshold_option(p)
    add_device_option(p)
    add_precision_option(p)
    p.set_defaults(run=commands.evaluate)

    p = command("predict", "Classify audio files or folders (recursively) of any length and format; with --out, an "
                           "archive into a results folder, batched and resumable.")
    add_model_argument(p, onnx=True)
    p.add_argument("inputs", nargs="*", metavar="FILE_OR_FOLDER",
                   help="audio files, folders or globs; with --out, also one embeddings store folder (envsound "
                        "embed --out DB), ranked from its stored embeddings: no audio decoded")
    p.add_argument("--top-k", type=int, default=3, help="labels to show per file")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per input: {"file", "top": [{"label", "score"}], "error"}; multi-label '
                        'models add "labels": every label at or above the threshold')
    p.add_argument("--segments", action="store_true",
                   help="add a per-window timeline (start, end, top label, score)")
    p.add_argument("--events", action="store_true",
                   help='add when each class sounds: events (label, onset, offset, score; --json: "events") from the '
                        "window timeline, median-filtered and thresholded (events.* of the checkpoint's config; the "
                        "time resolution is features.eval_hop_seconds)")
    add_threshold_option(p)
    add_device_option(p)
    add_precision_option(p)
    add_scan_options(p)
    p.set_defaults(run=commands.predict)

    p = command("listen", "Classify audio as it arrives (stdin, the microphone, or a file played in real time): a line "
                          "whenever the top label changes or an event starts or ends, each with its time.")
    add_model_argument(p, onnx=True)
    add_listen_options(p)
    add_device_option(p)
    add_precision_option(p)
    p.set_defaults(run=commands.listen)

    p = command("serve", "Serve a model: a web page that classifies a sound (file, drag and drop, or microphone) and "
                         "a REST API (POST /v1/predict, GET /v1/model, GET /healthz; schema at /docs), and live "
                         "classification of a stream (WebSocket /v1/listen; the page's Live button). Given an "
                         "embeddings store (envsound embed MODEL INPUTS --out DB), the page also has a Review view: "
                         "one key a verdict on its windows, a learning round every 10 (REST under /api/review).")
    add_model_argument(p, onnx=True, note="; or an embeddings store folder DB (its model is served, its labels and "
                                          "tokens kept in DB/review.sqlite unless --store names another)")
    add_serve_options(p)
    add_device_option(p)
    add_precision_option(p)
    p.set_defaults(run=commands.serve)

    p = command("token", "Tokens of a server's deployment: create (the token is shown once, last line; stored "
                         "hashed), list, revoke (a running server refuses it at its next request).")
    add_token_options(p)
    p.set_defaults(run=commands.token)

    p = command("export", "Write a checkpoint as one ONNX file (log-mel frontend, windows and network inside; labels "
                          "and feature settings in its metadata) that predict, serve and load_model run with "
                          "onnxruntime, without PyTorch.")
    add_model_argument(p, onnx=False, network=True)
    p.add_argument("--format", default="onnx", choices=["onnx"], help="file format")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.onnx", help="where to write the model")
    p.add_argument("--check", action="store_true",
                   help="then score a few seconds of noise with both and report the largest probability difference")
    p.set_defaults(run=commands.export)

    p = command("embed", "Embeddings of a checkpoint (what its head sees): with --out DB (a folder), every window "
                         "of an archive into a store that search reads, batched and resumable; with --out OUT.npz, "
                         "clip embeddings (averaged over a clip's windows) with files and, for a dataset, labels.")
    add_model_argument(p, onnx=False, network=True,
                       note="; not a model.onnx: an export's graph carries no embedding output")
    p.add_argument("inputs", nargs="*", metavar="FILE_OR_FOLDER", help="audio files or folders (or use --dataset)")
    p.add_argument("--out", required=True, type=Path, metavar="DB|FILE.npz",
                   help="a store folder (created, or resumed: the files done are skipped), or an .npz file of clip "
                        "embeddings")
    group = p.add_argument_group("a store (--out DB)")
    group.add_argument("--files-from", metavar="LIST", help="also embed the files listed in LIST, one a line (-: stdin)")
    group.add_argument("--workers", type=int, metavar="N", help="decoding processes (default: half the cores on a CPU)")
    group.add_argument("--batch-size", type=int, metavar="N", help="windows a forward of the network")
    add_precision_option(group)
    group.add_argument("--engine", default="local", choices=ENGINES,
                       help="local: this machine; ray: a Ray cluster (pip install 'envsound[cluster]'): the same "
                            "store, Ray Data decoding on CPU tasks and a pool of model actors")
    group.add_argument("--address", metavar="ADDR",
                       help="--engine ray: the cluster (auto, HOST:PORT, ray://HOST:10001); default RAY_ADDRESS, "
                            "else a Ray instance started for this job")
    group = p.add_argument_group("a dataset instead of files")
    group.add_argument("--dataset", metavar="NAME", help="embed this dataset's clips (their labels are saved too)")
    group.add_argument("--root", type=Path, metavar="PATH", help="its root folder")
    group.add_argument("--folds", type=parse_folds, metavar="1,2,3", help="only these folds")
    group.add_argument("--classes", type=parse_names, metavar="a,b,c", help="only these classes")
    group.add_argument("--exclude-classes", type=parse_names, metavar="a,b,c", help="leave these classes out")
    group.add_argument("--skip-bad", action="store_true",
                       help="leave out unreadable audio of the dataset instead of stopping (each named once, then a "
                            "summary; exit status 1 when any was left out, as for unreadable FILES)")
    group.add_argument("--cache-dir", type=Path, metavar="DIR", help="feature store")
    group.add_argument("--no-cache", action="store_true", help="do not store features")
    add_device_option(p)
    p.set_defaults(run=commands.embed)
    add_search_command(command, add_device_option)
    add_label_command(command)
    add_learn_command(command)
    add_check_command(command)


def _data_commands(command) -> None:
    """mix, download, demo, datasets, models, config."""
    p = command("mix", "Build a multi-label set in the FSDKaggle2019 layout from a single-label dataset with folds: "
                       "clips of 1-3 events over a background, each made only of clips of one fold, a curated part "
                       "with the true labels and a noisy part with corrupted ones (OUT/train_curated.csv, "
                       "train_noisy.csv, strong_labels.csv, mix.json). Train on it with --dataset fsdkaggle2019.")
    add_dataset_options(p, folds_help="folds to build from (default: all); each mixture stays in its fold")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="the new set's folder")
    add_mix_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace a mixture set already in --out")
    p.set_defaults(run=commands.mix)

    p = command("download", "Download a dataset from its official archive, or a pre-trained AudioSet model "
                            "(efficientat-mn04 ...) into the model cache (checksum, resume, progress bar).")
    p.add_argument("dataset", metavar="NAME", help="esc50, urbansound8k, fsdkaggle2018, fsdkaggle2019, or a "
                                                   "pre-trained model: efficientat-mn01 ... efficientat-mn40 "
                                                   "('envsound models' lists them)")
    p.add_argument("--root", type=Path, metavar="PATH", help="where to put a dataset (required for datasets)")
    p.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                   help="pre-trained models: install a copy you already have (checked like a download)")
    p.add_argument("--url", help="a mirror of the official archive (for fsdkaggle2018/2019: the folder holding its "
                                 "zips)")
    p.add_argument("--sha256", help="expected SHA-256 of the archive (the digest is logged either way)")
    p.set_defaults(run=commands.download)

    p = command("demo", "Generate the embedded synthetic dataset, cross-validate the default model on it, "
                        "train a final model and classify a few files.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR",
                   help="demo folder (its previous demo results are replaced)")
    p.set_defaults(run=commands.demo)

    p = command("datasets", "List the dataset names, or (datasets check) list the clips of a dataset that are copies "
                            "or near copies of each other; exit 1 when a pair straddles folds.")
    p.add_argument("action", nargs="?", choices=["list", "check"], default="list")
    p.add_argument("--dataset", metavar="NAME", help="for check: the dataset")
    p.add_argument("--root", type=Path, metavar="PATH", help="for check: its root folder")
    p.add_argument("--skip-bad", action="store_true",
                   help="for check: leave out unreadable audio (each named once; exit status 1)")
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="feature store (fingerprints are kept there)")
    p.add_argument("--no-cache", action="store_true", help="do not keep fingerprints")
    p.set_defaults(run=commands.list_datasets)
    p = command("models", "List the model names.")
    p.set_defaults(run=commands.list_models)
    p = command("config", "Print the resolved configuration (defaults, model preset, --config, --set) as YAML.")
    add_config_options(p)
    p.set_defaults(run=commands.show_config)


TRAINING_COMMANDS = {"train", "cv", "demo", "pretrain", "grid"}


def configure_logging(*, debug: bool, quiet: bool, command: str) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s" if not debug else "%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if not debug:  # matplotlib says "generated new fontManager" at INFO the first time it runs on a machine
        logging.getLogger("matplotlib").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)  # eleven lines of plugins at each store opened
    if command in TRAINING_COMMANDS:
        # Lightning installs its own INFO handler when first imported; import it now so our level sticks
        # (its start-up chatter about GPUs and cloud loggers is noise on a CPU tool).
        try:
            import lightning.pytorch  # noqa: F401
        except ModuleNotFoundError:  # the light install: the command itself says which extra it needs
            return
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")


def _in_flags(exc: Exception, args: argparse.Namespace) -> str:
    """A library error in the CLI's words: the Python API's names for what a flag sets become the flag."""
    from envsound.errors import AudioLoadError, RunExistsError

    if isinstance(exc, RunExistsError):
        return (f"{exc.path} already exists; pass --overwrite to replace it, --resume to continue, or choose another "
                "--out")
    if isinstance(exc, AudioLoadError) and getattr(args, "skip_bad", True) is False:
        return f"{exc}; or pass --skip-bad to leave out every unusable file (each is named, and the exit status is 1)"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    configure_logging(debug=args.debug, quiet=args.quiet, command=args.command)
    from envsound.errors import EnvsoundError

    try:
        return int(args.run(args) or 0)
    except EnvsoundError as exc:
        if args.debug:
            raise
        print(f"envsound {args.command}: error: {_in_flags(exc, args)}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        from envsound.cli.extras import extra_for

        extra = extra_for(exc.name or "")
        if extra is None or args.debug:
            raise
        print(f"envsound {args.command}: error: this needs {exc.name}, which comes with the {extra!r} extra: "
              f"pip install 'envsound[{extra}]'", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`envsound predict ... | head`): stop quietly, as Unix tools do
        sys.stdout = open(os.devnull, "w")
        return 141
    except KeyboardInterrupt:
        print(f"envsound {args.command}: interrupted; finished files are complete{_resume_hint(args, argv)}",
              file=sys.stderr)
        return 130


def _resume_hint(args, argv: list[str]) -> str:
    """``; to go on: envsound ... --resume`` for a command that can resume, else nothing."""
    if not hasattr(args, "resume") or getattr(args, "out", True) is None:  # predict resumes with --out only
        return ""
    again = [arg for arg in argv if arg != "--overwrite"] + ([] if args.resume else ["--resume"])
    return "; to go on: envsound " + " ".join(shlex.quote(arg) for arg in again)


if __name__ == "__main__":
    sys.exit(main())
