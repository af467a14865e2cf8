"""A real PostgreSQL server for the store's tests: Debian's binaries (``make test`` installs the ``postgresql``
package when it is missing and it may), a throwaway cluster in a temporary folder, listening on 127.0.0.1 only.

``initdb`` refuses to run as root (CI is root), so as root the cluster belongs to an unprivileged user (Debian's
``postgres``, else ``nobody``) and its programs run as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (the newest Debian version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresServer:
    """``with PostgresServer() as server:`` a running cluster; ``server.url(db)`` names a database in it."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            raise FileNotFoundError("no PostgreSQL server binaries (apt-get install postgresql)")
        self.user = None
        if os.geteuid() == 0:
            self.user = next(u for u in ("postgres", "nobody") if _exists(u))
        self.folder = Path(tempfile.mkdtemp(prefix="envsound-pg-"))
        self.data = self.folder / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def _run(self, *args: str) -> None:
        preexec = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)

            def preexec():  # drop root for good before PostgreSQL's programs start
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)

        subprocess.run(list(args), check=True, capture_output=True, preexec_fn=preexec, cwd=self.folder, timeout=60)

    def __enter__(self) -> "PostgresServer":
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "envsound", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        self.start()
        return self

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
                  "-w", "-t", "60", "start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://envsound@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def __exit__(self, *exc) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False
