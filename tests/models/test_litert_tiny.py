"""The litert family on a fresh clone: tiny networks shaped like BirdNET V2.4 and YAMNet (tests/tinytflite.py, made
as flatbuffers in milliseconds) are recognised by structure and run by LiteRT exactly as numpy computes them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from tinytflite import SHAPES, reference, write_tiny  # noqa: E402 (after the skips)

from envsound.models.frozen import FROZEN, is_tflite  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return {member: write_tiny(member, folder / f"{member}.tflite") for member in SHAPES}


@pytest.mark.parametrize("member", list(SHAPES))
def test_a_tiny_network_is_recognised_by_its_structure_and_runs_as_numpy_does(member, tiny):
    from envsound.models.litert import LiteRTNetwork

    assert is_tflite(tiny[member])
    network = LiteRTNetwork.open(tiny[member])
    assert network.release is FROZEN[member]
    windows = np.random.default_rng(3).uniform(-1, 1, (3, FROZEN[member].input_samples)).astype(np.float32)
    output, embedding = network.run(windows)
    expected_output, expected_embedding = reference(member, windows)
    assert output.shape == (3, FROZEN[member].n_classes) and embedding.shape == (3, 1024)
    np.testing.assert_allclose(output, expected_output, atol=1e-5)
    np.testing.assert_allclose(embedding, expected_embedding, atol=1e-5)


def test_interpreters_side_by_side_give_every_window_what_one_gives(tiny, tmp_path):
    """The windows of a batch shared out among interpreters in threads land in their own rows, whatever the count
    (more interpreters than windows included); all are opened with the network, while its file is there."""
    from envsound.models.litert import LiteRTNetwork

    windows = np.random.default_rng(5).uniform(-1, 1, (7, FROZEN["yamnet"].input_samples)).astype(np.float32)
    alone = LiteRTNetwork.open(tiny["yamnet"], interpreters=1).run(windows)
    for count in (2, 3, 9):
        copy = tmp_path / f"copy{count}.tflite"
        copy.write_bytes(tiny["yamnet"].read_bytes())
        network = LiteRTNetwork.open(copy, interpreters=count)
        copy.unlink()  # as a Ray actor removes its copy once the model is open: a batch still runs on every one
        np.testing.assert_array_equal(network.run(windows[:1])[0], alone[0][:1])
        output, embedding = network.run(windows)
        np.testing.assert_array_equal(output, alone[0])
        np.testing.assert_array_equal(embedding, alone[1])
    assert LiteRTNetwork.open(tiny["yamnet"], threads=1).interpreters == 1  # a Ray actor's: one thread, one CPU


def test_birdnet_scores_are_the_sigmoid_of_its_logits_and_yamnets_its_outputs(tiny):
    from envsound.models.litert import LiteRTNetwork

    for member in SHAPES:
        network = LiteRTNetwork.open(tiny[member])
        windows = np.random.default_rng(4).uniform(-1, 1, (2, FROZEN[member].input_samples)).astype(np.float32)
        scores, _ = network.scores(windows)
        output, _ = network.run(windows)
        expected = 1 / (1 + np.exp(-output)) if member == "birdnet-v2.4" else output
        np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_a_frozen_model_cuts_padded_windows_at_its_hop(tiny):
    """A 7-s waveform at 48 kHz: windows at 0 and 3 s and one aligned to the end (4 s); a 1-s one is zero-padded."""
    from envsound.models.litert import FrozenModel, LiteRTNetwork

    model = FrozenModel(LiteRTNetwork.open(tiny["birdnet-v2.4"]), labels=[f"c{i}" for i in range(6522)])
    wave = np.random.default_rng(5).uniform(-1, 1, 7 * 48_000).astype(np.float32)
    probs, starts = model.waveform_probs(wave)
    assert starts == [0, 144_000, 192_000]
    logits, _ = reference("birdnet-v2.4", np.stack([wave[s:s + 144_000] for s in starts]))
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits)), atol=1e-5)
    short = wave[:48_000]
    probs, starts = model.waveform_probs(short)
    padded = np.zeros((1, 144_000), np.float32)
    padded[0, :48_000] = short
    assert starts == [0]
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-reference("birdnet-v2.4", padded)[0])), atol=1e-5)


def test_a_network_opened_for_prediction_only_gives_the_same_outputs_and_no_embedding(tiny):
    from envsound.models.litert import LiteRTNetwork

    windows = np.random.default_rng(6).uniform(-1, 1, (2, 15_600)).astype(np.float32)
    kept = LiteRTNetwork.open(tiny["yamnet"]).run(windows)
    output, embedding = LiteRTNetwork.open(tiny["yamnet"], embedding=False).run(windows)
    assert embedding is None
    np.testing.assert_array_equal(output, kept[0])
