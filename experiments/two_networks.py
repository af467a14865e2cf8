"""Which network for which sound, and two networks together: the frozen probe on each network's embeddings and on
the concatenation of two networks' (issue 76).

Protocols over ``../shared/data/esc50`` (fold 5 is held out):

- ``esc10``: ESC-10, leave-one-fold-out over official folds 1-4 (32 clips a class; as ``envsound cv --dataset
  esc10 --folds 1,2,3,4``);
- ``fold4-40``: ESC-50 fold 4's 40 classes that are not ESC-10's (8 clips a class), in the 4 sub-folds of
  ``experiments/esc50_fold4.py`` (:func:`~envsound.data.splits.stratified_group_folds` over all 50 classes,
  seed 0): the classes a pair chosen on ESC-10 is judged on, none of which took part in the choice;
- ``fold4-50`` (``--protocols``): the same sub-folds with all 50 classes (the single networks' rows are
  ``esc50_fold4.py --init NAME``'s).

Each network's embedding of every evaluation window of a clip (the windows the probe reads: BirdNET 2 of 3 s, YAMNet
10 of 0.975 s at a hop of 0.48 s, ``mn04_as`` 1 of 5 s) is computed once through envsound's own API
(:func:`~envsound.models.contract.open_family_model`, ``window_embeddings``; the clip's features from the feature
cache the runs share) and cached in ``OUT/embeddings-<network>.npz``. Rows, each fitted inside the training folds:

- ``window``: the frozen probe itself (:func:`~envsound.transfer.linear_head.fit_linear_head` on every window, a
  clip's probabilities the mean of its windows' softmax): what ``envsound cv --init NAME`` computes, one network;
- ``clip``: the same regression on each clip's mean embedding over its windows; ``a+b concat``: on the
  concatenation of two networks' clip embeddings (every unit standardised inside the training folds, as the probe
  does);
- ``a+b late``: late fusion, the mean of the two networks' ``window`` probe probabilities.

The pair is chosen on ``esc10`` (the highest mean of the pair rows), the single network to beat likewise (the best
``window`` row), and the choice judged on ``fold4-40`` by the paired difference over its 4 sub-folds (t-test).

    ENVSOUND_MODELS=/tmp/models .venv/bin/python experiments/two_networks.py --root ../shared/data/esc50 \\
        --out experiments/out/two-networks

Writes ``OUT/<protocol>.json`` (every row's fold accuracies, clips right and per-class right counts; ``--protocols``
splits the work over calls, ``--protocols`` alone shows what is there) and ``OUT/choice.json``, and prints the tables
as markdown. ``mn04_as`` runs in float32 here (``--precision``); ``cv``'s ``auto`` may time bf16 faster on a
bf16 CPU and take it, a clip or two apart.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from envsound.data.records import ClipRecord
from envsound.data.registry import load_dataset
from envsound.data.splits import stratified_group_folds
from envsound.errors import ConfigError
from envsound.features.cache import FeatureCache, default_cache_root
from envsound.features.extract import extract_features
from envsound.features.windows import eval_windows
from envsound.models.contract import TorchFamilyModel, open_family_model
from envsound.recipes.config import resolve
from envsound.transfer.linear_head import fit_linear_head

from esc50_fold4 import ESC10_CLASSES  # experiments/ is the script's folder: on sys.path

MN04 = "../shared/pretrained/efficientat/mn04_as_mAP_432.pt"
PROTOCOLS = ("esc10", "fold4-50", "fold4-40")
DEFAULT_PROTOCOLS = ("esc10", "fold4-40")  # fold4-50's single networks are esc50_fold4.py's runs


def protocols(root: Path, seed: int) -> dict[str, tuple[list[ClipRecord], list[int]]]:
    """Each protocol's clips and the fold each is tested in (official folds for ``esc10``, sub-folds 1-4 else)."""
    esc10 = load_dataset("esc10", root).select_folds([1, 2, 3, 4]).records
    fold4 = load_dataset("esc50", root).select_folds([4]).records
    sub_folds = stratified_group_folds(fold4, n_folds=4, seed=seed)  # as esc50_fold4.py: over all 50 classes
    others = [(r, k) for r, k in zip(fold4, sub_folds) if r.label not in ESC10_CLASSES]
    return {"esc10": (esc10, [r.fold for r in esc10]), "fold4-50": (fold4, sub_folds),
            "fold4-40": ([r for r, _ in others], [k for _, k in others])}


