"""A fleet's models and what it heard: publish a model to the sensors (a canary's share of them, named ones, or all),
assign a published version again, see which version each sensor runs, roll back; each sensor's precision from the
verdicts on its random sample of detections (check); delete kept snippets (purge). Acts on the server's store directly (as token does):
a running server sees the change at its next request, and each sensor following it (listen --follow) at its next
poll."""

from __future__ import annotations

import argparse
import tempfile
from importlib import import_module
from pathlib import Path

from envsound.cli.options import add_store_option
from envsound.errors import ConfigError

# action -> (module, function adding its options, function running it); the first line of the latter's docstring is
# its help. Another action (e.g. "purge") is one more line here.
ACTIONS = {
    "publish": (__name__, "add_publish_options", "publish"),
    "assign": (__name__, "add_assign_options", "assign"),
    "status": (__name__, "add_status_options", "status"),
    "rollback": (__name__, "add_common_options", "rollback"),
    "check": ("envsound.cli.fleet_check", "add_check_options", "check"),
    "purge": ("envsound.cli.fleet_purge", "add_purge_options", "purge"),
}


def register(command) -> None:
    p = command("fleet", __doc__)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, (module, add, run) in ACTIONS.items():
        handler = getattr(import_module(module), run)
        help_text = (handler.__doc__ or name).strip().splitlines()[0]
        q = actions.add_parser(name, help=help_text, description=help_text, formatter_class=p.formatter_class)
        getattr(import_module(module), add)(q)
        # given after the action too; SUPPRESS: a value given before it (envsound fleet -q status) is not reset
        q.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        q.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings and "
                                                                                              "results")
        q.set_defaults(run=handler)
    p.set_defaults(run=_no_action)  # each action's parser sets its own


def _no_action(args: argparse.Namespace) -> int:
    raise ConfigError(f"fleet needs an action: {', '.join(ACTIONS)}")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--store``, ``--fleet-dir`` and ``--who``: every action's."""
    add_store_option(parser, help="the server's --store (omitted: the file serve uses when it is given none); it "
                                  "must exist")
    parser.add_argument("--fleet-dir", type=Path, metavar="DIR",
                        help="the server's fleet folder, where published models and the signing key are kept "
                             "(default: NAME-fleet beside a SQLite store NAME.sqlite; as serve --fleet-dir)")
    parser.add_argument("--who", metavar="NAME", help="who does this, as the store records it (default: the OS user)")


def _add_targets(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_mutually_exclusive_group()
    targets.add_argument("--sensors", metavar="A,B", help="only these sensors (names, comma-separated)")
    targets.add_argument("--share", type=float, metavar="F",
                         help="a canary: this fraction (0-1) of the known sensors, chosen by a hash of name and "
                              "version (the same sensors each time for a version); default: every sensor")


def add_publish_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="MODEL",
                        help="a model.ckpt (exported to ONNX as envsound export does), a model.onnx (taken as it "
                             "is), or a head learned over BirdNET or YAMNet (its model.ckpt or export folder: "
                             "published without the network, which each sensor has installed)")
    _add_targets(parser)
    parser.add_argument("--note", metavar="TEXT", help="what this version is, kept with it")
    add_common_options(parser)


def add_assign_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version", type=int, metavar="VERSION",
                        help="a published version's id (fleet status); 0: the model each sensor was started with")
    _add_targets(parser)
    add_common_options(parser)


def add_status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--online-seconds", type=float, default=120.0,
                        help="a sensor heard from within this long is online (as serve --online-seconds)")
    add_common_options(parser)


def publish(args: argparse.Namespace) -> int:
    """Publish MODEL as a new version (signed) and assign it to sensors (all, named, or a canary's share)."""
    fleet = _fleet(args)
    with tempfile.TemporaryDirectory(prefix="envsound-publish-") as scratch:
        path, name, thresholds, kind = sensor_file(args.model, Path(scratch))
        version, new = fleet.add_version(path, name=name, thresholds=thresholds, note=args.note, who=args.who,
                                         format=kind)
    size = version.size / 2 ** 20
    print(f"version {version.id}: {version.name}, sha256 {version.digest[:16]}, {size:.1f} MiB, "
          + (f"published by {version.who}, signed with {fleet.folder / 'signing-key.pem'}" if new else
             f"already published by {version.who} on {version.created:%Y-%m-%d %H:%M} UTC"))
    return _assign(fleet, version.id, args)


def assign(args: argparse.Namespace) -> int:
    """Assign a published VERSION to sensors (all, named, or a canary's share)."""
    return _assign(_fleet(args), args.version, args)


