"""Shared fixtures: the shared corpus, real audio files made on the fly, a fresh data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from soniquebay_assets_tests import audio_factory

_HERE = Path(__file__).resolve().parent


def _corpus_candidates() -> list[Path]:
    env = os.environ.get("SONIQUEBAY_CORPUS")
    found = [Path(env)] if env else []
    found.append(_HERE.parent.parent / "shared" / "corpus")
    return found


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared audio corpus; skips with a reason when absent, fails instead under SONIQUEBAY_REQUIRE_CORPUS=1."""
    for candidate in _corpus_candidates():
        if (candidate / "MANIFEST.tsv").is_file():
            return candidate
    reason = (
        "shared audio corpus not found (looked in: "
        + ", ".join(str(c) for c in _corpus_candidates())
        + "); set SONIQUEBAY_CORPUS to its folder"
    )
    if os.environ.get("SONIQUEBAY_REQUIRE_CORPUS") == "1":
        pytest.fail(reason + " and SONIQUEBAY_REQUIRE_CORPUS=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data dir, also exported as SONIQUEBAY_DATA_DIR for code that reads settings."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("SONIQUEBAY_DATA_DIR", str(path))
    return path


@pytest.fixture()
def make_audio():
    """Factory writing real, tagged audio files: see audio_factory.write_tagged."""
    return audio_factory.write_tagged


_OFFLINE_SERVICE_URLS = ("SONIQUEBAY_MUSICBRAINZ_URL", "SONIQUEBAY_LASTFM_URL", "SONIQUEBAY_ACOUSTID_URL")
# Set at import too, so processes that module- or session-scoped fixtures start never reach the real services.
for _name in _OFFLINE_SERVICE_URLS:
    os.environ[_name] = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _online_services_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the real MusicBrainz, Last.fm or AcoustID: a refused loopback port unless a test says so."""
    for name in _OFFLINE_SERVICE_URLS:
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("SONIQUEBAY_LASTFM_API_KEY", "SONIQUEBAY_ACOUSTID_API_KEY"):
        monkeypatch.delenv(name, raising=False)
