"""Runtime settings: the only module that reads environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_DATA_DIR = "SONIQUEBAY_DATA_DIR"
ENV_LIBRARY = "SONIQUEBAY_LIBRARY"
ENV_EXECUTOR = "SONIQUEBAY_EXECUTOR"
ENV_BROKER_URL = "SONIQUEBAY_BROKER_URL"
ENV_RESULT_BACKEND = "SONIQUEBAY_RESULT_BACKEND"
ENV_VISIBILITY_TIMEOUT = "SONIQUEBAY_CELERY_VISIBILITY_TIMEOUT"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
EXECUTORS = ("in_process", "celery")


def default_data_dir() -> Path:
    """SONIQUEBAY_DATA_DIR, else the per-user data folder (e.g. ~/.local/share/soniquebay)."""
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override).expanduser().resolve()
    from platformdirs import user_data_dir

    return Path(user_data_dir("soniquebay", appauthor=False)).resolve()


def library_roots_from_env() -> list[Path]:
    """SONIQUEBAY_LIBRARY holds one or more library roots separated by os.pathsep."""
    raw = os.environ.get(ENV_LIBRARY, "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


def executor_choice() -> str:
    """SONIQUEBAY_EXECUTOR: 'in_process' (default) or 'celery'."""
    value = os.environ.get(ENV_EXECUTOR, "").strip().lower().replace("-", "_") or "in_process"
    if value not in EXECUTORS:
        raise ValueError(f"{ENV_EXECUTOR}={value!r}: choose one of {', '.join(EXECUTORS)}")
    return value


def broker_url() -> str:
    """SONIQUEBAY_BROKER_URL, default a local Redis."""
    return os.environ.get(ENV_BROKER_URL, "").strip() or DEFAULT_BROKER_URL


def result_backend_url() -> str:
    """SONIQUEBAY_RESULT_BACKEND, default the broker's Redis (rpc:// can hang a run on SIGTERM)."""
    return os.environ.get(ENV_RESULT_BACKEND, "").strip() or broker_url()


def celery_visibility_timeout_s() -> int:
    """Seconds before Redis redelivers an unacknowledged task of a vanished worker (longer than any step)."""
    return int(os.environ.get(ENV_VISIBILITY_TIMEOUT, "") or 3600)


ENV_LASTFM_API_KEY = "SONIQUEBAY_LASTFM_API_KEY"
ENV_HTTP_CONTACT = "SONIQUEBAY_HTTP_CONTACT"


def lastfm_api_key() -> str | None:
    """Last.fm API key, or None: without it the Last.fm cover source is disabled (never logged anywhere)."""
    return os.environ.get(ENV_LASTFM_API_KEY, "").strip() or None


def http_contact() -> str | None:
    """Email or URL put in the User-Agent of outgoing requests (MusicBrainz asks for a way to reach you)."""
    return os.environ.get(ENV_HTTP_CONTACT, "").strip() or None


@dataclass(frozen=True)
class DataDir:
    """Layout of the data folder: the catalog, a Dagster home, caches and stored images."""

    root: Path = field(default_factory=default_data_dir)

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.db"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def numba_cache(self) -> Path:
        return self.root / "cache" / "numba"

    @property
    def covers(self) -> Path:
        return self.root / "covers"

    def ensure(self) -> DataDir:
        for path in (self.root, self.dagster_home, self.snapshots):
            path.mkdir(parents=True, exist_ok=True)
        return self


ENV_ACOUSTID_API_KEY = "SONIQUEBAY_ACOUSTID_API_KEY"
ENV_MUSICBRAINZ_URL = "SONIQUEBAY_MUSICBRAINZ_URL"
ENV_LASTFM_URL = "SONIQUEBAY_LASTFM_URL"
ENV_ACOUSTID_URL = "SONIQUEBAY_ACOUSTID_URL"
DEFAULT_MUSICBRAINZ_URL = "https://musicbrainz.org"
DEFAULT_LASTFM_URL = "https://ws.audioscrobbler.com/2.0/"
DEFAULT_ACOUSTID_URL = "https://api.acoustid.org"


def acoustid_api_key() -> str | None:
    """AcoustID application key, or None: without it tracks are not identified by fingerprint (never logged)."""
    return os.environ.get(ENV_ACOUSTID_API_KEY, "").strip() or None


def musicbrainz_url() -> str:
    """Base URL of the MusicBrainz web service (a mirror or a test server may stand in)."""
    return os.environ.get(ENV_MUSICBRAINZ_URL, "").strip().rstrip("/") or DEFAULT_MUSICBRAINZ_URL


def lastfm_url() -> str:
    """Base URL of the Last.fm API (the `2.0/` endpoint)."""
    return os.environ.get(ENV_LASTFM_URL, "").strip() or DEFAULT_LASTFM_URL


def acoustid_url() -> str:
    """Base URL of the AcoustID web service."""
    return os.environ.get(ENV_ACOUSTID_URL, "").strip().rstrip("/") or DEFAULT_ACOUSTID_URL
