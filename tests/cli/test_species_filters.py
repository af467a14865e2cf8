"""BirdNET's filters as its users know them, on a fresh clone: 'envsound predict birdnet-v2.4 FILES --species-list
FILE' and '--lat --lon --week --sf-thresh' (BirdNET's species-range model, installed by 'envsound download
birdnet-v2.4'), and classes= from Python for any model. The networks are the tiny ones of tests/tinytflite.py, so
every expected score is recomputed in numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from tinytflite import (BIRDNET_FILES, BIRDNET_NAMES, birdnet_folder, range_reference, reference, tiny_range_weights,  # noqa: E402
                        write_tiny, yamnet_files)

from envsound.errors import ConfigError  # noqa: E402
from envsound.models.birdnet_range import RANGE_FILE, range_classes  # noqa: E402

MODEL, LABELS = BIRDNET_FILES
NAMES = BIRDNET_NAMES
START = [0, 48_000]  # a 4-s clip: the window at 0 s and one aligned to its end


def birdnet_copy(folder, *, with_range: bool = True):
    """A folder as a user has BirdNET: the tiny network, its 6,522 labels and (``with_range``) the range model."""
    return birdnet_folder(folder, with_range=with_range)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A models folder holding the tiny BirdNET with its range model, and the tiny YAMNet."""
    from envsound.transfer.install_frozen import install_frozen

    folder, yamnet = tmp_path_factory.mktemp("models"), yamnet_files(tmp_path_factory.mktemp("yamnet"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVSOUND_MODELS", str(folder))
        done = install_frozen("birdnet-v2.4", source=birdnet_copy(tmp_path_factory.mktemp("copy")), progress=False)
        install_frozen("yamnet", source=yamnet, progress=False)
    assert done.range_model == folder / "birdnet-v2.4" / RANGE_FILE
    return folder


@pytest.fixture
def clip(tmp_path, models, monkeypatch):
    """A 4-s clip at 48 kHz, with the models folder in use; (path, waveform)."""
    monkeypatch.setenv("ENVSOUND_MODELS", str(models))
    wave = np.random.default_rng(5).uniform(-0.5, 0.5, 48_000 * 4).astype(np.float32)
    sf.write(tmp_path / "clip.wav", wave, 48_000, subtype="FLOAT")
    return tmp_path / "clip.wav", wave


def expected_top(wave, kept: list[int], k: int) -> tuple[list[dict], list[str]]:
    """The top ``k`` of the kept classes by mean window score, and each window's best kept class."""
    logits, _ = reference("birdnet-v2.4", np.stack([wave[s:s + 144_000] for s in START]))
    probs = (1 / (1 + np.exp(-logits)))[:, kept]
    mean = probs.mean(axis=0)
    top = [{"label": NAMES[kept[i]], "score": round(float(mean[i]), 4)} for i in np.argsort(-mean, kind="stable")[:k]]
    return top, [NAMES[kept[i]] for i in probs.argmax(axis=1)]


def last_json(ran) -> dict:
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout.strip().splitlines()[-1])


def test_lat_lon_week_report_only_the_classes_the_range_model_keeps_there_then(envsound_main, clip):
    path, wave = clip
    ran = envsound_main("predict", "birdnet-v2.4", path, "--lat", "50", "--lon", "4", "--week", "20", "--top-k", "5",
                        "--segments", "--threshold", "0.01", "--json")
    result = last_json(ran)
    kept = list(np.nonzero(range_reference(*tiny_range_weights(), (50, 4, 20)) >= 0.03)[0])
    assert (f"envsound predict: {len(kept):,} of 6,522 classes expected at --lat 50 --lon 4 --week 20 (--sf-thresh "
            "0.03)") in ran.stderr
    assert 1 in kept and 3 not in kept and 0 in kept  # the north's classes, and class 1 in week 20
    top, best = expected_top(wave, kept, 5)
    assert result["top"] == top
    assert [s["label"] for s in result["segments"]] == best
    assert {t["label"] for t in result["labels"]} <= {NAMES[k] for k in kept}


def test_sf_thresh_and_the_whole_year_change_what_is_kept(envsound_main, clip):
    path, wave = clip
    year = last_json(envsound_main("predict", "birdnet-v2.4", path, "--lat", "-50", "--lon", "4", "--top-k", "6522",
                                   "--json"))
    assert [t["label"] for t in year["top"]] == [t["label"] for t in expected_top(wave, list(range(3, 6522, 2)),
                                                                                  6522)[0]]
    strict = last_json(envsound_main("predict", "birdnet-v2.4", path, "--lat", "50", "--lon", "4", "--week", "20",
                                     "--sf-thresh", "0.5", "--top-k", "6522", "--json"))
    assert {t["label"] for t in strict["top"]} == set(NAMES[0::2])  # class 1's 0.27 in week 20 is under 0.5


def test_a_species_list_keeps_only_its_classes_in_the_models_label_order(envsound_main, clip, tmp_path):
    path, wave = clip
    listed = tmp_path / "species.txt"
    listed.write_text(f"# my site\n{NAMES[40]}\n\n  {NAMES[7]}  \n{NAMES[40]}\n")
    result = last_json(envsound_main("predict", "birdnet-v2.4", path, "--species-list", listed, "--top-k", "5",
                                     "--segments", "--json"))
    top, best = expected_top(wave, [7, 40], 5)
    assert result["top"] == top and len(top) == 2
    assert [s["label"] for s in result["segments"]] == [b if s["label"] else None
                                                        for b, s in zip(best, result["segments"])]


def test_a_folder_given_as_species_list_is_read_from_its_species_list_txt(clip, tmp_path):
    from envsound.inference.predictor import Predictor

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "species_list.txt").write_text(f"{NAMES[5]}\n")
    assert Predictor.from_checkpoint("birdnet-v2.4", classes=tmp_path / "site").labels == [NAMES[5]]
    with pytest.raises(ConfigError, match="empty.txt: the species list names no class"):
        (tmp_path / "empty.txt").write_text("# nothing yet\n")
        Predictor.from_checkpoint("birdnet-v2.4", classes=str(tmp_path / "empty.txt"))


