"""The shard partitions every catalog asset shares: 128 stable keys, an album's tracks always in one."""

from dagster import BackfillPolicy, StaticPartitionsDefinition

from soniquebay_assets.domain.layout import SHARD_KEYS

SHARDS = StaticPartitionsDefinition(SHARD_KEYS)
# One run may materialize any range of shards in a single step (one walk, one process pool).
SINGLE_RUN = BackfillPolicy.single_run()
