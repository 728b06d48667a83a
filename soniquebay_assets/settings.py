"""Runtime settings: the only module that reads environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_DATA_DIR = "SONIQUEBAY_DATA_DIR"
ENV_LIBRARY = "SONIQUEBAY_LIBRARY"


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

    @property
    def http_cache(self) -> Path:
        return self.root / "cache" / "http"

    def ensure(self) -> DataDir:
        for path in (self.root, self.dagster_home, self.snapshots):
            path.mkdir(parents=True, exist_ok=True)
        return self
