"""Frozen networks on the Ray engine: 'envsound predict NAME INPUTS --out DIR --engine ray' and 'envsound embed NAME
INPUTS --out DB --engine ray' (envsound.scan and embed_archive with ScanOptions(engine="ray")) with birdnet-v2.4,
yamnet and a head learned over one give the rows the local engine gives, on a local Ray cluster on 127.0.0.1 whose
workers have no models folder of the driver's (ENVSOUND_MODELS is set after the cluster starts): the network's
bytes, labels and a learned head's trunk travel to the actors. The networks are the tiny ones of
tests/tinytflite.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")
pytest.importorskip("ray")

import test_embed_ray  # noqa: E402 (after the skips)
from tinytflite import install_tiny_pair, write_tiny  # noqa: E402

from envsound.inference.scan import ScanOptions  # noqa: E402

LOCAL = ScanOptions(workers=1, progress=False)
ray_cluster = test_embed_ray.ray_cluster  # a local one-node Ray cluster on 127.0.0.1, two CPUs, for this module


@pytest.fixture(scope="module")
def models(tmp_path_factory, ray_cluster):
    """A models folder holding both tiny networks (installed as 'envsound download --from' does), made after the
    cluster started: its workers do not see it."""
    return install_tiny_pair(tmp_path_factory.mktemp("frozen"))


def _archive(folder, rate: int, seconds: list[float]):
    """Noise clips of ``seconds`` at ``rate`` (one longer than a 60-s block, so a file of two chunks) and a file
    that is not audio."""
    folder.mkdir()
    for i, length in enumerate(seconds):
        wave = np.random.default_rng(i).uniform(-0.5, 0.5, int(rate * length)).astype(np.float32)
        sf.write(folder / f"c{i}.wav", wave, rate, subtype="FLOAT")
    (folder / "broken.wav").write_bytes(b"not audio at all")
    return folder


def _tables(out) -> dict[str, pd.DataFrame]:
    """files/, windows/ and errors/ of a results folder, sorted."""
    tables = {}
    for name, keys in (("files", ["file"]), ("windows", ["file", "start"]), ("errors", ["file"])):
        table = pd.read_parquet(out / name)
        tables[name] = table.sort_values(keys).reset_index(drop=True)
    return tables


def _predict_both(model, audio, out, address, **tables) -> tuple[dict, dict]:
    """The tables of the local engine's and the Ray engine's results folders, the Ray engine's settings checked."""
    from dataclasses import replace

    from envsound.inference.scan import Tables, scan

    runs = {}
    for engine, options in (("local", LOCAL), ("ray", replace(LOCAL, engine="ray", address=address, workers=None))):
        summary = scan(model, audio, out=out / engine, tables=Tables(**tables), options=options)
        assert (summary.files, summary.failed) == (4, 1)  # the broken file is an error row, as on the local engine
        runs[engine] = _tables(out / engine)
    assert summary.settings["engine"].startswith("Ray ") and "1 CPU actor(s)" in summary.settings["engine"]
    return runs["local"], runs["ray"]