def test_a_range_model_of_the_wrong_shape_in_the_folder_keeps_nothing(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    folder = birdnet_copy(tmp_path / "copy", with_range=False)
    write_tiny("yamnet", folder / RANGE_FILE)
    ran = envsound_main("download", "birdnet-v2.4", "--from", folder)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1].endswith(
        "not birdnet-v2.4's species-range model (it takes latitude, longitude and week, and gives 6522 probabilities)")
    assert not list((tmp_path / "models" / "birdnet-v2.4").iterdir())  # neither file is kept


def test_a_name_not_among_the_labels_is_refused_naming_the_file_the_line_and_the_nearest(envsound_main, clip,
                                                                                         tmp_path):
    path, _ = clip
    listed = tmp_path / "species.txt"
    listed.write_text(f"{NAMES[3]}\nCommon 12\n")
    ran = envsound_main("predict", "birdnet-v2.4", path, "--species-list", listed)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        f"envsound predict: error: {listed}:2: 'Common 12' is not a class of 'birdnet-v2.4'; nearest: "
        f"'{NAMES[12]}'")


@pytest.mark.parametrize("flags, message", [
    (["--lat", "50"], "--lat and --lon go together: give both (and --week, default the whole year)"),
    (["--lat", "91", "--lon", "4"], "--lat 91: a latitude is in degrees from -90 to 90"),
    (["--lat", "0", "--lon", "180.5"], "--lon 180.5: a longitude is in degrees from -180 to 180"),
    (["--lat", "0", "--lon", "0", "--week", "0"],
     "--week 0: a week is 1-48 (BirdNET's four a month), or -1 for the whole year"),
    (["--week", "3"], "--week and --sf-thresh go with --lat and --lon (BirdNET's species-range filter)"),
    (["--lat", "0", "--lon", "0", "--sf-thresh", "1.5"],
     "--sf-thresh 1.5: the species-range threshold is a probability from 0 to 1 (BirdNET-Analyzer's default 0.03)"),
    (["--lat", "0", "--lon", "0", "--species-list", "x.txt"],
     "--species-list and --lat/--lon are two filters: give one (BirdNET-Analyzer ignores its list when given a "
     "place)"),
    (["--lat", "0", "--lon", "0", "--out", "results"],
     "--species-list and --lat/--lon filter printed results; a results folder (--out) keeps every class (its "
     "windows/ tables with --window-scores)"),
])
def test_filter_flags_out_of_range_or_together_are_refused_in_one_line(envsound_main, clip, flags, message):
    ran = envsound_main("predict", "birdnet-v2.4", clip[0], *flags)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [f"envsound predict: error: {message}"]


def test_a_place_where_no_class_is_expected_is_said_in_one_line(envsound_main, clip):
    ran = envsound_main("predict", "birdnet-v2.4", clip[0], "--lat", "50", "--lon", "4", "--sf-thresh", "1")
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        "envsound predict: error: --lat 50 --lon 4 --week -1: the species-range model expects none of these 6522 "
        "classes there then (at --sf-thresh 1)")


def test_lat_lon_on_a_model_of_other_classes_is_refused_in_one_line(envsound_main, clip):
    ran = envsound_main("predict", "yamnet", clip[0], "--lat", "50", "--lon", "4")
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        "envsound predict: error: --lat/--lon keep birdnet-v2.4's classes by place and week; this model's class "
        "'Class 0' is not one of them (use --species-list FILE)")


def test_without_the_range_model_lat_lon_say_how_to_install_it(envsound_main, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    ran = envsound_main("download", "birdnet-v2.4", "--from", birdnet_copy(tmp_path / "copy", with_range=False))
    assert ran.returncode == 0, ran.stderr
    sf.write(tmp_path / "clip.wav", np.zeros(48_000, np.float32), 48_000)
    ran = envsound_main("predict", "birdnet-v2.4", tmp_path / "clip.wav", "--lat", "50", "--lon", "4")
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        f"envsound predict: error: --lat/--lon need birdnet-v2.4's species-range model {RANGE_FILE}: 'envsound "
        "download birdnet-v2.4 --from FOLDER' with it in FOLDER (or 'envsound download birdnet-v2.4')")


