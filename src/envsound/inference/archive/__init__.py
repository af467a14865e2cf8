"""The archive machinery: one run over an archive into a folder of parts (:mod:`.driver`), on an engine named in
:mod:`.engines` (:mod:`.engine` this machine's decoding workers, :mod:`.ray_engine` a Ray cluster's), with the
journal that makes it resumable (:mod:`.journal`), the names handed out (:mod:`.handout`), progress, and the options
and summary of a run (:mod:`.options`). Its two users sit above it: the embeddings store
(:mod:`envsound.inference.embeddings`) and the scan's results tables (:mod:`envsound.inference.scan`); it imports
neither. Light on purpose: the CLI's parser reads :data:`.engines.ENGINES` without torch."""
