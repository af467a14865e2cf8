"""The agile loop over an embeddings store (``envsound embed MODEL INPUTS --out DB``): labels given to its windows
(:mod:`.labels`), read through one labelled view of the store (:mod:`.labelled`: which window a verdict names, the
current verdicts), a classifier learned from them on the stored embeddings with one linear head (:mod:`.head`,
:mod:`.learn`), the next windows to review (:mod:`.suggest`), thresholds calibrated to a precision (:mod:`.calibrate`),
a check of that precision over the whole store (:mod:`.check`) and the page's Review loop (:mod:`.review`). Above
``inference`` (the store) and ``deploy`` (where labels live: a deployment database, beside the tokens,
:mod:`envsound.deploy.labels`), below the app and the CLI."""
