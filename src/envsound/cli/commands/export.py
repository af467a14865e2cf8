"""Write a checkpoint as one ONNX file (log-mel frontend, windows and network inside; labels and feature settings in
its metadata) that predict, serve and load_model run with onnxruntime, without PyTorch. A head learned over BirdNET
or YAMNet (envsound learn) is written as a folder instead: its trunk's .tflite, the head and a manifest, which
predict, listen, serve and load_model run with numpy and LiteRT, without PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.cli.options import add_model_argument
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("export", __doc__)
    add_model_argument(p, onnx=False, network=True, note="; or a model.ckpt of a head learned over a frozen network "
                                                         "(envsound learn on a BirdNET or YAMNet store)")
    p.add_argument("--format", default="onnx", choices=["onnx"],
                   help="file format of a network's export (a learned head over a frozen network: a folder)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.onnx|DIR",
                   help="where to write the model: FILE.onnx, or a folder for a head learned over a frozen network "
                        "(an earlier export there is replaced)")
    p.add_argument("--check", action="store_true",
                   help="then score a few seconds of noise with both and report the largest probability difference")
    p.set_defaults(run=export)


def export(args: argparse.Namespace) -> int:
    from envsound.models.files import CLASSIFIER, RELEASE, open_model_file
    from envsound.models.litert import is_learned

    opened = open_model_file(args.checkpoint).require(CLASSIFIER, RELEASE, purpose="export")
    if opened.checkpoint is not None and is_learned(opened.checkpoint):
        return _export_head(args, opened)
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


def _export_head(args: argparse.Namespace, opened) -> int:
    """A head learned over a frozen network: the folder (see envsound.inference.frozen_export)."""
    from envsound.inference.frozen_export import check_head_export, export_frozen_head

    written = export_frozen_head(opened, args.out)
    print(written.line())
    if written.licence_line():
        print(written.licence_line())
    if args.check:
        diff = check_head_export(opened, written.folder)
        print(f"check: largest probability difference from the checkpoint on noise: {diff:.2e}")
    return 0
