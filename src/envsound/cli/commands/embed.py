"""``envsound embed MODEL INPUTS --out DB``: every window of an archive into an embeddings store, and ``envsound
embed-clips MODEL INPUTS --out FILE.npz``: one embedding a clip; thin calls of
:func:`envsound.inference.embeddings.embed_archive` and :func:`envsound.inference.embed.embed_inputs`.

``embed --out FILE.npz`` was both until this release: it still makes clip embeddings, with a DeprecationWarning that
names ``embed-clips``, and goes in a later release.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from envsound.cli.dataset_flags import manifest_of, report_skipped
from envsound.cli.options import (add_archive_options, add_device_option, add_model_argument, add_precision_option,
                                  feature_cache, parse_folds, parse_names, scan_options, show_progress)
from envsound.errors import ConfigError

NPZ_DEPRECATED = ("envsound embed --out FILE.npz is deprecated and goes in a later release: clip embeddings are "
                  "'envsound embed-clips MODEL ... --out FILE.npz' (its flags, without --precision, --workers, "
                  "--batch-size and --files-from, which clip embeddings never used); 'envsound embed' makes a store "
                  "folder")


def register(command) -> None:
    p = command("embed", "Embeddings of a checkpoint (what its head sees): every window of an archive into a store "
                         "folder DB that search, label, learn and serve read, batched and resumable. Clip embeddings "
                         "(averaged over a clip's windows) in an .npz file are envsound embed-clips; --out FILE.npz "
                         "here still makes them, deprecated.")
    _add_model(p, frozen=True)
    p.add_argument("inputs", nargs="*", metavar="FILE_OR_FOLDER", help="audio files, folders or globs")
    p.add_argument("--out", required=True, type=Path, metavar="DB",
                   help="the store folder (created, or resumed: the files done are skipped)")
    group = p.add_argument_group("how the archive runs")
    add_archive_options(group, verb="embed", folder="store")
    add_precision_option(group)
    _add_clip_options(p.add_argument_group("deprecated here: clip embeddings, --out FILE.npz (envsound embed-clips)"))
    add_device_option(p)
    p.set_defaults(run=embed)

    p = command("embed-clips", "Clip embeddings of a checkpoint (what its head sees, averaged over a clip's windows) "
                               "with files and, for a dataset, labels, in one .npz file: embeddings (n, d), files, "
                               "labels.")
    _add_model(p)
    p.add_argument("inputs", nargs="*", metavar="FILE_OR_FOLDER", help="audio files or folders (or use --dataset)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.npz", help="the .npz file to write")
    _add_clip_options(p.add_argument_group("a dataset instead of files"))
    add_device_option(p)
    p.set_defaults(run=embed_clips)


def _add_model(parser: argparse.ArgumentParser, *, frozen: bool = False) -> None:
    add_model_argument(parser, onnx=False, network=True, frozen=frozen,
                       note="; not a model.onnx: an export's graph carries no embedding output")


def _add_clip_options(group) -> None:
    """The dataset whose clips ``embed-clips`` embeds, and its feature cache."""
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


def embed(args: argparse.Namespace) -> int:
    """The store; an ``--out`` ending in .npz: the clip embeddings of :func:`embed_clips`, deprecated."""
    if _is_npz(args.out):
        if args.engine != "local" or args.address:
            raise ConfigError(f"--engine and --address are for a store folder, not {args.out}: give --out DB (a "
                              "folder)")
        warnings.warn(NPZ_DEPRECATED, DeprecationWarning, stacklevel=1)
        return embed_clips(args)
    from envsound.inference.embeddings import embed_archive

    if args.dataset:
        raise ConfigError(f"--dataset makes clip embeddings, an .npz file, not a store folder ({args.out}): envsound "
                          "embed-clips MODEL --dataset NAME --out FILE.npz; or give FILES/FOLDERS for a store")
    if not args.inputs and not args.files_from:
        raise ConfigError("embed needs audio: FILES/FOLDERS (or --files-from LIST)")
    summary = embed_archive(args.checkpoint, args.inputs, out=args.out, files_from=args.files_from,
                            options=scan_options(args, progress=show_progress(args)))
    print(summary.line())
    return 1 if summary.failed else 0


def embed_clips(args: argparse.Namespace) -> int:
    from envsound.inference.embed import embed_inputs, save_embeddings

    if not _is_npz(args.out):
        raise ConfigError(f"--out {args.out}: name the file *.npz (a store folder of every window is envsound embed "
                          "MODEL INPUTS --out DB)")
    manifest = manifest_of(args) if args.dataset else None
    if manifest is not None and args.folds:
        manifest = manifest.select_folds(args.folds)
    if manifest is None and not args.inputs:
        raise ConfigError(f"{args.command} needs audio: FILES/FOLDERS, or --dataset NAME (with --root)")
    result = embed_inputs(args.checkpoint, args.inputs, manifest=manifest, device=args.device,
                          cache=feature_cache(args), progress=show_progress(args))
    save_embeddings(args.out, result)
    print(f"embedded {len(result.files)} clip(s) ({result.embeddings.shape[1]}-d) -> {args.out}")
    skipped = (manifest.skipped if manifest is not None else []) + result.skipped
    return report_skipped(args, skipped, listed=len(result.files) + len(skipped))


def _is_npz(out: Path) -> bool:
    return str(out).lower().endswith(".npz")
