"""Fixtures of the playlist tests: a catalog of really analysed and vectorized corpus tracks (made once per
session), and a real Subsonic server (supysonic from PyPI) over a corpus folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from soniquebay_assets_tests.pg_cluster import free_port
from soniquebay_assets_tests.scan_helpers import scan_catalog

# Short clips and excerpts (20-40 s) with tags, moods in their folder names, duplicate titles and untagged files:
# every rule has something to bite on, and the analysis of all of them costs tens of seconds, not minutes.
ANALYSED_FOLDERS = ("converted", "clips/immich-ai", "music/wesnoth")


@dataclass
class AnalysedCorpus:
    url: str
    roots: list[Path]
    data_dir: Path


@pytest.fixture(scope="session")
def analysed_corpus(corpus_dir, tmp_path_factory) -> AnalysedCorpus:
    """Corpus folders through the catalog, enrichment and vectors stages, in one SQLite catalog."""
    from soniquebay_assets.catalog import db
    from soniquebay_assets.pipeline import enrich
    from soniquebay_assets.pipeline import vectorize as vz

    data_dir = tmp_path_factory.mktemp("playlists_corpus")
    roots = [corpus_dir / folder for folder in ANALYSED_FOLDERS]
    url = f"sqlite:///{data_dir / 'catalog.db'}"
    with db.connection(url) as conn:
        shards = scan_catalog(conn, roots)
        enriched = enrich.enrich_shards(conn, sorted(shards), data_dir=data_dir, workers=2)
        assert enriched.ok >= 48, enriched
        assert vz.vectorize_shards(conn, None).failed == 0
    return AnalysedCorpus(url, roots, data_dir)


SUPYSONIC_CONF = """\
[base]
database_uri = sqlite:///{home}/supysonic.db
[webapp]
cache_dir = {home}/cache
mount_webui = no
log_level = WARNING
[daemon]
socket = {home}/daemon.sock
run_watcher = no
"""


@dataclass
class SubsonicServer:
    url: str
    user: str
    password: str
    folder: Path
    process: subprocess.Popen


def _bin(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        pytest.fail(f"{name} is not installed: pip install -e .[dev] (supysonic and waitress are dev dependencies)")
    return found


def start_supysonic(home: Path, folder: Path, *, user: str = "alice", password: str = "s3cret-Pässword"):
    """supysonic (reads supysonic.conf from its working directory) with one admin user and `folder` scanned."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "supysonic.conf").write_text(SUPYSONIC_CONF.format(home=home), encoding="utf-8")
    cli = _bin("supysonic-cli")
    for command in (["user", "add", user, "-p", password], ["user", "setroles", "-A", user],
                    ["folder", "add", "library", str(folder)], ["folder", "scan", "library"]):
        subprocess.run([cli, *command], cwd=home, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = open(home / "server.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen([_bin("supysonic-server"), "-S", "waitress", "-h", "127.0.0.1", "-p", str(port)],
                               cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"supysonic-server exited: {(home / 'server.log').read_text(errors='replace')[-2000:]}")
        try:
            httpx.get(f"{url}/rest/ping.view", timeout=1.0)
            return SubsonicServer(url, user, password, folder, process)
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    pytest.fail("supysonic-server did not answer within 60 s")


def stop(server: SubsonicServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


def subsonic_env(monkeypatch: pytest.MonkeyPatch, server: SubsonicServer, *, password: str | None = None,
                 prefix: str = "SONIQUEBAY_SUBSONIC") -> None:
    monkeypatch.setenv(f"{prefix}_URL", server.url)
    monkeypatch.setenv(f"{prefix}_USER", server.user)
    monkeypatch.setenv(f"{prefix}_PASSWORD", server.password if password is None else password)


def clean_subsonic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SONIQUEBAY_SUBSONIC"):
            monkeypatch.delenv(name, raising=False)
