"""A sensor following its server's fleet (``listen --follow``): a thread that asks which version is assigned to it
every ``every`` seconds, downloads a new one into a folder beside its queue, checks it and hands it to the listener.

A version is run only if its file's SHA-256 is the digest the server gave and the server's Ed25519 signature over
its id and digest checks with the **pinned** key (:mod:`envsound.deploy.signing`): ``listen --server-key FILE``, or
else the key fetched at first contact and kept beside the queue (``server-key.pub``; trust on first use: delete the
file to pin a new key). A corrupt, unsigned or foreign file is refused: deleted, the running model kept, one line
logged, and the refusal reported in the sensor's heartbeats (:attr:`Follower.refused`) until a version is taken.
A refused version is tried again after ten polls (the server may have mended it). An assignment of none (a rollback
to before any version) goes back to the model the sensor was started with. Network trouble is not a refusal: the
next poll tries again. The standard library and ``cryptography`` only (a sensor runs on the light install); what
loads a model and swaps it in is given by the caller (``load``, ``swap``), as the deployment imports no model code.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

from envsound.deploy.head_files import FORMAT as HEAD
from envsound.deploy.head_files import unpack_head
from envsound.deploy.signing import RefusedModel, check_public, verify
from envsound.fileio import atomic_path, file_digest

log = logging.getLogger(__name__)
KEY_FILE = "server-key.pub"
RETRY_REFUSED = 10  # polls before a refused version is fetched again
MAX_REFUSAL = 480  # characters of a refusal a heartbeat carries (the server takes up to 500)


def models_folder(queue: str | Path) -> Path:
    """Where a sensor with outbox ``queue`` keeps the versions it downloads (and its pinned key)."""
    queue = Path(queue)
    return queue.with_name(queue.stem + "-models")


class Follower(threading.Thread):
    """Follows ``url`` (the server's base address) as ``sensor`` with ``token``; ``load(path)`` opens a downloaded
    version (``load(None)``: the model the sensor was started with; raises EnvsoundError for a file it cannot run),
    ``swap(model, version)`` hands it to the listener (``version`` the metadata dict, None for the own model)."""

    def __init__(self, url: str, *, sensor: str, token: str | None, folder: str | Path,
                 load: Callable[[Path | None], Any], swap: Callable[[Any, dict | None], None],
                 server_key: str | Path | None = None, every: float = 60.0, timeout: float = 30.0) -> None:
        super().__init__(name="envsound-follow", daemon=True)
        self.base, self.sensor, self.token = url.rstrip("/"), sensor, token
        self.folder, self.load, self.swap, self.every, self.timeout = Path(folder), load, swap, every, timeout
        self.key_file = Path(server_key) if server_key else self.folder / KEY_FILE
        self.pinned = server_key is not None  # given by the operator: never fetched
        self.running: int | None = None  # the version the listener was handed (None: its own model)
        self.refused: str | None = None  # the last refusal, reported until a version is taken
        self.refused_at: dict[tuple, int] = {}  # (id, digest, signature) -> the poll it was refused at
        self.polls = 0
        self.problem: str | None = None  # the last network trouble logged (one line an outage)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.check_once()
            except Exception as exc:  # never die quietly: the sensor keeps its model and the next poll comes
                log.warning("following %s failed (%s: %s)", self.base, type(exc).__name__, exc)
            self.stopping.wait(self.every)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=self.timeout + 5)

    def check_once(self) -> None:
        """One poll: the assignment, and a version fetched, checked and handed over when it is new."""
        self.polls += 1
        try:
            assigned = json.loads(self._get("/v1/fleet/assignment?" + urllib.parse.urlencode(
                {"sensor": self.sensor})))["version"]
        except _NETWORK as exc:
            return self._trouble(exc)
        if not self.key_file.exists() and not self.pinned:
            try:  # pinned at the first answer, not weeks later at the first version
                self.public_key()
            except RefusedModel as exc:
                log.error("%s; no version can be taken until the server gives a key", exc)
            except _NETWORK as exc:
                return self._trouble(exc)
        if assigned is None:
            self.refused = None  # nothing assigned: nothing refused any more (a rollback past it)
            if self.running is not None:
                self.swap(self.load(None), None)
                log.info("back to the model this sensor was started with (no version assigned)")
                self.running, self.refused = None, None
            return
        if assigned["id"] == self.running:
            self.refused = None  # back to what it runs (a rollback past a refused version)
            return
        seen = (assigned["id"], assigned.get("digest"), assigned.get("signature"))
        if seen in self.refused_at and self.polls - self.refused_at[seen] < RETRY_REFUSED:
            return
        try:
            path = self.fetch(assigned)
        except RefusedModel as exc:
            return self._refuse(seen, str(exc))
        except _NETWORK as exc:
            return self._trouble(exc)
        try:
            model = self.load(path)
        except Exception as exc:  # signed by the server, yet not a model this sensor can run
            return self._refuse(seen, f"cannot be run here ({exc})")
        self.swap(model, assigned)
        log.info("version %d (%s, sha256 %s) taken: it hears from the next window on", assigned["id"],
                 assigned.get("name"), str(assigned.get("digest"))[:16])
        self.running, self.refused = assigned["id"], None

    def _refuse(self, seen: tuple, why: str) -> None:
        self.refused_at[seen] = self.polls
        self.refused = f"version {seen[0]} refused: {why}"[:MAX_REFUSAL]  # a heartbeat's field, not a traceback
        keeps = f"version {self.running}" if self.running is not None else "the model it was started with"
        log.error("%s; this sensor keeps running %s", self.refused, keeps)

    def fetch(self, version: dict) -> Path:
        """``version``'s file in :attr:`folder`, downloaded unless there already, checked against its digest and
        the pinned key's signature (a head over a frozen network: the folder unpacked from it, whose trunk is the
        network installed here: :mod:`envsound.deploy.head_files`).

        Raises:
            RefusedModel: the file is not the digest's, or the signature does not check (the file is deleted).
        """
        digest = str(version.get("digest") or "")
        path = self.folder / f"v{int(version['id'])}-{digest[:12]}.{version.get('format') or 'onnx'}"
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(self._get(f"/v1/fleet/versions/{int(version['id'])}/file"))
        try:
            actual = file_digest(path)
            if actual != digest.lower():
                raise RefusedModel(f"its file's SHA-256 {actual[:16]}... is not the digest {digest[:16]}... the server "
                                   "gave (corrupt or changed)")
            verify(self.public_key(), int(version["id"]), digest, version.get("signature"))
            return unpack_head(path) if version.get("format") == HEAD else path
        except RefusedModel:
            path.unlink(missing_ok=True)
            raise

    def public_key(self) -> bytes:
        """The pinned server key (PEM): ``--server-key``'s, or the one fetched at first contact and kept."""
        if not self.key_file.exists():
            if self.pinned:
                raise RefusedModel(f"{self.key_file}: no such key file (listen --server-key)")
            pem = check_public(self._get("/v1/fleet/key"), f"{self.base}/v1/fleet/key")
            self.key_file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.key_file) as tmp:
                tmp.write_bytes(pem)
            log.info("pinned the server's key at first contact: %s (delete it to trust another)", self.key_file)
        return self.key_file.read_bytes()

    def _get(self, path: str) -> bytes:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(self.base + path, headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as answer:
            body = answer.read()
        if self.problem:
            log.info("%s reached again", self.base)
            self.problem = None
        return body

    def _trouble(self, exc: Exception) -> None:
        if isinstance(exc, urllib.error.HTTPError):
            try:
                reason = json.loads(exc.read() or b"{}").get("error") or exc.reason
            except (ValueError, OSError):
                reason = exc.reason
            problem = f"{self.base} answered {exc.code} ({reason})"
        else:
            problem = f"cannot reach {self.base} ({getattr(exc, 'reason', exc)})"
        if problem != self.problem:
            log.warning("following the fleet: %s; the next try in %.0f s", problem, self.every)
            self.problem = problem


_NETWORK = (urllib.error.URLError, http.client.HTTPException, OSError, ValueError, KeyError, TypeError)

