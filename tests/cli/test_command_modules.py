"""One way to add a command (issue 74): a module of envsound.cli.commands with register(command), named once in
MODULES; the parser stays light."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import envsound.cli.commands as commands
from envsound.cli.main import build_parser


def test_every_command_module_is_listed_once_and_registers_itself():
    modules = sorted(path.stem for path in Path(commands.__file__).parent.glob("*.py") if path.stem != "__init__")
    assert sorted(commands.MODULES) == modules and len(set(commands.MODULES)) == len(commands.MODULES)
    assert all(callable(import_module(f"envsound.cli.commands.{name}").register) for name in modules)


def test_every_command_has_a_handler_and_help():
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in subcommands._choices_actions}
    for name, command in subcommands.choices.items():
        assert callable(command.get_default("run")), name
        assert command.description and helps[name] == command.description, name


def test_the_parser_imports_no_torch():
    code = ("import sys\nfrom envsound.cli.main import build_parser\nbuild_parser()\n"
            "heavy = sorted({'torch', 'lightning', 'sklearn', 'pyarrow', 'fastapi'} & set(sys.modules))\n"
            "assert not heavy, heavy")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
