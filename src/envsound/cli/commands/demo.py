"""Generate the embedded synthetic dataset, cross-validate the default model on it, train a final model and classify
a few files."""

from __future__ import annotations

import argparse
from pathlib import Path

from envsound.cli.options import show_progress


def register(command) -> None:
    p = command("demo", __doc__)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR",
                   help="demo folder (its previous demo results are replaced)")
    p.set_defaults(run=demo)


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
