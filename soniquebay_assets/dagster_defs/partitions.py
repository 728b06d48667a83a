"""The shard partitions every catalog asset shares: 128 stable keys, an album's tracks always in one."""

import functools
from collections.abc import Sequence

from dagster import BackfillPolicy, MaterializeResult, StaticPartitionsDefinition, asset

from soniquebay_assets.dagster_defs.internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    copy_record,
)
from soniquebay_assets.domain.layout import SHARD_KEYS
from soniquebay_assets.queues import op_tags_for
from soniquebay_assets.settings import host_label

SHARDS = StaticPartitionsDefinition(SHARD_KEYS)
# One run may materialize any range of shards in a single step (one walk, one process pool).
SINGLE_RUN = BackfillPolicy.single_run()


def shard_asset(group: str, **kwargs):
    """@asset over the shards, one step per shard range, routed to its group's Celery queue by op_tags.
    Every materialization records the host that ran the step (`host` metadata)."""
    decorate = asset(group_name=group, partitions_def=SHARDS, backfill_policy=SINGLE_RUN,
                     op_tags=op_tags_for(group), **kwargs)

    def wrap(compute):
        @functools.wraps(compute)
        def with_host(*args, **kw):
            result = compute(*args, **kw)
            if isinstance(result, MaterializeResult):
                result = copy_record(result, metadata={**(result.metadata or {}), "host": host_label()})
            return result

        return decorate(with_host)

    return wrap


def range_tags(start: str | Sequence[str], end: str | None = None) -> dict[str, str]:
    """Tags that make one run cover start..end (or the range spanning a list of shards) in one step per asset."""
    if end is None:
        keys = [start] if isinstance(start, str) else list(start)
        start, end = min(keys), max(keys)
    return {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
