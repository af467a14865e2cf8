"""`envsound embed MODEL INPUTS --out DB --engine ray` (`embed_archive(..., options=ScanOptions(engine="ray"))`):
a local Ray cluster on 127.0.0.1 asked for embeddings gives the store the local engine gives, and either engine
resumes the other's."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import test_embeddings_store

from envsound.inference.embeddings import EmbeddingsStore, embed_archive
from envsound.inference.scan import ScanOptions

archive = test_embeddings_store.archive  # the stores' archive, a fixture of this module too
LOCAL = ScanOptions(workers=1, precision="32", progress=False)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of one node on 127.0.0.1 (Ray's own cluster utilities), two CPUs."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": 200 * 2**20})
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _rows(out: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The store's windows by (file, start) and their embeddings in that order."""
    store = EmbeddingsStore(out)
    windows = pd.read_parquet(out / "windows").sort_values(["file", "start"]).reset_index(drop=True)
    return windows, store.vectors(windows["window"].to_numpy())


def test_the_ray_engine_embeds_the_rows_and_embeddings_of_the_local_engine(tmp_path, trained_run, archive,
                                                                           ray_cluster):
    local = embed_archive(trained_run.checkpoint, archive, out=tmp_path / "local", options=LOCAL)
    ray = embed_archive(trained_run.checkpoint, archive, out=tmp_path / "ray",
                        options=replace(LOCAL, engine="ray", address=ray_cluster.address, workers=None))
    assert ray.settings["engine"].startswith("Ray ")
    assert (ray.files, ray.failed, ray.total_windows) == (local.files, local.failed, local.total_windows)
    (ours, embedded), (theirs, expected) = _rows(tmp_path / "ray"), _rows(tmp_path / "local")
    assert ours[["file", "start", "end"]].equals(theirs[["file", "start", "end"]])
    assert np.allclose(embedded, expected, atol=2e-3, rtol=1e-3)  # both float16 in the store
    assert EmbeddingsStore(tmp_path / "ray").errors() == EmbeddingsStore(tmp_path / "local").errors()
    again = embed_archive(trained_run.checkpoint, archive, out=tmp_path / "ray", options=LOCAL)  # the local
    # engine resumes the Ray engine's store: nothing left to do
    assert (again.files, again.windows) == (0, 0)


def test_embed_engine_ray_at_an_address_that_does_not_answer_is_one_line_and_exit_1(tmp_path, trained_run, archive,
                                                                                    envsound_main):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as unused:  # a port that nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    ran = envsound_main("embed", trained_run.checkpoint, archive, "--out", tmp_path / "db", "--engine", "ray",
                        "--address", f"127.0.0.1:{port}", "--quiet")
    assert ran.returncode == 1 and not (tmp_path / "db").exists()
    assert ran.stderr.strip().splitlines() == [ran.stderr.strip()]
    assert f"127.0.0.1:{port} does not answer" in ran.stderr


def test_engine_ray_with_clip_embeddings_to_npz_is_refused_in_one_line(tmp_path, trained_run, archive, envsound_main):
    ran = envsound_main("embed", trained_run.checkpoint, archive / "site0", "--out", tmp_path / "clips.npz",
                        "--engine", "ray", "--quiet")
    assert ran.returncode == 1 and not (tmp_path / "clips.npz").exists()
    assert ran.stderr.strip().splitlines() == [ran.stderr.strip()] and "a store folder" in ran.stderr
