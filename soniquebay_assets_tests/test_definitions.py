"""The one smoke test of the Dagster layer: Definitions load, assets routed to their queues, shards shared."""

from __future__ import annotations

from dagster import Definitions

from soniquebay_assets import queues
from soniquebay_assets.dagster_defs.definitions import all_assets, defs
from soniquebay_assets.dagster_defs.partitions import SHARDS


def test_definitions_load():
    Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for a in all_assets() for k in a.keys}
    assert {"file_inventory", "raw_metadata", "catalog_entities"} <= keys
    assert defs.resolve_sensor_def("library_changes_sensor") is not None
    assert defs.resolve_job_def("scan_job") is not None


def test_every_asset_routes_to_its_group_queue_through_op_tags():
    for assets_def in all_assets():
        for key, group in assets_def.group_names_by_key.items():
            op_tags = assets_def.op.tags
            assert op_tags.get(queues.QUEUE_TAG) == queues.QUEUE_BY_GROUP[group], key


def test_scan_chain_assets_share_the_shard_partitions():
    by_key = {k.to_user_string(): a for a in all_assets() for k in a.keys}
    for name in ("file_inventory", "raw_metadata", "catalog_entities"):
        assert by_key[name].partitions_def == SHARDS
        assert by_key[name].backfill_policy is not None
    assert len(SHARDS.get_partition_keys()) == 128


def test_scan_chain_groups_and_queues():
    by_key = {k.to_user_string(): a for a in all_assets() for k in a.keys}
    expected = {"file_inventory": ("scan", "worker_scan"), "raw_metadata": ("extract", "worker_extract"),
                "catalog_entities": ("insert", "worker_insert_bulk")}
    for name, (group, queue) in expected.items():
        assets_def = by_key[name]
        assert set(assets_def.group_names_by_key.values()) == {group}
        assert assets_def.op.tags[queues.QUEUE_TAG] == queue


def test_assets_of_groups_finds_each_group_in_its_own_module():
    from soniquebay_assets.dagster_defs.assets import MODULE_BY_GROUP, assets_of_groups

    everything = all_assets()
    groups = {g for a in everything for g in a.group_names_by_key.values()}
    assert groups == set(MODULE_BY_GROUP)
    for group in groups:
        expected = {k for a in everything if group in a.group_names_by_key.values() for k in a.keys}
        assert {k for a in assets_of_groups([group]) for k in a.keys} == expected, group
