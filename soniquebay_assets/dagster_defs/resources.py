"""Resources: the I/O seams of the Dagster layer (catalog database, library roots)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.settings import DataDir, default_data_dir, library_roots_from_env


class CatalogResource(ConfigurableResource):
    """The catalog: `catalog_url`, else SONIQUEBAY_CATALOG_URL, else catalog.db in the data dir (default
    SONIQUEBAY_DATA_DIR or the per-user folder, which also holds what stays on each host: caches)."""

    data_dir_path: str = ""
    catalog_url: str = ""

    @property
    def data_dir(self) -> DataDir:
        root = Path(self.data_dir_path) if self.data_dir_path else default_data_dir()
        return DataDir(root, catalog_url_override=self.catalog_url or None).ensure()

    def connect(self) -> Any:
        return open_catalog(self.data_dir.catalog_url)

    def connection(self) -> closing:
        """`with catalog.connection() as conn:` a catalog connection, closed on exit."""
        return closing(self.connect())


class LibraryResource(ConfigurableResource):
    """The music folders to scan (default: SONIQUEBAY_LIBRARY, os.pathsep-separated)."""

    roots: list[str] = []

    def root_paths(self) -> list[Path]:
        paths = [Path(r).expanduser().resolve() for r in self.roots] or library_roots_from_env()
        if not paths:
            raise ValueError(
                "no music library configured: set SONIQUEBAY_LIBRARY=/path/to/music (several paths separated by "
                "':') or give the `library` resource a `roots` list in the launchpad config"
            )
        return paths


def default_resources() -> dict[str, Any]:
    return {"catalog": CatalogResource(), "library": LibraryResource()}
