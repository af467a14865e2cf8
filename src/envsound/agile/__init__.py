"""The agile loop over an embeddings store (``envsound embed MODEL INPUTS --out DB``): labels given to its windows
(:mod:`.labels`), a classifier learned from them on the stored embeddings, the next windows to review and thresholds
calibrated to a precision (:mod:`.learn`). Above ``inference`` (the store) and ``deploy`` (where labels live, beside
the tokens), below the app and the CLI."""
