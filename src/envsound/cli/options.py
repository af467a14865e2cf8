"""Option groups shared by several commands, and the small helpers that turn them into library arguments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envsound.config import Config
from envsound.config.flags import FLAGS
from envsound.config.sections import ACCELERATORS, PRECISIONS


def add_dataset_options(parser: argparse.ArgumentParser, *, folds_help: str) -> None:
    group = parser.add_argument_group("data")
    from envsound.data.registry import dataset_names

    group.add_argument("--dataset", required=True, metavar="NAME",
                       help=f"dataset name: {', '.join(dataset_names())} (see 'envsound datasets')")
    group.add_argument("--root", type=Path, metavar="PATH",
                       help="dataset root folder (default: $ENVSOUND_DATA_<NAME> or $ENVSOUND_DATA/<name>)")
    group.add_argument("--folds", type=parse_folds, metavar="1,2,3", help=folds_help)
    group.add_argument("--skip-bad", action="store_true",
                       help="leave out unreadable or invalid audio files instead of stopping at the first one "
                            "(default: stop); each is named once, a summary line comes last and the exit status is 1 "
                            "(0: nothing was left out)")
    group.add_argument("--cache-dir", type=Path, metavar="DIR",
                       help="feature cache (default: $ENVSOUND_CACHE or ~/.cache/envsound/features)")
    group.add_argument("--no-cache", action="store_true", help="compute features afresh and do not store them")
    group.add_argument("--classes", type=parse_names, metavar="a,b,c",
                       help="only these classes (the label set narrows to them); a name the dataset lacks is an error")
    group.add_argument("--exclude-classes", type=parse_names, metavar="a,b,c", help="leave these classes out")
    group.add_argument("--subset", choices=["curated", "noisy", "all"],
                       help="sets with curated and noisy labels (fsdkaggle2019, 'envsound mix' output): which clips "
                            "(default curated; scoring against noisy labels measures nothing, so cv scores only the "
                            "curated clips of each test fold; training a detector, --preset sed, gains from all: a mix "
                            "set's strong labels are true for the noisy part too)")
    group.add_argument("--group-by", metavar="REGEX",
                       help="folder: the takes of one recording share a fold; a file's recording is the first group "
                            "of REGEX searched in its name without extension, e.g. '^(.+)_take[0-9]+$' (default: "
                            "ESC-50's fold-source-take names, 4-125825-A and 4-125825-B are one recording; a file "
                            "not matched is its own recording)")


def add_threshold_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="a class is decided when its probability reaches T, for every class: a multi-label "
                             "model's labels, and any model's events (default: the threshold saved in the checkpoint, "
                             "0.5 unless tuned). A single-label model's 'none of its classes' is its open-set gate "
                             "(events.open_set), not T")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and training")
    group.add_argument("--model", metavar="NAME",  # names from 'envsound models': the registry imports torch
                       help="model name (default cnn; 'envsound models' lists them all); a model's own settings: "
                            "--set model.options.KEY=VALUE")
    group.add_argument("--preset", metavar="NAME",
                       help="a named preset shipped with envsound, applied after the model's preset and before "
                            "--config and --set, e.g. dtu2018 (the original DTU study's features, model and training)")
    group.add_argument("--config", type=Path, metavar="FILE.yaml",
                       help="YAML file with sections features/model/train/runtime/augment/... (unknown keys are "
                            "an error)")
    group.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one config key, e.g. --set train.max_epochs=30 (repeatable; "
                            "'envsound config' lists every key with its default)")
    add_flags(group, "training")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted run in --out from its last Lightning checkpoint")
    group.add_argument("--overwrite", action="store_true", help="replace a finished model already in --out")


def parse_folds(text: str) -> list[int]:
    try:
        folds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--folds {text!r}: expected comma-separated fold numbers, e.g. 1,2,3")
    if not folds:
        raise argparse.ArgumentTypeError("--folds: give at least one fold number")
    return folds


def parse_names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one class name, comma-separated")
    return names


def add_flags(group, name: str) -> None:
    """The options of :data:`~envsound.config.flags.FLAGS` in group ``name``, each with its key in the help, in
    brackets."""
    for flag in FLAGS:
        if flag.group != name:
            continue
        if flag.type is None:
            group.add_argument(flag.option, action="store_true", help=f"{flag.help} [{flag.key}]")
        else:
            group.add_argument(flag.option, type=flag.type, choices=flag.choices, metavar=flag.metavar,
                               help=f"{flag.help} [{flag.key}]")


def build_config(args: argparse.Namespace, overrides: list[str] | None = None) -> Config:
    """The command's config: :func:`~envsound.recipes.config.resolve` with --model, --preset, --init, --config,
    --set (or ``overrides`` instead) and the flags that stand for keys, as given; a model given input it does not
    take is a ConfigError here, before any data is listed. An override that makes the ``--init`` weights unusable is
    caught by ``train_model`` (every mismatch named) before anything is written."""
    from envsound.recipes.config import resolve

    flags = {flag.keyword: getattr(args, flag.keyword, None) for flag in FLAGS}
    return resolve(model=args.model, preset=getattr(args, "preset", None), init=getattr(args, "init", None),
                   config_file=args.config, overrides=list(args.overrides if overrides is None else overrides),
                   **flags)


def feature_cache(args: argparse.Namespace):
    from envsound.features.cache import FeatureCache

    if args.no_cache:
        return None
    return FeatureCache(args.cache_dir)  # None: $ENVSOUND_CACHE or ~/.cache/envsound/features


def add_device_option(parser: argparse.ArgumentParser, *, precision: bool = False) -> None:
    """``--device``, where the model runs, and with ``precision`` the ``--precision`` it runs in."""
    parser.add_argument("--device", default="auto", choices=ACCELERATORS,
                        help="where the model runs: cpu; cuda (the first CUDA GPU: CUDA_VISIBLE_DEVICES=N picks "
                             "another); mps (Apple silicon); gpu: cuda, else mps; auto: cuda, then mps, else cpu. "
                             "Precision and memory format are then chosen by timing the model for a few seconds, "
                             "once per model on this machine; --precision sets the precision")
    if precision:
        add_precision_option(parser)


def add_json_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--json``: the command's results as JSON on stdout; ``help`` says their shape."""
    parser.add_argument("--json", action="store_true", help=help)


