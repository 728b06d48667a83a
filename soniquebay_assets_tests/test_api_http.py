"""`soniquebay serve` over HTTP: the real CLI starts uvicorn on a free port and httpx asks it GraphQL and REST
questions about a real scanned catalog; bad input, tokens and error masking included."""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
import sys

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from soniquebay_assets_tests.api_support import ALBUMS, TOKEN, TWIN_A, ApiServer, build_catalog, graphql

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return build_catalog(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def server(library):
    with ApiServer(library.data_root) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.base, timeout=30) as http:
        yield http


def ask(client, query, variables=None, token=None) -> dict:
    response = graphql(None, query, variables, token=token, client=client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def test_tracks_page_through_every_sort_with_cursors(client, library):
    total = sum(a[2] for a in ALBUMS)
    query = """query($after: String, $sort: TrackSort, $desc: Boolean) {
      tracks(first: 4, after: $after, sort: $sort, descending: $desc) {
        totalCount pageInfo { endCursor hasNextPage pageSize } nodes { id title bpm artist albumTitle trackNumber } } }"""
    for sort, desc in (("TITLE", False), ("BPM", True), ("ARTIST", False), ("ID", True), ("YEAR", False)):
        seen, after = [], None
        while True:
            page = ask(client, query, {"after": after, "sort": sort, "desc": desc})["tracks"]
            assert page["totalCount"] == total and page["pageInfo"]["pageSize"] == 4
            seen += page["nodes"]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert sorted(n["id"] for n in seen) == sorted(library.track_ids.values()), sort  # each row once
        if sort == "TITLE":
            assert [n["title"] for n in seen] == sorted(n["title"] for n in seen)
        if sort == "BPM":
            assert [n["bpm"] for n in seen] == sorted((n["bpm"] for n in seen), reverse=True)
        if sort == "ARTIST":
            keys = [(n["artist"], n["trackNumber"]) for n in seen]
            assert [k[0] for k in keys] == sorted(k[0] for k in keys)
    other = ask(client, query, {"sort": "TITLE"})["tracks"]["pageInfo"]["endCursor"]
    body = graphql(None, query, {"after": other, "sort": "BPM"}, client=client).json()
    assert "another listing or sort" in body["errors"][0]["message"]


@pytest.mark.parametrize(("filters", "albums"), [
    ({"text": "desert"}, {"Red Desert"}),
    ({"text": "ALPHA"}, {"Blue Horizon", "Night Drive"}),
    ({"genre": "jazz"}, {"Red Desert"}),
    ({"bpmMin": 121, "bpmMax": 125}, {"Night Drive", "Twin Album"}),
    ({"key": "Am"}, {"Blue Horizon"}),
    ({"key": "8A", "compatibleKeys": True}, {"Blue Horizon", "Night Drive", "Quiet Rooms"}),
    ({"moods": ["happy"]}, {"Night Drive", "Green Valley"}),
    ({"matchStatus": "candidates"}, {"Twin Album"}),
    ({"yearMin": 2002}, set()),
])
def test_track_filters(client, filters, albums):
    found = ask(client, "query($f: TrackFilterInput) { tracks(filter: $f, first: 200) { nodes { albumTitle bpm } } }",
                {"f": filters})["tracks"]["nodes"]
    assert {n["albumTitle"] for n in found} == albums
    if "bpmMin" in filters:
        assert all(121 <= n["bpm"] <= 125 for n in found)


def test_track_with_analysis_external_metadata_and_cover(client, library):
    track_id = library.track_ids["Blue Horizon 1"]
    track = ask(client, """query($id: Int!) { track(id: $id) { id title artists genres bpm key mode camelot
        loudnessLufs moodTags moods { happy relaxed } matchStatus path
        analysis { bpm key mode camelot keyConfidence loudnessLufs status analysisVersion }
        external { source recordingId score } cover { url(size: 150) width height }
        album { id title albumArtist trackCount artists { name } tracks { id } cover { url } } } }""",
                {"id": track_id})["track"]
    assert track["title"] == "Blue Horizon 1" and track["artists"] == ["Alpha Band"] and track["genres"] == ["Rock"]
    assert (track["bpm"], track["key"], track["mode"], track["camelot"]) == (91.0, "A", "minor", "8A")
    assert track["analysis"]["status"] == "ok" and track["analysis"]["analysisVersion"] == 7
    assert track["moodTags"] == ["relaxed"] and track["moods"]["happy"] == pytest.approx(0.2)
    assert track["external"] == [{"source": "musicbrainz", "recordingId": "d4156411-b884-368f-a4cb-7c0101a50001",
                                  "score": 0.97}]
    assert track["path"].endswith("Blue Horizon/01.flac")
    assert track["album"]["trackCount"] == 3 and len(track["album"]["tracks"]) == 3
    assert track["album"]["artists"] == [{"name": "Alpha Band"}]
    assert (track["cover"]["width"], track["cover"]["height"]) == (700, 700)
    picture = client.get(track["cover"]["url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(picture.content)).size == (150, 150)


def test_covers_rest(client, library):
    album_id = library.album_ids["Red Desert"]
    etags = set()
    for size in (150, 300, 600):
        response = client.get(f"/covers/album/{album_id}", params={"size": size})
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(response.content)).size == (size, size)
        assert response.headers["cache-control"] == "public, max-age=300"
        etags.add(response.headers["etag"])
    assert len(etags) == 3
    url = ask(client, "query($id: Int!) { album(id: $id) { cover { url(size: 300) } } }",
              {"id": album_id})["album"]["cover"]["url"]
    versioned = client.get(url)
    assert "immutable" in versioned.headers["cache-control"] and "max-age=31536000" in versioned.headers["cache-control"]
    again = client.get(url, headers={"If-None-Match": versioned.headers["etag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == versioned.headers["etag"]
    track = client.get(f"/covers/track/{library.track_ids['Red Desert 2']}", params={"size": 300})
    assert track.headers["etag"] == versioned.headers["etag"]  # a track shows its album's cover
    assert client.get(f"/covers/album/{library.album_ids['Twin Album']}").status_code == 404  # no picture
    assert client.get("/covers/album/999999").json() == {"error": "no cover for album 999999"}
    assert client.get(f"/covers/album/{album_id}", params={"size": 1200}).status_code == 400
    assert client.get("/covers/label/1").status_code == 404
    assert client.get("/covers/album/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get("/covers/album/1%2F..").status_code == 404


def test_similar_tracks(client, library):
    from soniquebay_assets.catalog import db, vector_search, vectors

    seed = library.track_ids["Green Valley 1"]
    found = ask(client, "query($id: Int!) { similar(trackId: $id, k: 4) { score track { id albumTitle } } }",
                {"id": seed})["similar"]
    assert len(found) == 4 and seed not in [f["track"]["id"] for f in found]
    assert [f["score"] for f in found] == sorted((f["score"] for f in found), reverse=True)
    assert found[0]["track"]["albumTitle"] == "Green Valley"  # the vectors cluster by album
    with db.connection(library.data_root / "catalog.db") as conn:
        vectors.load_extension(conn)
        exact = vector_search.search_similar(conn, track_id=seed, k=4, method="sqlite")
    assert [f["track"]["id"] for f in found] == [e.track_id for e in exact]
    nested = ask(client, "query($id: Int!) { track(id: $id) { similar(k: 2, filter: {excludeSameAlbum: true}) {"
                         " track { albumTitle } } } }", {"id": seed})["track"]["similar"]
    assert len(nested) == 2 and all(n["track"]["albumTitle"] != "Green Valley" for n in nested)
    assert ask(client, "{ similar(trackId: 999999, k: 3) { score } }")["similar"] is None
    body = graphql(None, "query($id: Int!) { similar(trackId: $id, k: 1000) { score } }", {"id": seed},
                   client=client).json()
    assert len(body["data"]["similar"]) == len(library.track_ids) - 1  # every other track, at most 100
    assert "k=1000" in body["extensions"]["warnings"][0]


def test_albums_artists_and_library(client, library):
    albums = ask(client, """{ albums(filter: {matchStatus: "candidates"}) { totalCount nodes { id title matchStatus
        musicbrainzReleaseId candidates { releaseId score durationsScore label } cover { url } } } }""")["albums"]
    assert albums["totalCount"] == 1
    twin = albums["nodes"][0]
    assert twin["title"] == "Twin Album" and twin["cover"] is None and twin["musicbrainzReleaseId"] is None
    assert [c["releaseId"] for c in twin["candidates"]][0] == TWIN_A and twin["candidates"][0]["durationsScore"] == 0.2
    listing = ask(client, "{ albums(first: 50) { nodes { title albumArtist } } }")["albums"]["nodes"]
    assert [(a["albumArtist"], a["title"]) for a in listing] == sorted((a[0], a[1]) for a in ALBUMS)
    artists = ask(client, "{ artists(filter: {text: \"band\"}) { nodes { name trackCount albumCount albums { title }"
                          " } } }")["artists"]["nodes"]
    assert artists == [{"name": "Alpha Band", "trackCount": 5, "albumCount": 2,
                        "albums": [{"title": "Blue Horizon"}, {"title": "Night Drive"}]}]
    summary = ask(client, "{ library { tracks albums artists analysed coveredAlbums bpmHistogram { name count }"
                          " keys { key camelot tracks } moodTags { name count } } }")["library"]
    assert (summary["tracks"], summary["albums"], summary["coveredAlbums"]) == (15, 6, 5)
    assert sum(b["count"] for b in summary["bpmHistogram"]) == 15
    assert {"key": "A minor", "camelot": "8A", "tracks": 3} in summary["keys"]
    assert {m["name"]: m["count"] for m in summary["moodTags"]} == {"happy": 4, "relaxed": 11}


def test_bad_input_is_refused_with_a_message(client, server, library):
    def refused(body, status=400, **kwargs):
        response = client.post("/graphql", json=body, **kwargs) if not isinstance(body, bytes) else client.post(
            "/graphql", content=body, **kwargs)
        assert response.status_code == status, response.text
        return response.json()["errors"][0]["message"]

    assert refused({"query": "{ tracks { nodes { id "}).startswith("Syntax Error")
    assert "Cannot query field 'nope'" in refused({"query": "{ tracks { nodes { nope } } }"})
    assert "no query" in refused({"variables": {}})
    assert "not JSON" in refused(b"{nope", headers={"content-type": "application/json"})
    assert "application/json" in refused(b"query=1", status=415, headers={"content-type": "text/plain"})
    deep = "{ track(id: 1) { album { tracks { album { tracks { album { tracks { album { tracks { album { id } } } } } } } } } } }"
    assert "levels deep" in refused({"query": deep})
    wide = "{ albums(first: 200) { nodes { tracks { similar(k: 100) { track { title } } } } } }"
    assert "values" in refused({"query": wide})
    big = client.post("/graphql", json={"query": "{ tracks(first: 100000) { pageInfo { pageSize } nodes { id } } }"}).json()
    assert big["data"]["tracks"]["pageInfo"]["pageSize"] == 200 and "first=100000" in big["extensions"]["warnings"][0]
    assert "at least 1" in client.post("/graphql", json={"query": "{ tracks(first: 0) { nodes { id } } }"}).json()[
        "errors"][0]["message"]
    nulls = ask(client, "{ track(id: 999999) { id } album(id: -3) { id } artist(id: 0) { id } }")
    assert nulls == {"track": None, "album": None, "artist": None}
    assert client.get("/graphql", params={"query": "mutation { rejectMatch(albumId: 1) { id } }"}).status_code == 405
    assert client.get("/graphql", params={"query": "{ library { tracks } }"}).json()["data"]["library"]["tracks"] == 15
    # decisions need the token, even on loopback; a wrong token is refused on any request
    reject = "mutation($id: Int!) { rejectMatch(albumId: $id) { matchStatus } }"
    twin = library.album_ids["Twin Album"]
    assert "need the API token" in refused({"query": reject, "variables": {"id": twin}}, status=401)
    wrong = client.post("/graphql", json={"query": "{ library { tracks } }"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    # decisions with the token: a bad release id, MusicBrainz unreachable (a refused port here), an unknown album
    accept = "mutation($id: Int!, $r: String!) { acceptMatch(albumId: $id, releaseId: $r) { matchStatus } }"
    messages = []
    for variables in ({"id": twin, "r": "not-an-mbid"}, {"id": twin, "r": TWIN_A}, {"id": 999999, "r": TWIN_A}):
        body = graphql(None, accept, variables, token=TOKEN, client=client).json()
        assert body["data"]["acceptMatch"] is None
        messages.append(body["errors"][0]["message"])
    assert "not a MusicBrainz release id" in messages[0]
    assert "MusicBrainz could not be asked; nothing was changed" in messages[1]
    assert "no album with id 999999" in messages[2]
    for message in messages:
        assert str(library.root) not in message and "Traceback" not in message


def test_healthz_metrics_and_the_page_answer(client, library):
    assert client.get("/healthz").json() == {"status": "ok", "catalog": True, "vector_index_warm": True}
    metrics = {s.name + str(sorted(s.labels.items())): s.value
               for family in text_string_to_metric_families(client.get("/metrics").text) for s in family.samples}
    assert metrics["soniquebay_tracks[]"] == 15 and metrics["soniquebay_albums[]"] == 6
    assert metrics["soniquebay_artists[]"] == 5
    assert metrics["soniquebay_deferred_work[('kind', 'covers'), ('state', 'pending')]"] == 6
    assert metrics["soniquebay_album_matches[('status', 'candidates')]"] == 1
    assert 0 <= metrics["soniquebay_last_scan_age_seconds[]"] < 600
    assert not any(k.startswith("soniquebay_celery") for k in metrics)  # no broker configured
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Blue Horizon" in page.text and "<svg" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/albums/999999", headers={"Accept": "text/html"}).status_code == 404


@pytest.mark.slow  # starts servers of its own
def test_queue_depths_and_stage_durations_in_metrics(library, redis_server, tmp_path):
    """With a broker configured, each Celery queue's depth is the sum of its priority lists (what KEDA reads)."""
    import redis

    url = f"redis://127.0.0.1:{redis_server}/5"
    broker = redis.Redis.from_url(url)
    broker.lpush("worker_vector", "a", "b", "c")
    broker.lpush("worker_vector\x06\x163", "d")
    broker.lpush("worker_scan", "e")
    with ApiServer(library.data_root, env={"SONIQUEBAY_BROKER_URL": url}) as running:
        text = httpx.get(f"{running.base}/metrics", timeout=10).text
    samples = {(s.name, s.labels.get("queue")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("soniquebay_celery_broker_up", None)] == 1
    assert samples[("soniquebay_celery_queue_depth", "worker_vector")] == 4
    assert samples[("soniquebay_celery_queue_depth", "worker_scan")] == 1
    assert samples[("soniquebay_celery_queue_depth", "worker_cover")] == 0


@pytest.mark.slow  # starts servers of its own
def test_beyond_loopback_the_token_guards_everything_but_health_and_metrics(library):
    command = [sys.executable, "-m", "soniquebay_assets.cli.main", "serve", "--data-dir", str(library.data_root),
               "--host", "0.0.0.0", "--port", "1"]
    env = ApiServer(library.data_root, token=None).env
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "SONIQUEBAY_API_TOKEN" in refused.stderr
    short = subprocess.run(command, env={**env, "SONIQUEBAY_API_TOKEN": "short"}, capture_output=True, text=True,
                           timeout=60)
    assert short.returncode == 2 and "too short" in short.stderr
    with ApiServer(library.data_root, host="0.0.0.0") as running, httpx.Client(base_url=running.base) as http:
        assert http.get("/healthz").status_code == 200 and http.get("/metrics").status_code == 200
        for path in ("/graphql?query={library{tracks}}", "/covers/album/1", "/albums/1"):
            response = http.get(path)
            assert response.status_code == 401 and response.json()["errors"][0]["message"].startswith("this server")
        assert http.get("/", headers={"Accept": "text/html"}).headers["location"] == "/login"
        assert http.get("/graphql?query={library{tracks}}", headers={"Authorization": "Bearer wrong-token-xxxxxxx"}
                        ).status_code == 401
        signed = http.get("/graphql?query={library{tracks}}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert signed.json()["data"]["library"]["tracks"] == 15
        login = http.post("/login", data={"token": TOKEN, "next": "https://elsewhere.example/"})
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in login.text
        assert http.get("/", headers={"Accept": "text/html"}).status_code == 200  # the client keeps the cookie
        assert http.post("/login", data={"token": "wrong"}).status_code == 401


@pytest.mark.slow  # starts servers of its own
def test_an_unexpected_failure_is_masked_and_logged(library, tmp_path):
    """A catalog that breaks under the server: the client gets an incident id, never the SQL or a path."""
    data = tmp_path / "data"
    shutil.copytree(library.data_root, data)
    with ApiServer(data) as running:
        with sqlite3.connect(data / "catalog.db") as conn:
            conn.execute("ALTER TABLE track_analysis RENAME TO track_analysis_gone")
        body = httpx.post(f"{running.base}/graphql", json={"query": "{ track(id: 1) { analysis { bpm } } }"}).json()
        message = body["errors"][0]["message"]
        assert message.startswith("internal error (incident ") and "track_analysis" not in message
        assert str(data) not in str(body) and "SELECT" not in str(body)
        page = httpx.get(f"{running.base}/tracks/1", headers={"Accept": "text/html"})
        assert page.status_code == 500 and "track_analysis" not in page.text and str(data) not in page.text
        running.stop()
        assert "no such table: track_analysis" in running.output()  # the operator still sees what happened


@pytest.mark.slow
def test_similar_to_text_loads_the_model_on_first_use(client, library):
    """The text model (the packaged all-MiniLM-L6-v2) loads in the server on the first text query only."""
    query = "query($t: String!) { similarToText(text: $t, k: 5) { score track { id title } } }"
    found = ask(client, query, {"t": "calm folk song in a green valley"})["similarToText"]
    assert len(found) == 5 and len({f["track"]["id"] for f in found}) == 5
    assert [f["score"] for f in found] == sorted((f["score"] for f in found), reverse=True)
    assert all(-1.0 <= f["score"] <= 1.0 for f in found)
    empty = graphql(None, query, {"t": "   "}, client=client).json()
    assert "text is empty" in empty["errors"][0]["message"]


def test_playlists_generated_saved_downloaded_and_deleted(client, library):
    import m3u8

    seed = library.track_ids["Green Valley 1"]
    made = ask(client, """query($r: PlaylistRequestInput!) { generatePlaylist(request: $r) {
        name kind count entries { position trackId reason track { title albumTitle } } } }""",
               {"r": {"kind": "similar", "track": str(seed), "length": 5}})["generatePlaylist"]
    assert len(made) == 1 and made[0]["kind"] == "similar" and made[0]["count"] == 5
    assert made[0]["entries"][0]["trackId"] == seed and made[0]["entries"][0]["track"]["title"] == "Green Valley 1"
    needs = graphql(None, "{ generatePlaylist(request: {kind: \"similar\"}) { name } }", client=client).json()
    assert "needs a seed track" in needs["errors"][0]["message"]

    save = """mutation($n: String!, $r: PlaylistRequestInput!) { savePlaylist(name: $n, request: $r) {
        name kind materializedAt m3u8Url request parts { count entries { trackId path } } } }"""
    variables = {"n": "Valley & friends", "r": {"kind": "path", "fromTrack": str(seed),
                                                "toTrack": str(library.track_ids["Red Desert 3"]), "length": 6}}
    assert graphql(None, save, variables, client=client).status_code == 401
    saved = ask(client, save, variables, token=TOKEN)["savePlaylist"]
    assert saved["name"] == "Valley & friends" and saved["materializedAt"] is None  # the stage has not run yet
    assert saved["request"]["kind"] == "path" and saved["m3u8Url"] == "/playlists/Valley%20%26%20friends.m3u8"
    entries = saved["parts"][0]["entries"]
    assert entries[0]["trackId"] == seed and entries[-1]["trackId"] == library.track_ids["Red Desert 3"]
    listed = ask(client, "{ playlists { name kind } playlist(name: \"nope\") { name } }")
    assert listed == {"playlists": [{"name": "Valley & friends", "kind": "path"}], "playlist": None}

    download = client.get(saved["m3u8Url"])
    assert download.status_code == 200 and download.headers["content-type"].startswith("audio/x-mpegurl")
    assert "attachment" in download.headers["content-disposition"]
    parsed = m3u8.loads(download.text)
    assert [s.uri for s in parsed.segments] == [e["path"] for e in entries]  # a third-party reader agrees
    assert client.get("/playlists/nope.m3u8").status_code == 404
    assert client.get(saved["m3u8Url"], params={"part": 2}).status_code == 404
    assert client.get(saved["m3u8Url"], params={"part": "x"}).status_code == 400
    assert client.get("/playlists/..%2F..%2Fetc%2Fpasswd.m3u8").status_code == 404

    remove = "mutation($n: String!) { deletePlaylist(name: $n) { name filesRemoved } }"
    assert graphql(None, remove, {"n": "Valley & friends"}, client=client).status_code == 401
    assert ask(client, remove, {"n": "Valley & friends"}, token=TOKEN)["deletePlaylist"] == {
        "name": "Valley & friends", "filesRemoved": 0}
    assert client.get(saved["m3u8Url"]).status_code == 404
    gone = graphql(None, remove, {"n": "Valley & friends"}, token=TOKEN, client=client).json()
    assert "no saved playlist named" in gone["errors"][0]["message"]
