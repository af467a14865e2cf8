"""List the model names."""

from __future__ import annotations

import argparse


def register(command) -> None:
    p = command("models", __doc__)
    p.set_defaults(run=models)


def models(args: argparse.Namespace) -> int:
    from envsound.models.frozen import frozen_table
    from envsound.models.pretrained import pretrained_table
    from envsound.models.registry import model_names
    from envsound.models.releases import models_dir

    print("\n".join(model_names()))
    print(f"\npre-trained on AudioSet (EfficientAT; 'envsound download NAME', kept in {models_dir()}):")
    for row in pretrained_table():
        where = f"installed: {row['installed']}" if row["installed"] else "not installed"
        print(f"  {row['name']:<16} {row['parameters'] / 1e6:5.2f} M parameters  {row['megabytes']:6.1f} MB  "
              f"AudioSet mAP {row['audioset_map']:.3f}  {where}")
    print(f"\nfrozen networks LiteRT runs ('envsound download NAME' or '--from FOLDER', kept in {models_dir()}):")
    table = frozen_table()
    for release, installed in table:
        if release.family != "spec":
            where = f"installed: {installed}" if installed else "not installed"
            print(f"  {release.name:<16} {release.describe()}  {where}")
    own = [(release, installed) for release, installed in table if release.family == "spec"]
    print("\nyour own networks ('envsound download --from FILE --spec SPEC'): " + ("" if own else "none installed"))
    for release, installed in own:
        print(f"  {release.name:<16} {release.runtime}  {release.describe()}  installed: {installed}")
    return 0
