"""What one API process serves and how it guards it: the catalog, the covers store, the bind address, the token."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from soniquebay_assets import settings


class InsecureBind(RuntimeError):
    """Serving beyond loopback without a token would hand the catalog and its decisions to anyone."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


@dataclass(frozen=True)
class ApiConfig:
    """One API process's settings; `check()` refuses what must not start."""

    catalog_url: str
    covers_dir: Path
    host: str = "127.0.0.1"
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    broker_url: str | None = None
    dagster_home: Path | None = None
    read_connections: int = 4

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def check(self) -> ApiConfig:
        if not self.loopback and not self.token:
            raise InsecureBind(
                f"refusing to serve on {self.host}: beyond loopback every request needs a token. Set "
                f"{settings.ENV_API_TOKEN} (e.g. `export {settings.ENV_API_TOKEN}=$(openssl rand -hex 24)`) "
                f"or serve on 127.0.0.1")
        if self.token is not None and len(self.token) < 16:
            raise InsecureBind(f"{settings.ENV_API_TOKEN} is too short to guess-proof: give at least 16 characters")
        return self


def config_from_env() -> ApiConfig:
    """The config `soniquebay serve` hands its worker processes through the environment."""
    data = settings.DataDir()
    home = settings.dagster_home_from_env()
    if home is None and (data.dagster_home / "dagster.yaml").is_file():
        home = data.dagster_home
    return ApiConfig(catalog_url=data.catalog_url, covers_dir=data.covers, host=settings.api_bind_host(),
                     token=settings.api_token(), cors_origins=settings.api_cors_origins(),
                     broker_url=settings.broker_url_configured(), dagster_home=home).check()
