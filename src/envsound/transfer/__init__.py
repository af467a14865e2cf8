"""Transfer: start a model from another envsound checkpoint (``--init``) and train it in one of the
``transfer.mode`` ways. Sits between ``models`` and ``training``: the training loop calls it, it never calls the loop.

- :mod:`~envsound.transfer.source` - what the source checkpoint is, whether it fits, what is loaded (head rows by
  class name or ``transfer.label_map``);
- :mod:`~envsound.transfer.modes` - ``full`` / ``gradual`` (trunk frozen, then trained) and the trunk's learning rate;
- :mod:`~envsound.transfer.probe` - ``probe``: a logistic regression on the frozen trunk's embeddings;
- :mod:`~envsound.transfer.guard` - a source model that heard this split's validation or test clips is refused.
- :mod:`~envsound.transfer.progress` - lines of progress of its own loops (the frame head's epochs, the trunk's pass).
"""