def status(args: argparse.Namespace) -> int:
    """Each version published, then each sensor: its version assigned and running (since), last heartbeat, online."""
    fleet = _fleet(args)
    for version in fleet.versions():
        print(f"version {version.id}: {version.name} sha256 {version.digest[:16]} by {version.who} "
              f"{version.created:%Y-%m-%d %H:%M} UTC" + (f" ({version.note})" if version.note else ""))
    rows = fleet.status(online_seconds=args.online_seconds)
    if not rows:
        print(f"no sensors known to {fleet.store.shown}")
    for row in rows:
        running = "none" if row["running"] is None else f"{row['running']} since {_short(row['since'])}"
        print(f"{row['sensor']:24s} assigned {row['assigned'] or 'none':>4}  running {running}  last heartbeat "
              f"{_short(row['last_heartbeat'])}  {'online' if row['online'] else 'offline'}"
              + (f"  {row['snippets_dropped']} snippets dropped over its budget" if row["snippets_dropped"] else "")
              + (f"  ({row['refused']})" if row["refused"] else ""))
    return 0


def rollback(args: argparse.Namespace) -> int:
    """Give the sensors of the last publish, assign or rollback the version each had before it."""
    fleet = _fleet(args)
    for item in fleet.rollback(who=args.who):
        print(f"rolled back: {item.line()}")
    return 0


def sensor_file(model: Path, scratch: Path) -> tuple[Path, str, dict | None, str]:
    """What a sensor runs for ``model``: its file (an ONNX file: ``model`` itself or its export into ``scratch``; a
    head over a frozen network: its export folder packed without the trunk, :mod:`envsound.deploy.head_files`), the
    model's name as its events carry it, the learned thresholds with their precision (None: not learned), and the
    file's format (``onnx`` or ``head``).

    Raises:
        ConfigError, CheckpointError: a model that does not export or load.
    """
    from envsound.deploy.head_files import FORMAT as HEAD
    from envsound.deploy.head_files import pack_head
    from envsound.inference.predictor import Predictor

    runs, kind = model, "onnx"
    if model.is_dir() or (model.suffix.lower() != ".onnx" and _learned_head(model)):
        if not model.is_dir():
            from envsound.inference.frozen_export import export_frozen_head

            runs = export_frozen_head(model, scratch / "head").folder
        kind = HEAD
    elif model.suffix.lower() != ".onnx":
        from envsound.inference.onnx_export import export_onnx

        runs = export_onnx(model, scratch / "model.onnx")
    predictor = Predictor.from_checkpoint(runs, device="cpu", precision="32", timed=False)  # it loads: a model
    path = pack_head(runs, scratch / "model.head") if kind == HEAD else runs
    learned = (predictor.model.meta or {}).get("learned", {}).get("labels") or {}
    thresholds = {label: {"threshold": item.get("threshold"), "precision": item.get("precision"),
                          "precision_interval": item.get("precision_interval")} for label, item in learned.items()}
    return path, predictor.model.config.model.name, thresholds or None, kind


def _learned_head(model: Path) -> bool:
    """True for a model.ckpt of a head learned over a frozen network (it exports to a folder, not ONNX)."""
    from envsound.models.files import CLASSIFIER, RELEASE, open_model_file
    from envsound.models.litert import is_learned

    opened = open_model_file(model).require(CLASSIFIER, RELEASE, purpose="publish")
    return opened.checkpoint is not None and is_learned(opened.checkpoint)


def _fleet(args: argparse.Namespace):
    from envsound.deploy.fleet_files import fleet_dir
    from envsound.deploy.store import Store
    from envsound.deploy.versions import Fleet
    from envsound.errors import NoStoreError

    try:
        store = Store.open(args.store, create=False)
    except NoStoreError as exc:
        raise ConfigError(f"{exc.where}: no store there; give the --store the server uses") from None
    return Fleet(store, fleet_dir(args.store, args.fleet_dir))


def _assign(fleet, version: int, args: argparse.Namespace) -> int:
    sensors = [name.strip() for name in args.sensors.split(",") if name.strip()] if args.sensors else None
    batch = fleet.assign(version, sensors=sensors, share=args.share, who=args.who)
    names = ", ".join(item.sensor for item in batch if item.sensor)
    where = names if names else "every sensor"
    share = f" (a share of {args.share:g} of {len(fleet.known_sensors())} known sensors)" if args.share else ""
    what = f"version {version}" if version else "its own model (the one it was started with)"
    print(f"{what} assigned to {where}{share}")
    return 0


def _short(moment: str | None) -> str:
    """``2026-11-29T12:00:00.123456Z`` -> ``2026-11-29 12:00:00Z``; None -> ``never``."""
    return "never" if not moment else moment.replace("T", " ")[:19] + "Z"
