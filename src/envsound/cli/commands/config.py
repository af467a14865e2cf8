"""``envsound config``: the resolved configuration as YAML; a thin call of :func:`envsound.recipes.config.resolve`
(through :func:`envsound.cli.options.build_config`)."""

from __future__ import annotations

import argparse

from envsound.cli.options import add_config_options, build_config


def register(command) -> None:
    p = command("config", "Print the resolved configuration (defaults, model preset, --config, --set) as YAML.")
    add_config_options(p)
    p.set_defaults(run=config)


def config(args: argparse.Namespace) -> int:
    import yaml

    print(yaml.safe_dump(build_config(args).to_dict(), sort_keys=False), end="")
    return 0
