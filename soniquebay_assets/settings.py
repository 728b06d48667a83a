"""Runtime settings: the only module that reads environment variables."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from soniquebay_assets.stages import by_name

ENV_DATA_DIR = "SONIQUEBAY_DATA_DIR"
ENV_LIBRARY = "SONIQUEBAY_LIBRARY"
ENV_EXECUTOR = "SONIQUEBAY_EXECUTOR"
ENV_BROKER_URL = "SONIQUEBAY_BROKER_URL"
ENV_RESULT_BACKEND = "SONIQUEBAY_RESULT_BACKEND"
ENV_VISIBILITY_TIMEOUT = "SONIQUEBAY_CELERY_VISIBILITY_TIMEOUT"
ENV_CATALOG_URL = "SONIQUEBAY_CATALOG_URL"
ENV_COVERS_DIR = "SONIQUEBAY_COVERS_DIR"
ENV_HOST_LABEL = "SONIQUEBAY_HOST_LABEL"
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
    """Seconds before Redis redelivers an unacknowledged task whose worker stopped renewing it (gone or cut
    off): live workers renew what they hold (celery_app.DeliveryHeartbeat), so steps may run longer than this."""
    return int(os.environ.get(ENV_VISIBILITY_TIMEOUT, "") or 120)


ENV_LASTFM_API_KEY = "SONIQUEBAY_LASTFM_API_KEY"
ENV_HTTP_CONTACT = "SONIQUEBAY_HTTP_CONTACT"


def lastfm_api_key() -> str | None:
    """Last.fm API key, or None: without it the Last.fm cover source is disabled (never logged anywhere)."""
    return os.environ.get(ENV_LASTFM_API_KEY, "").strip() or None


def http_contact() -> str | None:
    """Email or URL put in the User-Agent of outgoing requests (MusicBrainz asks for a way to reach you)."""
    return os.environ.get(ENV_HTTP_CONTACT, "").strip() or None


def catalog_url_from_env() -> str | None:
    """SONIQUEBAY_CATALOG_URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB; None means the data dir's file."""
    return os.environ.get(ENV_CATALOG_URL, "").strip() or None


