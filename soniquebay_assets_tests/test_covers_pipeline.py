"""Cover stage end to end: a catalog built from (a copy of) the corpus, local and loopback remote sources,
refresh selection, the negative cache with TTL, the Dagster assets, the CLI, and the API key kept out of
everything it could leak into."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from soniquebay_assets.artwork.sources import build_sources
from soniquebay_assets.catalog import covers as repo
from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.clients.http import HttpClient
from soniquebay_assets.pipeline.covers import coverage_summary, fetch_album_covers, fetch_artist_images
from soniquebay_assets.pipeline.scan import catalog_shards, extract_shards, inventory_shards, plan_scan
from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests.fake_artwork_server import (
    PLACEHOLDER_PATH,
    Reply,
    caa_index,
    fake_clock_http,
    image_bytes,
    image_reply,
    json_reply,
    lastfm_images,
    png_bomb,
    serve,
)

pytestmark = [pytest.mark.corpus, pytest.mark.both_backends]

API_KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
XMOTO = ("Musix 4 XMoto", "0273d6df-a811-4cab-b2d3-921bc5349204")
SEVERN_FOLDER = "Martin Severn - Warzone 2100 OST (1999)"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture()
def artwork_server():
    yield from serve()


@pytest.fixture()
def library(corpus_dir, tmp_path, data_dir):
    """A writable copy of converted/ (so a test may remove folder.jpg) cataloged by the real scan chain."""
    root = tmp_path / "lib"
    shutil.copytree(corpus_dir / "converted", root, ignore=shutil.ignore_patterns("*.json"))
    data = DataDir(data_dir).ensure()
    conn = open_catalog(data.catalog_url)
    plan = plan_scan(conn, [root])
    inventory_shards(conn, plan.walk, plan.affected)
    extract_shards(conn, plan.affected, workers=1)
    catalog_shards(conn, plan.affected)
    yield {"conn": conn, "root": root, "data": data, "shards": plan.affected}
    conn.close()


def quiet_http(**overrides) -> HttpClient:
    return fake_clock_http(seed=3, **overrides)


def get_cover(conn, entity_type: str, entity_id: int) -> dict | None:
    row = conn.execute("SELECT * FROM covers WHERE entity_type = ? AND entity_id = ?",
                       (entity_type, entity_id)).fetchone()
    return None if row is None else {**dict(row), "thumbnails": json.loads(row["thumbnails"])}


def delete_cover(conn, entity_type: str, entity_id: int) -> None:
    conn.execute("DELETE FROM covers WHERE entity_type = ? AND entity_id = ?", (entity_type, entity_id))


def album_id(conn, title: str) -> int:
    return conn.execute("SELECT album_id FROM albums WHERE title = ?", (title,)).fetchone()[0]


def test_local_sources_cover_every_corpus_album(library, corpus_dir):
    conn, data = library["conn"], library["data"]
    stats = fetch_album_covers(conn, library["shards"], data_dir=data, sources=build_sources(["embedded", "folder"]),
                               now=NOW)
    assert (stats.selected, stats.found, stats.misses) == (5, 5, 0)
    assert dict(stats.by_source) == {"embedded": 4, "folder": 1}
    details = json.loads((corpus_dir / "converted" / "EXPECTED_DETAILS.json").read_text())
    expected_sha = {}
    for path, info in details.items():
        title = json.loads((corpus_dir / "converted" / "EXPECTED.json").read_text())[path]["album"]
        if info["embedded_art"]:
            expected_sha[title] = info["embedded_art"]["sha256"]
    folder_jpg = (corpus_dir / "converted" / SEVERN_FOLDER / "folder.jpg").read_bytes()
    expected_sha["Warzone 2100 OST"] = hashlib.sha256(folder_jpg).hexdigest()
    rows = {r["name"]: r for r in repo.list_covers(conn, "album")}
    assert {name: r["sha256"] for name, r in rows.items()} == expected_sha
    assert (rows["Warzone 2100 OST"]["width"], rows["Warzone 2100 OST"]["source"]) == (500, "folder")
    assert (rows["The Battle for Wesnoth OST"]["mime"], rows["The Battle for Wesnoth OST"]["width"]) == ("image/png", 200)
    for row in rows.values():
        stored = data.covers / row["path"]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == row["sha256"]
        for thumb in json.loads(row["thumbnails"]).values():
            assert (data.covers / thumb).is_file()
    # the database holds paths, never image bytes
    assert conn.execute("SELECT MAX(LENGTH(thumbnails) + LENGTH(path)) FROM covers").fetchone()[0] < 1000
    assert coverage_summary(conn, "album")["coverage_pct"] == 100.0


def test_refresh_selects_only_albums_without_a_cover(library):
    conn, data = library["conn"], library["data"]
    sources = build_sources(["embedded", "folder"])
    fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, now=NOW)
    again = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, now=NOW)
    assert (again.without_cover, again.selected, again.found) == (0, 0, 0)
    delete_cover(conn, "album", album_id(conn, XMOTO[0]))
    third = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, now=NOW)
    assert (third.selected, third.found, dict(third.by_source)) == (1, 1, {"embedded": 1})
    files = [p for p in data.covers.rglob("*") if p.is_file() and "thumbs" not in p.parts]
    assert len(files) == 5  # the re-found picture was already on disk: stored once


def test_negative_cache_skips_until_the_ttl_expires(library, artwork_server):
    conn, data = library["conn"], library["data"]
    (library["root"] / SEVERN_FOLDER / "folder.jpg").unlink()
    with quiet_http() as http:
        sources = build_sources(["folder", "coverartarchive"], http=http, caa_base_url=artwork_server.base_url)
        first = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, http=http, now=NOW)
        assert first.found == 0 and first.misses == 5  # no folder images; the archive answers 404 everywhere
        asked = len(artwork_server.requests)
        assert asked > 0
        cached = repo.cached_misses(conn, "album", [album_id(conn, XMOTO[0])])
        assert cached[album_id(conn, XMOTO[0])]["coverartarchive"]["kind"] == "miss"
        second = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, http=http,
                                    now=NOW + timedelta(hours=2))
        assert (second.selected, second.skipped_cached) == (0, 5)
        assert len(artwork_server.requests) == asked  # nothing asked again
        # two days later the local misses (1-day TTL) expire, the archive's (30 days) do not
        third = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, http=http,
                                   now=NOW + timedelta(days=2))
        assert third.selected == 5 and len(artwork_server.requests) == asked
        assert dict(third.by_priority) == {"low": 5}  # retries come after new entities
        later = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, http=http,
                                   now=NOW + timedelta(days=31))
        assert later.selected == 5 and len(artwork_server.requests) > asked


def test_cover_art_archive_release_group_fallback_bomb_and_failure(library, artwork_server):
    conn, data = library["conn"], library["data"]
    rows = {r["title"]: r for r in conn.execute("SELECT * FROM albums")}
    xmoto, lupus, sampler = rows["Musix 4 XMoto"], rows["Legacy Soundtrack"], rows["Free Game Music Sampler"]
    caa_index(artwork_server, "release", xmoto["musicbrainz_release_id"], [("/img/xmoto.jpg", True)])
    artwork_server.set("/img/xmoto.jpg", Reply(307, b"", {"Location": "/ia/xmoto-1200.jpg"}))
    artwork_server.set("/ia/xmoto-1200.jpg", image_reply(image_bytes(1200, 1200)))
    caa_index(artwork_server, "release-group", lupus["musicbrainz_release_group_id"], [("/img/lupus.png", True)])
    artwork_server.set("/img/lupus.png", image_reply(image_bytes(800, 800, "PNG"), "image/png"))
    caa_index(artwork_server, "release", sampler["musicbrainz_release_id"], [("/img/bomb.png", True)])
    artwork_server.set("/img/bomb.png", image_reply(png_bomb(), "image/png"))
    with quiet_http() as http:
        sources = build_sources(["coverartarchive"], http=http, caa_base_url=artwork_server.base_url)
        stats = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, http=http, now=NOW)
    assert stats.found == 2 and dict(stats.by_source) == {"coverartarchive": 2}
    assert stats.failures == {"coverartarchive:rejected_too_many_pixels": 1}
    assert get_cover(conn, "album", xmoto["album_id"])["width"] == 1200
    lupus_cover = get_cover(conn, "album", lupus["album_id"])
    assert lupus_cover["mime"] == "image/png" and lupus_cover["origin"].endswith("/img/lupus.png")
    assert set(lupus_cover["thumbnails"]) == {"150", "300", "600"}
    assert artwork_server.hits(f"/release/{lupus['musicbrainz_release_id']}") == 1  # 404, then the group
    assert get_cover(conn, "album", sampler["album_id"]) is None
    # Albums without MusicBrainz ids were never sent to the archive.
    assert all("/release" in r.path or r.path.startswith(("/img", "/ia")) for r in artwork_server.requests)
    summary = coverage_summary(conn, "album")
    assert summary["cached_misses"] == {"coverartarchive:rejected_too_many_pixels": 1}
    assert stats.no_source == 2  # the two albums without MusicBrainz ids: nothing to ask, nothing cached


def test_server_errors_are_failures_with_a_short_ttl_and_the_breaker_stops_asking(library, artwork_server):
    conn, data = library["conn"], library["data"]

    def down(query):
        return Reply(503, b"maintenance")

    for scope in ("release", "release-group"):
        for row in conn.execute(f"SELECT musicbrainz_{scope.replace('-', '_')}_id FROM albums"):
            if row[0]:
                artwork_server.routes[f"/{scope}/{row[0]}"] = down
    with quiet_http(max_retries=0, breaker_threshold=2) as http:
        sources = build_sources(["coverartarchive"], http=http, caa_base_url=artwork_server.base_url)
        stats = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, http=http, now=NOW)
    assert stats.failures["coverartarchive:server_error"] == 2
    assert stats.failures["coverartarchive:circuit_open"] == 1
    assert len(artwork_server.requests) == 2
    cache = repo.cached_misses(conn, "album", [r[0] for r in conn.execute("SELECT album_id FROM albums")])
    failures = [row for per in cache.values() for row in per.values() if row["kind"] == "failure"]
    assert len(failures) == 2  # circuit_open is not cached: nothing was learned
    expires = {datetime.fromisoformat(r["expires_at"].replace("Z", "+00:00")) for r in failures}
    assert expires == {NOW + timedelta(hours=1)}


def test_lastfm_albums_and_artists_key_never_leaks(library, artwork_server, caplog):
    conn, data = library["conn"], library["data"]
    (library["root"] / SEVERN_FOLDER / "folder.jpg").unlink()
    (library["root"] / SEVERN_FOLDER / "artist.jpg").write_bytes(image_bytes(400, 400, color=(0, 90, 0)))

    def route(query):
        method, artist, album = query.get("method"), query.get("artist"), query.get("album")
        if method == "album.getinfo" and (artist, album) == ("Martin Severn", "Warzone 2100 OST"):
            return json_reply({"album": {"image": lastfm_images(artwork_server, "/lf/severn.jpg")}})
        if method == "artist.getinfo" and artist == "Muldjord":
            return json_reply({"artist": {"image": lastfm_images(artwork_server, "/lf/muldjord.jpg")}})
        if method == "artist.getinfo" and artist == "Cubulo":
            return json_reply({"error": 10, "message": f"Invalid API key {query.get('api_key')}"})
        if method == "artist.getinfo":
            return json_reply({"artist": {"image": lastfm_images(artwork_server, PLACEHOLDER_PATH)}})
        return json_reply({"error": 6, "message": "Album not found"})

    artwork_server.routes["/2.0/"] = route
    artwork_server.set("/lf/severn.jpg", image_reply(image_bytes(300, 300, color=(9, 9, 200))))
    artwork_server.set("/lf/muldjord.jpg", image_reply(image_bytes(300, 300, color=(200, 9, 9))))
    caplog.set_level(logging.DEBUG)
    with quiet_http(secrets=[API_KEY]) as http:
        sources = build_sources(["embedded", "folder", "lastfm"], http=http, lastfm_api_key=API_KEY,
                                lastfm_base_url=artwork_server.url("/2.0/"))
        albums = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, http=http, now=NOW)
        artists = fetch_artist_images(conn, library["shards"], data_dir=data, sources=sources, http=http, now=NOW)
    assert dict(albums.by_source) == {"embedded": 4, "lastfm": 1}
    assert dict(artists.by_source) == {"folder": 1, "lastfm": 1}
    images = {r["name"]: r for r in repo.list_covers(conn, "artist")}
    assert images["Martin Severn"]["source"] == "folder" and images["Muldjord"]["source"] == "lastfm"
    assert artists.failures == {"lastfm:auth": 1}
    assert "Various Artists" not in images and not any(
        r.query.get("artist") == "Various Artists" and r.query.get("method") == "artist.getinfo"
        for r in artwork_server.requests)
    assert any(r.query.get("api_key") == API_KEY for r in artwork_server.requests)  # really used
    if getattr(conn, "dialect", "sqlite") == "sqlite":
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for path in data.root.glob("catalog.db*"):
            assert API_KEY.encode() not in path.read_bytes(), path
    else:  # nowhere in the server catalog's text either
        for table in ("covers", "cover_misses", "scan_errors"):
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            assert API_KEY not in repr([tuple(r) for r in rows]), table
    assert API_KEY not in caplog.text
    assert API_KEY not in json.dumps(albums.as_dict()) + json.dumps(artists.as_dict())


def test_lastfm_without_key_is_reported_disabled(library):
    with quiet_http() as http:
        sources = build_sources(["folder", "lastfm"], http=http, lastfm_api_key=None)
        stats = fetch_artist_images(library["conn"], library["shards"], data_dir=library["data"], sources=sources,
                                    http=http, now=NOW)
    assert "SONIQUEBAY_LASTFM_API_KEY" in stats.disabled_sources["lastfm"]
    assert stats.http["requests"] == 0


def test_dagster_assets_and_cli(library, artwork_server, monkeypatch):
    from dagster import materialize

    from soniquebay_assets.cli.main import main
    from soniquebay_assets.dagster_defs.assets.covers import album_covers, artist_images
    from soniquebay_assets.dagster_defs.partitions import range_tags
    from soniquebay_assets.dagster_defs.resources import CatalogResource

    monkeypatch.delenv("SONIQUEBAY_LASTFM_API_KEY", raising=False)
    config = {"sources": ["embedded", "folder", "coverartarchive", "lastfm"],
              "coverartarchive_url": artwork_server.base_url, "lastfm_url": artwork_server.url("/2.0/")}
    result = materialize(
        [album_covers, artist_images],
        resources={"catalog": CatalogResource(data_dir_path=str(library["data"].root))},
        run_config={"ops": {"album_covers": {"config": config}, "artist_images": {"config": config}}},
        tags=range_tags(library["shards"]),
    )
    assert result.success
    events = result.get_asset_materialization_events()
    by_asset: dict[str, list] = {}
    for event in events:
        mat = event.event_specific_data.materialization
        by_asset.setdefault(mat.asset_key.to_user_string(), []).append(mat.metadata)
    album_meta = by_asset["album_covers"][-1]
    assert album_meta["coverage_pct"].value == 100.0
    assert "embedded" in album_meta["pictures_by_source"].value
    assert Path(album_meta["contact_sheet"].value).is_file()
    assert "lastfm" in by_asset["artist_images"][-1]["disabled_sources"].value
    assert artwork_server.requests == []  # every album was covered locally first
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in result.get_asset_check_evaluations()}
    assert checks == {("album_covers", "cover_files_present"): True,
                      ("artist_images", "cover_files_present"): True}

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["covers", "--json", "--data-dir", str(library["data"].root)]) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 5
    for item in lines:
        assert {"entity_type", "entity_id", "name", "source", "path", "width", "height"} <= set(item)
        assert Path(item["path"]).is_file()
    assert {i["name"]: i["source"] for i in lines}["Warzone 2100 OST"] == "folder"


def test_the_covers_assets_ask_last_fm_where_the_online_stage_does(library, artwork_server, monkeypatch):
    """No `lastfm_url` in the asset config: the Last.fm source asks SONIQUEBAY_LASTFM_URL, like the online stage."""
    from dagster import materialize

    from soniquebay_assets.dagster_defs.assets.covers import artist_images
    from soniquebay_assets.dagster_defs.partitions import range_tags
    from soniquebay_assets.dagster_defs.resources import CatalogResource

    artwork_server.routes["/2.0/"] = lambda query: json_reply({"error": 6, "message": "Artist not found"})
    monkeypatch.setenv("SONIQUEBAY_LASTFM_URL", artwork_server.url("/2.0/"))
    monkeypatch.setenv("SONIQUEBAY_LASTFM_API_KEY", API_KEY)
    result = materialize([artist_images], resources={"catalog": CatalogResource(data_dir_path=str(library["data"].root))},
                         run_config={"ops": {"artist_images": {"config": {"sources": ["lastfm"]}}}},
                         tags=range_tags(library["shards"]))
    assert result.success
    asked = [r for r in artwork_server.requests if r.path == "/2.0/"]
    assert asked and {r.query.get("method") for r in asked} == {"artist.getinfo"}


def test_non_image_body_is_rejected_and_the_next_candidate_used(library, artwork_server):
    conn, data = library["conn"], library["data"]
    xmoto = conn.execute("SELECT * FROM albums WHERE title = ?", (XMOTO[0],)).fetchone()
    caa_index(artwork_server, "release", xmoto["musicbrainz_release_id"],
              [("/img/html.jpg", True), ("/img/back.jpg", False)])
    artwork_server.set("/img/html.jpg", Reply(200, b"<html>Service unavailable</html>", {"Content-Type": "image/jpeg"}))
    artwork_server.set("/img/back.jpg", image_reply(image_bytes(500, 500)))
    with quiet_http() as http:
        sources = build_sources(["coverartarchive"], http=http, caa_base_url=artwork_server.base_url)
        stats = fetch_album_covers(conn, library["shards"], data_dir=data, sources=sources, http=http, now=NOW)
    cover = get_cover(conn, "album", xmoto["album_id"])
    assert cover is not None and cover["origin"].endswith("/img/back.jpg")  # the front was not an image
    assert artwork_server.hits("/img/html.jpg") == 1
    assert stats.found >= 1


def test_deleted_album_loses_its_cover_rows_and_prune_removes_unused_files(library):
    from soniquebay_assets.artwork.image_store import prune_unreferenced

    conn, data = library["conn"], library["data"]
    fetch_album_covers(conn, library["shards"], data_dir=data, sources=build_sources(["embedded", "folder"]), now=NOW)
    xmoto = album_id(conn, XMOTO[0])
    sha = get_cover(conn, "album", xmoto)["sha256"]
    repo.record_miss(conn, "album", xmoto, "lastfm", kind="miss", reason="not_found", now="x", expires_at="y")
    conn.execute("DELETE FROM tracks WHERE album_id = ?", (xmoto,))
    conn.execute("DELETE FROM albums WHERE album_id = ?", (xmoto,))
    assert get_cover(conn, "album", xmoto) is None
    assert repo.cached_misses(conn, "album", [xmoto]) == {}
    before = {p.name for p in data.covers.rglob("*") if p.is_file()}
    removed = prune_unreferenced(data.covers, repo.referenced_hashes(conn))
    after = {p.name for p in data.covers.rglob("*") if p.is_file()}
    assert removed == 2 and before - after == {f"{sha}.jpg", f"{sha}_150.jpg"}  # 200 px original + one thumbnail
    assert all(sha not in name for name in after)