LABELS_STORE = ("where the labels are kept: a SQLite path or a postgresql://USER@HOST/DB URL (default: "
                "DB/review.sqlite)")


def add_store_option(parser: argparse.ArgumentParser, help: str = LABELS_STORE) -> None:
    """``--store``: a SQLite path or a PostgreSQL URL of the tables the command reads or writes (by default an
    embeddings store's labels; serve and token keep events and tokens there, ``help`` says which)."""
    parser.add_argument("--store", metavar="PATH_OR_URL", help=help)


def add_archive_options(group, *, verb: str, folder: str) -> None:
    """How an archive is read and run, for ``predict --out`` and ``embed``: ``--files-from``, ``--workers``,
    ``--batch-size``, ``--engine``, ``--address`` (:class:`~envsound.inference.scan.ScanOptions`); ``verb`` is
    what is done to each file (classify), ``folder`` what is written (results folder)."""
    from envsound.inference.scan import ENGINES

    group.add_argument("--files-from", metavar="LIST",
                       help=f"also {verb} the files, folders or globs listed in LIST, one per line (-: stdin)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="decoding processes (default: half the cores on a CPU, all but one beside a GPU)")
    group.add_argument("--batch-size", type=int, metavar="N",
                       help="windows scored in one forward (default: 16 in fp32 and 64 in bf16 on a CPU, 256 on a "
                            "GPU); neither this nor --workers changes the results")
    group.add_argument("--engine", default="local", choices=ENGINES,
                       help=f"local: this machine; ray: a Ray cluster (pip install 'envsound[cluster]'): the same "
                            f"{folder}, Ray Data decoding on CPU tasks and a pool of model actors (GPUs where the "
                            "cluster has them)")
    group.add_argument("--address", metavar="ADDR",
                       help="--engine ray: the cluster (auto, HOST:PORT, ray://HOST:10001); default RAY_ADDRESS, "
                            "else a Ray instance started for this job")


def scan_options(args: argparse.Namespace, *, progress: bool):
    """The :class:`~envsound.inference.scan.ScanOptions` of :func:`add_archive_options`' flags, --device and
    --precision."""
    from envsound.inference.scan import ScanOptions

    return ScanOptions(engine=args.engine, address=args.address, workers=args.workers, batch_size=args.batch_size,
                       device=args.device, precision=args.precision, progress=progress)


def check_threshold(args: argparse.Namespace) -> None:
    """--threshold out of (0, 1) refused in the flag's own name, before a model loads."""
    if args.threshold is not None:
        from envsound.task import check_threshold as check

        check(args.threshold, name="--threshold")


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="numeric precision of the model; auto: what this machine runs fast (fp32 on a CPU "
                             "without bf16), 32: fp32 everywhere")


def on_error(args: argparse.Namespace) -> str:
    return "skip" if args.skip_bad else "raise"


def show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def run_context(args: argparse.Namespace):
    """A recipe's RunContext from --cache-dir/--no-cache, --resume, --overwrite, --quiet and --skip-bad."""
    from envsound.recipes.context import RunContext  # imported late, as the CLI's others are: --help stays fast

    return RunContext(cache=feature_cache(args), resume=args.resume, overwrite=args.overwrite,
                      progress=show_progress(args), on_error=on_error(args))


def run_options(args: argparse.Namespace):
    """The Python API's RunOptions from --cache-dir/--no-cache, --resume, --overwrite and --quiet (those the command
    has)."""
    from envsound.recipes.context import RunOptions

    return RunOptions(cache=False if args.no_cache else (args.cache_dir or True),
                      resume=getattr(args, "resume", False), overwrite=getattr(args, "overwrite", False),
                      progress=show_progress(args))


