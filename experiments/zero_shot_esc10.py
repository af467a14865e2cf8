"""Zero-shot ESC-10 from EfficientAT's AudioSet tagger, with label maps chosen on other folds than they are scored on.

    .venv/bin/python experiments/zero_shot_esc10.py --root ../shared/data/esc50 \
        --weights ../shared/pretrained/efficientat/mn04_as_mAP_432.pt [--precision 32]

The tagger runs once over the ESC-10 clips of folds 1-4; its 527 logits per evaluation window are kept, and every
map is scored from them exactly as ``envsound evaluate TAGGER --label-map MAP`` scores it (per window, the mean logit
of each target's source classes, softmax over the 10 targets, averaged over the clip's windows, argmax).

(a) The two maps written by hand: ``audioset-esc10`` (one AudioSet class per ESC-10 class, paired by name; shipped in
    the package, src/envsound/transfer/maps/audioset_to_esc10.csv) and ``experiments/audioset_to_esc10_multi.csv``
    (every AudioSet class that names one, written after seeing the first miss on these folds), on folds 1-4 (the old
    figures, scored on the clips the maps were judged on) and on folds 3-4 alone.
(b) Maps chosen on one half and scored on the other (choose on 1-2, score on 3-4; choose on 3-4, score on 1-2), by
    this rule, fixed before any score was seen:
    - a clip's score for an AudioSet class is the tagger's clip probability (sigmoid, averaged over its windows);
    - margin(ESC class c, AudioSet class a) = mean score of ``a`` over the choosing folds' clips of ``c`` minus its
      mean over their clips of the 9 other classes;
    - ``one``: each ESC-10 class takes the AudioSet class of largest margin; ``top2``: the two of largest margin,
      their logits averaged. No names are read. An AudioSet class wanted by two ESC-10 classes goes to the larger
      margin, the other takes its next best (a map names each source once).
(c) Per fold (10 clips a class, 80 a fold), and paired over the same 320 clips: each shipped map against the rule's
    map of the same size (every clip scored by the map chosen on the half it is not in), by fold and by clip (exact
    McNemar test on the clips only one of the two gets right).
The tagger runs in fp32 by default (``--precision 32``), as the old figures were measured.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from scipy import stats

from envsound.data.registry import load_dataset
from envsound.features.cache import FeatureCache
from envsound.features.extract import extract_features
from envsound.models.clip import ClipModel
from envsound.models.files import open_model_file
from envsound.transfer.maps import label_map_path
from envsound.transfer.source import read_label_map

SHIPPED = {"one (shipped)": label_map_path("audioset-esc10"),
           "multi (shipped)": Path(__file__).with_name("audioset_to_esc10_multi.csv")}
HALVES = ((1, 2), (3, 4))


def tagger_logits(weights: str, manifest, precision: str) -> tuple[list[np.ndarray], list[str]]:
    """Each clip's ``(windows, 527)`` logits, and the tagger's class names."""
    model = ClipModel.from_checkpoint(open_model_file(weights).checkpoint, source=weights, device="cpu",
                                      precision=precision)
    records, features, _ = extract_features(manifest.records, model.config.features, cache=FeatureCache(),
                                            progress=False)
    logits = [model.run_network(model.clip_windows(clip)[0], lambda b: model.network(b).float()) for clip in features]
    return logits, model.labels


def zero_shot_correct(logits, y, mapping: dict[str, str], tags: list[str], labels: list[str]) -> np.ndarray:
    """Per clip, whether ``mapping`` (AudioSet -> ESC-10) predicts its label, as the zero-shot head does."""
    rows = [[tags.index(s) for s, t in mapping.items() if t == name] for name in labels]
    correct = []
    for clip, label in zip(logits, y):
        z = np.stack([clip[:, r].mean(axis=1) for r in rows], axis=1)  # (windows, 10)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        correct.append((p / p.sum(axis=1, keepdims=True)).mean(axis=0).argmax() == label)
    return np.asarray(correct)


def choose(scores: np.ndarray, y: np.ndarray, tags: list[str], labels: list[str], per_class: int) -> dict[str, str]:
    """The map of the docstring's rule, from clip scores ``(n, 527)`` and labels ``y`` of the choosing folds."""
    margin = np.stack([scores[y == c].mean(0) - scores[y != c].mean(0) for c in range(len(labels))])  # (10, 527)
    taken: dict[int, tuple[int, float]] = {}  # AudioSet index -> (ESC class, margin)
    wanted = {c: list(np.argsort(-margin[c])) for c in range(len(labels))}
    mapping: dict[int, list[int]] = {c: [] for c in range(len(labels))}
    while any(len(v) < per_class for v in mapping.values()):
        for c in sorted(mapping, key=lambda c: -margin[c, wanted[c][0]]):
            if len(mapping[c]) == per_class:
                continue
            a = wanted[c].pop(0)
            if a in taken and taken[a][1] >= margin[c, a]:
                continue  # the other class keeps it; c tries its next best on the next round
            if a in taken:
                mapping[taken[a][0]].remove(a)
            taken[a] = (c, margin[c, a])
            mapping[c].append(a)
    return {tags[a]: labels[c] for c, sources in mapping.items() for a in sources}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--weights", required=True, help="mn04_as_mAP_432.pt (or efficientat-mn04)")
    parser.add_argument("--precision", default="32", help="the tagger's inference precision (32: fp32, as the "
                                                          "old figures; auto: what this CPU picks)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    manifest = load_dataset("esc10", args.root).select_folds([1, 2, 3, 4])
    labels = list(manifest.labels)
    y = np.array([labels.index(r.labels[0]) for r in manifest.records])
    folds = np.array([r.fold for r in manifest.records])
    start = time.perf_counter()
    logits, tags = tagger_logits(args.weights, manifest, args.precision)
    seconds = time.perf_counter() - start
    scores = np.stack([(1 / (1 + np.exp(-clip))).mean(0) for clip in logits])  # (320, 527) clip probabilities
    print(f"tagger on {len(logits)} clips: {seconds:.1f} s\n")

    def acc(mask, correct) -> float:
        return 100 * correct[mask].mean()

    correct: dict[str, np.ndarray] = {}
    for name, path in SHIPPED.items():
        correct[name] = zero_shot_correct(logits, y, read_label_map(path), tags, labels)
    chosen_maps = {}
    for name, per_class in (("one (chosen on the other half)", 1), ("top2 (chosen on the other half)", 2)):
        hits = np.zeros(len(y), dtype=bool)
        for pick, score in (HALVES, HALVES[::-1]):
            mapping = choose(scores[np.isin(folds, pick)], y[np.isin(folds, pick)], tags, labels, per_class)
            chosen_maps[(name, pick)] = mapping
            held = np.isin(folds, score)
            hits[held] = zero_shot_correct([logits[i] for i in np.flatnonzero(held)], y[held], mapping, tags,
                                           labels)
        correct[name] = hits

    print("| map (how chosen) | folds 1-4 | folds 3-4 | folds 1-2 | mean of the halves | fold 1 / 2 / 3 / 4 |")
    print("|---|---|---|---|---|---|")
    for name, hits in correct.items():
        per_fold = [acc(folds == f, hits) for f in (1, 2, 3, 4)]
        a, b = acc(np.isin(folds, (3, 4)), hits), acc(np.isin(folds, (1, 2)), hits)
        print(f"| {name} | {acc(folds > 0, hits):.2f} % | {a:.2f} % | {b:.2f} % | {(a + b) / 2:.2f} % | "
              f"{' / '.join(f'{v:.2f}' for v in per_fold)} |")

    print("\nchosen maps (choose on -> ESC-10 class: AudioSet classes):")
    for (name, pick), mapping in chosen_maps.items():
        by_target = {t: [s for s, u in mapping.items() if u == t] for t in labels}
        print(f"- {name.split()[0]}, chosen on folds {pick[0]}-{pick[1]}: "
              + "; ".join(f"{t}: {' | '.join(s)}" for t, s in by_target.items()))

    print("\npaired, shipped vs chosen-on-the-other-half (320 clips, folds 1-4):")
    for shipped, chosen in (("one (shipped)", "one (chosen on the other half)"),
                            ("multi (shipped)", "top2 (chosen on the other half)")):
        a, b = correct[shipped], correct[chosen]
        only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
        p = stats.binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
        diff = [acc(folds == f, a) - acc(folds == f, b) for f in (1, 2, 3, 4)]
        print(f"- {shipped} - {chosen}: {np.mean(diff):+.2f} ± {np.std(diff, ddof=1):.2f} points by fold "
              f"({' / '.join(f'{d:+.2f}' for d in diff)}); clips right only with the shipped map {only_a}, only "
              f"with the chosen {only_b}, exact McNemar p = {p:.3g}")


if __name__ == "__main__":
    main()
