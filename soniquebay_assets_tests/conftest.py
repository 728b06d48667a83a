"""Shared fixtures: the shared corpus, real audio files made on the fly, a fresh data dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from soniquebay_assets_tests import audio_factory

_HERE = Path(__file__).resolve().parent


def corpus_candidates() -> list[Path]:
    env = os.environ.get("SONIQUEBAY_CORPUS")
    found = [Path(env)] if env else []
    found.append(_HERE.parent.parent / "shared" / "corpus")
    return found


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared audio corpus; skips with a reason when absent, fails instead under SONIQUEBAY_REQUIRE_CORPUS=1."""
    for candidate in corpus_candidates():
        if (candidate / "MANIFEST.tsv").is_file():
            return candidate
    reason = (
        "shared audio corpus not found (looked in: "
        + ", ".join(str(c) for c in corpus_candidates())
        + "); set SONIQUEBAY_CORPUS to its folder"
    )
    if os.environ.get("SONIQUEBAY_REQUIRE_CORPUS") == "1":
        pytest.fail(reason + " and SONIQUEBAY_REQUIRE_CORPUS=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture()
def make_audio():
    """Factory writing real, tagged audio files: see audio_factory.write_tagged."""
    return audio_factory.write_tagged


# ------------------------------------------------------------------------------------------ catalog backends
# Modules marked `both_backends` run their catalog tests on SQLite and on PostgreSQL. PostgreSQL is the
# server at SONIQUEBAY_TEST_PG (default 127.0.0.1:5432, user postgres, trust auth); each test session creates
# its own database and drops it at the end; tables are truncated between tests.

PG_SERVER = os.environ.get("SONIQUEBAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc):
    if "catalog_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("catalog_backend", BACKENDS, indirect=True)


# ------------------------------------------------------------------------------------------ tiers
# `make check` (what a contributor runs before a change) is the `fast` tier: no test that takes more than a few
# seconds or analyses a corpus set (slow), starts Celery workers (celery), needs a PostgreSQL server (postgresql),
# starts the deployment (deployment) or builds hosts (multihost). `make test` (CI) runs every tier.
FULL_SUITE_MARKS = ("slow", "celery", "postgresql", "deployment", "multihost")


def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgresql = callspec is not None and callspec.params.get("catalog_backend") == "postgresql"
        if on_postgresql or "pg_server" in item.fixturenames:
            item.add_marker(pytest.mark.postgresql)
        if not any(item.get_closest_marker(mark) for mark in FULL_SUITE_MARKS):
            item.add_marker(pytest.mark.fast)


@pytest.fixture()
def catalog_backend(request) -> str:
    return getattr(request, "param", "sqlite")


class PgTestServer:
    """One scratch database per test session on the PostgreSQL server; `fresh()` empties it for a test."""

    def __init__(self, server: str) -> None:
        import uuid

        self.server = server.rstrip("/")
        self.name = f"soniquebay_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = f"{self.server}/{self.name}"
        self._migrated = False

    def admin(self):
        import psycopg

        return psycopg.connect(f"{self.server}/postgres", autocommit=True, connect_timeout=5)

    def create(self) -> None:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def fresh(self) -> str:
        """The URL of the session database with the schema migrated and every table empty."""
        from soniquebay_assets.catalog import db, vector_search

        with db.connection(self.url) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                " AND table_type = 'BASE TABLE' AND table_name != 'schema_migrations' ORDER BY table_name")]
            if tables:
                conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        vector_search.forget_indexes()  # per-process index of the previous test's vectors
        return self.url


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL database: on the server at SONIQUEBAY_TEST_PG, else on a throwaway cluster
    started here when PostgreSQL's server binaries are installed; skips otherwise, except in CI (fails)."""
    server, cluster = PgTestServer(PG_SERVER), None
    try:
        server.create()
    except Exception as exc:  # psycopg missing or server down
        reason = f"PostgreSQL not reachable at {PG_SERVER} ({type(exc).__name__}: {str(exc).strip()[:200]})"
        from soniquebay_assets_tests.pg_cluster import TempCluster, free_port, server_bindir

        bindir = server_bindir()
        try:
            if bindir is None:
                raise RuntimeError("no PostgreSQL server binaries installed (apt-get install postgresql)")
            cluster = TempCluster("127.0.0.1", free_port()).start(bindir)
            server = PgTestServer(cluster.server_url)
            server.create()
        except Exception as start_exc:
            if cluster is not None:
                cluster.stop()
            reason += f"; a throwaway cluster could not start either ({str(start_exc).strip()[:300]})"
            if os.environ.get("CI") == "true":
                pytest.fail(reason + "; CI must run the PostgreSQL tests")
            pytest.skip(reason)
    yield server
    server.drop()
    if cluster is not None:
        cluster.stop()


