"""Download a dataset from its official archive, or a pre-trained model (efficientat-mn04 ..., birdnet-v2.4,
yamnet) into the model cache (checksum, resume, progress bar)."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.cli.options import show_progress
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("download", __doc__)
    p.add_argument("dataset", metavar="NAME", help="esc50, urbansound8k, fsdkaggle2018, fsdkaggle2019, or a "
                                                   "pre-trained model: efficientat-mn01 ... efficientat-mn40, "
                                                   "birdnet-v2.4, yamnet ('envsound models' lists them)")
    p.add_argument("--root", type=Path, metavar="PATH", help="where to put a dataset (required for datasets)")
    p.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                   help="pre-trained models: install a copy you already have (checked like a download); for "
                        "birdnet-v2.4 and yamnet a file or a folder holding the model and its label file")
    p.add_argument("--url", help="a mirror of the official archive (for fsdkaggle2018/2019: the folder holding its "
                                 "zips)")
    p.add_argument("--sha256", help="expected SHA-256 of the archive (the digest is logged either way)")
    p.set_defaults(run=download)


def download(args: argparse.Namespace) -> int:
    from envsound.data.download import download_dataset
    from envsound.models.releases import by_download_name

    from envsound.models.frozen import FROZEN

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
