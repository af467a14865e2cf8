"""The server's signature on a model version, and a sensor's check of it (Ed25519, ``cryptography``).

The server's key is made on first use in its fleet folder (:func:`envsound.deploy.fleet_files.fleet_dir`):
``signing-key.pem`` (PKCS #8, readable by its owner only: mode 0600) and ``signing-key.pub`` (the public key, PEM,
which sensors fetch from ``GET /v1/fleet/key`` and pin). A signature covers :func:`message`: the version's id and
the SHA-256 of its file, so a file cannot pass for another version's (an older one replayed under a newer id), nor a
changed file for the signed one.

>>> key = server_key(folder)
>>> signature = sign(key, 3, digest)
>>> verify(public_pem(folder), 3, digest, signature)  # raises RefusedModel if anything differs
"""

from __future__ import annotations

import os
from pathlib import Path

from envsound.errors import EnvsoundError

KEY_NAME = "signing-key.pem"
PUBLIC_NAME = "signing-key.pub"
DOMAIN = b"envsound model version v1"  # a signature of this scheme is never valid for another message kind


class RefusedModel(EnvsoundError):
    """A model version a sensor will not run: unsigned, signed by another key, or its file not the signed one."""


def message(version: int, digest: str) -> bytes:
    """What the server signs for version ``version`` whose file's SHA-256 is ``digest`` (64 hex digits)."""
    return b"\n".join([DOMAIN, str(int(version)).encode(), digest.lower().encode()])


def server_key(folder: str | Path):
    """The server's private key in ``folder`` (an ``Ed25519PrivateKey``), made there on first use (the folder too),
    the private file with mode 0600.

    Raises:
        RefusedModel: the key file is there but is not an Ed25519 private key (one line naming it).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder = Path(folder)
    path = folder / KEY_NAME
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        # written whole under a temporary name (0600 from its creation), then linked into place: a crash leaves no
        # empty key, and link fails when another publish made one first (one key, not two that overwrite)
        temporary = folder / f".{KEY_NAME}.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
            os.link(temporary, path)
        except FileExistsError:
            return server_key(folder)
        finally:
            temporary.unlink(missing_ok=True)
        (folder / PUBLIC_NAME).write_bytes(_public_bytes(key.public_key()))
        return key
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise RefusedModel(f"{path}: not a signing key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RefusedModel(f"{path}: not an Ed25519 key")
    return key


def public_pem(folder: str | Path) -> bytes:
    """The server's public key (PEM) from ``folder``; the key pair is made there on first use."""
    path = Path(folder) / PUBLIC_NAME
    if not path.exists():
        key = server_key(folder)
        if not path.exists():  # a private key kept without its public half
            path.write_bytes(_public_bytes(key.public_key()))
    return path.read_bytes()


def sign(key, version: int, digest: str) -> str:
    """The hex signature of :func:`message` ``(version, digest)`` with the server's private ``key``."""
    return key.sign(message(version, digest)).hex()


def check_public(pem: bytes, where: str) -> bytes:
    """``pem`` if it is an Ed25519 public key in PEM; raises RefusedModel naming ``where`` otherwise (what a sensor
    pins must be a key, not whatever a captive portal answered)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise RefusedModel(f"{where}: not a public key ({str(exc)[:120]})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise RefusedModel(f"{where}: not an Ed25519 public key")
    return pem


def verify(public: bytes, version: int, digest: str, signature: str | None) -> None:
    """Check ``signature`` (hex) of version ``version`` with file digest ``digest`` against the server's public key
    ``public`` (PEM).

    Raises:
        RefusedModel: no signature, not one of this key, or not over this version and digest.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not signature:
        raise RefusedModel(f"version {version}: unsigned")
    try:
        key = serialization.load_pem_public_key(public)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")
        key.verify(bytes.fromhex(signature), message(version, digest))
    except InvalidSignature:
        raise RefusedModel(f"version {version}: the signature is not the server's (another key, or another "
                           "file or version)") from None
    except ValueError as exc:
        raise RefusedModel(f"version {version}: cannot check its signature ({exc})") from None


def _public_bytes(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
