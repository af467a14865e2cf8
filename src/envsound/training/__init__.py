"""The training loop (:mod:`.loop`: Lightning module, data module, callbacks, losses), the modules of its variants
(:mod:`.semi`, :mod:`.pretrain`) and the data a fit takes (:mod:`.prepare`). The recipes that run it live in
:mod:`envsound.recipes`."""
