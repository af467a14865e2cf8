"""The ``envsound`` command: the parser's frame, logging, one line for every user error, and dispatch; each command
is a module of :mod:`envsound.cli.commands` that parses its arguments, calls one library function and prints its
result.

Every user error (an :class:`EnvsoundError`) becomes one line on stderr and exit status 1; ``--debug`` shows the
traceback. ``predict`` exits 1 when any input failed, after classifying all the others. Every command that reads a
dataset (train, cv, grid, stages, pretrain, evaluate, embed-clips, mix, datasets check) exits 0 when nothing was left
out and 1 when ``--skip-bad`` left files out: each named once, then a one-line summary last.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import warnings

from envsound._version import __version__
from envsound.cli.commands import register_all

log = logging.getLogger("envsound")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)", once: not for flags, unset (None) values, required options, positionals, or help
    that already says its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.default in (None, False, argparse.SUPPRESS)
                or action.nargs == 0 or "default" in text.lower()):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envsound", description="Environmental sound classification: train, cross-validate, evaluate, predict.",
        formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"envsound {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument("-q", "--quiet", action="store_true", help="only warnings and results; no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common],
                              formatter_class=HelpFormatter)

    register_all(command)
    return parser


TRAINING_COMMANDS = {"train", "cv", "demo", "pretrain", "grid"}


def configure_logging(*, debug: bool, quiet: bool, command: str) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    # a deprecated command form says so at the console (Python shows a DeprecationWarning only to __main__'s code)
    warnings.filterwarnings("default", category=DeprecationWarning, module=r"envsound\.cli\.")
    logging.basicConfig(level=level, format="%(message)s" if not debug else "%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if not debug:  # matplotlib says "generated new fontManager" at INFO the first time it runs on a machine
        logging.getLogger("matplotlib").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)  # eleven lines of plugins at each store opened
    if command in TRAINING_COMMANDS:
        # Lightning installs its own INFO handler when first imported; import it now so our level sticks
        # (its start-up chatter about GPUs and cloud loggers is noise on a CPU tool).
        try:
            import lightning.pytorch  # noqa: F401
        except ModuleNotFoundError:  # the light install: the command itself says which extra it needs
            return
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")


def _in_flags(exc: Exception, args: argparse.Namespace) -> str:
    """A library error in the CLI's words: the Python API's names for what a flag sets become the flag."""
    from envsound.errors import AudioLoadError, RunExistsError

    if isinstance(exc, RunExistsError):
        return (f"{exc.path} already exists; pass --overwrite to replace it, --resume to continue, or choose another "
                "--out")
    if isinstance(exc, AudioLoadError) and getattr(args, "skip_bad", True) is False:
        return f"{exc}; or pass --skip-bad to leave out every unusable file (each is named, and the exit status is 1)"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    configure_logging(debug=args.debug, quiet=args.quiet, command=args.command)
    from envsound.errors import EnvsoundError

    try:
        return int(args.run(args) or 0)
    except EnvsoundError as exc:
        if args.debug:
            raise
        print(f"envsound {args.command}: error: {_in_flags(exc, args)}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        from envsound.cli.extras import extra_for

        extra = extra_for(exc.name or "")
        if extra is None or args.debug:
            raise
        print(f"envsound {args.command}: error: this needs {exc.name}, which comes with the {extra!r} extra: "
              f"pip install 'envsound[{extra}]'", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`envsound predict ... | head`): stop quietly, as Unix tools do
        sys.stdout = open(os.devnull, "w")
        return 141
    except KeyboardInterrupt:
        print(f"envsound {args.command}: interrupted; finished files are complete{_resume_hint(args, argv)}",
              file=sys.stderr)
        return 130


def _resume_hint(args, argv: list[str]) -> str:
    """``; to go on: envsound ... --resume`` for a command that can resume, else nothing."""
    if not hasattr(args, "resume") or getattr(args, "out", True) is None:  # predict resumes with --out only
        return ""
    again = [arg for arg in argv if arg != "--overwrite"] + ([] if args.resume else ["--resume"])
    return "; to go on: envsound " + " ".join(shlex.quote(arg) for arg in again)


if __name__ == "__main__":
    sys.exit(main())
