"""What docker/compose.yaml starts, started natively with the same commands: a PostgreSQL database (created and
dropped here), redis-server, dagster-webserver, dagster-daemon and the compose file's `soniquebay worker` services,
over a library folder and a data dir shared by these local processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from soniquebay_assets_tests.proc_tree import alive, descendants

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
# Short cadences so the test is affordable (documented settings; production defaults are 2/3/5/15 min, 60 s).
FAST_CADENCES = {
    "SONIQUEBAY_SENSOR_INTERVAL_SECONDS": "5",
    "SONIQUEBAY_ENRICHMENT_EVERY_MINUTES": "1",
    "SONIQUEBAY_VECTORS_EVERY_MINUTES": "1",
    "SONIQUEBAY_COVERS_EVERY_MINUTES": "1",
    "SONIQUEBAY_RETRY_EVERY_MINUTES": "1",
}
# no network in tests: the online cover sources would only time out
EXTRA_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 1.0,
              on_timeout: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{detail}")
        time.sleep(interval_s)


def postgres_available() -> bool:
    done = subprocess.run(["pg_isready", "-h", PG_HOST, "-p", str(PG_PORT)], capture_output=True)
    return done.returncode == 0


def psql(sql: str, database: str = "postgres") -> str:
    done = subprocess.run(["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", database, "-v",
                           "ON_ERROR_STOP=1", "-tA", "-c", sql], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed: {done.stderr.strip()}")
    return done.stdout


def compose_commands() -> dict[str, list[str]]:
    """service -> command, for the services this deployment runs from the image."""
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    return {name: list(service["command"]) for name, service in compose["services"].items()
            if service.get("image") == "soniquebay-assets:latest"}


class Deployment:
    """The compose services as local processes, each in its own session, with a log file each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.library = root / "music"
        self.data = root / "data"
        self.home = root / "dagster_home"
        self.logs_dir = root / "logs"
        self.database = f"soniquebay_deploy_{uuid.uuid4().hex[:10]}"
        self.redis_port = free_port()
        self.web_port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.workspace = root / "workspace.yaml"
        self._instance = None
        self.started_at = time.monotonic()
        self.extra_env: dict[str, str] = {}

    # ------------------------------------------------------------------ set-up

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("SONIQUEBAY_CATALOG_URL", None)
        env.update({
            "SONIQUEBAY_EXECUTOR": "celery",
            "SONIQUEBAY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "SONIQUEBAY_RESULT_BACKEND": f"redis://127.0.0.1:{self.redis_port}/1",
            "SONIQUEBAY_DATA_DIR": str(self.data),
            "SONIQUEBAY_LIBRARY": str(self.library),
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_POSTGRES_HOST": PG_HOST,
            "DAGSTER_POSTGRES_USER": PG_USER,
            "DAGSTER_POSTGRES_PASSWORD": "",
            "DAGSTER_POSTGRES_DB": self.database,
            "DAGSTER_LOCAL_STORAGE_DIR": str(self.data / "dagster"),
            "DAGSTER_COMPUTE_LOGS_DIR": str(self.data / "dagster" / "compute_logs"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
            **FAST_CADENCES,
            **EXTRA_ENV,
            **self.extra_env,
        })
        return env

    def prepare(self) -> None:
        for path in (self.library, self.data, self.home, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        # the image's files: dagster.yaml verbatim (everything that differs comes from env vars), and the
        # workspace with the app folder where this checkout is
        shutil.copyfile(DOCKER / "dagster.yaml", self.home / "dagster.yaml")
        workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text(encoding="utf-8"))
        for entry in workspace["load_from"]:
            entry["python_module"]["working_directory"] = str(REPO)
        self.workspace.write_text(yaml.safe_dump(workspace), encoding="utf-8")
        psql(f'CREATE DATABASE "{self.database}"')

    def command_for(self, service: str) -> list[str]:
        """The compose command of `service`, with this machine's paths and ports in place of the container's."""
        command = compose_commands()[service]
        swaps = {"/opt/dagster/app/workspace.yaml": str(self.workspace), "/opt/dagster/home": str(self.home),
                 "0.0.0.0": "127.0.0.1", "3000": str(self.web_port)}
        return [swaps.get(part, part) for part in command]

    def start(self, service: str, command: list[str] | None = None,
              env_extra: dict[str, str] | None = None) -> subprocess.Popen:
        command = command or self.command_for(service)
        log = self.logs_dir / f"{service}.log"
        self.logs[service] = log
        with open(log, "ab") as out:
            out.write(f"\n===== start {time.strftime('%H:%M:%S')}: {' '.join(command)}\n".encode())
            out.flush()
            proc = subprocess.Popen(command, env={**self.env(), **(env_extra or {})}, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=self.root, start_new_session=True)
        self.procs[service] = proc
        return proc

    def start_redis(self) -> None:
        self.start("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(self.root)])
        wait_for(self._redis_answers, 30, "redis-server", interval_s=0.2)

    def _redis_answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.redis_port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def worker_services(self) -> list[str]:
        return sorted(name for name, command in compose_commands().items() if "worker" in command[:2])

    # ------------------------------------------------------------------ stop

    def stop(self, service: str, sig: int = signal.SIGTERM, timeout_s: float = 60) -> None:
        proc = self.procs.get(service)
        if proc is None or proc.poll() is not None:
            return
        tree = [proc.pid, *descendants(proc.pid)]
        for current in (sig, signal.SIGKILL):
            try:
                os.killpg(proc.pid, current)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=timeout_s)
                break
            except subprocess.TimeoutExpired:
                continue
        # whatever left its session (a run worker, a pool child) ends with the service
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.2)
        for pid in tree:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None
        for service in list(self.procs):  # ask all first, so the warm shutdowns overlap
            proc = self.procs[service]
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for service in list(self.procs):
            self.stop(service, timeout_s=30)
        try:
            psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except RuntimeError as exc:
            print(f"could not drop {self.database}: {exc}", file=sys.stderr)

    # ------------------------------------------------------------------ reading

    def instance(self):
        """The deployment's Dagster instance (its dagster.yaml and env vars), opened in this process."""
        if self._instance is None:
            from dagster import DagsterInstance
            from dagster._core.instance.ref import InstanceRef

            with patched_environ(self.env()):
                self._instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))
        return self._instance

    def catalog(self):
        from soniquebay_assets.catalog.db import open_catalog

        return open_catalog(self.data / "catalog.db")

    def cli(self, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(["soniquebay", *args], env=self.env(), capture_output=True, text=True,
                              timeout=timeout_s, cwd=self.root)

    def dump_logs(self, tail_chars: int = 6000) -> str:
        parts = []
        for service, log in sorted(self.logs.items()):
            text = log.read_text(errors="replace") if log.exists() else "(no log)"
            state = self.procs[service].poll() if service in self.procs else None
            parts.append(f"----- {service} (exit code {state}) {log}\n{text[-tail_chars:]}")
        return "\n".join(parts)


@contextmanager
def patched_environ(values: dict[str, str]):
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
