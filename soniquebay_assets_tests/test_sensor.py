"""The library sensor: one walk, a cursor, runs only for the shards that changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dagster import SensorResult, SkipReason, build_sensor_context

from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
from soniquebay_assets.dagster_defs.sensors import library_changes_sensor
from soniquebay_assets.domain.layout import SHARD_KEYS, album_folder_key, contiguous_groups, shard_for
from soniquebay_assets.library.walker import walk_library
from soniquebay_assets.pipeline.scan import load_snapshot
from soniquebay_assets_tests.scan_helpers import catalog, materialize_scan, test_instance

pytestmark = pytest.mark.both_backends

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _tick(instance, library, data_dir, cursor=None):
    context = build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"catalog": CatalogResource(data_dir_path=str(data_dir)),
                   "library": LibraryResource(roots=[str(library)])},
    )
    return library_changes_sensor(context), context


def test_sensor_requests_changed_shards_then_skips(tmp_path, data_dir, make_audio):
    library = tmp_path / "music"
    make_audio(library / "A/One/01 a.flac", title="a", artist="A", album="One")
    make_audio(library / "B/Two/01 b.flac", title="b", artist="B", album="Two")
    with test_instance(tmp_path) as instance:
        result, _ = _tick(instance, library, data_dir)
        assert isinstance(result, SensorResult)
        shards = sorted({f.shard for f in walk_library([library]).files})
        requested = sorted(r.tags["soniquebay/changed_shards"] for r in result.run_requests)
        expected = [",".join(group) for group in contiguous_groups(shards)]
        assert requested == sorted(expected) and ",".join(requested).split(",") == shards
        for request in result.run_requests:  # each run covers its changed shards' range
            in_range = request.tags["soniquebay/changed_shards"].split(",")
            assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (in_range[0], in_range[-1])
        snapshot = result.run_requests[0].run_config["ops"]["file_inventory"]["config"]["snapshot"]
        conn = catalog(data_dir)
        try:  # the run reuses the sensor's walk, stored in the catalog so any worker host can read it
            assert snapshot.startswith("catalog:") and load_snapshot(snapshot, conn).files
        finally:
            conn.close()
        cursor = result.cursor
        # Same files, run not yet done: the cursor stops a duplicate request.
        again, _ = _tick(instance, library, data_dir, cursor)
        assert isinstance(again, SkipReason)
        # After the scan ran, nothing changed: skip with the walk figures.
        materialize_scan(instance, library, data_dir)
        quiet, _ = _tick(instance, library, data_dir)
        assert isinstance(quiet, SkipReason) and "no shard changed" in quiet.skip_message
        # One album changes: only its shard is requested.
        make_audio(library / "B/Two/02 c.flac", title="c", artist="B", album="Two")
        changed, _ = _tick(instance, library, data_dir, cursor)
        changed_shard = walk_library([library / "B"]).files[0].shard
        assert changed.run_requests[0].tags["soniquebay/changed_shards"] == changed_shard


def test_sensor_without_library_explains_what_to_set(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("SONIQUEBAY_LIBRARY", raising=False)
    with test_instance(tmp_path) as instance:
        context = build_sensor_context(instance=instance, resources={
            "catalog": CatalogResource(data_dir_path=str(data_dir)), "library": LibraryResource()})
        result = library_changes_sensor(context)
    assert isinstance(result, SkipReason) and "SONIQUEBAY_LIBRARY" in result.skip_message


def test_sensor_asks_again_for_a_shard_whose_scan_never_landed(tmp_path, data_dir, make_audio):
    """A requested scan that failed (no worker, a crash) is requested again later, unless one is still running."""
    import time

    from dagster import DagsterRunStatus

    from soniquebay_assets.dagster_defs import sensors
    from soniquebay_assets.dagster_defs.definitions import defs

    library = tmp_path / "music"
    make_audio(library / "A/One/01 a.flac", title="a", artist="A", album="One")
    with test_instance(tmp_path) as instance:
        first, _ = _tick(instance, library, data_dir)
        [request] = first.run_requests
        shard = request.tags["soniquebay/changed_shards"]
        cursor = json.loads(first.cursor)
        again, _ = _tick(instance, library, data_dir, first.cursor)
        assert isinstance(again, SkipReason)  # just requested: not yet
        cursor[shard][1] = time.time() - sensors.RESCAN_AFTER_S - 1  # long ago, and the shard is still unscanned
        job = defs.get_repository_def().get_job("scan_job")
        running = instance.create_run_for_job(job_def=job, tags=request.tags, status=DagsterRunStatus.STARTED)
        busy, _ = _tick(instance, library, data_dir, json.dumps(cursor))
        assert isinstance(busy, SkipReason)  # its scan is still running
        instance.report_run_failed(running)
        retried, _ = _tick(instance, library, data_dir, json.dumps(cursor))
        assert [r.tags["soniquebay/changed_shards"] for r in retried.run_requests] == [shard]
        assert retried.run_requests[0].run_key != request.run_key


def _albums_in_separate_shards(count: int, root: Path) -> list[str]:
    """Album folder names under `root` whose shards have unchanged shards between them, all within 16 neighbouring
    shards (close enough that a run spanning them would be the cheaper plan); the root is part of the shard key."""
    chosen: dict[str, str] = {}
    for i in range(10_000):
        name = f"Artist {i}/Album {i}"
        shard = SHARD_KEYS.index(shard_for(os.path.realpath(root) + "/" + album_folder_key(name)))
        others = [SHARD_KEYS.index(s) for s in chosen.values()]
        if shard < 16 and all(abs(shard - other) > 1 for other in others):
            chosen[name] = SHARD_KEYS[shard]
        if len(chosen) == count:
            return sorted(chosen)
    raise AssertionError("no separate shards found")


@pytest.mark.slow
def test_sensor_runs_materialize_exactly_the_changed_shards_for_every_asset(tmp_path, data_dir, make_audio):
    """Runs over the changed shards only: every scan-chain asset then has the same partitions materialized, the
    shards holding files (no unchanged shard between two changed ones gets a materialization of its own), each
    partition showing its own shard's figures."""
    from dagster import AssetKey, materialize

    from soniquebay_assets_tests.scan_helpers import scan_assets

    library = tmp_path / "music"
    for n, album in enumerate(_albums_in_separate_shards(3, library)):
        make_audio(library / album / "01 a.flac", title=f"t{n}", artist=album.split("/")[0], album=album)
    holding = sorted({f.shard for f in walk_library([library]).files})
    assert len(contiguous_groups(holding)) == 3
    resources = {"catalog": CatalogResource(data_dir_path=str(data_dir)),
                 "library": LibraryResource(roots=[str(library)])}
    with test_instance(tmp_path) as instance:
        result, _ = _tick(instance, library, data_dir)
        assert len(result.run_requests) == 3
        for request in result.run_requests:
            assert materialize(scan_assets(), instance=instance, resources=resources, tags=request.tags,
                               run_config=request.run_config).success
        for asset in ("file_inventory", "raw_metadata", "catalog_entities"):
            materialized = instance.get_materialized_partitions(AssetKey(asset))
            assert sorted(materialized) == holding, asset
            for record in instance.fetch_materializations(AssetKey(asset), limit=100).records:
                mat = record.asset_materialization  # its own shard's figures, its run over changed shards only
                assert mat.metadata["shard"].value == mat.partition and mat.metadata["shard_files"].value == 1
                assert mat.metadata["shards"].value == mat.partition, asset
