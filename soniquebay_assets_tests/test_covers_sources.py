"""Cover sources: embedded pictures and folder images from the shared corpus, Cover Art Archive and Last.fm
against a loopback server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from soniquebay_assets.artwork.sources import (
    CoverArtArchiveSource,
    EmbeddedSource,
    FolderSource,
    LastfmSource,
    SourceFailure,
    build_sources,
    read_embedded_pictures,
)
from soniquebay_assets.clients.coverartarchive import CoverArtArchiveClient
from soniquebay_assets.clients.http import HttpClient
from soniquebay_assets.clients.lastfm import LastfmClient, is_placeholder
from soniquebay_assets.domain.cover_choice import CoverEntity
from soniquebay_assets_tests.fake_artwork_server import (
    PLACEHOLDER_PATH,
    Reply,
    caa_index,
    fake_clock_http,
    image_bytes,
    image_reply,
    json_reply,
    lastfm_images,
    serve,
)

RELEASE = "0273d6df-a811-4cab-b2d3-921bc5349204"
GROUP = "f6ce0a65-d237-4275-a2a3-484d181d4a3e"
API_KEY = "0123456789abcdef0123456789abcdef"

# album folder -> (one track, format flavour) for the four corpus albums with embedded art
EMBEDDED = {
    "LupusMechanicus - Legacy Soundtrack (2020)": ("01 - Uncertain Future.mp3", "APIC"),
    "Wesnoth Project - The Battle for Wesnoth OST (2008)": ("01 - Heroes Rite.m4a", "covr"),
    "Jens Erler - Musix 4 XMoto (2008)": ("01 - Madeira Stew.flac", "PICTURE"),
    "Various Artists - Free Game Music Sampler (Disc 1)": ("01 - Aleksi Aubry-Carlson - Transience.mp3", "APIC"),
}


@pytest.fixture()
def artwork_server():
    yield from serve()


def fake_http(**overrides) -> HttpClient:
    return fake_clock_http(seed=1, **overrides)


def album(**kw) -> CoverEntity:
    base = dict(entity_type="album", entity_id=1, name="Musix 4 XMoto", artist="Jens Erler")
    base.update(kw)
    return CoverEntity(**base)


# -- embedded and folder (shared corpus) ---------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize("folder", sorted(EMBEDDED))
def test_corpus_embedded_art_matches_expected_details(corpus_dir, folder):
    details = json.loads((corpus_dir / "converted" / "EXPECTED_DETAILS.json").read_text())
    track, tag = EMBEDDED[folder]
    path = corpus_dir / "converted" / folder / track
    expected = details[f"converted/{folder}/{track}"]["embedded_art"]
    entity = album(track_paths=(str(path),))
    candidates = EmbeddedSource().find(entity)
    assert len(candidates) == 1
    best = candidates[0]
    assert best.is_front and best.picture_type == expected["picture_type"] == 3
    assert best.origin.endswith("#" + tag)
    assert hashlib.sha256(best.data).hexdigest() == expected["sha256"]
    assert len(best.data) == expected["bytes"] and best.mime == expected["mime"]


@pytest.mark.corpus
def test_corpus_embedded_art_stores_with_expected_size_and_hash(corpus_dir, tmp_path):
    from soniquebay_assets.artwork.image_store import ImageStore

    details = json.loads((corpus_dir / "converted" / "EXPECTED_DETAILS.json").read_text())
    store = ImageStore(tmp_path / "covers")
    for folder, (track, _) in EMBEDDED.items():
        expected = details[f"converted/{folder}/{track}"]["embedded_art"]
        data = read_embedded_pictures(str(corpus_dir / "converted" / folder / track))[0].data
        stored = store.store(data)
        assert stored.sha256 == expected["sha256"]
        assert (stored.width, stored.height, stored.mime) == (expected["width"], expected["height"], expected["mime"])


@pytest.mark.corpus
def test_corpus_folder_jpg_found_only_where_there_is_one(corpus_dir):
    severn = corpus_dir / "converted" / "Martin Severn - Warzone 2100 OST (1999)"
    tracks = tuple(str(p) for p in sorted(severn.glob("*.mp3")))
    assert EmbeddedSource().find(album(track_paths=tracks)) == []
    found = FolderSource().find(album(folders=(str(severn),)))
    assert [Path(c.origin).name for c in found] == ["folder.jpg"]
    data = FolderSource().fetch(found[0])
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (500, 500)
    lupus = corpus_dir / "converted" / "LupusMechanicus - Legacy Soundtrack (2020)"
    assert FolderSource().find(album(folders=(str(lupus),))) == []


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "tag"), [("image.ogg", "METADATA_BLOCK_PICTURE"), ("image.wma", "WM/Picture"),
                                           ("image.flac", "PICTURE"), ("image.ape", "APE")])
def test_other_containers_front_cover_first(corpus_dir, name, tag):
    entity = album(track_paths=(str(corpus_dir / "edge" / "beets" / name),))
    from soniquebay_assets.domain.cover_choice import rank_candidates

    ranked = rank_candidates(EmbeddedSource().find(entity))
    assert ranked and ranked[0].picture_type == 3 and ranked[0].origin.endswith("#" + tag)


def test_unreadable_audio_is_a_miss_not_a_crash(tmp_path):
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x10garbage")
    assert EmbeddedSource().find(album(track_paths=(str(broken), str(tmp_path / "missing.flac")))) == []


def test_opus_metadata_block_picture(tmp_path, make_audio):
    import base64

    import mutagen
    from mutagen.flac import Picture

    path = make_audio(tmp_path / "a.opus", title="t")
    picture = Picture()
    picture.type, picture.mime, picture.data = 3, "image/png", image_bytes(120, 120, "PNG")
    audio = mutagen.File(str(path))
    audio.tags["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode("ascii")]
    audio.save()
    [found] = read_embedded_pictures(str(path))
    assert found.is_front and found.data == picture.data


def test_folder_source_disc_parent_and_artist_images(tmp_path):
    disc = tmp_path / "Artist X" / "Album (2001)" / "CD2"
    disc.mkdir(parents=True)
    (disc.parent / "Cover.JPG").write_bytes(b"x")
    (disc.parent.parent / "artist.png").write_bytes(b"x")
    (disc.parent.parent / "folder.webp").write_bytes(b"x")
    found = FolderSource().find(album(folders=(str(disc),)))
    assert [Path(c.origin).name for c in found] == ["Cover.JPG"]
    artist = CoverEntity(entity_type="artist", entity_id=7, name="artist x", folders=(str(disc.parent),))
    names = [Path(c.origin).name for c in FolderSource().find(artist)]
    assert names == ["artist.png", "folder.webp"]  # folder.* counts because the folder is named after the artist
    other = CoverEntity(entity_type="artist", entity_id=8, name="Someone Else", folders=(str(disc.parent),))
    assert [Path(c.origin).name for c in FolderSource().find(other)] == ["artist.png"]


# -- Cover Art Archive ---------------------------------------------------------------------------------------


def test_caa_release_404_falls_back_to_release_group(artwork_server):
    caa_index(artwork_server, "release-group", GROUP, [("/img/back.jpg", False), ("/img/front.jpg", True)])
    artwork_server.set("/img/front.jpg", Reply(307, b"", {"Location": "/ia/front-1200.jpg"}))
    artwork_server.set("/ia/front-1200.jpg", image_reply(image_bytes(600, 600)))
    with fake_http() as http:
        source = CoverArtArchiveSource(CoverArtArchiveClient(http, artwork_server.base_url))
        from soniquebay_assets.domain.cover_choice import rank_candidates

        ranked = rank_candidates(source.find(album(release_id=RELEASE, release_group_id=GROUP)))
        assert [c.is_front for c in ranked] == [True, False]
        data = source.fetch(ranked[0])
    assert artwork_server.hits(f"/release/{RELEASE}") == 1
    assert artwork_server.hits(f"/release-group/{GROUP}") == 1
    assert data == image_bytes(600, 600)


def test_caa_without_ids_asks_nothing(artwork_server):
    with fake_http() as http:
        source = CoverArtArchiveSource(CoverArtArchiveClient(http, artwork_server.base_url))
        assert source.find(album(release_id=None, release_group_id="not-an-mbid")) == []
    assert artwork_server.requests == []


def test_caa_both_missing_is_a_miss_and_errors_are_failures(artwork_server):
    with fake_http() as http:
        source = CoverArtArchiveSource(CoverArtArchiveClient(http, artwork_server.base_url))
        assert source.find(album(release_id=RELEASE, release_group_id=GROUP)) == []
        artwork_server.set(f"/release/{RELEASE}", Reply(200, b"{not json", {"Content-Type": "application/json"}))
        with pytest.raises(SourceFailure) as info:
            source.find(album(release_id=RELEASE))
        assert info.value.reason == "bad_json"
        artwork_server.set(f"/release/{RELEASE}", Reply(503))
        with pytest.raises(SourceFailure) as info:
            source.find(album(release_id=RELEASE))
        assert info.value.reason == "server_error"


# -- Last.fm -------------------------------------------------------------------------------------------------


def lastfm_route(server, answers):
    """Route /2.0/ by (method, artist[, album]) to a payload dict or a Reply."""
    def route(query):
        key = (query.get("method"), query.get("artist"), query.get("album"))
        answer = answers.get(key, {"error": 6, "message": "not found"})
        return answer if isinstance(answer, Reply) else json_reply(answer)

    server.routes["/2.0/"] = route


def test_lastfm_without_key_is_disabled_and_asks_nothing(artwork_server):
    with fake_http() as http:
        source = LastfmSource(LastfmClient(http, None, artwork_server.url("/2.0/")))
        assert not source.enabled and "SONIQUEBAY_LASTFM_API_KEY" in source.disabled_reason
    assert artwork_server.requests == []


def test_lastfm_album_and_artist_images_with_placeholder_as_miss(artwork_server):
    lastfm_route(artwork_server, {
        ("album.getinfo", "Jens Erler", "Musix 4 XMoto"): {"album": {"image": lastfm_images(artwork_server, "/lf/a.png")}},
        ("artist.getinfo", "Muldjord", None): {"artist": {"image": lastfm_images(artwork_server, PLACEHOLDER_PATH)}},
        ("artist.getinfo", "Cubulo", None): {"artist": {"image": lastfm_images(artwork_server, "/lf/c.jpg")}},
    })
    artwork_server.set("/lf/a.png", image_reply(image_bytes(300, 300, "PNG"), "image/png"))
    with fake_http() as http:
        source = LastfmSource(LastfmClient(http, API_KEY, artwork_server.url("/2.0/")))
        [found] = source.find(album())
        assert found.url.endswith("/lf/a.png") and source.fetch(found) == image_bytes(300, 300, "PNG")
        assert source.find(CoverEntity(entity_type="artist", entity_id=2, name="Muldjord")) == []
        assert len(source.find(CoverEntity(entity_type="artist", entity_id=3, name="Cubulo"))) == 1
        assert source.find(album(name="Nope")) == []  # error 6: not found
    assert all(r.query.get("api_key") == API_KEY for r in artwork_server.requests if r.path == "/2.0/")
    assert is_placeholder("https://lastfm.freetls.fastly.net" + PLACEHOLDER_PATH)


@pytest.mark.parametrize(("answer", "reason"), [
    (Reply(200, b"<html>oops", {"Content-Type": "application/json"}), "bad_json"),
    ({"error": 10, "message": f"Invalid API key {API_KEY}"}, "auth"),
    ({"error": 29, "message": "Rate limit exceeded"}, "rate_limited"),
    (Reply(503, b"busy"), "server_error"),
], ids=["malformed-json", "bad-key", "rate-limit", "503"])
def test_lastfm_failures_have_stable_reasons_and_never_show_the_key(artwork_server, answer, reason):
    lastfm_route(artwork_server, {("album.getinfo", "Jens Erler", "Musix 4 XMoto"): answer})
    with fake_http() as http:
        source = LastfmSource(LastfmClient(http, API_KEY, artwork_server.url("/2.0/")))
        with pytest.raises(SourceFailure) as info:
            source.find(album())
    assert info.value.reason == reason
    assert API_KEY not in str(info.value)


def test_registry_order_comes_from_config():
    with fake_http() as http:
        names = [s.name for s in build_sources(["lastfm", "folder", "embedded"], http=http)]
        assert names == ["lastfm", "folder", "embedded"]
        with pytest.raises(ValueError):
            build_sources(["embedded", "spotify"], http=http)
    with pytest.raises(ValueError):
        build_sources(["coverartarchive"], http=None)


def test_source_registry_names_every_source_once_and_refuses_unknown_names(monkeypatch):
    from soniquebay_assets.artwork.sources import DEFAULT_ORDER, SOURCE_NAMES, SOURCES, build_sources
    from soniquebay_assets.clients.http import HttpClient
    from soniquebay_assets.pipeline.covers import open_sources

    assert SOURCE_NAMES == tuple(SOURCES) and set(DEFAULT_ORDER) <= set(SOURCES)
    assert [s.name for s in build_sources(["folder", "embedded", "folder"])] == ["folder", "embedded"]
    with pytest.raises(ValueError, match="unknown cover source"):
        build_sources(["embedded", "flickr"])
    made: list[HttpClient] = []
    original_init = HttpClient.__init__

    def remember(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(HttpClient, "__init__", remember)
    with pytest.raises(ValueError, match="flickr"):
        open_sources(["embedded", "flickr"], lastfm_api_key=None)
    assert len(made) == 1 and made[0]._client.is_closed  # the client made for the sources is not leaked