@pytest.mark.parametrize("published", [True, False])
def test_download_from_a_server_fetches_the_range_model_when_it_is_published(envsound_main, server, tmp_path,
                                                                             monkeypatch, published):
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path / "models"))
    folder = birdnet_copy(tmp_path / "published", with_range=published)
    server.files.update({p.name: p.read_bytes() for p in folder.iterdir()})
    ran = envsound_main("download", "birdnet-v2.4", "--url", server.url)
    assert ran.returncode == 0, ran.stderr  # the range model is optional
    installed = tmp_path / "models" / "birdnet-v2.4" / RANGE_FILE
    assert installed.is_file() == published
    if published:
        assert installed.read_bytes() == (folder / RANGE_FILE).read_bytes()


def test_load_model_classes_keeps_the_names_given_and_refuses_a_model_without_them(clip):
    from envsound import load_model

    path, wave = clip
    model = load_model("birdnet-v2.4", classes=[NAMES[900], NAMES[2]])
    assert model.labels == [NAMES[2], NAMES[900]]  # the model's order
    assert model.predict(path, top_k=3).top == expected_top(wave, [2, 900], 3)[0]
    with pytest.raises(ConfigError) as caught:
        load_model("yamnet", classes=["Class 3", "Clas 40"])
    assert str(caught.value) == "classes: 'Clas 40' is not a class of 'yamnet'; nearest: 'Class 40'"
    with pytest.raises(ConfigError, match=f"^classes: '{NAMES[2]}' is not a class of 'yamnet'; nearest: 'Class "):
        load_model("yamnet", classes=[NAMES[2]])  # a BirdNET list on another model


def test_per_class_thresholds_stay_with_their_classes(clip):
    from dataclasses import replace

    from envsound.inference.predictor import Predictor
    from envsound.models.litert import FrozenModel
    from envsound.models.releases import models_dir

    model = FrozenModel.load(models_dir() / "birdnet-v2.4" / MODEL)
    model.task = replace(model.task, class_thresholds=tuple(np.linspace(0.01, 0.99, 6522)))
    predictor = Predictor(model, classes=[NAMES[6521], NAMES[0]])
    assert predictor.task.thresholds(2).tolist() == [0.01, 0.99]
    assert predictor.only([NAMES[0]]).labels == [NAMES[0]]


def test_a_species_list_filters_a_learned_model_too(trained_run, synthetic_manifest, tmp_path):
    from envsound.inference.predictor import Predictor

    whole = Predictor.from_checkpoint(trained_run.checkpoint)
    listed = tmp_path / "species.txt"
    listed.write_text("\n".join(whole.labels[:2][::-1]) + "\n")
    narrowed = Predictor.from_checkpoint(trained_run.checkpoint, classes=listed)
    assert narrowed.labels == whole.labels[:2]
    record = synthetic_manifest.records[0]
    scores = {t["label"]: t["score"] for t in whole.predict_file(record.path, top_k=len(whole.labels)).top}
    got = narrowed.predict_file(record.path, top_k=5, segments=True)
    assert {t["label"]: t["score"] for t in got.top} == {label: scores[label] for label in whole.labels[:2]}
    assert {s["label"] for s in got.segments} <= set(whole.labels[:2])


def test_the_real_birdnet_beside_its_range_model_drops_the_rooster_in_belgium_in_may(envsound_main, tmp_path,
                                                                                     monkeypatch):
    """The shared BirdNET file run by path finds its range model beside it: the rooster clip's best class (the Red
    Junglefowl, a domestic chicken) is not expected near Brussels in week 20, so it is not reported."""
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    birdnet, rooster = shared / "pretrained" / "birdnet", shared / "data" / "esc50" / "audio" / "1-26806-A-1.flac"
    if not (birdnet / RANGE_FILE).is_file() or not rooster.is_file():
        pytest.skip("../shared/pretrained/birdnet and ESC-50 are beside the clone only on the project's machines")
    monkeypatch.setenv("ENVSOUND_MODELS", str(tmp_path))  # nothing installed: the range model beside the file
    everywhere = last_json(envsound_main("predict", birdnet / MODEL, rooster, "--json"))
    assert everywhere["top"][0]["label"] == "Gallus gallus_Red Junglefowl"
    in_belgium = last_json(envsound_main("predict", birdnet / MODEL, rooster, "--lat", "50.8", "--lon", "4.4",
                                         "--week", "20", "--top-k", "10", "--json"))
    assert "Gallus gallus_Red Junglefowl" not in {t["label"] for t in in_belgium["top"]}
    labels = (birdnet / LABELS).read_text().splitlines()
    assert {t["label"] for t in in_belgium["top"]} <= set(range_classes(labels, 50.8, 4.4, 20,
                                                                        near=birdnet / RANGE_FILE))
