"""A faster SQLite event log for the embedded Dagster instance.

Dagster's SqliteEventLogStorage builds a new SQLAlchemy engine and connection for every event (~12 ms each here),
so a run over every shard spent minutes logging. This subclass keeps one pooled connection per database file, with
WAL and synchronous=NORMAL, remembers the schema checks Dagster repeats on every asset event, writes a step's
materializations of many shards in one transaction per database, records one planned event per asset and range,
and is selected by the dagster.yaml the CLI writes into the data dir.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as db
from sqlalchemy.pool import StaticPool

from soniquebay_assets.dagster_defs.internals import (
    SqlEventLogStorageTable,
    SqliteEventLogStorage,
    create_db_conn_string,
)

MAX_OPEN_DATABASES = 16
# Dagster hands a step's per-partition materializations to store_event_batch only when this is set (the most
# events it buffers per write); without it, every shard's event is three transactions and two serializations.
EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = "1000"


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage with one reused connection per shard (run DB or index DB)."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self._tables_present: set[str] = set()
        self._asset_key_columns: set[str] = set()
        os.environ.setdefault(EVENT_BATCH_SIZE_ENV, EVENT_BATCH_SIZE)
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # noqa: D102
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        """One 'planned' event per asset for a shard range instead of one per shard (half the rows a run writes).

        Dagster's trade-off, accepted here: if such a run fails, its shards show as missing, not failed, in the
        partition view; the run itself still shows as failed with its error.
        """
        return True

    def store_event_batch(self, events: Sequence) -> None:
        """A step's materializations in one transaction per database, as Dagster's PostgreSQL storage does: every
        event in the run and index logs with its tags; the asset's latest-materialization row from the last one."""
        from dagster import DagsterEventType

        kinds = {event.dagster_event_type for event in events}
        if kinds != {DagsterEventType.ASSET_MATERIALIZATION} or len({event.run_id for event in events}) != 1:
            super().store_event_batch(events)
            return
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            event_ids = [conn.execute(SqlEventLogStorageTable.insert().values(**row)).inserted_primary_key[0]
                         for row in rows]
            self._store_asset_event_tags(conn, events, event_ids)
            self._store_asset_event(conn, events[-1], event_ids[-1])

    def has_table(self, table_name: str) -> bool:
        """Remembered once seen: Dagster asks on every asset event, each time through a new engine (~5 ms)."""
        if table_name not in self._tables_present:
            if not super().has_table(table_name):
                return False
            self._tables_present.add(table_name)
        return True

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        """Remembered once seen: Dagster inspects the asset_keys columns on every asset event."""
        if column_name not in self._asset_key_columns:
            if not super()._has_asset_key_col_on_connection(conn, column_name):
                return False
            self._asset_key_columns.add(column_name)
        return True

    def _engine(self, shard: str) -> db.engine.Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = db.create_engine(
                create_db_conn_string(self._base_dir, shard),
                poolclass=StaticPool,  # callers hold _db_lock, so one connection per file is enough
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            db.event.listen(engine, "connect", _tune_connection)
            self._engines[shard] = engine
            while len(self._engines) > MAX_OPEN_DATABASES:
                _, old = self._engines.popitem(last=False)
                old.dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.engine.Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def dispose(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().dispose()


def _tune_connection(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
