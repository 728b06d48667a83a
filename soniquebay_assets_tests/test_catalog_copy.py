"""`soniquebay catalog copy --to postgresql://...` and `--catalog-url`, as a user runs them (real subprocesses)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soniquebay_assets.catalog import db, queries, vector_search, vectors
from soniquebay_assets.domain import embedding_text as et
from soniquebay_assets_tests import vectors_support as vs
from soniquebay_assets_tests.test_cli import library, soniquebay  # noqa: F401  (fixture)


@pytest.fixture()
def sqlite_catalog(library, tmp_path, monkeypatch):  # noqa: F811
    """A data dir whose SQLite catalog holds a scanned library, an error row and two stored vectors."""
    monkeypatch.delenv("SONIQUEBAY_CATALOG_URL", raising=False)
    data = tmp_path / "data"
    soniquebay("scan", str(library), "--data-dir", str(data), "--stages", "catalog", "--json", "--no-progress")
    conn = db.open_catalog(data / "catalog.db")
    vectors.load_extension(conn)
    settings = vectors.reset_space(conn, model_name="test-model", text_dim=4, weights=et.Weights())
    rng = np.random.default_rng(3)
    rows = []
    for track_id in [r[0] for r in conn.execute("SELECT track_id FROM tracks ORDER BY track_id")]:
        vec = rng.standard_normal(settings.dim).astype(np.float32)
        rows.append(vectors.VectorRow(track_id, vec / np.linalg.norm(vec), f"h{track_id}", True, None, "t"))
    with db.transaction(conn):
        vectors.write_vectors(conn, settings, rows)
    conn.close()
    return data


def test_copy_to_postgresql_is_exact_refuses_a_full_target_and_reruns_with_force(sqlite_catalog, pg_server):
    target = pg_server.fresh()
    out = soniquebay("catalog", "copy", "--data-dir", str(sqlite_catalog), "--to", target, "--json")
    report = json.loads(out.stdout)
    assert report["ok"] and report["tables"]["tracks"]["rows"] == 2 and report["tables"]["track_vec"]["rows"] == 2
    assert report["tables"]["scan_errors"]["rows"] >= 1 and not report["mismatches"]

    source, copied = db.open_catalog(sqlite_catalog / "catalog.db"), db.open_catalog(target)
    vectors.load_extension(source)
    try:
        assert list(queries.list_tracks(copied)) == list(queries.list_tracks(source))
        assert queries.catalog_counts(copied) == queries.catalog_counts(source)
        seed = copied.execute("SELECT MIN(track_id) FROM tracks").fetchone()[0]
        assert [r.track_id for r in vector_search.search_similar(copied, track_id=seed, k=3)] == \
            [r.track_id for r in vector_search.search_similar(source, track_id=seed, k=3)]
        # ids keep counting after the copied ones
        new_id = copied.execute("INSERT INTO genres(name, name_key) VALUES ('New', 'new') RETURNING genre_id")
        assert new_id.fetchone()[0] > copied.execute("SELECT MAX(genre_id) FROM genres WHERE name != 'New'").fetchone()[0]
        copied.execute("DELETE FROM genres WHERE name_key = 'new'")
    finally:
        source.close()
        copied.close()

    again = soniquebay("catalog", "copy", "--data-dir", str(sqlite_catalog), "--to", target, check=False)
    assert again.returncode == 2 and "already holds rows" in again.stderr and "--force" in again.stderr
    forced = soniquebay("catalog", "copy", "--data-dir", str(sqlite_catalog), "--to", target, "--force", "--json")
    assert json.loads(forced.stdout)["ok"]

    # the copied catalog is used through --catalog-url like any other
    listed = soniquebay("tracks", "--json", "--data-dir", str(sqlite_catalog.parent / "other"), "--catalog-url", target)
    assert sorted(json.loads(line)["title"] for line in listed.stdout.splitlines()) == ["First", "Second"]


def test_unreachable_or_wrong_urls_exit_2_with_the_password_hidden(sqlite_catalog, pg_server):
    unreachable = "postgresql://someone:hunter2@127.0.0.1:1/catalog"
    missing_db = pg_server.server.replace("postgresql://", "postgresql://postgres:hunter2@") + "/no_such_db_x"
    for url in (unreachable, missing_db, "mysql://someone:hunter2@127.0.0.1/db"):
        proc = soniquebay("catalog", "copy", "--data-dir", str(sqlite_catalog), "--to", url, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "hunter2" not in proc.stderr and "***" in proc.stderr and proc.stdout == ""
        bad = soniquebay("stats", "--data-dir", str(sqlite_catalog), "--catalog-url", url, check=False)
        assert bad.returncode == 2 and "hunter2" not in bad.stderr and "***" in bad.stderr
    check = db.connect(pg_server.fresh())
    try:
        assert db.table_exists(check, "tracks") and check.execute("SELECT COUNT(*) FROM tracks").fetchone()[0] == 0
    finally:
        check.close()


def test_copy_verification_detects_a_difference(sqlite_catalog, pg_server):
    from soniquebay_assets.catalog.copy import copy_catalog, verify

    source, target = db.open_catalog(sqlite_catalog / "catalog.db"), db.open_catalog(pg_server.fresh())
    try:
        assert copy_catalog(source, target)["ok"]
        target.execute("UPDATE tracks SET title = 'Changed' WHERE track_id = (SELECT MIN(track_id) FROM tracks)")
        report = verify(source, target)
        assert not report["ok"] and [m["table"] for m in report["mismatches"]] == ["tracks"]
    finally:
        source.close()
        target.close()


def test_vs_helpers_work_on_the_copied_catalog(sqlite_catalog, pg_server):
    from soniquebay_assets.catalog.copy import copy_catalog

    source, target = db.open_catalog(sqlite_catalog / "catalog.db"), db.open_catalog(pg_server.fresh())
    try:
        copy_catalog(source, target)
        track_id = vs.add_track(target, "/lib/new/1.flac", title="New", artists=["Alpha"], album="One")
        assert track_id > max(r[0] for r in source.execute("SELECT track_id FROM tracks"))
        assert vectors.validate(target)["missing"] == 1
    finally:
        source.close()
        target.close()