@pytest.fixture()
def catalog_target(request, catalog_backend: str, tmp_path: Path) -> str | Path:
    """Where a test's catalog lives: a fresh SQLite file, or the emptied session PostgreSQL database."""
    if catalog_backend == "postgresql":
        return request.getfixturevalue("pg_server").fresh()
    return tmp_path / "catalog.db"


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_target) -> Path:
    """A fresh data dir, also exported as SONIQUEBAY_DATA_DIR for code that reads settings; with the PostgreSQL
    backend SONIQUEBAY_CATALOG_URL points every catalog opened through settings there."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("SONIQUEBAY_DATA_DIR", str(path))
    if isinstance(catalog_target, str):
        monkeypatch.setenv("SONIQUEBAY_CATALOG_URL", catalog_target)
    else:
        monkeypatch.delenv("SONIQUEBAY_CATALOG_URL", raising=False)
    return path


_OFFLINE_SERVICE_URLS = ("SONIQUEBAY_MUSICBRAINZ_URL", "SONIQUEBAY_LASTFM_URL", "SONIQUEBAY_ACOUSTID_URL")
# Set at import too, so processes that module- or session-scoped fixtures start never reach the real services.
for _name in _OFFLINE_SERVICE_URLS:
    os.environ[_name] = "http://127.0.0.1:9"
# Similar-track index files of catalogs without a folder of their own (PostgreSQL, in-memory SQLite) go to this
# session's temporary folder, never to the user's data dir.
os.environ["SONIQUEBAY_VECTOR_INDEX_DIR"] = tempfile.mkdtemp(prefix="soniquebay-test-vector-index-")


@pytest.fixture(autouse=True)
def _online_services_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the real MusicBrainz, Last.fm or AcoustID: a refused loopback port unless a test says so."""
    for name in _OFFLINE_SERVICE_URLS:
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("SONIQUEBAY_LASTFM_API_KEY", "SONIQUEBAY_ACOUSTID_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _command_environment_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run in-process (`main([...])`) points DAGSTER_HOME, the data dir and the catalog URL at its own
    folders; the next test must not inherit them."""
    for name in ("DAGSTER_HOME", "SONIQUEBAY_DATA_DIR", "SONIQUEBAY_CATALOG_URL"):
        was_set = name in os.environ
        monkeypatch.setenv(name, os.environ.get(name, ""))  # recorded as it was, absent included
        if not was_set:
            monkeypatch.delenv(name)


# ------------------------------------------------------------------------------------------ Redis

@pytest.fixture(scope="module")
def redis_server():
    """A real redis-server on a free loopback port for the module (its port); skips without the binary, except in CI."""
    import shutil
    import socket
    import subprocess
    import time

    from soniquebay_assets.cli.bench_celery import stop_process_group

    exe = shutil.which("redis-server")
    if exe is None:
        reason = "redis-server is not installed (apt-get install redis-server); these tests need a real broker"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " and CI=true forbids skipping")
        pytest.skip(reason)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("timed out after 15s waiting for redis-server to answer PING")
            time.sleep(0.3)
        yield port
    finally:
        stop_process_group(proc)
