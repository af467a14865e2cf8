"""Recipes: what a user runs, on top of the training loop and the evaluation stage. Each reads a Config and a
Manifest, fits through :mod:`envsound.training` and scores through :mod:`envsound.evaluation`:
:mod:`.train` (one model: validate -> prepare -> fit -> save), :mod:`.crossval` (leave-one-fold-out),
:mod:`.grid` (a grid of settings, each cross-validated), :mod:`.stages` (the noisy-label pipeline),
:mod:`.pretrain` (an autoencoder on unlabelled audio), :mod:`.ensemble` and :mod:`.self_training` (fit paths of
``train``), and :mod:`.context` (cache, resume, overwrite, progress: what a run is asked to do besides its config)."""