def test_predict_out_engine_ray_with_yamnet_and_a_head_learned_over_it_gives_the_local_rows(models, ray_cluster,
                                                                                            tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    audio = _archive(tmp_path / "audio", 16_000, [2.0, 61.0, 0.5])
    local, ray = _predict_both("yamnet", audio, tmp_path / "yamnet", ray_cluster.address, window_scores=True)
    for name in ("files", "windows", "errors"):
        pd.testing.assert_frame_equal(ray[name], local[name], check_exact=False, rtol=1e-6, atol=1e-7)
    assert len(local["windows"]) == 4 + 127 + 1 and local["errors"]["file"].str.endswith("broken.wav").all()
    assert local["windows"].filter(like="p:").shape[1] == 521

    # a head learned over the tiny YAMNet, whose trunk the driver finds installed and the workers nowhere: the file
    # it was learned with is gone
    from envsound.models.litert import write_learned

    trunk = write_tiny("yamnet", tmp_path / "trunk.tflite")  # the installed file's bytes
    weights = np.random.default_rng(0).normal(size=(2, 1024)).astype(np.float32)
    head = write_learned(trunk, ["dog", "bird"], weights, np.zeros(2, np.float32), [0.5, 0.5],
                         tmp_path / "head" / "model.ckpt", meta={})
    trunk.unlink()
    local, ray = _predict_both(head, audio, tmp_path / "head", ray_cluster.address)
    for name in ("files", "windows", "errors"):
        pd.testing.assert_frame_equal(ray[name], local[name], check_exact=False, rtol=1e-6, atol=1e-7)
    assert set(local["windows"]["label"].dropna()) <= {"dog", "bird"} and len(local["windows"]) == 132

    # the same head as 'envsound export' writes it (a folder: its manifest, head and trunk travel together)
    from envsound.inference.frozen_export import export_frozen_head

    exported = export_frozen_head(head, tmp_path / "exported").folder
    local_export, ray_export = _predict_both(exported, audio, tmp_path / "export", ray_cluster.address)
    for name in ("files", "windows"):
        pd.testing.assert_frame_equal(ray_export[name], local_export[name], check_exact=False, rtol=1e-6, atol=1e-7)
        pd.testing.assert_frame_equal(local_export[name], local[name], check_exact=False, rtol=1e-6, atol=1e-7)


def test_embed_engine_ray_with_birdnet_stores_the_local_rows(models, ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    from dataclasses import replace

    from envsound.inference.embeddings import EmbeddingsStore, embed_archive

    audio = _archive(tmp_path / "audio", 48_000, [4.0, 2.0, 62.0])
    for engine, options in (("local", LOCAL),
                            ("ray", replace(LOCAL, engine="ray", address=ray_cluster.address, workers=None))):
        summary = embed_archive("birdnet-v2.4", audio, out=tmp_path / engine, options=options)
        assert (summary.files, summary.failed, summary.total_windows) == (4, 1, 2 + 1 + 21)
    assert summary.settings["engine"].startswith("Ray ") and "1 CPU actor(s)" in summary.settings["engine"]
    stores = {engine: EmbeddingsStore(tmp_path / engine) for engine in ("local", "ray")}
    rows = {engine: pd.read_parquet(tmp_path / engine / "windows").sort_values(["file", "start"])
            for engine in stores}
    assert rows["ray"][["file", "start", "end"]].reset_index(drop=True).equals(
        rows["local"][["file", "start", "end"]].reset_index(drop=True))
    ours = stores["ray"].vectors(rows["ray"]["window"].to_numpy())
    theirs = stores["local"].vectors(rows["local"]["window"].to_numpy())
    assert ours.shape == (24, 1024) and np.array_equal(ours, theirs)  # the same float16 from the same windows
    assert stores["ray"].errors() == stores["local"].errors() and len(stores["local"].errors()) == 1
    assert stores["ray"].settings["model"] == stores["local"].settings["model"]


def test_a_network_installed_with_a_spec_and_a_head_over_it_give_the_local_rows_on_ray(ray_cluster, tmp_path,
                                                                                      monkeypatch):
    """The tiny ONNX network installed with a spec after the cluster started: its resolved spec travels with its
    bytes, so an actor opens the copy as the member (ONNX Runtime), and a head learned over it finds its trunk."""
    import tinyonnx

    from envsound.models.litert import write_learned

    models = tmp_path / "models"
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    network = tinyonnx.install_with_spec(models, tinyonnx.write_tiny_onnx(tmp_path / "mine" / "tiny.onnx"),
                                         tinyonnx.ONNX_SPEC, ["bark", "siren", "rain"])
    audio = _archive(tmp_path / "audio", 16_000, [2.0, 61.0, 0.5])
    local, ray = _predict_both("my-onnx", audio, tmp_path / "own", ray_cluster.address)
    for name in ("files", "windows", "errors"):
        pd.testing.assert_frame_equal(ray[name], local[name], check_exact=False, rtol=1e-6, atol=1e-7)
    assert set(local["windows"]["label"].dropna()) <= {"bark", "siren", "rain"}
    weights = np.random.default_rng(0).normal(size=(2, 16)).astype(np.float32)
    head = write_learned(network, ["dog", "bird"], weights, np.zeros(2, np.float32), [0.5, 0.5],
                         tmp_path / "head" / "model.ckpt", meta={})
    local, ray = _predict_both(head, audio, tmp_path / "head", ray_cluster.address)
    for name in ("files", "windows", "errors"):
        pd.testing.assert_frame_equal(ray[name], local[name], check_exact=False, rtol=1e-6, atol=1e-7)
