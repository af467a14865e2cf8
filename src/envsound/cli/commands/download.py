"""Download a dataset from its official archive, or a pre-trained model (efficientat-mn04 ..., birdnet-v2.4,
yamnet) into the model cache (checksum, resume, progress bar); or install your own ONNX or TFLite network with a spec
(--from FILE --spec SPEC)."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.cli.options import show_progress
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("download", __doc__)
    p.add_argument("dataset", metavar="NAME", nargs="?", help="esc50, urbansound8k, fsdkaggle2018, fsdkaggle2019, or a "
                                                   "pre-trained model: efficientat-mn01 ... efficientat-mn40, "
                                                   "birdnet-v2.4, yamnet ('envsound models' lists them); "
                                                   "with --spec, the spec's name (optional)")
    p.add_argument("--root", type=Path, metavar="PATH", help="where to put a dataset (required for datasets)")
    p.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                   help="pre-trained models: install a copy you already have (checked like a download); for "
                        "birdnet-v2.4 and yamnet a file or a folder holding the model and its label file")
    p.add_argument("--url", help="a mirror of the official archive (for fsdkaggle2018/2019: the folder holding its "
                                 "zips)")
    p.add_argument("--spec", type=Path, metavar="SPEC",
                   help="install your own network: --from its .onnx or .tflite, SPEC a YAML file saying its rate, "
                        "window, hop, embedding tensor and (optional) logits and labels (docs/guide/networks.md)")
    p.add_argument("--sha256", help="expected SHA-256 of the archive (the digest is logged either way)")
    p.set_defaults(run=download)


def download(args: argparse.Namespace) -> int:
    from envsound.data.download import download_dataset
    from envsound.models.releases import by_download_name

    from envsound.models.frozen import FROZEN

    if args.spec is not None:
        return _install_spec(args)
    if args.dataset is None:
        raise ConfigError("download: name a dataset or a model (envsound models lists them), or install your own "
                          "network with --from FILE --spec SPEC")
    if args.dataset in FROZEN:
        return _install_frozen(args)
    if by_download_name(args.dataset) is not None:
        return _install_model(args)
    if args.root is None or args.from_file is not None:
        raise ConfigError(f"download {args.dataset}: pass --root PATH (where the dataset goes); --from is for "
                          "pre-trained models")
    root = download_dataset(args.dataset, args.root, url=args.url, sha256=args.sha256,
                            progress=show_progress(args))
    print(f"{args.dataset} is ready at {root}")
    return 0


def _install_model(args: argparse.Namespace) -> int:
    """A pre-trained model into the cache; without a network, how to bring one from a machine that has it."""
    from envsound.errors import DownloadError
    from envsound.models.releases import LABELS_URL, by_download_name
    from envsound.transfer.install import install_pretrained

    try:
        path = install_pretrained(args.dataset, source_file=args.from_file, url=args.url,
                                  progress=show_progress(args))
    except DownloadError as exc:
        if args.from_file is not None or "cannot connect" not in str(exc):
            raise
        spec = by_download_name(args.dataset)
        raise DownloadError(f"{exc}; without a network here: fetch {spec.url} (and {LABELS_URL}) on a machine "
                            f"that has one, then 'envsound download {args.dataset} --from {spec.file}' (the "
                            "labels file beside it)") from exc
    print(f"{args.dataset} is installed at {path}; use it as MODEL ('envsound predict {args.dataset} FILE') "
          f"or as --init {args.dataset}")
    return 0


def _install_frozen(args: argparse.Namespace) -> int:
    """A frozen network (BirdNET, YAMNet) and its label file into the cache, its licence said in one line."""
    from envsound.errors import DownloadError
    from envsound.models.frozen import FROZEN
    from envsound.transfer.install_frozen import install_frozen

    try:
        done = install_frozen(args.dataset, source=args.from_file, url=args.url, progress=show_progress(args))
    except DownloadError as exc:
        if args.from_file is not None or "cannot connect" not in str(exc):
            raise
        release = FROZEN[args.dataset]
        raise DownloadError(f"{exc}; without a network here: fetch {release.url} and {release.labels_url} on a "
                            f"machine that has one, then 'envsound download {args.dataset} --from FOLDER' (the "
                            "folder holding both)") from exc
    release = done.release
    print(f"{release.name} is installed at {done.path} ({done.which}); use it as MODEL ('envsound predict "
          f"{release.name} FILE')")
    bundling = "envsound never bundles it" if not release.bundled else "it may be redistributed under its terms"
    print(f"licence: {release.licence} ({bundling}; the copy installed is yours, used under its licence)")
    if release.name == "birdnet-v2.4":  # its optional species-range model: what --lat/--lon need
        print(f"species-range model: {'installed (for --lat/--lon/--week)' if done.range_model else 'not installed'}")
    return 0


def _install_spec(args: argparse.Namespace) -> int:
    """Your own network (an ONNX or TFLite file and its spec) into the cache, checked against the spec."""
    from envsound.models.releases import models_dir
    from envsound.models.spec import read_spec
    from envsound.transfer.install_spec import install_spec

    if args.from_file is None:
        raise ConfigError(f"download --spec {args.spec}: pass --from FILE, the network's .onnx or .tflite")
    named = read_spec(args.spec).name
    if args.dataset is not None and args.dataset != named:
        raise ConfigError(f"{args.spec}: name: {named!r}, but the command names {args.dataset!r}")
    release = install_spec(args.from_file, args.spec)
    classes = f"{release.n_classes} classes" if release.n_classes else "no classes of its own (embeddings only)"
    print(f"{release.name} is installed at {models_dir() / release.file} ({release.runtime}: "
          f"{release.sample_rate} Hz, window {release.input_samples} samples, embedding {release.embedding_width}, "
          f"{classes}); use it as MODEL ('envsound embed {release.name} FILES --out DB', --init {release.name})")
    print(f"licence: {release.licence} (as its spec says; it travels with every model learned on it)")
    return 0
