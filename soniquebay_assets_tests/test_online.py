"""Online metadata end to end against a loopback fake of MusicBrainz, Last.fm and AcoustID: matching, candidates,
no result, 503 + Retry-After, malformed JSON, huge body, slow answer, wrong key, rate limit, offline, genres,
the CLI and the Dagster asset with its check. The files' tags are never changed."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta

import pytest

from soniquebay_assets.catalog import deferred
from soniquebay_assets.catalog import external as repo
from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.clients.http import HttpClient
from soniquebay_assets.pipeline.online import fetch_external_metadata, open_services
from soniquebay_assets.pipeline.scan import catalog_shards, extract_shards, inventory_shards, plan_scan
from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests.fake_artwork_server import Reply, fake_clock_http, json_reply, serve
from soniquebay_assets_tests.fake_music_services import (
    acoustid_answer,
    artist_search_answer,
    lastfm_artist_answer,
    release_lookup,
    route_release_search,
    search_answer,
    search_release,
)

NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
LASTFM_KEY = "5e4d3c2b1a0f9e8d7c6b5a4938271605"
ACOUSTID_KEY = "Zq8mXk3PvB"
EXACT_ID = "b84ee12a-09ef-421b-82de-0441a926375b"
EXACT_ARTIST_ID = "83d91898-7763-47d7-b03b-b92132375c47"
OTHER_ID = "1f2e3d4c-0000-4000-8000-000000000001"
GUEST_ID = "5c5c5c5c-0000-4000-8000-00000000005c"
TWIN_A = "2a2a2a2a-0000-4000-8000-00000000000a"
TWIN_B = "2b2b2b2b-0000-4000-8000-00000000000b"


@pytest.fixture()
def server():
    yield from serve()


@pytest.fixture()
def library(tmp_path, make_audio):
    """Three tagged albums and one untagged file, cataloged by the real scan chain."""
    root = tmp_path / "lib"
    for i, seconds in enumerate((2.0, 3.0, 4.0), start=1):
        make_audio(root / "Exact Artist" / "Exact Album" / f"{i:02d}.flac", seconds=seconds, title=f"Song {i}",
                   artist="Exact Artist feat. Guest Star" if i == 2 else "Exact Artist", album="Exact Album", albumartist="Exact Artist", tracknumber=str(i),
                   genre="Rock")
    for i in range(1, 4):
        make_audio(root / "Twin Artist" / "Twin Album" / f"{i:02d}.flac", seconds=2.0, title=f"Twin {i}",
                   artist="Twin Artist", album="Twin Album", albumartist="Twin Artist", tracknumber=str(i))
    for i in range(1, 3):
        make_audio(root / "Nobody" / "Nothing Album" / f"{i:02d}.flac", seconds=2.0, title=f"Void {i}",
                   artist="Nobody", album="Nothing Album", albumartist="Nobody", tracknumber=str(i))
    make_audio(root / "Loose" / "mystery.flac", seconds=12.0)
    originals = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.flac")}
    data = DataDir(tmp_path / "data").ensure()
    conn = open_catalog(data.catalog_path)
    plan = plan_scan(conn, [root])
    inventory_shards(conn, plan.walk, plan.affected)
    extract_shards(conn, plan.affected, workers=1)
    catalog_shards(conn, plan.affected)
    yield {"conn": conn, "root": root, "data": data, "shards": plan.affected, "originals": originals}
    conn.close()


def album_id(conn, title: str) -> int:
    return conn.execute("SELECT album_id FROM albums WHERE title = ?", (title,)).fetchone()[0]


def exact_routes(server) -> None:
    route_release_search(server, {
        "Exact Album": search_answer([
            search_release(EXACT_ID, "Exact Album", "Exact Artist", EXACT_ARTIST_ID, 3, score=100),
            search_release(OTHER_ID, "Exact Album (Live)", "Exact Artist", EXACT_ARTIST_ID, 12, score=71)]),
        "Twin Album": search_answer([
            search_release(TWIN_A, "Twin Album", "Twin Artist", EXACT_ARTIST_ID, 3, score=100),
            search_release(TWIN_B, "Twin Album", "Twin Artist", EXACT_ARTIST_ID, 3, score=100)]),
    })
    server.set(f"/ws/2/release/{EXACT_ID}",
               json_reply(release_lookup(EXACT_ID, "Exact Album", "Exact Artist", EXACT_ARTIST_ID,
                                         [2040, 2980, 4010], track_credits={2: [
                                             {"name": "Exact Artist", "joinphrase": " feat. ",
                                              "artist": {"id": EXACT_ARTIST_ID, "name": "Exact Artist"}},
                                             {"name": "Guest Star", "joinphrase": "",
                                              "artist": {"id": GUEST_ID, "name": "Guest Star"}}]})))
    # Both twins have the right title, artist and count, but lengths 20 s away from the files': not the same.
    for rid in (TWIN_A, TWIN_B):
        server.set(f"/ws/2/release/{rid}",
                   json_reply(release_lookup(rid, "Twin Album", "Twin Artist", EXACT_ARTIST_ID,
                                             [22000, 22000, 22000])))


def services_for(server, http=None, *, lastfm_key=None, acoustid_key=None):
    return open_services(musicbrainz_url=server.base_url, lastfm_url=server.url("/2.0/"),
                         acoustid_url=server.base_url, lastfm_api_key=lastfm_key, acoustid_api_key=acoustid_key,
                         http=http or fake_clock_http(seed=5, retry_connect_errors=False))


def run(library, services, **kwargs):
    return fetch_external_metadata(library["conn"], library["shards"], services=services, now=kwargs.pop("now", NOW),
                                   **kwargs)


def release_requests(server) -> list:
    return [r for r in server.requests if r.path.startswith("/ws/2/release")]


def test_exact_match_ambiguous_and_no_result(library, server):
    exact_routes(server)
    conn = library["conn"]
    stats = run(library, services_for(server))
    by_title = {a["title"]: a for a in repo.list_albums(conn)}
    exact = by_title["Exact Album"]
    assert exact["match_status"] == "matched" and exact["decided_by"] == "auto"
    assert exact["release_id"] == EXACT_ID and exact["release_group_id"] == "f5093c06-23e3-404f-aeaa-40f72885ee3a"
    assert (exact["label"], exact["release_date"], exact["release_track_count"]) == ("Harvest", "1999-05-01", 3)
    assert exact["score"] >= 0.95
    # The tag columns stay as the files say (no release id); the service's answer sits beside them.
    assert exact["tagged_release_id"] is None
    recordings = conn.execute("SELECT t.track_number, e.recording_id FROM track_external e JOIN tracks t "
                              "ON t.track_id = e.track_id WHERE e.source = 'musicbrainz' ORDER BY 1").fetchall()
    assert [r[1] for r in recordings] == [f"d4156411-b884-368f-a4cb-7c0101a5{i:04d}" for i in (1, 2, 3)]
    artist = conn.execute("SELECT artist_id FROM artists WHERE name = 'Exact Artist'").fetchone()[0]
    assert _artist_facts(conn, artist)["musicbrainz"]["musicbrainz_artist_id"] == EXACT_ARTIST_ID
    # A featured artist credited on one of the release's tracks gets its id too, without a search.
    guest = conn.execute("SELECT artist_id FROM artists WHERE name = 'Guest Star'").fetchone()[0]
    assert _artist_facts(conn, guest)["musicbrainz"]["musicbrainz_artist_id"] == GUEST_ID
    assert not any("Guest" in r.query.get("query", "") for r in server.requests if r.path == "/ws/2/artist")

    twin = by_title["Twin Album"]
    assert twin["match_status"] == "candidates" and twin["release_id"] in (TWIN_A, TWIN_B)
    assert {c["release_id"] for c in twin["candidates"]} == {TWIN_A, TWIN_B}
    assert all(c["score"] < 0.85 for c in twin["candidates"])
    assert by_title["Nothing Album"]["match_status"] == "unmatched"
    assert (stats.matched, stats.candidates) == (1, 1)

    # At most search + two lookups per album, and the budget of 3 per album on average holds.
    per_album: dict[str, int] = {}
    for r in release_requests(server):
        key = r.query.get("query", "").split('"')[1] if "query" in r.query else r.path.rsplit("/", 1)[1]
        per_album[key] = per_album.get(key, 0) + 1
    assert per_album["Exact Album"] == 1 and per_album[EXACT_ID] == 1
    assert stats.musicbrainz_requests / stats.albums_selected <= 3
    assert all(r.query.get("fmt") == "json" for r in release_requests(server))
    lookup = next(r for r in server.requests if r.path == f"/ws/2/release/{EXACT_ID}")
    assert lookup.query["inc"] == "recordings+release-groups+labels+artist-credits"
    assert "SoniqueBay-assets/" in lookup.headers["User-Agent"]

    # A second run asks nothing: decided albums are done, "no result" is in the negative cache.
    before = len(release_requests(server))
    again = run(library, services_for(server), now=NOW + timedelta(hours=1))
    assert len(release_requests(server)) == before and again.albums_selected == 0
    # ... until the miss expires.
    later = run(library, services_for(server), now=NOW + timedelta(days=31))
    assert later.albums_selected == 1 and later.unmatched == 2  # Nothing Album searched again
    # The untagged file's album (a folder name, no artist) is never searched: nothing to search on.
    loose = repo.get_album(conn, album_id(conn, "Loose"))
    assert loose["match_status"] == "unmatched" and not any('"Loose"' in r.query.get("query", "")
                                                            for r in server.requests)
    # Tags never change.
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in library["originals"]} == library["originals"]


@pytest.mark.slow
def test_rate_limit_spacing_from_server_timestamps(library, server):
    exact_routes(server)
    http = HttpClient(retry_connect_errors=False, max_retries=1, read_timeout_s=5.0)
    try:
        stats = run(library, services_for(server, http))
    finally:
        http.close()
    mb = [r.at for r in server.requests if r.path.startswith("/ws/2/")]
    assert len(mb) == stats.musicbrainz_requests >= 5
    gaps = [b - a for a, b in zip(mb, mb[1:], strict=False)]
    assert min(gaps) >= 0.95, gaps  # 1 request/s, measured where the requests arrive


@pytest.mark.slow
def test_503_with_retry_after_is_honoured(library, server):
    exact_routes(server)
    search = server.routes["/ws/2/release"]
    calls = {"n": 0}

    def flaky(query):
        calls["n"] += 1
        if calls["n"] == 1:
            return Reply(503, b"busy", {"Retry-After": "2"})
        return search(query)

    server.routes["/ws/2/release"] = flaky
    http = HttpClient(retry_connect_errors=False, max_retries=2, read_timeout_s=5.0)
    try:
        stats = run(library, services_for(server, http), max_albums=1)
    finally:
        http.close()
    assert stats.matched == 1 and stats.failures == {}
    # The albums past the per-run cap wait in the deferred queue, due now (not a failure, no backoff).
    conn = library["conn"]
    assert stats.deferred_later == 3
    rows = conn.execute("SELECT state, attempts, not_before FROM deferred_work WHERE kind = 'enrichment' "
                        "AND entity_type = 'album'").fetchall()
    assert len(rows) == 3 and all(r["state"] == "pending" and r["attempts"] == 0 and r["not_before"] <= NOW.timestamp()
                                  for r in rows)
    first, second = [r.at for r in server.requests if r.path == "/ws/2/release"][:2]
    assert second - first >= 1.95


@pytest.mark.parametrize("reply, reason", [
    (Reply(200, b'{"releases": [ {"id": "x", ', {"Content-Type": "application/json"}), "bad_json"),
    (Reply(200, b"{" + b" " * (5 * 1024 * 1024) + b"}", {"Content-Type": "application/json"}), "too_large"),
    (Reply(200, stream_bytes=6 * 1024 * 1024), "too_large"),  # no Content-Length: cut while streaming
])
def test_malformed_and_huge_answers_go_to_the_negative_cache(library, server, reply, reason):
    server.set("/ws/2/release", reply)
    conn = library["conn"]
    stats = run(library, services_for(server))
    assert stats.failures[f"musicbrainz:{reason}"] == stats.albums_selected == 3
    assert stats.matched == stats.candidates == 0 and stats.unmatched == 1  # "Loose": nothing to search on
    statuses = {a["title"]: a["match_status"] for a in repo.list_albums(conn)}
    assert set(statuses.values()) == {"pending", "unmatched"} and statuses["Loose"] == "unmatched"
    misses = repo.misses_by_reason(conn, NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    assert {k: v for k, v in misses.items() if k.startswith("album:")} == {
        f"album:musicbrainz:failure:{reason}": 3, "album:musicbrainz:miss:no_usable_tags": 1}
    assert run(library, services_for(server), now=NOW + timedelta(minutes=30)).albums_selected == 0
    assert run(library, services_for(server), now=NOW + timedelta(hours=2)).albums_selected == 3


def test_slow_answer_times_out_and_waits_in_the_deferred_queue(library, server):
    exact_routes(server)
    server.set(f"/ws/2/release/{EXACT_ID}", Reply(200, b"{}", {"Content-Type": "application/json"}, delay_s=2.5))
    # Slow but within the timeout: answered normally.
    for rid in (TWIN_A, TWIN_B):
        slow = release_lookup(rid, "Twin Album", "Twin Artist", EXACT_ARTIST_ID, [22000, 22000, 22000])
        server.set(f"/ws/2/release/{rid}", Reply(200, json.dumps(slow).encode(),
                                                 {"Content-Type": "application/json"}, delay_s=0.3))
    http = fake_clock_http(seed=5, retry_connect_errors=False, read_timeout_s=0.5, max_retries=0)
    stats = run(library, services_for(server, http))
    assert stats.failures["musicbrainz:timeout"] == 1 and stats.deferred_retry == 1
    conn = library["conn"]
    exact = album_id(conn, "Exact Album")
    item = conn.execute("SELECT state, not_before FROM deferred_work WHERE kind = 'enrichment' "
                        "AND entity_type = 'album' AND entity_id = ?", (exact,)).fetchone()
    assert item["state"] == "pending" and item["not_before"] > NOW.timestamp()
    assert repo.get_album(conn, exact)["match_status"] == "pending"
    assert stats.candidates == 1  # the other albums went on


def test_offline_defers_everything_and_fails_nothing(library):
    conn = library["conn"]
    services = open_services(musicbrainz_url="http://127.0.0.1:9", lastfm_url="http://127.0.0.1:9/2.0/",
                             acoustid_url="http://127.0.0.1:9", lastfm_api_key=LASTFM_KEY, acoustid_api_key=None)
    try:
        stats = run(library, services)
    finally:
        services.close()
    assert sorted(stats.offline) == ["lastfm", "musicbrainz"] and stats.failures == {
        "musicbrainz:connect_error": 1, "lastfm:connect_error": 1}
    assert stats.http["requests"] == 2  # one refused connection per service, then the run stops asking
    waiting = conn.execute("SELECT entity_type, COUNT(*) FROM deferred_work WHERE kind = 'enrichment' "
                           "AND entity_type IN ('album', 'artist') AND state = 'pending' "
                           "GROUP BY entity_type").fetchall()
    assert dict((r[0], r[1]) for r in waiting) == {"album": 3, "artist": 4}
    assert {a["match_status"] for a in repo.list_albums(conn) if a["title"] != "Loose"} == {"pending"}

    # A deferred run that claimed them backs them off (exponentially) instead of marking them done.
    claim = deferred.claim(conn, "enrichment", "claim-1", shards=library["shards"], now=NOW.timestamp() + 120)
    services = open_services(musicbrainz_url="http://127.0.0.1:9", lastfm_url="http://127.0.0.1:9/2.0/",
                             acoustid_url="http://127.0.0.1:9", lastfm_api_key=None, acoustid_api_key=None)
    try:
        run(library, services, now=NOW + timedelta(minutes=2), claim_id="claim-1")
    finally:
        services.close()
    albums = [c.work_id for c in claim if c.entity_type == "album"]
    states = {r[0] for r in conn.execute(
        f"SELECT state FROM deferred_work WHERE work_id IN ({','.join('?' * len(albums))})", albums)}
    assert states == {"failed"}


def test_lastfm_facts_genres_and_wrong_key(library, server, caplog):
    server.routes["/2.0/"] = lambda q: json_reply(
        lastfm_artist_answer(q["artist"], ["electronic", "seen live", "rock", "female vocalists", "house"]))
    server.set("/ws/2/artist", json_reply(artist_search_answer("Exact Artist", EXACT_ARTIST_ID)))
    conn = library["conn"]
    caplog.set_level(logging.DEBUG)
    stats = run(library, services_for(server, lastfm_key=LASTFM_KEY))
    artist = conn.execute("SELECT artist_id FROM artists WHERE name = 'Exact Artist'").fetchone()[0]
    facts = _artist_facts(conn, artist)["lastfm"]
    assert facts["listeners"] == 123456 and facts["similar_artists"] == ["Similar One", "Similar Two"]
    assert facts["summary"] == "Exact Artist is a test band & more."
    assert facts["tags"][:2] == ["electronic", "seen live"]
    assert _artist_facts(conn, artist)["musicbrainz"]["musicbrainz_artist_id"] == EXACT_ARTIST_ID
    genres = [r[0] for r in conn.execute(
        "SELECT gn.genre FROM track_genres_normalized gn JOIN tracks t ON t.track_id = gn.track_id "
        "WHERE t.title = 'Song 1' ORDER BY gn.position")]
    assert genres[0] == "Rock" and genres[1:] == ["Electronic", "House"]  # own genre first; Rock not repeated
    assert stats.genres_added["Electronic"] >= 3 and "Seen Live" not in stats.genres_added
    assert all(r.query["api_key"] == LASTFM_KEY for r in server.requests if r.path == "/2.0/")

    # A wrong key: Last.fm is switched off for the run, nothing is cached, the key is never reported.
    server.routes["/2.0/"] = lambda q: json_reply({"error": 10, "message": "Invalid API key - You must be "
                                                   "granted a valid key by last.fm"}, status=403)
    later = NOW + timedelta(days=40)
    stats = run(library, services_for(server, lastfm_key=LASTFM_KEY), now=later)
    assert "lastfm" in stats.disabled and stats.failures["lastfm:auth"] == 1
    assert stats.deferred_retry == 0
    blob = json.dumps(stats.as_dict()) + caplog.text
    assert LASTFM_KEY not in blob

    code, out = cli("artists", "--data-dir", str(library["data"].root), "--json")
    listed = {a["name"]: a for a in map(json.loads, out.splitlines())}
    assert code == 0 and LASTFM_KEY not in out
    exact_artist = listed["Exact Artist"]
    assert exact_artist["musicbrainz_artist_id"] == EXACT_ARTIST_ID
    assert exact_artist["musicbrainz_artist_id_source"] == "musicbrainz"
    assert exact_artist["listeners"] == 123456 and exact_artist["genres"] == ["Electronic", "Rock", "House"]
    assert exact_artist["similar_artists"] == ["Similar One", "Similar Two"]


@pytest.mark.skipif(shutil.which("fpcalc") is None, reason="fpcalc not installed (apt-get install libchromaprint-tools)")
def test_acoustid_identifies_an_untagged_track_and_a_wrong_key_is_reported(library, server):
    server.set("/v2/lookup", json_reply(acoustid_answer("16affcc3-9f34-48e5-88dc-68378c4cc208", "Thinking Out Loud",
                                                        "Ed Sheeran")))
    conn = library["conn"]
    stats = run(library, services_for(server, acoustid_key=ACOUSTID_KEY))
    assert stats.tracks_selected == 1 and stats.tracks_identified == 1
    row = conn.execute("SELECT t.title, t.artist_display, e.recording_id, e.title AS found, e.artist, e.score "
                       "FROM track_external e JOIN tracks t ON t.track_id = e.track_id "
                       "WHERE e.source = 'acoustid'").fetchone()
    assert (row["title"], row["found"], row["artist"]) == ("mystery", "Thinking Out Loud", "Ed Sheeran")
    sent = next(r for r in server.requests if r.path == "/v2/lookup")
    assert sent.query["client"] == ACOUSTID_KEY and int(sent.query["duration"]) == 12
    assert len(sent.query["fingerprint"]) > 20

    conn.execute("DELETE FROM track_external WHERE source = 'acoustid'")
    conn.commit()
    server.set("/v2/lookup", json_reply({"status": "error", "error": {"code": 4, "message": "invalid API key"}},
                                        status=400))
    stats = run(library, services_for(server, acoustid_key="wrongkey99"))
    assert stats.failures["acoustid:auth"] == 1 and "wrongkey99" not in json.dumps(stats.as_dict())
    assert "acoustid" in stats.disabled


def cli(*argv: str) -> tuple[int, str]:
    from soniquebay_assets.cli.main import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_albums_and_match_commands(library, server, monkeypatch):
    exact_routes(server)
    run(library, services_for(server))
    data = str(library["data"].root)
    code, out = cli("albums", "--data-dir", data, "--json")
    assert code == 0
    albums = {a["title"]: a for a in map(json.loads, out.splitlines())}
    assert albums["Exact Album"]["musicbrainz_release_id"] == EXACT_ID
    assert albums["Exact Album"]["match_status"] == "matched" and albums["Exact Album"]["match_score"] >= 0.95
    assert albums["Twin Album"]["match_status"] == "candidates" and albums["Twin Album"]["musicbrainz_release_id"] is None
    assert {"album_id", "title", "album_artist", "musicbrainz_release_id", "match_status",
            "match_score"} <= set(albums["Nothing Album"])

    twin = str(albums["Twin Album"]["album_id"])
    monkeypatch.setenv("SONIQUEBAY_MUSICBRAINZ_URL", server.base_url)
    code, out = cli("match", "--data-dir", data, "--album", twin, "--accept", TWIN_B, "--json")
    decided = json.loads(out)
    assert code == 0 and decided["match_status"] == "matched" and decided["musicbrainz_release_id"] == TWIN_B
    assert decided["decided_by"] == "user"
    # The user's decision stands: automatic matching does not revisit the album (only expired misses are).
    again = run(library, services_for(server), now=NOW + timedelta(days=60))
    assert again.albums_selected == 1 and not any('"Twin Album"' in r.query.get("query", "")
                                                   for r in server.requests[-3:])

    code, out = cli("match", "--data-dir", data, "--album", twin, "--reject", "--json")
    assert code == 0 and json.loads(out)["match_status"] == "unmatched"
    assert cli("match", "--data-dir", data, "--album", twin, "--accept", "not-an-id")[0] == 2
    assert cli("match", "--data-dir", data, "--album", "99999", "--reject")[0] == 2
    code, out = cli("albums", "--data-dir", data, "--json", "--status", "unmatched")
    assert twin in {str(json.loads(line)["album_id"]) for line in out.splitlines()}


@pytest.mark.slow
def test_asset_metadata_and_track_count_check(library, server, monkeypatch, tmp_path):
    from dagster import DagsterInstance, materialize

    from soniquebay_assets.dagster_defs.assets.online import external_metadata
    from soniquebay_assets.dagster_defs.partitions import range_tags
    from soniquebay_assets.dagster_defs.resources import CatalogResource

    exact_routes(server)
    monkeypatch.setenv("SONIQUEBAY_MUSICBRAINZ_URL", server.base_url)
    shards = sorted(library["shards"])
    resources = {"catalog": CatalogResource(data_dir_path=str(library["data"].root))}
    with DagsterInstance.ephemeral() as instance:
        result = materialize([external_metadata], instance=instance, resources=resources,
                             tags=range_tags(shards[0], shards[-1]))
        assert result.success
        metadata = {}
        for event in result.get_asset_materialization_events():
            for key, value in event.event_specific_data.materialization.metadata.items():
                metadata.setdefault(key, []).append(getattr(value, "value", value))
        assert sum(metadata["matched"]) >= 1 and sum(metadata["candidates"]) >= 1
        assert sum(metadata["unmatched"]) >= 1
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks)

        # A track of the matched album disappears from the library: the check now fails.
        gone = next((library["root"] / "Exact Artist" / "Exact Album").glob("03.flac"))
        gone.unlink()
        conn = library["conn"]
        plan = plan_scan(conn, [library["root"]])
        inventory_shards(conn, plan.walk, plan.affected)
        catalog_shards(conn, plan.affected)
        result = materialize([external_metadata], instance=instance, resources=resources,
                             tags=range_tags(shards[0], shards[-1]))
        assert result.success
        failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
        assert failed and failed[0].metadata["mismatched_albums"].value == 1


def test_scan_default_stages_include_online():
    from soniquebay_assets.cli.scan import selected_groups

    assert "online" in selected_groups("all") and selected_groups("online") == ["online"]


@pytest.mark.corpus
def test_real_musicbrainz_release_parses(corpus_dir):
    from soniquebay_assets.domain.online_match import AlbumFacts, parse_release, score_candidate

    data = json.loads((corpus_dir / "edge" / "picard" / "ws_data" / "release.json").read_text())
    release = parse_release(data)
    assert release.title == "The Dark Side of the Moon" and release.artist == "Pink Floyd"
    assert release.label == "Harvest" and release.release_group_id == "f5093c06-23e3-404f-aeaa-40f72885ee3a"
    assert release.track_count == len(release.track_lengths_ms) == len(release.recording_ids)
    album = AlbumFacts("Dark Side of the Moon", "Pink Floyd",
                       tuple(length / 1000 + 1 for length in release.track_lengths_ms))
    assert score_candidate(album, release).score >= 0.85
    # Every real answer kept in the corpus parses; a multi-disc release keeps all its discs' tracks in order.
    for path in sorted((corpus_dir / "edge" / "picard" / "ws_data").glob("*.json")):
        parse_release(json.loads(path.read_text()))
    multidisc = json.loads((corpus_dir / "edge" / "picard" / "ws_data" / "release_multidisc.json").read_text())
    parsed = parse_release(multidisc)
    assert len(parsed.track_lengths_ms) == sum(m["track-count"] for m in multidisc["media"]) == parsed.track_count


def test_deferred_enrichment_runs_include_external_metadata():
    from dagster import AssetKey

    from soniquebay_assets.dagster_defs import deferred_sensors as ds
    from soniquebay_assets.dagster_defs.definitions import defs

    job = defs.get_repository_def().get_job("deferred_enrichment_job")
    assert set(job.asset_layer.executable_asset_keys) == {AssetKey("enriched_tracks"), AssetKey("external_metadata")}
    assert set(ds.build_kind_jobs(["metadata"])) == {"enrichment"}


def test_an_answer_of_an_unexpected_shape_is_a_cached_failure(library, server):
    route_release_search(server, {"Exact Album": search_answer([
        search_release(EXACT_ID, "Exact Album", "Exact Artist", EXACT_ARTIST_ID, 3)])})
    odd = release_lookup(EXACT_ID, "Exact Album", "Exact Artist", EXACT_ARTIST_ID, [2000, 3000, 4000])
    odd["media"][0]["position"] = "side A"  # JSON that parses, in a shape the parser did not expect
    server.set(f"/ws/2/release/{EXACT_ID}", json_reply(odd))
    stats = run(library, services_for(server))
    assert stats.failures["musicbrainz:bad_answer"] == 1 and stats.album_failures == 1
    assert stats.unmatched == 3  # the other albums went on
    assert repo.get_album(library["conn"], album_id(library["conn"], "Exact Album"))["match_status"] == "pending"


@pytest.mark.slow
def test_scan_command_runs_the_online_stage(library, server, tmp_path):
    """`soniquebay scan --stages catalog,online` as a user runs it: a subprocess against the fake services."""
    import os
    import subprocess
    import sys

    exact_routes(server)
    data = tmp_path / "cli-data"
    env = {**os.environ, "SONIQUEBAY_MUSICBRAINZ_URL": server.base_url, "SONIQUEBAY_DATA_DIR": str(data)}
    proc = subprocess.run([sys.executable, "-m", "soniquebay_assets.cli.main", "scan", str(library["root"]),
                           "--stages", "catalog,online", "--json"], capture_output=True, text=True, env=env,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout)["stage_metadata"]
    runs = runs if isinstance(runs, list) else [runs]  # one run per contiguous shard range
    totals = [sum(r["external_metadata"][k] for r in runs) for k in ("matched", "candidates", "unmatched")]
    assert totals == [1, 1, 2]
    proc = subprocess.run([sys.executable, "-m", "soniquebay_assets.cli.main", "albums", "--json"],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    statuses = sorted(json.loads(line)["match_status"] for line in proc.stdout.splitlines())
    assert statuses == ["candidates", "matched", "unmatched", "unmatched"]
    albums = {a["album_id"]: a["match_status"] for a in map(json.loads, proc.stdout.splitlines())}
    proc = subprocess.run([sys.executable, "-m", "soniquebay_assets.cli.main", "tracks", "--json"],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    tracks = [json.loads(line) for line in proc.stdout.splitlines()]
    assert tracks and all(t["match_status"] == albums[t["album_id"]] for t in tracks)  # listing and export agree


def test_a_deferred_run_releases_capped_work_and_keeps_the_rest_for_settling(library, server):
    exact_routes(server)
    conn = library["conn"]
    shards = {r[0]: r[1] for r in conn.execute("SELECT album_id, MIN(shard) FROM tracks GROUP BY album_id")}
    deferred.enqueue(conn, "enrichment", "album", shards.items(), now=NOW.timestamp())
    claimed = deferred.claim(conn, "enrichment", "claim-7", shards=sorted(set(shards.values())),
                             now=NOW.timestamp())
    assert len(claimed) == 4
    stats = run(library, services_for(server), max_albums=1, claim_id="claim-7")
    assert stats.matched == 1 and stats.deferred_later == 3
    states = {r["entity_id"]: (r["state"], r["attempts"]) for r in conn.execute(
        "SELECT entity_id, state, attempts FROM deferred_work WHERE kind = 'enrichment' AND entity_type = 'album'")}
    exact = album_id(conn, "Exact Album")
    assert states.pop(exact) == ("in_progress", 1)  # done by this run: settled when the run succeeds
    assert set(states.values()) == {("pending", 0)}  # capped out: back without costing an attempt
    assert deferred.complete_claimed(conn, "claim-7", now=NOW.timestamp()) == 1


def test_a_matched_album_is_offered_to_cover_art_archive(library, server):
    from soniquebay_assets.artwork.sources import build_sources
    from soniquebay_assets.pipeline.covers import fetch_album_covers
    from soniquebay_assets_tests.fake_artwork_server import caa_index, image_bytes, image_reply

    exact_routes(server)
    conn = library["conn"]
    run(library, services_for(server))
    exact = album_id(conn, "Exact Album")
    assert conn.execute("SELECT state FROM deferred_work WHERE kind = 'covers' AND entity_type = 'album' "
                        "AND entity_id = ?", (exact,)).fetchone()["state"] == "pending"
    caa_index(server, "release", EXACT_ID, [("/img/front.jpg", True)])
    server.set("/img/front.jpg", image_reply(image_bytes(600, 600)))
    http = fake_clock_http(seed=9)
    stats = fetch_album_covers(conn, library["shards"], data_dir=library["data"], http=http, now=NOW,
                               sources=build_sources(["coverartarchive"], http=http, caa_base_url=server.base_url))
    assert stats.by_source == {"coverartarchive": 1} and stats.found == 1
    assert conn.execute("SELECT entity_id FROM covers WHERE source = 'coverartarchive'").fetchone()[0] == exact
    # Tags untouched: the album's own release id column is still empty.
    assert conn.execute("SELECT musicbrainz_release_id FROM albums WHERE album_id = ?", (exact,)).fetchone()[0] is None


def _artist_facts(conn, artist_id: int) -> dict[str, dict]:
    """source -> the stored artist_external row of one artist, its JSON columns decoded."""
    out = {}
    for row in conn.execute("SELECT * FROM artist_external WHERE artist_id = ?", (artist_id,)).fetchall():
        item = dict(row)
        item["tags"], item["similar_artists"] = json.loads(item["tags"]), json.loads(item["similar_artists"])
        out[item["source"]] = item
    return out
