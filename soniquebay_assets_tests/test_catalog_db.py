"""The catalog database: driver, pragmas, migrations, all-or-nothing batches."""

from __future__ import annotations

import pytest

from soniquebay_assets.catalog.db import (
    connect,
    detect_driver,
    migrate,
    migration_files,
    open_catalog,
    transaction,
)


def test_driver_can_load_extensions_and_says_which_it_is():
    driver = detect_driver()
    assert driver.name in {"sqlite3", "pysqlite3.dbapi2"}
    assert driver.can_load_extensions  # sqlite-vec needs it; pysqlite3 is the fallback on pyenv builds


def test_file_catalog_uses_wal_and_busy_timeout(tmp_path):
    conn = open_catalog(tmp_path / "catalog.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrations_are_numbered_uniquely_and_apply_once(tmp_path):
    versions = [v for v, _, _ in migration_files()]
    assert versions == sorted(set(versions)) and versions[0] == 1
    conn = connect(tmp_path / "catalog.db")
    applied = migrate(conn)
    assert len(applied) == len(versions)
    assert migrate(conn) == []
    recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == versions


def test_a_failed_batch_leaves_nothing_behind():
    conn = open_catalog(":memory:")
    with pytest.raises(RuntimeError):
        with transaction(conn):
            conn.execute("INSERT INTO genres(name, name_key) VALUES ('Rock', 'rock')")
            raise RuntimeError("boom in the middle of a batch")
    assert conn.execute("SELECT COUNT(*) FROM genres").fetchone()[0] == 0


def test_unique_keys_make_upserts_idempotent():
    conn = open_catalog(":memory:")
    for _ in range(3):
        conn.execute("INSERT INTO genres(name, name_key) VALUES ('Rock', 'rock') ON CONFLICT(name_key) DO NOTHING")
    assert conn.execute("SELECT COUNT(*) FROM genres").fetchone()[0] == 1
