"""A head as a fleet publishes it: the same folder packs to the same bytes (publishing it again is the same version),
without its trunk; a sensor unpacks only plain file names, and refuses a file that is no such zip."""

from __future__ import annotations

import json
import zipfile

import pytest

from envsound.deploy.head_files import MANIFEST, pack_head, unpack_head
from envsound.deploy.signing import RefusedModel
from envsound.fileio import file_digest


def test_a_head_packs_to_the_same_bytes_without_its_trunk_and_unpacks_whole(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / MANIFEST).write_text(json.dumps({"head": {"file": "head.npz"}, "trunk": {"file": "net.tflite"}}))
    (folder / "head.npz").write_bytes(b"weights")
    (folder / "net.tflite").write_bytes(b"a large network")
    first = pack_head(folder, tmp_path / "one.head")
    assert file_digest(first) == file_digest(pack_head(folder, tmp_path / "two.head"))
    assert sorted(zipfile.ZipFile(first).namelist()) == sorted([MANIFEST, "head.npz"])
    unpacked = unpack_head(first)
    assert unpacked == tmp_path / "one" and (unpacked / "head.npz").read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no half-made folder left


@pytest.mark.parametrize("members", [{MANIFEST: b"{}", "../escape": b"x"}, {"head.npz": b"x"}, None])
def test_a_sensor_refuses_a_file_that_is_not_such_a_head(tmp_path, members):
    path = tmp_path / "v1-abc.head"
    if members is None:
        path.write_bytes(b"not a zip")
    else:
        with zipfile.ZipFile(path, "w") as packed:
            for name, data in members.items():
                packed.writestr(name, data)
    with pytest.raises(RefusedModel, match="not a head as envsound fleet publish packs it"):
        unpack_head(path)
    assert not (tmp_path / "v1-abc").exists() and not (tmp_path.parent / "escape").exists()
