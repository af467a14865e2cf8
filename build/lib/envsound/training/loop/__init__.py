"""The training loop every recipe runs on (Lightning): the runtime choice and the ``Trainer`` (:mod:`.fit`), the
module and its loss (:mod:`.module`, :mod:`.losses`), the loaders of windows (:mod:`.data`), optimiser and schedule
(:mod:`.optim`), class balance (:mod:`.balance`), and a run's curve and progress lines (:mod:`.history`,
:mod:`.progress`). Recipes on top of it live beside it in ``training/``: ``train_model`` and its preparation,
ensembles, autoencoder pre-training, semi-supervised learning; a recipe with a module of its own (``training/semi/``'s
subclass of the loop's) hands its class to :func:`.fit.fit_network` (``module_class``). The loop imports no recipe."""
