"""envsound.data.mixtures: layout, one fold and distinct classes per mixture, truth in the curated and strong labels,
durations, determinism, label-noise rates, and the errors a user can cause."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiofactory import tone, write_audio
from envsound.data.csv_manifest import read_csv_manifest
from envsound.data.mixtures import (CSV_HEADER, STRONG_HEADER, MixSettings, build_mixtures, corrupt_labels,
                                    trim_silence)
from envsound.errors import ConfigError, DatasetLayoutError, EnvsoundError

SR = 8000
CLASSES = ("alpha", "beta", "gamma", "delta", "epsilon")
FOLDS = (1, 2, 3)
CLIPS_PER_CLASS = 2
TONE_SECONDS, LEAD, TAIL = 0.5, 0.2, 0.3  # each clip: silence, a tone, silence (so trimming has work to do)
SETTINGS = MixSettings(seed=3, n_curated=12, noisy_factor=2, min_seconds=1.0, max_seconds=2.0, sample_rate=SR,
                       min_events=1, max_events=3)
TREE = ("train_curated.csv", "train_noisy.csv", "strong_labels.csv", "mix.json", "train_curated", "train_noisy")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """5 classes x 3 folds x 2 one-second clips at 8 kHz, listed by a ``path,label,fold`` CSV."""
    root = tmp_path_factory.mktemp("singles")
    lines = ["path,label,fold"]
    for c, label in enumerate(CLASSES):
        for fold in FOLDS:
            for i in range(CLIPS_PER_CLASS):
                wave = np.concatenate([np.zeros(int(LEAD * SR)),
                                       tone(seconds=TONE_SECONDS, sample_rate=SR, freq=300 + 200 * c,
                                            seed=fold * 10 + i)[:, 0],
                                       np.zeros(int(TAIL * SR))])
                name = f"clips/{fold}-{label}-{i}.wav"
                write_audio(root / name, wave, sample_rate=SR, subtype="PCM_16")
                lines.append(f"{name},{label},{fold}")
    (root / "singles.csv").write_text("\n".join(lines) + "\n")
    return read_csv_manifest(root / "singles.csv", name="singles")


@pytest.fixture(scope="module")
def built(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("mix") / "set"
    return build_mixtures(manifest, out, settings=SETTINGS, progress=False)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _header(path: Path) -> tuple[str, ...]:
    with path.open(newline="") as fh:
        return tuple(next(csv.reader(fh)))


def _labels(cell: str) -> list[str]:
    return cell.split(",")


def _events(summary) -> dict[str, list[dict[str, str]]]:
    by_fname: dict[str, list[dict[str, str]]] = {}
    for row in _rows(summary.strong_csv):
        by_fname.setdefault(row["fname"], []).append(row)
    return by_fname


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_layout_headers_and_audio_format(built):
    out = built.out_dir
    assert all((out / name).exists() for name in TREE)
    assert _header(built.curated_csv) == CSV_HEADER == ("fname", "labels", "fold")
    assert _header(built.noisy_csv) == CSV_HEADER
    assert _header(built.strong_csv)[:5] == ("fname", "subset", "label", "onset", "offset")
    assert _header(built.strong_csv) == STRONG_HEADER
    assert (built.n_curated, built.n_noisy) == (12 * len(FOLDS), 24 * len(FOLDS))
    for subset, csv_path in (("curated", built.curated_csv), ("noisy", built.noisy_csv)):
        rows = _rows(csv_path)
        assert sorted(r["fname"] for r in rows) == sorted(p.name for p in (out / f"train_{subset}").iterdir())
        assert Counter(int(r["fold"]) for r in rows) == {fold: len(rows) // len(FOLDS) for fold in FOLDS}
        info = sf.info(str(out / f"train_{subset}" / rows[0]["fname"]))
        assert (info.format, info.subtype, info.channels, info.samplerate) == ("WAV", "PCM_16", 1, SR)
    # several labels share one quoted cell, as in the FSDKaggle2019 CSVs
    text = built.curated_csv.read_text()
    multi = [r for r in _rows(built.curated_csv) if "," in r["labels"]]
    assert multi and f'{multi[0]["fname"]},"{multi[0]["labels"]}",' in text
    marker = json.loads((out / "mix.json").read_text())
    assert marker["settings"]["seed"] == 3 and marker["settings"]["missing_rate"] == SETTINGS.missing_rate
    assert marker["labels"] == sorted(CLASSES)
    assert marker["counts"]["per_fold"]["2"] == {"clips": 10, "classes": 5, "curated": 12, "noisy": 24}
    assert marker["envsound_version"]
    assert set(marker["corruption"]) >= {"true_labels", "dropped", "swapped", "extra", "changed_fraction"}


def test_every_mixture_uses_one_fold_and_distinct_classes(built, manifest):
    clips = {r.clip_id: r for r in manifest.records}
    events = _events(built)
    for csv_path in (built.curated_csv, built.noisy_csv):
        for row in _rows(csv_path):
            mixture_events = events[row["fname"]]
            assert SETTINGS.min_events <= len(mixture_events) <= SETTINGS.max_events
            sources = [clips[e["source_clip"]] for e in mixture_events]
            assert {s.fold for s in sources} == {int(row["fold"])}
            assert [e["label"] for e in mixture_events] == [s.label for s in sources]
            assert len({e["label"] for e in mixture_events}) == len(mixture_events)


def test_curated_labels_are_the_strong_labels(built):
    events = _events(built)
    for row in _rows(built.curated_csv):
        assert sorted(_labels(row["labels"])) == sorted(e["label"] for e in events[row["fname"]])
        assert all(e["subset"] == "curated" for e in events[row["fname"]])
    counts = Counter(len(_labels(r["labels"])) for r in _rows(built.curated_csv))
    assert set(counts) == {1, 2, 3}  # every event count in [min_events, max_events] occurs


def test_durations_and_event_times(built):
    events = _events(built)
    for subset, csv_path in (("curated", built.curated_csv), ("noisy", built.noisy_csv)):
        for row in _rows(csv_path):
            seconds = sf.info(str(built.out_dir / f"train_{subset}" / row["fname"])).duration
            assert SETTINGS.min_seconds - 1 / SR <= seconds <= SETTINGS.max_seconds + 1 / SR
            for e in events[row["fname"]]:
                onset, offset = float(e["onset"]), float(e["offset"])
                assert 0 <= onset < offset <= seconds + 0.001
                # the silence around each tone was trimmed: an event lasts about the tone, 20 ms frames aside
                assert TONE_SECONDS - 0.001 <= offset - onset <= TONE_SECONDS + 0.041


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(built, manifest, tmp_path):
    again = build_mixtures(manifest, tmp_path / "again", settings=SETTINGS, progress=False)
    assert _tree_bytes(again.out_dir) == _tree_bytes(built.out_dir)
    other = build_mixtures(manifest, tmp_path / "other", progress=False,
                           settings=replace(SETTINGS, seed=4))
    assert other.curated_csv.read_bytes() != built.curated_csv.read_bytes()


def test_noisy_labels_match_summary_and_keep_a_label(built):
    truth = {}
    for fname, evs in _events(built).items():
        truth[fname] = {e["label"] for e in evs}
    noisy = {r["fname"]: set(_labels(r["labels"])) for r in _rows(built.noisy_csv)}
    assert all(labels and labels <= set(CLASSES) for labels in noisy.values())
    changed = sum(noisy[f] != truth[f] for f in noisy) / len(noisy)
    assert changed == pytest.approx(built.changed_fraction)
    hits = sum(len(noisy[f] & truth[f]) for f in noisy)
    assert built.recall == pytest.approx(hits / sum(len(truth[f]) for f in noisy))
    assert built.precision == pytest.approx(hits / sum(len(noisy[f]) for f in noisy))
    c = built.corruption
    assert c["true_labels"] == sum(len(truth[f]) for f in noisy)
    assert c["kept"] + c["dropped"] + c["swapped"] == c["true_labels"]


def test_corruption_rates_are_as_asked():
    """About 2,000 labels with a fixed seed: deterministic, and the tolerances are more than 4 standard errors."""
    rng = np.random.default_rng(0)
    vocabulary = [f"c{i}" for i in range(10)]
    totals: Counter = Counter()
    clips = changed = 0
    for _ in range(700):
        truth = tuple(vocabulary[i] for i in sorted(rng.choice(10, size=3, replace=False)))
        labels, counts = corrupt_labels(truth, vocabulary, rng=rng, missing_rate=0.2, swap_rate=0.15,
                                        extra_rate=0.15)
        totals.update(counts)
        clips += 1
        changed += set(labels) != set(truth)
        assert labels and len(set(labels)) == len(labels)
        assert len(set(labels) - set(truth)) == counts["swapped"] + counts["extra"]
    n = totals["true_labels"]
    assert n == 2100
    assert (totals["dropped"] + totals["restored"]) / n == pytest.approx(0.20, abs=0.04)
    assert totals["swapped"] / n == pytest.approx(0.15, abs=0.035)
    assert totals["extra"] / clips == pytest.approx(0.15, abs=0.06)
    # P(some error) with 3 labels = 1 - 0.65**3 * 0.85 = 0.77
    assert changed / clips == pytest.approx(0.77, abs=0.07)


def test_every_label_dropped_keeps_one():
    labels, counts = corrupt_labels(("a", "b"), ["a", "b", "c"], rng=np.random.default_rng(0), missing_rate=1.0,
                                    swap_rate=0.0, extra_rate=0.0)
    assert len(labels) == 1 and labels[0] in ("a", "b")
    assert (counts["dropped"], counts["restored"], counts["kept"]) == (1, 1, 1)


def test_fold_with_too_few_classes_is_an_error_with_the_numbers(manifest, tmp_path):
    fewer = manifest.subset([r for r in manifest.records if r.fold != 2 or r.label in ("alpha", "beta")])
    with pytest.raises(DatasetLayoutError, match=r"fold 2 has 2 classes; max_events=3 .*at least 3"):
        build_mixtures(fewer, tmp_path / "out", settings=SETTINGS, progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_refuses_an_existing_set_unless_overwrite(built, manifest, tmp_path):
    out = tmp_path / "set"
    small = replace(SETTINGS, n_curated=2, noisy_factor=1)
    build_mixtures(manifest, out, settings=small, progress=False)
    with pytest.raises(EnvsoundError, match="already holds a mixture set.*overwrite"):
        build_mixtures(manifest, out, settings=small, progress=False)
    (out / "mix.json").unlink()  # an unfinished set is refused too
    with pytest.raises(EnvsoundError, match="unfinished"):
        build_mixtures(manifest, out, settings=small, progress=False)
    stale = out / "train_noisy" / "noisy_f3_00099.wav"  # left by an earlier, larger set
    stale.write_bytes(b"x")
    summary = build_mixtures(manifest, out, settings=small, overwrite=True, progress=False)
    assert summary.n_curated == 6 and (out / "mix.json").exists() and not stale.exists()


def test_overwrite_never_deletes_a_real_fsdkaggle2019_folder(manifest, tmp_path):
    """A downloaded FSDKaggle2019 has the same names (train_curated.csv, train_curated/); it is not ours to delete."""
    (tmp_path / "train_curated").mkdir()
    (tmp_path / "train_curated" / "0006ae4e.wav").write_bytes(b"RIFF")
    (tmp_path / "train_curated.csv").write_text("fname,labels\n0006ae4e.wav,Bark\n")
    with pytest.raises(EnvsoundError, match="not written by envsound"):
        build_mixtures(manifest, tmp_path, settings=SETTINGS, overwrite=True, progress=False)
    assert (tmp_path / "train_curated" / "0006ae4e.wav").exists() and (tmp_path / "train_curated.csv").exists()


def test_background_folder(manifest, tmp_path):
    write_audio(tmp_path / "bg" / "hum.wav", tone(seconds=0.7, sample_rate=SR, freq=60.0)[:, 0], sample_rate=SR)
    settings = replace(SETTINGS, n_curated=2, noisy_factor=0, background_folder=str(tmp_path / "bg"))
    summary = build_mixtures(manifest, tmp_path / "out", settings=settings, progress=False)
    assert summary.n_noisy == 0 and len(_rows(summary.noisy_csv)) == 0 and summary.n_curated == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no audio files"):
        build_mixtures(manifest, tmp_path / "out2", progress=False,
                       settings=replace(settings, background_folder=str(tmp_path / "empty")))


@pytest.mark.parametrize("bad", [dict(n_curated=0), dict(min_seconds=5.0, max_seconds=4.0), dict(missing_rate=1.5),
                                 dict(missing_rate=0.6, swap_rate=0.5), dict(min_events=3, max_events=2),
                                 dict(snr_db=(10.0, 0.0)), dict(sample_rate=22050.0), dict(seed=-1)])
def test_settings_out_of_range_are_config_errors(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        MixSettings(**bad)


def test_defaults_are_usable_alone():
    settings = MixSettings()
    assert (settings.n_curated, settings.n_noisy, settings.sample_rate) == (60, 240, 22050)


def test_multi_label_or_foldless_input_is_refused(manifest, tmp_path):
    records = list(manifest.records)
    with pytest.raises(DatasetLayoutError, match="single-label"):
        build_mixtures(manifest.subset([replace(records[0], labels=("alpha", "beta"))] + records[1:]),
                       tmp_path / "a", settings=SETTINGS, progress=False)
    with pytest.raises(DatasetLayoutError, match="needs a fold"):
        build_mixtures(manifest.subset([replace(records[0], fold=None)] + records[1:]), tmp_path / "b",
                       settings=SETTINGS, progress=False)


def test_trim_silence_finds_the_sound():
    wave = np.concatenate([np.zeros(1600), np.ones(800) * 0.5, np.zeros(2400)])
    start, stop = trim_silence(wave, sample_rate=SR, frame_seconds=0.01)
    assert (start, stop) == (1600, 2400)
    assert trim_silence(np.zeros(100), sample_rate=SR) == (0, 100)


def test_the_mix_command_offers_every_setting_from_its_field(capsys):
    """`envsound mix`'s options are generated from MixSettings' fields: each is there, shows the field's default, and
    a value given reaches the settings (a pair too)."""
    from dataclasses import fields

    from envsound.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["mix", "--dataset", "esc10", "--out", "x", "--snr-db", "3,9", "--curated", "5",
                              "--background-folder", "noise"])
    given = {f.name: getattr(args, f.name) for f in fields(MixSettings) if getattr(args, f.name) is not None}
    settings = MixSettings(**given)
    assert (settings.snr_db, settings.n_curated, settings.background_folder) == ((3.0, 9.0), 5, "noise")
    assert {f.name for f in fields(MixSettings)} == {f.name for f in fields(MixSettings) if "cli" in f.metadata}
    with pytest.raises(SystemExit):
        parser.parse_args(["mix", "--dataset", "esc10", "--out", "x", "--snr-db", "3"])
    assert "expected two numbers, LOW,HIGH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["mix", "--help"])
    assert "--trim-top-db DB" in capsys.readouterr().out