def covers_dir_from_env() -> Path | None:
    """SONIQUEBAY_COVERS_DIR: where cover images go (a shared mount when workers run on several hosts)."""
    raw = os.environ.get(ENV_COVERS_DIR, "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def host_label() -> str:
    """This worker's name in step metadata: SONIQUEBAY_HOST_LABEL, else the host name."""
    import socket

    return os.environ.get(ENV_HOST_LABEL, "").strip() or socket.gethostname()


@dataclass(frozen=True)
class DataDir:
    """Layout of the data folder: the catalog, a Dagster home, caches and stored images."""

    root: Path = field(default_factory=default_data_dir)
    catalog_url_override: str | None = None

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.db"

    @property
    def catalog_url(self) -> str:
        """The catalog to open: the override, else SONIQUEBAY_CATALOG_URL, else catalog.db in this folder."""
        return self.catalog_url_override or catalog_url_from_env() or f"sqlite:///{self.catalog_path}"

    @property
    def catalog_is_local_file(self) -> bool:
        return self.catalog_url.startswith("sqlite:") or "://" not in self.catalog_url

    def catalog_exists(self) -> bool:
        """False only for an embedded catalog whose file was never created (a server catalog is asked on open)."""
        url = self.catalog_url
        if url.startswith("sqlite:///"):
            return Path(url[len("sqlite:///"):]).exists()
        return "://" in url or Path(url).exists()

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
        return covers_dir_from_env() or self.root / "covers"

    @property
    def playlists(self) -> Path:
        return playlists_dir_from_env() or self.root / "playlists"

    def ensure(self) -> DataDir:
        for path in (self.root, self.dagster_home, self.snapshots):
            path.mkdir(parents=True, exist_ok=True)
        return self


# Cadences of the deployment's sensors and schedules (read when the definitions load). The defaults suit a
# library server; tests and small set-ups may shorten them. Each schedule's variable is named in the stage registry.
ENV_SENSOR_INTERVAL_S = "SONIQUEBAY_SENSOR_INTERVAL_SECONDS"


def _positive_int(name: str, default: int, *, maximum: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: give a whole number") from None
    if value < 1 or (maximum is not None and value > maximum):
        raise ValueError(f"{name}={raw!r}: give a number from 1 to {maximum or 'up'}")
    return value


def sensor_interval_s() -> int:
    """SONIQUEBAY_SENSOR_INTERVAL_SECONDS: least time between two library walks of the sensor (default 60)."""
    return _positive_int(ENV_SENSOR_INTERVAL_S, 60)


def every_minutes(stage_name: str) -> int:
    """The stage's cadence setting (stages.py), e.g. SONIQUEBAY_ENRICHMENT_EVERY_MINUTES: minutes between the
    ticks of its schedule (enrichment 2, vectors 3, covers 5, deferred retry 15, playlists 10)."""
    stage = by_name(stage_name)
    if stage.cadence_setting is None or stage.cadence_default is None:
        raise ValueError(f"stage {stage_name} has no cadence setting in the stage registry")
    return _positive_int(stage.cadence_setting, stage.cadence_default, maximum=59)


def dagster_home_from_env() -> Path | None:
    """DAGSTER_HOME when set (the instance a deployment's webserver, daemon and workers share), else None."""
    raw = os.environ.get("DAGSTER_HOME", "").strip()
    return Path(raw).expanduser().resolve() if raw else None
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


ENV_WRITE_TAGS = "SONIQUEBAY_WRITE_TAGS"  # the write_back stage's enabled_by (stages.py)
ENV_WRITE_TAGS_OVERWRITE = "SONIQUEBAY_WRITE_TAGS_OVERWRITE"
ENV_WRITE_TAGS_KEY_NOTATION = "SONIQUEBAY_WRITE_TAGS_KEY_NOTATION"


def _names(variable: str) -> list[str]:
    return [name.strip() for name in os.environ.get(variable, "").split(",") if name.strip()]


def stage_enabled(stage_name: str) -> bool:
    """Whether a stage is switched on: always, unless its registry record names an `enabled_by` variable, which
    must then name something (a comma list with at least one entry, such as SONIQUEBAY_WRITE_TAGS=replaygain)."""
    variable = by_name(stage_name).enabled_by
    return variable is None or bool(_names(variable))


def write_tags_fields() -> list[str]:
    """SONIQUEBAY_WRITE_TAGS as given ("replaygain,bpm,key,musicbrainz_ids,covers" or "all"): what the deployed
    platform writes back into the files after enrichment; empty (the default) means nothing is ever written."""
    return _names(ENV_WRITE_TAGS)


def write_tags_overwrite() -> frozenset[str]:
    """SONIQUEBAY_WRITE_TAGS_OVERWRITE ("bpm,key"): fields whose values already in the files are replaced."""
    names = {"bpm": "bpm", "key": "initial_key", "initial_key": "initial_key"}
    raw = [n.strip().lower() for n in os.environ.get(ENV_WRITE_TAGS_OVERWRITE, "").split(",") if n.strip()]
    unknown = [n for n in raw if n not in names]
    if unknown:
        raise ValueError(f"{ENV_WRITE_TAGS_OVERWRITE}: only bpm and key can be overwritten, not {', '.join(unknown)}")
    return frozenset(names[n] for n in raw)


def write_tags_key_notation() -> str:
    """SONIQUEBAY_WRITE_TAGS_KEY_NOTATION: standard (Am, F#; default), camelot (8A) or openkey (1m)."""
    value = os.environ.get(ENV_WRITE_TAGS_KEY_NOTATION, "").strip().lower() or "standard"
    if value not in ("standard", "camelot", "openkey"):
        raise ValueError(f"{ENV_WRITE_TAGS_KEY_NOTATION}: {value!r} is not one of standard, camelot, openkey")
    return value


# `soniquebay serve`: the HTTP API and its page.
ENV_API_TOKEN = "SONIQUEBAY_API_TOKEN"
ENV_API_CORS_ORIGINS = "SONIQUEBAY_API_CORS_ORIGINS"
ENV_API_BIND_HOST = "SONIQUEBAY_API_BIND_HOST"


def api_token() -> str | None:
    """SONIQUEBAY_API_TOKEN: the bearer token the API asks for (never logged)."""
    return os.environ.get(ENV_API_TOKEN, "").strip() or None


def api_cors_origins() -> tuple[str, ...]:
    """SONIQUEBAY_API_CORS_ORIGINS: comma-separated origins allowed to call the API from a browser (default none)."""
    return tuple(o.strip().rstrip("/") for o in os.environ.get(ENV_API_CORS_ORIGINS, "").split(",") if o.strip())


def api_bind_host() -> str:
    """The address the API's workers were started on (set by `soniquebay serve`; loopback when unset)."""
    return os.environ.get(ENV_API_BIND_HOST, "").strip() or "127.0.0.1"


def broker_url_configured() -> str | None:
    """The Celery broker when one is configured (SONIQUEBAY_BROKER_URL, or the Celery executor's default)."""
    explicit = os.environ.get(ENV_BROKER_URL, "").strip()
    if explicit:
        return explicit
    return DEFAULT_BROKER_URL if executor_choice() == "celery" else None


# ------------------------------------------------------------------------------------------ playlists

ENV_PLAYLISTS_DIR = "SONIQUEBAY_PLAYLISTS_DIR"
ENV_PLAYLISTS_PATH_PREFIX = "SONIQUEBAY_PLAYLISTS_PATH_PREFIX"
ENV_SUBSONIC = "SONIQUEBAY_SUBSONIC"
_NAMED_SUBSONIC = re.compile(r"^SONIQUEBAY_SUBSONIC_([A-Z0-9]+)_URL$")


def playlists_dir_from_env() -> Path | None:
    """SONIQUEBAY_PLAYLISTS_DIR: where saved playlists are written as M3U8 (a folder the music server imports)."""
    raw = os.environ.get(ENV_PLAYLISTS_DIR, "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def playlists_path_prefix() -> str | None:
    """SONIQUEBAY_PLAYLISTS_PATH_PREFIX: FROM=TO, for a server that mounts the music at another path."""
    return os.environ.get(ENV_PLAYLISTS_PATH_PREFIX, "").strip() or None


@dataclass(frozen=True)
class SubsonicServer:
    """One Subsonic / OpenSubsonic server playlists are pushed to; `setting` is the variable prefix defining it."""

    label: str
    url: str
    user: str
    password: str = field(repr=False)
    setting: str = ENV_SUBSONIC


def _secret(prefix: str) -> str:
    """PREFIX_PASSWORD, else the content of the file PREFIX_PASSWORD_FILE names (Docker secrets)."""
    value = os.environ.get(f"{prefix}_PASSWORD", "")
    path = os.environ.get(f"{prefix}_PASSWORD_FILE", "").strip()
    if not value and path:
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"{prefix}_PASSWORD_FILE={path}: cannot read it ({exc.strerror})") from None
    return value


def subsonic_servers() -> list[SubsonicServer]:
    """Servers to push playlists to: SONIQUEBAY_SUBSONIC_URL/_USER/_PASSWORD (label `subsonic`), and one more per
    SONIQUEBAY_SUBSONIC_<NAME>_URL/_USER/_PASSWORD (label `<name>`, lower case); _PASSWORD_FILE may replace
    _PASSWORD. None configured: an empty list."""
    prefixes = {ENV_SUBSONIC: "subsonic"}
    for name in sorted(os.environ):
        match = _NAMED_SUBSONIC.match(name)
        if match:
            prefixes[f"{ENV_SUBSONIC}_{match.group(1)}"] = match.group(1).lower()
    servers = []
    for prefix, label in prefixes.items():
        url = os.environ.get(f"{prefix}_URL", "").strip()
        if not url:
            continue
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{prefix}_URL={url!r}: give the server's base URL, e.g. http://navidrome:4533")
        user = os.environ.get(f"{prefix}_USER", "").strip()
        password = _secret(prefix)
        if not user or not password:
            raise ValueError(f"{prefix}_URL is set but {prefix}_USER or {prefix}_PASSWORD is empty: set the user name "
                             "and password of the account playlists are pushed as")
        servers.append(SubsonicServer(label, url.rstrip("/"), user, password, prefix))
    return servers
