"""Each partition of a run over a shard range carries its own shard's figures."""

from __future__ import annotations

from dagster import AssetKey

from soniquebay_assets.dagster_defs.partitions import SHARDS
from soniquebay_assets.domain.layout import SHARD_KEYS
from soniquebay_assets.library.walker import walk_library
from soniquebay_assets_tests.scan_helpers import catalog, materialize_scan, test_instance


def test_each_partition_describes_its_own_shard(tmp_path, data_dir, make_audio):
    library = tmp_path / "music"
    for album, count in (("Alpha", 1), ("Beta", 3), ("Gamma", 2)):
        for n in range(1, count + 1):
            make_audio(library / album / album / f"{n:02d}.flac", seconds=0.3, title=f"{album} {n}", artist=album,
                       album=album, tracknumber=n)
    shards = sorted({f.shard for f in walk_library([library]).files})
    with test_instance(tmp_path) as instance:
        result = materialize_scan(instance, library, data_dir, shards=shards)
        conn = catalog(data_dir)
        try:
            expected = dict(conn.execute("SELECT shard, COUNT(*) FROM tracks GROUP BY shard").fetchall())
        finally:
            conn.close()
        events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
        # the step's materializations went to the cross-run index in one batch: each shard is found there, and
        # the asset's latest materialization is the step's last event
        key = AssetKey("catalog_entities")
        in_range = SHARDS.get_partition_keys()[SHARD_KEYS.index(shards[0]):SHARD_KEYS.index(shards[-1]) + 1]
        assert instance.get_materialized_partitions(key) == set(in_range)
        last = [m.partition for m in events if m.asset_key == key][-1]
        assert instance.get_latest_materialization_event(key).asset_materialization.partition == last
    by_partition = {(m.asset_key.to_user_string(), m.partition): m.metadata for m in events}
    for shard in shards:
        meta = by_partition[("catalog_entities", shard)]
        assert meta["shard"].value == shard
        assert meta["shard_tracks"].value == expected.get(shard, 0)
        assert by_partition[("file_inventory", shard)]["shard_files"].value == expected.get(shard, 0)
