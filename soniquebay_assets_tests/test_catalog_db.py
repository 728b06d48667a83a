"""The catalog database: driver, pragmas, migrations, all-or-nothing batches."""

from __future__ import annotations

import pytest

from soniquebay_assets.catalog.db import (
    CatalogTooNew,
    CatalogUnavailable,
    backend_of,
    connect,
    detect_driver,
    execute_rows,
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


# ------------------------------------------------------------------------------------------ both backends


@pytest.mark.both_backends
def test_migrations_apply_once_on_both_backends(catalog_target):
    versions = [v for v, _, _ in migration_files()]
    conn = connect(catalog_target)
    migrate(conn)
    assert migrate(conn) == []
    recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == versions
    conn.close()


@pytest.mark.both_backends
def test_failed_batch_and_idempotent_upserts_on_both_backends(catalog_target):
    conn = open_catalog(catalog_target)
    with pytest.raises(RuntimeError):
        with transaction(conn):
            conn.execute("INSERT INTO genres(name, name_key) VALUES ('Rock', 'rock')")
            raise RuntimeError("boom in the middle of a batch")
    assert conn.execute("SELECT COUNT(*) FROM genres").fetchone()[0] == 0
    for _ in range(3):
        conn.execute("INSERT INTO genres(name, name_key) VALUES (?, ?) ON CONFLICT(name_key) DO NOTHING",
                     ("Rock", "rock"))
    row = conn.execute("SELECT genre_id, name FROM genres").fetchone()
    assert row["name"] == row[1] == "Rock" and dict(row) == {"genre_id": row[0], "name": "Rock"}
    assert conn.execute("SELECT COUNT(*) FROM genres").fetchone()[0] == 1
    conn.close()


@pytest.mark.both_backends
def test_types_and_defaults_behave_the_same(catalog_target):
    conn = open_catalog(catalog_target)
    with transaction(conn):
        conn.execute("INSERT INTO files(path, raw_path, root, shard, album_folder, size, mtime_ns) "
                     "VALUES (?, ?, '/r', '00', '/r/a', ?, ?)", ("/r/a/é 100%?.flac", b"\xff\x00", 3, 2**62))
    row = conn.execute("SELECT path, raw_path, size, mtime_ns, first_seen FROM files").fetchone()
    assert row[0] == "/r/a/é 100%?.flac" and bytes(row[1]) == b"\xff\x00" and row[2] == 3 and row[3] == 2**62
    assert row[4].endswith("Z") and "T" in row[4]  # same timestamp text on both backends
    # text compares and sorts bytewise, as SQLite does
    with transaction(conn):
        conn.executemany("INSERT INTO genres(name, name_key) VALUES (?, ?)", [("b", "b"), ("B", "B"), ("a", "a")])
    assert [r[0] for r in conn.execute("SELECT name_key FROM genres ORDER BY name_key")] == ["B", "a", "b"]
    conn.close()


@pytest.mark.both_backends
def test_catalog_migrated_by_a_newer_version_is_refused(catalog_target):
    conn = open_catalog(catalog_target)
    newest = max(v for v, _, _ in migration_files())
    conn.execute("INSERT INTO schema_migrations(version, name) VALUES (?, ?)", (newest + 50, "from_the_future.sql"))
    try:
        with pytest.raises(CatalogTooNew, match="newer version"):
            open_catalog(catalog_target)
    finally:
        conn.execute("DELETE FROM schema_migrations WHERE version = ?", (newest + 50,))
        conn.close()


@pytest.mark.both_backends
def test_batched_writes_do_what_one_statement_per_row_does(catalog_target):
    conn = open_catalog(catalog_target)
    upsert = ("INSERT INTO files(path, raw_path, root, shard, album_folder, size, mtime_ns, fingerprint) "
              "VALUES (?, ?, '/r', ?, '/r/a', ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = files.size + excluded.size, "
              "last_changed = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
    rows = [("/r/a/1.flac", b"\xff", "00", 1, 2**62, None), ("/r/a/2.flac", None, "00", 2, 5, "fp%?'2"),
            ("/r/a/3.flac", None, "01", True, 7.0, None)]  # a bool and a float among integers, NULLs, bytes
    with transaction(conn):
        execute_rows(conn, upsert, rows)
        execute_rows(conn, upsert, [rows[0], rows[0]])  # a repeated key: each row counts, as one by one
        execute_rows(conn, "UPDATE files SET fingerprint = COALESCE(?, fingerprint), shard = ? WHERE path = ?",
                     [(None, "02", "/r/a/1.flac"), ("x", "03", "/r/a/3.flac")])
        execute_rows(conn, "DELETE FROM files WHERE path = ? AND shard = ?", [("/r/a/2.flac", "00"), ("/none", "00")])
        execute_rows(conn, "INSERT INTO genres(name, name_key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                     [("Rock", "rock"), ("Rock!", "rock"), ("Jazz", "jazz")])
    files = [tuple(r) for r in conn.execute(
        "SELECT path, raw_path, shard, size, mtime_ns, fingerprint FROM files ORDER BY path")]
    assert [(p, bytes(b) if b is not None else None, *rest) for p, b, *rest in files] == [
        ("/r/a/1.flac", b"\xff", "02", 3, 2**62, None), ("/r/a/3.flac", None, "03", 1, 7, "x")]
    assert [tuple(r) for r in conn.execute("SELECT name, name_key FROM genres ORDER BY name_key")] == [
        ("Jazz", "jazz"), ("Rock", "rock")]
    conn.close()


def test_batched_write_runs_as_one_statement_on_postgresql():
    from soniquebay_assets.catalog import pg

    sql, params = pg.rows_statement(
        "UPDATE files SET fingerprint = COALESCE(?, fingerprint), stage = 'x' WHERE file_id = ?", [(None, 1), (None, 2)])
    assert sql == ("UPDATE files SET fingerprint = COALESCE(NULL, fingerprint), stage = 'x' "
                   "FROM unnest(?::bigint[]) AS batch(p1) WHERE file_id = batch.p1") and params == [[1, 2]]
    insert = "INSERT INTO t(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v"
    assert pg.rows_statement(insert, [(1, "a"), (2, 3.5)]) is None  # mixed kinds: row by row
    assert pg.rows_statement(insert, [(1, 2**60), (2, 3.5)]) is None  # a double would round that integer
    assert pg.rows_statement(insert, [(1, 2), (2, 3.5)])[1] == [[1, 2], [2.0, 3.5]]
    assert pg.rows_statement(insert, [(1, "a"), (1, "b")]) is None  # one statement may not update a row twice
    assert pg.rows_statement("INSERT INTO t(k) VALUES (?), (?)", [(1, 2)]) is None


def test_bad_catalog_urls_are_clear_errors_with_the_password_hidden(tmp_path):
    with pytest.raises(CatalogUnavailable) as unreachable:
        connect("postgresql://someone:s3cret@127.0.0.1:1/catalog")
    assert "s3cret" not in str(unreachable.value) and "someone:***@127.0.0.1:1/catalog" in str(unreachable.value)
    with pytest.raises(CatalogUnavailable, match="unknown scheme"):
        connect("mysql://u:s3cret@h/db")
    with pytest.raises(CatalogUnavailable, match="names no file"):
        connect("sqlite://")
    assert backend_of(f"sqlite:///{tmp_path}/c.db") == ("sqlite", f"{tmp_path}/c.db")
    assert backend_of(tmp_path / "c.db")[0] == "sqlite"


def test_sqlite_ddl_translates_to_postgresql():
    from soniquebay_assets.catalog import pg

    [table] = pg.translate_ddl(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v REAL NOT NULL DEFAULT 0, b BLOB, -- a TEXT comment\n"
        " s TEXT NOT NULL DEFAULT 'INTEGER text', at TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))")
    assert "id BIGSERIAL PRIMARY KEY" in table and "v DOUBLE PRECISION" in table and "b BYTEA" in table
    assert 'DEFAULT \'INTEGER text\'' in table and "comment" not in table and "to_char(now()" in table
    trigger = pg.translate_ddl("CREATE TRIGGER gone AFTER DELETE ON albums BEGIN\n"
                               "  DELETE FROM covers WHERE entity_id = OLD.album_id;\nEND;")
    assert trigger[0].startswith("CREATE OR REPLACE FUNCTION gone_fn()") and "RETURN OLD" in trigger[0]
    assert trigger[-1] == "CREATE TRIGGER gone AFTER DELETE ON albums FOR EACH ROW EXECUTE FUNCTION gone_fn()"
    assert pg.translate("SELECT ? WHERE a LIKE '%?%'") == "SELECT %s WHERE a LIKE '%%?%%'"


@pytest.mark.both_backends
def test_deferred_work_keeps_its_items_when_the_table_stops_listing_kinds(catalog_target, monkeypatch):
    """Migration 0010 rebuilds deferred_work without the CHECKs that listed kinds and entity types (the kinds come
    from the stage registry now): every item keeps its fields, order and claim, and new ids follow the old."""
    from contextlib import nullcontext

    from soniquebay_assets.catalog import db, deferred, pg

    scratch = pg.scratch_schema(catalog_target) if isinstance(catalog_target, str) else nullcontext(catalog_target)
    with scratch as target:
        shipped = migration_files()
        monkeypatch.setattr(db, "migration_files", lambda: [m for m in shipped if m[0] < 10])
        conn = connect(target)
        migrate(conn)
        deferred.enqueue(conn, "covers", "album", [(7, "01"), (3, "00")], now=100.0)
        deferred.enqueue(conn, "enrichment", "track", [(5, "02")], priority="high", now=100.0)
        deferred.claim(conn, "enrichment", "run-1", now=200.0)
        columns = "kind, entity_type, entity_id, shard, priority, not_before, attempts, state, claimed_by, created_at"
        before = conn.execute(f"SELECT {columns} FROM deferred_work ORDER BY work_id").fetchall()
        monkeypatch.setattr(db, "migration_files", lambda: shipped)
        assert "0010_deferred_kinds_from_registry.sql" in migrate(conn)
        assert conn.execute(f"SELECT {columns} FROM deferred_work ORDER BY work_id").fetchall() == before
        deferred.enqueue(conn, "vectors", "track", [(5, "02")], now=300.0)
        ids = [r[0] for r in conn.execute("SELECT work_id FROM deferred_work ORDER BY work_id")]
        assert len(ids) == len(set(ids)) == 4
        with transaction(conn):  # a kind the old CHECK did not list: the catalog code decides, not the table
            conn.execute("INSERT INTO deferred_work (kind, entity_type, entity_id, shard, not_before, created_at,"
                         " updated_at) VALUES ('a_later_stage', 'track', 5, '02', 0, 0, 0)")
        with pytest.raises(ValueError, match="unknown deferred kind 'a_later_stage'"):
            deferred.enqueue(conn, "a_later_stage", "track", [(5, "02")])
        conn.close()