def window_embeddings(init: str, records: list[ClipRecord], cache_file: Path, *,
                      precision: str = "32") -> list[np.ndarray]:
    """``(n_windows, d)`` float32 embeddings of each clip's evaluation windows by the network ``init`` (a path or
    an installed name; a torch network run at ``precision``), read from ``cache_file`` when it holds these clips."""
    files = [str(r.path) for r in records]
    if cache_file.is_file():
        saved = np.load(cache_file)
        if list(saved["files"]) == files and str(saved["precision"]) == precision:
            return np.split(saved["windows"], np.cumsum(saved["counts"])[:-1])
    start = time.perf_counter()
    config = resolve(model=None, init=init)
    network = open_family_model(init, device="cpu", precision=precision)
    _, features, skipped = extract_features(records, config.features, cache=FeatureCache(default_cache_root()),
                                            progress=False)
    if skipped:
        raise ConfigError(f"{init}: {len(skipped)} clip(s) could not be read, the first {skipped[0]}")
    embedded = []
    for clip in features:
        windows, _ = eval_windows(np.asarray(clip), config.features)
        if isinstance(network, TorchFamilyModel):  # the probe's windows are cut from the whole clip's log-mel
            embedded.append(network.model.window_embeddings(windows))
        else:
            embedded.append(network.window_embeddings(windows.reshape(len(windows), -1)))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache_file, files=np.array(files), precision=precision, counts=np.array([len(e) for e in embedded]),
             windows=np.concatenate(embedded).astype(np.float32))
    print(f"embedded {len(records)} clips with {init} in {time.perf_counter() - start:.0f} s")
    return embedded


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def window_probe(windows: list[np.ndarray], y: np.ndarray, train: np.ndarray, n_classes: int,
                 c: float) -> np.ndarray:
    """The frozen probe: fitted on the training clips' windows, each test clip's probabilities ``(K,)`` the mean of its
    windows' -> ``(n_clips, K)`` (rows of the training clips too, unused)."""
    rows = np.concatenate([windows[i] for i in train])
    owners = np.concatenate([[i] * len(windows[i]) for i in train])
    weight, bias = fit_linear_head(rows, np.eye(n_classes)[y[owners]], multi_label=False, c=c)
    return np.stack([softmax(w.astype(np.float64) @ weight.T + bias).mean(axis=0) for w in windows])


def clip_probe(x: np.ndarray, y: np.ndarray, train: np.ndarray, n_classes: int, c: float) -> np.ndarray:
    """The same regression on one row a clip ``x`` ``(n_clips, d)`` -> probabilities ``(n_clips, K)``."""
    weight, bias = fit_linear_head(x[train], np.eye(n_classes)[y[train]], multi_label=False, c=c)
    return softmax(x @ weight.T + bias)


def cross_validate(embedded: dict[str, list[np.ndarray]], y: np.ndarray, folds: np.ndarray, n_classes: int,
                   c: float) -> dict[str, np.ndarray]:
    """Every row's test probabilities ``(n_clips, K)``, each clip's from the fold it is tested in."""
    names = list(embedded)
    means = {name: np.stack([w.mean(axis=0) for w in embedded[name]]) for name in names}
    inputs = {f"{n} window": ("window", embedded[n]) for n in names}
    inputs |= {f"{n} clip": ("clip", means[n]) for n in names}
    inputs |= {f"{a}+{b} concat": ("clip", np.hstack([means[a], means[b]]))
               for a, b in itertools.combinations(names, 2)}
    probs = {row: np.zeros((len(y), n_classes)) for row in inputs}
    for k in np.unique(folds):
        train, test = np.flatnonzero(folds != k), folds == k
        for row, (kind, x) in inputs.items():
            fitted = window_probe(x, y, train, n_classes, c) if kind == "window" else clip_probe(x, y, train,
                                                                                                n_classes, c)
            probs[row][test] = fitted[test]
    for a, b in itertools.combinations(names, 2):
        probs[f"{a}+{b} late"] = (probs[f"{a} window"] + probs[f"{b} window"]) / 2
    return probs


def scores(probs: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray, labels: list[str]) -> dict[str, dict]:
    """Per row: accuracy of each fold (%), and each class's clips right."""
    out = {}
    for row, p in probs.items():
        right = p.argmax(axis=1) == y
        out[row] = {"folds": [100 * right[folds == k].mean() for k in np.unique(folds)],
                    "right": right.astype(int).tolist(),
                    "per_class": {label: int(right[y == i].sum()) for i, label in enumerate(labels)}}
    return out


