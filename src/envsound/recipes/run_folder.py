"""A run's output folder, one object for what every recipe that writes a model does with it: refuse a finished
model unless asked to overwrite or resume, hold the folder's lock (no lock file is left behind, nor a folder that a
failed run made and left empty), check that a resumed run keeps its input, write ``config.yaml`` (again with the
runtime chosen, once known) and save the checkpoint."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from envsound.config import Config, check_same_input, write_config
from envsound.errors import ConfigError, RunExistsError
from envsound.fileio import run_lock
from envsound.models.checkpoint import Checkpoint, save_checkpoint
from envsound.recipes.context import RunContext
from envsound.stopping import sigterm_as_interrupt

CV_SUMMARY = "cv.json"  # what marks a folder as a cross-validation's


class RunFolder:
    """``path``, where a run writes ``checkpoint_name`` (``model.ckpt``, ``autoencoder.ckpt``) and ``config.yaml``.

    >>> folder = RunFolder("runs/x", checkpoint_name="model.ckpt", context=RunContext(resume=True))
    >>> with folder.writing(config):
    ...     folder.save(checkpoint)
    """

    def __init__(self, path: str | Path, *, checkpoint_name: str, context: RunContext) -> None:
        self.path = Path(path)
        self.checkpoint = self.path / checkpoint_name
        self.config_path = self.path / "config.yaml"
        self.context = context

    def check_free(self) -> None:
        """Raise :class:`~envsound.errors.RunExistsError` when the folder holds a finished model and the context
        neither overwrites nor resumes it; cheap, so recipes call it before any other work."""
        if self.checkpoint.exists() and not (self.context.overwrite or self.context.resume):
            raise RunExistsError(self.checkpoint)
        if (self.path / CV_SUMMARY).exists():
            raise ConfigError(f"{self.path}: holds a cross-validation ({CV_SUMMARY}, fold_<k>/); a model trained here "
                              "would sit among its folds: choose another out folder")

    @contextmanager
    def writing(self, config: Config, *, same_input: bool = True) -> Iterator["RunFolder"]:
        """Hold the folder's lock for the block (a second run into it is refused while this one writes), having
        checked it is free, that a resumed run keeps its input settings (``same_input``), and written ``config``.
        A block that fails in a folder it created, having written nothing but ``config.yaml``, removes the folder
        (:func:`~envsound.fileio.run_lock`); one that wrote a stage's resumable state (``lightning/last.ckpt``,
        ``frame_head/last.ckpt``, ...) keeps it. SIGTERM stops the block as Ctrl-C does (:class:`KeyboardInterrupt`,
        :func:`~envsound.stopping.sigterm_as_interrupt`), so a cluster's time limit keeps what is done."""
        self.check_free()
        with sigterm_as_interrupt(), run_lock(self.path, scratch=(self.config_path.name,)):
            if self.context.resume and same_input:
                check_same_input(self.config_path, config)
            write_config(self.config_path, config)
            yield self

    def note_runtime(self, config: Config, runtime) -> None:
        """Write ``config.yaml`` again with the runtime the ``auto`` settings chose, as a comment at its top."""
        write_config(self.config_path, config, note=f"runtime chosen: {runtime.describe()}")

    def rewrite_config(self, config: Config) -> None:
        """Write ``config.yaml`` again with what the run settled after training (``events.tune``'s choice)."""
        write_config(self.config_path, config, note="events chosen on the validation clips (events.tune)")

    def save(self, checkpoint: Checkpoint) -> Path:
        """Write the checkpoint atomically: the folder holds the finished model or none."""
        return save_checkpoint(self.checkpoint, checkpoint)


def check_no_single_run(path: str | Path) -> None:
    """Raise ConfigError when ``path`` holds the model of one training run (``model.ckpt``, ``autoencoder.ckpt``):
    a cross-validation would write its ``fold_<k>/`` beside it (and a later train there would be refused)."""
    for name in ("model.ckpt", "autoencoder.ckpt"):
        if (Path(path) / name).exists():
            raise ConfigError(f"{path}: holds the model of one training run ({name}); a cross-validation writes "
                              f"fold_<k>/ and {CV_SUMMARY} into its own folder: choose another out folder")
