"""An embeddings store of an archive (``envsound embed MODEL INPUTS --out DB``) and search by example in it
(``envsound search DB --example FILE``): :func:`embed_archive` (``envsound.embed``), :func:`search`; the folder's
layout is :mod:`.store`'s."""

from envsound.inference.embeddings.archive import StoreSummary, embed_archive
from envsound.inference.embeddings.search import Hit, search
from envsound.inference.embeddings.store import EmbeddingsStore

embed = embed_archive  # the name of the command (envsound.embed), beside the name that says what it makes

__all__ = ["EmbeddingsStore", "Hit", "StoreSummary", "embed", "embed_archive", "search"]