def paired(a: list[float], b: list[float]) -> str:
    """``a - b`` over folds: mean ± std of the differences (points) and the paired t-test's p."""
    d = np.asarray(a) - np.asarray(b)
    p = stats.ttest_rel(a, b).pvalue if d.std() > 0 else float("nan")
    return f"{d.mean():+.2f} ± {d.std(ddof=1):.2f} (p = {p:.2f})"


def print_rows(name: str, result: dict[str, dict], reference: str) -> None:
    print(f"\n### {name}: accuracy per row (reference for the paired column: {reference})\n")
    print("| row | mean ± std | folds | vs reference (points, paired) |\n|---|---|---|---|")
    for row, r in result.items():
        cells = " / ".join(f"{a:.2f}" for a in r["folds"])
        versus = "" if row == reference else paired(r["folds"], result[reference]["folds"])
        print(f"| {row} | {np.mean(r['folds']):.2f} ± {np.std(r['folds'], ddof=1):.2f} % | {cells} | {versus} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="ESC-50 root (meta/esc50.csv, audio/)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the embeddings and results")
    parser.add_argument("--mn04", default=MN04, help="mn04_as's file (or its installed name efficientat-mn04)")
    parser.add_argument("--seed", type=int, default=0, help="the sub-folds' seed (esc50_fold4.py's: train.seed)")
    parser.add_argument("--protocols", nargs="*", choices=PROTOCOLS, default=list(DEFAULT_PROTOCOLS),
                        help="to compute (each kept in OUT/<protocol>.json; those there are shown, and the choice "
                             "made once esc10 and fold4-40 are)")
    parser.add_argument("--precision", default="32", help="mn04's (cv's default, auto, times bf16 on a bf16 CPU and "
                                                          "may take it: a clip or two apart)")
    args = parser.parse_args()

    networks = {"mn04": args.mn04, "yamnet": "yamnet", "birdnet": "birdnet-v2.4"}
    c = resolve(model=None, init="yamnet").transfer.probe_c
    args.out.mkdir(parents=True, exist_ok=True)
    runs = protocols(args.root, args.seed)
    every = list({str(r.path): r for records, _ in runs.values() for r in records}.values())  # one cache for all
    index = {str(r.path): i for i, r in enumerate(every)}
    embedded = {name: window_embeddings(init, every, args.out / f"embeddings-{name}.npz", precision=args.precision)
                for name, init in networks.items()}
    for protocol in args.protocols:
        records, folds = runs[protocol]
        start = time.perf_counter()
        labels = sorted({r.label for r in records})
        y = np.array([labels.index(r.label) for r in records])
        chosen = {name: [windows[index[str(r.path)]] for r in records] for name, windows in embedded.items()}
        probs = cross_validate(chosen, y, np.asarray(folds), len(labels), c)
        result = {"labels": labels, "y": y.tolist(), "folds": list(map(int, folds)),
                  "seconds": round(time.perf_counter() - start, 1), "rows": scores(probs, y, np.asarray(folds), labels)}
        (args.out / f"{protocol}.json").write_text(json.dumps(result, indent=1))  # a later call reads it
    results = {p: json.loads((args.out / f"{p}.json").read_text()) for p in PROTOCOLS
               if (args.out / f"{p}.json").is_file()}
    singles = [f"{n} window" for n in networks]
    best_single = max(singles, key=lambda r: np.mean(results["esc10"]["rows"][r]["folds"])) \
        if "esc10" in results else singles[0]
    for protocol, result in results.items():
        print_rows(f"{protocol} ({result['seconds']:.0f} s)", result["rows"], best_single)
    if "esc10" in results and "fold4-40" in results:
        pairs = [row for row in results["esc10"]["rows"] if "+" in row]
        best_pair = max(pairs, key=lambda r: np.mean(results["esc10"]["rows"][r]["folds"]))
        judged = results["fold4-40"]["rows"]
        choice = {"decided_on": "esc10", "best_single": best_single, "best_pair": best_pair, "judged_on": "fold4-40",
                  "difference": paired(judged[best_pair]["folds"], judged[best_single]["folds"])}
        (args.out / "choice.json").write_text(json.dumps(choice, indent=1))
        print(f"\nchosen on esc10: {best_pair} against {best_single}; on fold4-40: {choice['difference']}")

if __name__ == "__main__":
    main()
