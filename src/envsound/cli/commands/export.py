"""Write a checkpoint as one ONNX file (log-mel frontend, windows and network inside; labels and feature settings in
its metadata) that predict, serve and load_model run with onnxruntime, without PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.cli.options import add_model_argument
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("export", __doc__)
    add_model_argument(p, onnx=False, network=True)
    p.add_argument("--format", default="onnx", choices=["onnx"], help="file format")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.onnx", help="where to write the model")
    p.add_argument("--check", action="store_true",
                   help="then score a few seconds of noise with both and report the largest probability difference")
    p.set_defaults(run=export)


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
