"""The same API over a PostgreSQL catalog (the test catalog copied by `catalog.copy`): listings with every sort
and their cursors, filters, details, similar tracks, covers, metrics and a decision answer as on SQLite."""

from __future__ import annotations

import httpx
import pytest

from soniquebay_assets_tests.api_support import TOKEN, ApiServer, build_catalog, graphql

pytestmark = [pytest.mark.timeout(300)]

PAGE = """query($after: String, $sort: TrackSort, $desc: Boolean, $f: TrackFilterInput) {
  tracks(first: 4, after: $after, sort: $sort, descending: $desc, filter: $f) {
    totalCount pageInfo { endCursor hasNextPage } nodes { id title bpm albumTitle } } }"""


def _walk(base: str, sort: str, desc: bool, filters: dict | None = None) -> list[dict]:
    seen, after = [], None
    while True:
        body = graphql(base, PAGE, {"after": after, "sort": sort, "desc": desc, "f": filters}).json()
        assert "errors" not in body, body
        page = body["data"]["tracks"]
        seen += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]


def test_the_api_over_a_postgresql_catalog(tmp_path, pg_server):
    from soniquebay_assets.catalog import db
    from soniquebay_assets.catalog.copy import copy_catalog

    library = build_catalog(tmp_path)
    url = pg_server.fresh()
    with db.connection(library.data_root / "catalog.db") as source, db.connection(url) as target:
        copy_catalog(source, target, force=True)
    env = {"SONIQUEBAY_CATALOG_URL": url, "SONIQUEBAY_COVERS_DIR": str(library.data_root / "covers")}
    with ApiServer(library.data_root, env=env) as server, ApiServer(library.data_root) as sqlite_server:
        for sort, desc in (("ARTIST", False), ("TITLE", True), ("BPM", False), ("YEAR", True), ("ALBUM", False)):
            on_pg, on_sqlite = _walk(server.base, sort, desc), _walk(sqlite_server.base, sort, desc)
            assert on_pg == on_sqlite, sort  # same rows in the same order, page by page
            assert sorted(n["id"] for n in on_pg) == sorted(library.track_ids.values())
        for filters in ({"text": "alpha"}, {"key": "8A", "compatibleKeys": True}, {"moods": ["happy"]},
                        {"matchStatus": "candidates"}, {"genre": "Jazz", "bpmMin": 142}):
            assert _walk(server.base, "ARTIST", False, filters) == _walk(sqlite_server.base, "ARTIST", False, filters)
        details = """query($id: Int!) { track(id: $id) { title artists genres moods { happy } analysis { bpm camelot }
            external { recordingId } album { title trackCount candidates { releaseId } cover { url } } }
            similar(trackId: $id, k: 3) { score track { id } } library { tracks bpmHistogram { name count } } }"""
        seed = {"id": library.track_ids["Green Valley 1"]}
        on_pg = graphql(server.base, details, seed).json()
        on_sqlite = graphql(sqlite_server.base, details, seed).json()
        assert "errors" not in on_pg and on_pg["data"]["track"] == on_sqlite["data"]["track"]
        assert [s["track"]["id"] for s in on_pg["data"]["similar"]] == [
            s["track"]["id"] for s in on_sqlite["data"]["similar"]]
        assert on_pg["data"]["library"] == on_sqlite["data"]["library"]
        cover = httpx.get(f"{server.base}/covers/album/{library.album_ids['Blue Horizon']}?size=150")
        assert cover.status_code == 200 and cover.headers["content-type"] == "image/jpeg"
        assert httpx.get(f"{server.base}/covers/album/{library.album_ids['Blue Horizon']}?size=150",
                         headers={"If-None-Match": cover.headers["etag"]}).status_code == 304
        assert "soniquebay_tracks 15.0" in httpx.get(f"{server.base}/metrics").text
        reject = graphql(server.base, "mutation($id: Int!) { rejectMatch(albumId: $id) { matchStatus } }",
                         {"id": library.album_ids["Twin Album"]}, token=TOKEN).json()
        assert reject["data"]["rejectMatch"]["matchStatus"] == "unmatched"
        statuses = graphql(server.base, '{ albums(filter: {matchStatus: "unmatched"}) { nodes { title } } }').json()
        assert statuses["data"]["albums"]["nodes"] == [{"title": "Twin Album"}]