# An AudioSet network, as every model argument names it (the kinds: envsound.models.files)
AUDIOSET_MODEL = ("an AudioSet network: an installed name such as efficientat-mn04 ('envsound models' lists them) or "
                  "its release .pt (mn04_as_mAP_432.pt)")


FROZEN_MODEL = ("a frozen network: birdnet-v2.4 or yamnet ('envsound download NAME'), or its .tflite, or one you "
                "installed with a spec ('envsound download --from FILE --spec SPEC')")

# What the networks' measured table recommends (docs/results.md, "Which network for which sound"): mn04's probe was
# the most accurate in every ESC-50 category, so the model arguments recommend it
RECOMMENDED = ("efficientat-mn04 is the one to start with: of the three, its probe was the most accurate in every "
               "ESC-50 category (docs/guide/networks.md)")


def add_model_argument(parser: argparse.ArgumentParser, *, onnx: bool, network: bool = False, note: str = "",
                       frozen: bool = False) -> None:
    """The model argument of predict, listen, serve, evaluate, export and embed, its help naming every kind it takes:
    a model.ckpt (``network``: of a network, not a baseline), a model.onnx where ``onnx``, an AudioSet network, a
    frozen network (BirdNET, YAMNet) where ``frozen``."""
    ckpt = f"a model.ckpt{' of a network' if network else ''} written by train or cv"
    kinds = f"{ckpt}, a model.onnx from export, or {AUDIOSET_MODEL}" if onnx else f"{ckpt}, or {AUDIOSET_MODEL}"
    kinds += f"; or {FROZEN_MODEL}; {RECOMMENDED}" if frozen else ""
    parser.add_argument("checkpoint", type=Path, metavar="MODEL", help=f"the model: {kinds}{note}")


def add_init_options(parser: argparse.ArgumentParser) -> None:
    """``--init`` and how to train from it (train, cv, grid)."""
    group = parser.add_argument_group("transfer: start from another model")
    group.add_argument("--init", type=Path, metavar="MODEL",
                       help="start from an envsound model.ckpt (every layer but the head; rows of classes both label "
                            "sets share are copied), an autoencoder.ckpt from 'envsound pretrain' (its encoder), or "
                            f"{AUDIOSET_MODEL}, or {FROZEN_MODEL} (a probe on its embeddings: transfer.mode probe); "
                            f"the model and feature settings come from it; {RECOMMENDED}")
    add_flags(group, "transfer")


def add_semi_options(parser: argparse.ArgumentParser) -> None:
    """``--label-fraction``, ``--semi`` and the unlabelled data of a semi-supervised run (train, cv, grid)."""
    group = parser.add_argument_group("labelled fraction and semi-supervised learning")
    add_flags(group, "semi")
    group.add_argument("--unlabelled-dataset", metavar="NAME",
                       help="extra unlabelled audio: any dataset name (labels ignored), e.g. esc50 or unlabelled "
                            "(a folder of audio); in cv the test fold's clips and sources are left out of it")
    group.add_argument("--unlabelled-root", type=Path, metavar="PATH", help="root of --unlabelled-dataset")
    group.add_argument("--unlabelled-folds", type=parse_folds, metavar="1,2,3",
                       help="only these folds of --unlabelled-dataset (default: all of it)")


def unlabelled_manifest(args: argparse.Namespace):
    """The manifest of ``--unlabelled-dataset`` (``--unlabelled-root``, ``--unlabelled-folds``), or ``None``."""
    name = getattr(args, "unlabelled_dataset", None)
    if name is None:
        if getattr(args, "unlabelled_root", None) or getattr(args, "unlabelled_folds", None):
            from envsound.errors import ConfigError

            raise ConfigError("--unlabelled-root/--unlabelled-folds need --unlabelled-dataset NAME")
        return None
    from envsound.data.registry import load_dataset

    manifest = load_dataset(name, args.unlabelled_root, on_error=on_error(args))
    if args.unlabelled_folds:
        manifest = manifest.select_folds(args.unlabelled_folds)
    return manifest


def add_mix_options(parser: argparse.ArgumentParser) -> None:
    """One option per field of :class:`~envsound.data.mix_settings.MixSettings` (its ``cli`` metadata), its default
    read from the field; a value not given is left to the field's default."""
    import dataclasses

    from envsound.data.mix_settings import MixSettings

    kinds = {"int": int, "float": float, "str | None": Path, "tuple[float, float]": parse_pair}
    for f in dataclasses.fields(MixSettings):
        spec = f.metadata.get("cli")
        if spec is None:
            continue
        value = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        default = "" if value is None else f" ({value})"
        parser.add_argument(spec["option"], dest=f.name, type=kinds[str(f.type)], metavar=spec["metavar"],
                            help=spec["help"] + default)


def parse_pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected two numbers, LOW,HIGH (e.g. 6,18)")
    return low, high
