"""`envsound download efficientat-mn04` without a network names the way round: --from a copy fetched elsewhere."""

from __future__ import annotations

import socket


def closed_port() -> int:
    with socket.socket() as sock:  # bound then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_offline_download_of_a_network_names_the_from_file_way(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    ran = envsound_main("download", "efficientat-mn04", "--url", f"http://127.0.0.1:{closed_port()}/")
    assert ran.returncode == 1
    line = ran.stderr.strip().splitlines()[-1]
    assert "cannot connect" in line and "envsound download efficientat-mn04 --from mn04_as_mAP_432.pt" in line
    assert "github.com/fschmid56/EfficientAT/releases" in line
