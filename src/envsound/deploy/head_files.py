"""A head learned over a frozen network (BirdNET, YAMNet), as a fleet publishes it: the folder ``envsound export``
writes, less its trunk, in one zip file (``envsound fleet publish``), and that file unpacked on the sensor
(``listen --follow``), where the network installed there is the trunk (:func:`envsound.models.frozen_head.
read_head_export` finds it by the manifest's sha256).

Why without the trunk: the head and its manifest are a few kilobytes where BirdNET's network is 50 MB, which a
solar-powered sensor downloads once (``envsound download``), not at each version; and BirdNET's licence leaves the
copy the user's own. The zip is the same bytes for the same folder (fixed order and times), so publishing an export
again is the same version. The standard library only: a sensor runs on the light install.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from envsound.deploy.signing import RefusedModel
from envsound.fileio import stable_zip_member

MANIFEST = "envsound-head.json"  # envsound.models.frozen_head.MANIFEST, not imported: follow.py stays stdlib-only
FORMAT = "head"  # a version's format for such a file (an ONNX export's: "onnx")


def pack_head(folder: str | Path, out: str | Path) -> Path:
    """The export ``folder``'s manifest and head (not its trunk, nor its README) zipped into ``out``."""
    folder, out = Path(folder), Path(out)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    with zipfile.ZipFile(out, "w") as packed:
        for name in (MANIFEST, str(manifest["head"]["file"])):  # fixed times: the same folder, the same bytes
            packed.writestr(stable_zip_member(name, compress=zipfile.ZIP_DEFLATED), (folder / name).read_bytes())
    return out


def unpack_head(path: str | Path) -> Path:
    """The folder beside ``path`` (its name less the suffix) holding what :func:`pack_head` packed, written whole
    (an earlier one there replaced).

    Raises:
        RefusedModel: not a zip, or a member that is not a plain file name, or no manifest.
    """
    path = Path(path)
    folder = path.with_suffix("")
    building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=path.parent))
    try:
        try:
            with zipfile.ZipFile(path) as packed:
                names = packed.namelist()
                if MANIFEST not in names or any(Path(name).name != name or name in ("", ".", "..") for name in names):
                    raise RefusedModel(f"{path}: not a head as envsound fleet publish packs it (members {names[:4]})")
                for name in names:
                    (building / name).write_bytes(packed.read(name))
        except zipfile.BadZipFile as exc:
            raise RefusedModel(f"{path}: not a head as envsound fleet publish packs it ({exc})") from None
        shutil.rmtree(folder, ignore_errors=True)
        building.rename(folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder
