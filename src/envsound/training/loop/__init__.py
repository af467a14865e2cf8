"""The training loop every recipe runs on (Lightning): the runtime choice and the ``Trainer`` (:mod:`.fit`), the
module and its loss (:mod:`.module`, :mod:`.losses`), the loaders of windows (:mod:`.data`), optimiser and schedule
(:mod:`.optim`), class balance (:mod:`.balance`), and a run's curve and progress lines (:mod:`.history`,
:mod:`.progress`). Recipes on top of it live beside it in ``training/``: ``train_model`` and its preparation,
ensembles, autoencoder pre-training, semi-supervised learning. One exception: :func:`.fit.fit_network` builds the
semi-supervised module (``training/semi/``, a subclass of the loop's) when the run has unlabelled clips, by a lazy
import."""
