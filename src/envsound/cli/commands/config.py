"""Print the resolved configuration (defaults, model preset, --config, --set) as YAML."""

from __future__ import annotations

import argparse

from envsound.cli.options import add_config_options, build_config


def register(command) -> None:
    p = command("config", __doc__)
    add_config_options(p)
    p.set_defaults(run=config)


def config(args: argparse.Namespace) -> int:
    import yaml

    print(yaml.safe_dump(build_config(args).to_dict(), sort_keys=False), end="")
    return 0
