"""One exception family. Every message names the offending file or value and says what to do."""

from __future__ import annotations


class EnvsoundError(Exception):
    """Base of every error a user can cause; the CLI prints it as one line and exits non-zero."""


class AudioLoadError(EnvsoundError):
    """A file that cannot be used as audio: unreadable, empty, too short, non-finite or corrupt."""


class DatasetLayoutError(EnvsoundError):
    """A dataset root, metadata file or manifest that does not have the expected layout."""


class ConfigError(EnvsoundError):
    """An unknown key, a value of the wrong type or out of its valid range, an unknown registry name."""


class CheckpointError(EnvsoundError):
    """A file that is not an envsound checkpoint, or one that does not fit the model it is loaded into."""


class DownloadError(EnvsoundError):
    """A download that failed, or whose checksum does not match."""


class RunExistsError(EnvsoundError):
    """A run folder that already holds a finished model (``path``), and the run was asked neither to overwrite nor
    to resume it. The message speaks the Python API's words; the CLI says the same with its flags."""

    def __init__(self, path) -> None:
        self.path = path
        super().__init__(f"{path} already exists; overwrite=True replaces it, resume=True continues it, or choose "
                         "another out folder")


class StoreError(EnvsoundError):
    """A detections store (SQLite file or PostgreSQL URL) that cannot be opened, migrated or written, or a report
    that a server refused."""


class NoStoreError(StoreError):
    """A detections store asked for that is not there (``where``: its path, or its URL without the password), and
    the caller did not ask for a new one. The message speaks the Python API's words; the CLI says the same with its
    flags."""

    def __init__(self, where) -> None:
        self.where = where
        super().__init__(f"{where}: no store there; Store.open(..., create=True) makes one")
