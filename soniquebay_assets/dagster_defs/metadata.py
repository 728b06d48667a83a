"""Helpers that turn pipeline stats into materialization metadata a person can read in the UI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import MetadataValue

from soniquebay_assets.logging_prefixes import queue_prefix


def md_table(counts: Mapping[str, int | float], key: str = "reason", value: str = "count") -> MetadataValue:
    if not counts:
        return MetadataValue.md("_none_")
    lines = [f"| {key} | {value} |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    return MetadataValue.md("\n".join(lines))


def shard_summary(shards: Sequence[str]) -> str:
    if not shards:
        return "none"
    return shards[0] if len(shards) == 1 else f"{shards[0]}..{shards[-1]} ({len(shards)} shards)"


def log_prefix(queue: str) -> str:
    """`[WORKER_SCAN]` style prefix for structured logs."""
    return queue_prefix(queue)


def describe_each_shard(context, catalog) -> None:
    """Give each partition of the run its own shard's figures: a run over a range records one materialization
    per shard, and each one then says what that shard holds, beside the run's totals."""
    for shard, metadata in shard_metadata(catalog, sorted(context.partition_keys)).items():
        context.add_asset_metadata(metadata, partition_key=shard)


def report_shard_range(context, catalog, work):
    """Run a catalog-chain asset's `work(shards)` -> (result, log line): log the line, give each partition its
    shard's figures, return the result."""
    result, line = work(sorted(context.partition_keys))
    context.log.info(line)
    describe_each_shard(context, catalog)
    return result


def shard_metadata(catalog, shards: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per shard, the figures its materialization shows (`shard`, `shard_files`, `shard_tracks`, ...)."""
    from soniquebay_assets.catalog import queries

    if not shards:
        return {}
    with catalog.connection() as conn:
        facts = queries.shard_facts(conn, shards)
    return {shard: {"shard": shard, **{f"shard_{k}": v for k, v in facts[shard].items()}} for shard in shards}
