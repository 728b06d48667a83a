"""MusicBrainz, Last.fm and AcoustID answers for the loopback fake server (fake_artwork_server.FakeArtworkServer),
with the services' real field names (modelled on real responses kept in the corpus's picard/ws_data)."""

from __future__ import annotations

from collections.abc import Sequence

from soniquebay_assets_tests.fake_artwork_server import FakeArtworkServer, Reply, json_reply


def artist_credit(name: str, artist_id: str) -> list[dict]:
    return [{"name": name, "joinphrase": "",
             "artist": {"id": artist_id, "name": name, "sort-name": name, "disambiguation": ""}}]


def search_release(release_id: str, title: str, artist: str, artist_id: str, track_count: int, *,
                   score: int = 100, group_id: str = "f5093c06-23e3-404f-aeaa-40f72885ee3a",
                   date: str = "1999-05-01", label: str = "Harvest") -> dict:
    """One entry of a /ws/2/release search answer (no track lengths: searches do not give them)."""
    return {
        "id": release_id, "score": score, "status-id": "4e304316-386d-3409-af2e-78857eec5cfe", "count": 1,
        "title": title, "status": "Official", "artist-credit": artist_credit(artist, artist_id),
        "release-group": {"id": group_id, "type-id": "f529b476-6e62-324f-b0aa-1f3e33d313fc",
                          "primary-type-id": "f529b476-6e62-324f-b0aa-1f3e33d313fc", "title": title,
                          "primary-type": "Album"},
        "date": date, "country": "GB", "release-events": [{"date": date, "area": {"name": "United Kingdom"}}],
        "label-info": [{"catalog-number": "SHVL 804", "label": {"id": "993af7f6-bb99-456b-83e7-5e728ea80a0e",
                                                                 "name": label}}],
        "track-count": track_count, "media": [{"format": "CD", "disc-count": 0, "track-count": track_count}],
    }


def search_answer(releases: Sequence[dict]) -> dict:
    return {"created": "2026-12-02T04:00:00.000Z", "count": len(releases), "offset": 0, "releases": list(releases)}


def release_lookup(release_id: str, title: str, artist: str, artist_id: str, lengths_ms: Sequence[int], *,
                   group_id: str = "f5093c06-23e3-404f-aeaa-40f72885ee3a", date: str = "1999-05-01",
                   label: str = "Harvest", recording_prefix: str = "d4156411-b884-368f-a4cb-7c0101a5",
                   track_credits: dict[int, list[dict]] | None = None) -> dict:
    """A /ws/2/release/ID?inc=recordings+release-groups+labels+artist-credits answer (`track_credits`: position ->
    that track's own artist-credit, e.g. with a featured artist)."""
    tracks = []
    for i, length in enumerate(lengths_ms, start=1):
        credit = (track_credits or {}).get(i) or artist_credit(artist, artist_id)
        recording = {"id": f"{recording_prefix}{i:04d}", "title": f"Track {i}", "length": length,
                     "video": False, "disambiguation": "", "artist-credit": credit}
        tracks.append({"id": f"0aa1c8d5-0000-4000-8000-{i:012d}", "number": str(i), "position": i,
                       "title": f"Track {i}", "length": length, "recording": recording, "artist-credit": credit})
    return {
        "id": release_id, "title": title, "status": "Official", "date": date, "country": "GB",
        "artist-credit": artist_credit(artist, artist_id),
        "release-group": {"id": group_id, "title": title, "primary-type": "Album", "first-release-date": date,
                          "artist-credit": artist_credit(artist, artist_id)},
        "label-info": [{"catalog-number": "SHVL 804", "label": {"id": "993af7f6-bb99-456b-83e7-5e728ea80a0e",
                                                                 "name": label, "sort-name": label}}],
        "media": [{"position": 1, "format": "CD", "title": "", "track-offset": 0, "track-count": len(tracks),
                   "tracks": tracks}],
        "cover-art-archive": {"artwork": False, "count": 0, "front": False, "back": False},
    }


def artist_search_answer(name: str, artist_id: str, score: int = 100) -> dict:
    return {"created": "2026-12-02T04:00:00.000Z", "count": 1, "offset": 0,
            "artists": [{"id": artist_id, "type": "Group", "score": score, "name": name, "sort-name": name,
                         "country": "GB"}]}


def lastfm_artist_answer(name: str, tags: Sequence[str], *, listeners: int = 123456,
                         similar: Sequence[str] = ("Similar One", "Similar Two")) -> dict:
    return {"artist": {
        "name": name, "mbid": "", "url": f"https://www.last.fm/music/{name.replace(' ', '+')}",
        "image": [{"#text": "", "size": "small"}], "streamable": "0", "ontour": "0",
        "stats": {"listeners": str(listeners), "playcount": str(listeners * 20)},
        "similar": {"artist": [{"name": s, "url": f"https://www.last.fm/music/{s}", "image": []} for s in similar]},
        "tags": {"tag": [{"name": t, "url": f"https://www.last.fm/tag/{t}"} for t in tags]},
        "bio": {"links": {"link": {"#text": "", "rel": "original", "href": "https://last.fm"}},
                "published": "01 Jan 2010, 00:00",
                "summary": f"{name} is a <b>test</b> band &amp; more. <a href=\"https://www.last.fm/music/x\">Read more on "
                           f"Last.fm</a>",
                "content": f"{name} is a test band."},
    }}


def acoustid_answer(recording_id: str, title: str, artist: str, score: float = 0.97) -> dict:
    return {"status": "ok", "results": [{
        "id": "9ff43b6a-4f16-427c-93c2-92307ca505e0", "score": score,
        "recordings": [{"id": recording_id, "title": title, "duration": 225,
                        "artists": [{"id": "b8a7c51f-362c-4dcb-a259-bc6e0095f0a6", "name": artist}],
                        "releasegroups": [{"id": "c24e5416-cd2e-4cff-851b-5faa78db98a2", "type": "Album"}]}]}]}


def route_release_search(server: FakeArtworkServer, answers: dict[str, dict], default: dict | None = None) -> None:
    """/ws/2/release answers chosen by the release title in the Lucene query."""
    def reply(query: dict[str, str]) -> Reply:
        text = query.get("query", "")
        for title, answer in answers.items():
            if f'release:"{title}"' in text:
                return json_reply(answer)
        return json_reply(default if default is not None else search_answer([]))

    server.routes["/ws/2/release"] = reply
