"""The training loop every recipe runs on (Lightning): the runtime choice and the ``Trainer`` (:mod:`.fit`), the
module and its loss (:mod:`.module`, :mod:`.losses`), the loaders of windows (:mod:`.data`), optimiser and schedule
(:mod:`.optim`), class balance (:mod:`.balance`), a run's curve and progress lines (:mod:`.history`,
:mod:`.progress`), and what a fit makes (:mod:`.result`). The recipes on top of it live in :mod:`envsound.recipes`
(train, cv, grid, stages, pretraining, ensembles, self-training); a variant with a module of its own
(``training/semi/``'s subclass of the loop's) is handed to :func:`.fit.fit_network` as ``module_class``. The loop
imports no recipe."""
