"""Test helpers: materialize the scan chain with a test instance, read the catalog back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import instance_for_test, materialize

from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.dagster_defs.definitions import all_assets
from soniquebay_assets.dagster_defs.partitions import range_tags
from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
from soniquebay_assets.domain.layout import SHARD_KEYS
from soniquebay_assets.queues import SCAN_CHAIN_GROUPS
from soniquebay_assets.settings import DataDir

SCAN_GROUPS = set(SCAN_CHAIN_GROUPS)


def test_instance(tmp_path: Path):
    """instance_for_test with the pooled SQLite event log the product uses (the default one is ~10x slower)."""
    return instance_for_test(overrides={"event_log_storage": {
        "module": "soniquebay_assets.dagster_defs.instance_storage",
        "class": "PooledSqliteEventLogStorage",
        "config": {"base_dir": str(tmp_path / "dagster_events")},
    }})


test_instance.__test__ = False  # a helper, not a test


def scan_assets(groups=SCAN_GROUPS) -> list:
    return [a for a in all_assets() if set(a.group_names_by_key.values()) & set(groups)]


def materialize_scan(instance, library: Path | list[Path], data_dir: Path, shards: list[str] | None = None,
                     groups=SCAN_GROUPS) -> Any:
    """One in-process run of the scan chain over a shard range (default: every shard)."""
    roots = library if isinstance(library, list) else [library]
    shards = shards or _shards_of(roots, data_dir)
    result = materialize(
        scan_assets(groups),
        instance=instance,
        resources={"catalog": CatalogResource(data_dir_path=str(data_dir)),
                   "library": LibraryResource(roots=[str(r) for r in roots])},
        tags=range_tags(min(shards), max(shards)),
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    assert result.success
    return result


def _shards_of(roots: list[Path], data_dir: Path) -> list[str]:
    """Shards holding the library's files now or in the catalog (what the CLI and sensor would request)."""
    from soniquebay_assets.library.walker import walk_library

    shards = {f.shard for f in walk_library(roots).files}
    if DataDir(data_dir).catalog_exists():
        conn = catalog(data_dir)
        shards |= {r[0] for r in conn.execute("SELECT DISTINCT shard FROM files")}
        conn.close()
    return sorted(shards) or SHARD_KEYS[:1]


def metadata_of(result, asset_name: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.to_user_string() == asset_name:
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    raise KeyError(asset_name)


def catalog(data_dir: Path):
    return open_catalog(DataDir(data_dir).catalog_url)


def tracks_by_title(data_dir: Path) -> dict[str, dict]:
    from soniquebay_assets.catalog.queries import list_tracks

    conn = catalog(data_dir)
    try:
        return {t["title"]: t for t in list_tracks(conn)}
    finally:
        conn.close()


def errors_by_path(data_dir: Path) -> dict[str, dict]:
    from soniquebay_assets.catalog.queries import list_errors

    conn = catalog(data_dir)
    try:
        return {e["path"]: e for e in list_errors(conn)}
    finally:
        conn.close()


def scan_catalog(conn, roots: list[Path]) -> list[str]:
    """The scan chain's plain stage functions (no Dagster run) over every changed shard; returns those shards."""
    from soniquebay_assets.pipeline.scan import catalog_shards, extract_shards, inventory_shards, plan_scan

    plan = plan_scan(conn, roots)
    inventory_shards(conn, plan.walk, plan.affected)
    extract_shards(conn, plan.affected, workers=1)
    catalog_shards(conn, plan.affected)
    return plan.affected


def tempo_and_key(conn, track_ids=None) -> dict[int, tuple]:
    """Each analysed track's stored tempo and key columns (of `track_ids`, default all), floats in their exact
    hex form: equal means equal to the byte."""
    from soniquebay_assets.domain.analysis.analyze import PART_FIELDS

    columns = ", ".join((*PART_FIELDS["tempo"], *PART_FIELDS["key"]))
    return {r[0]: tuple(v.hex() if isinstance(v, float) else v for v in r[1:])
            for r in conn.execute(f"SELECT track_id, {columns} FROM track_analysis ORDER BY track_id")
            if track_ids is None or r[0] in track_ids}
