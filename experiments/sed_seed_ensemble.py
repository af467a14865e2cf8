"""Would an ensemble help the detector on unseen clips (issue 54)? A trial before building one: the frame
probabilities of several ``train --preset sed`` runs (other seeds, same mixtures) averaged on fold 4's mixtures, then
decoded with each member's own tuned settings (chosen on that member's validation mixtures, never on fold 4).

    .venv/bin/python experiments/sed_seed_ensemble.py --mix experiments/out/sed-unseen/mix60 RUN RUN RUN

Prints each member alone (its own settings: the figure experiments/sed_unseen.py reports) and the average of all
(of the frame probabilities, and of the frame logits as ``models/ensemble.py`` averages) at each member's settings.
The members' validation splits differ (the split follows the seed), so no common validation set is left to tune the
average on: that is why it borrows the members' choices.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from envsound.data.registry import load_dataset
from envsound.evaluation import sed
from envsound.events import Decoding
from envsound.models.clip import ClipModel
from envsound.models.files import open_model_file
from sed_decoding_grid import decoded  # experiments/ is the script's folder: on sys.path


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mix", type=Path, required=True, help="the mixture set the runs trained on")
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    test = load_dataset("fsdkaggle2019", args.mix).select_folds([4])
    members = []
    for run in args.runs:
        checkpoint = open_model_file(run / "model.ckpt").checkpoint
        model = ClipModel.from_checkpoint(checkpoint, device="cpu")
        timelines, reference = decoded(model, test, test.strong)
        members.append((run, model, timelines, checkpoint.meta["events_tuned"]))
    labels = members[0][1].labels
    average = {clip: replace(t, probs=np.mean([m[2][clip].probs for m in members], axis=0))
               for clip, t in members[0][2].items()}
    # what models/ensemble.py does: the mean of the members' logits
    mean_logit = {clip: replace(t, probs=1 / (1 + np.exp(-np.mean([logit(m[2][clip].probs) for m in members], axis=0))))
                  for clip, t in members[0][2].items()}
    for run, _, timelines, tuned in members:
        # a format-23 run tuned three of them (the others: how it decoded then)
        settings = Decoding(**{"median_seconds": 0.0, **{key: tuned[key] for key in sed.TUNED if key in tuned}})
        alone = sed.decoded_event_f1(timelines, reference, labels, settings)
        together = sed.decoded_event_f1(average, reference, labels, settings)
        logits = sed.decoded_event_f1(mean_logit, reference, labels, settings)
        print(f"{run} settings {settings}: alone {alone:.3f}, the {len(members)} runs' mean probability "
              f"{together:.3f}, mean logit {logits:.3f}", flush=True)


if __name__ == "__main__":
    main()
