"""A throwaway PostgreSQL cluster for tests: initdb into a temp folder, trust auth, one listen address.

Used by the multi-host test (listening on its private bridge address) and by the catalog tests when no server
answers at the usual address (so they run wherever PostgreSQL's server binaries are installed).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from soniquebay_assets.cli.bench_celery import stop_process_group


def server_bindir() -> Path | None:
    """Folder of `postgres` and `initdb` (PATH, else Debian's /usr/lib/postgresql/N/bin)."""
    found = shutil.which("postgres")
    if found and (Path(os.path.realpath(found)).parent / "initdb").exists():
        return Path(os.path.realpath(found)).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return candidates[-1].parent if candidates else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class TempCluster:
    """initdb + postgres as the `postgres` user when run by root (the server refuses root), else as ourselves."""

    def __init__(self, listen: str, port: int, trusted_subnet: str | None = None) -> None:
        self.listen, self.port, self.trusted_subnet = listen, port, trusted_subnet
        self.dir = Path(tempfile.mkdtemp(prefix="soniquebay-test-pg-"))
        self.proc: subprocess.Popen | None = None

    @property
    def server_url(self) -> str:
        return f"postgresql://postgres@{self.listen}:{self.port}"

    def url(self, database: str) -> str:
        return f"{self.server_url}/{database}"

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def start(self, bindir: Path, timeout_s: float = 60) -> TempCluster:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        subprocess.run(self._as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                       "-E", "UTF8", "--no-sync"]), check=True, capture_output=True, timeout=180)
        if self.trusted_subnet:
            with open(data / "pg_hba.conf", "a", encoding="utf-8") as hba:
                hba.write(f"host all all {self.trusted_subnet} trust\n")
        log = open(self.dir / "server.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
        self.proc = subprocess.Popen(
            self._as_owner([str(bindir / "postgres"), "-D", str(data), "-c", f"listen_addresses={self.listen}",
                            "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.dir}",
                            "-c", "fsync=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB"]),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return self
            except psycopg.Error:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the test PostgreSQL did not start: "
                                       + (self.dir / "server.log").read_text(errors="replace")[-1500:]) from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
