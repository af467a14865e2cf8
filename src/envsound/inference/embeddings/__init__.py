"""An embeddings store of an archive (``envsound embed MODEL INPUTS --out DB``) and search by example in it
(``envsound search DB --example FILE``): :func:`embed_archive`, :func:`search`; the folder's layout is
:mod:`.store`'s."""

from envsound.inference.embeddings.archive import StoreSummary, embed_archive
from envsound.inference.embeddings.search import Hit, search
from envsound.inference.embeddings.store import EmbeddingsStore

__all__ = ["EmbeddingsStore", "Hit", "StoreSummary", "embed_archive", "search"]
