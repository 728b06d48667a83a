"""Saved playlists pushed to a real Subsonic server (supysonic from PyPI, started here over a corpus folder):
pushed twice -> one playlist with the right songs in order, updated in place; wrong credentials -> exit 2 naming
the server, never the password; server down -> the push waits; a garbage answer -> an error record; a file the
server does not know -> reported with its reason. A loopback fake stands in only for garbage and for the token
handshake of API >= 1.13 servers (Navidrome, Gonic: not installable from PyPI)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from pathlib import Path

import httpx
import pytest

from soniquebay_assets import settings
from soniquebay_assets.catalog import db
from soniquebay_assets.catalog import playlists as repo
from soniquebay_assets.cli.main import main
from soniquebay_assets.clients.http import HttpClient
from soniquebay_assets.clients.subsonic import SubsonicClient, SubsonicSetupError
from soniquebay_assets.pipeline import playlists as pipeline
from soniquebay_assets_tests.fake_artwork_server import Reply, serve
from soniquebay_assets_tests.pg_cluster import free_port
from soniquebay_assets_tests.playlists_support import clean_subsonic_env, start_supysonic, stop, subsonic_env
from soniquebay_assets_tests.scan_helpers import scan_catalog


@pytest.fixture(scope="module")
def supysonic(corpus_dir, tmp_path_factory):
    server = start_supysonic(tmp_path_factory.mktemp("supysonic"), corpus_dir / "music")
    yield server
    stop(server)


@pytest.fixture()
def catalog(corpus_dir, tmp_path, monkeypatch, make_audio):
    """A data dir whose catalog holds the server's folder and a folder the server does not know."""
    clean_subsonic_env(monkeypatch)
    data = tmp_path / "data"
    unknown = tmp_path / "elsewhere"
    for i in range(3):
        make_audio(unknown / f"0{i} Only here {i}.flac", seconds=2.0, title=f"Only here {i}", artist=f"Nobody {i}",
                   album="Not on the server", genre="Unheard")
    with db.connection(data / "catalog.db") as conn:
        scan_catalog(conn, [corpus_dir / "music", unknown])
    return data


def quick_http() -> HttpClient:
    """The shared client with millisecond backoffs, so a test of an absent server does not wait seconds."""
    return HttpClient(max_retries=2, backoff_base_s=0.01, backoff_cap_s=0.02, connect_timeout_s=1.0,
                      read_timeout_s=5.0, rng=random.Random(1))


def push_json(data: Path, *names: str, capsys) -> tuple[int, dict]:
    code = main(["playlist", "push", *names, "--json", "--data-dir", str(data)])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def server_playlists(server) -> list[tuple[str, list[str]]]:
    """(name, song paths in order) of every playlist, asked with a plain HTTP client (not our Subsonic client)."""
    auth = {"u": server.user, "p": server.password, "v": "1.12.0", "c": "test", "f": "json"}

    def ask(method: str, **params: str) -> dict:
        body = httpx.get(f"{server.url}/rest/{method}.view", params={**auth, **params}, timeout=10).json()
        assert body["subsonic-response"]["status"] == "ok", body
        return body["subsonic-response"]

    out = []
    for item in ask("getPlaylists")["playlists"].get("playlist", []):
        entries = ask("getPlaylist", id=item["id"])["playlist"].get("entry", [])
        out.append((item["name"], [e["path"] for e in entries]))
    return out


def relative_entries(data: Path, name: str, folder: Path) -> list[str]:
    with db.connection(data / "catalog.db") as conn:
        saved = repo.get_definition(conn, name)
        (part,) = repo.stored_parts(conn, saved.playlist_id)
    # the catalog holds real paths (the walk resolves its roots); the server's folder may be reached by a symlink
    return [str(Path(e["path"]).relative_to(os.path.realpath(folder))) for e in part.entries]


@pytest.mark.corpus
@pytest.mark.slow
def test_pushed_twice_one_playlist_with_the_songs_in_order_then_updated_in_place(supysonic, catalog, monkeypatch,
                                                                                  capsys):
    subsonic_env(monkeypatch, supysonic)
    data = ["--data-dir", str(catalog)]
    assert main(["playlist", "save", "Game music", "filter", "-n", "10", "--seed", "1", "--exclude-genre",
                 "Unheard", *data]) == 0
    capsys.readouterr()
    code, first = push_json(catalog, "Game music", capsys=capsys)
    assert code == 0, first
    (part,) = first["per_playlist"]["Game music"]
    outcome = part["targets"]["subsonic"]
    assert (outcome["status"], outcome["pushed"], outcome["unmatched"]) == ("ok", 10, []), outcome
    expected = relative_entries(catalog, "Game music", supysonic.folder)
    assert server_playlists(supysonic) == [("Game music", expected)]
    assert Path(part["file"]).is_file() and Path(part["file"]).parent == catalog / "playlists"

    code, second = push_json(catalog, "Game music", capsys=capsys)
    assert code == 0 and second["per_playlist"]["Game music"][0]["targets"]["subsonic"]["status"] == "unchanged"
    assert server_playlists(supysonic) == [("Game music", expected)]

    # a new definition: same playlist on the server, new songs in the new order, the others gone
    assert main(["playlist", "save", "Game music", "filter", "-n", "6", "--seed", "7", "--exclude-genre", "Unheard",
                 *data]) == 0
    capsys.readouterr()
    code, third = push_json(catalog, "--all", capsys=capsys)
    assert code == 0 and third["per_playlist"]["Game music"][0]["targets"]["subsonic"]["status"] == "ok"
    changed = relative_entries(catalog, "Game music", supysonic.folder)
    assert changed != expected and len(changed) == 6
    assert server_playlists(supysonic) == [("Game music", changed)]
    assert third["per_playlist"]["Game music"][0]["entries_changed"] > 0

    # deleting the definition deletes the server's copy and the file
    assert main(["playlist", "delete", "Game music", "--json", *data]) == 0
    deleted = json.loads(capsys.readouterr().out)
    assert deleted["servers"] == {"subsonic": "deleted"} and len(deleted["files_removed"]) == 1
    assert server_playlists(supysonic) == []


@pytest.mark.corpus
@pytest.mark.slow
def test_supysonic_gets_the_hex_password_because_it_refuses_tokens(supysonic):
    with quick_http() as http:
        client = SubsonicClient(http, label="s", url=supysonic.url, user=supysonic.user, password=supysonic.password)
        assert client.connect() == (1, 12, 0)
        assert client.auth == "password"
        assert client.search_songs("Defeat")  # and the calls that follow are answered
        wrong = SubsonicClient(http, label="s", url=supysonic.url, user=supysonic.user, password="not-it-at-all")
        with pytest.raises(SubsonicSetupError, match="SONIQUEBAY_SUBSONIC_PASSWORD"):
            wrong.connect()


@pytest.mark.corpus
@pytest.mark.slow
def test_wrong_credentials_exit_2_naming_the_server_and_never_the_password(supysonic, catalog, monkeypatch, capsys,
                                                                          caplog):
    wrong = "wrong-Pa55word-xyz"
    subsonic_env(monkeypatch, supysonic, password=wrong, prefix="SONIQUEBAY_SUBSONIC_HOME")
    assert main(["playlist", "save", "Mine", "filter", "-n", "3", "--data-dir", str(catalog)]) == 0
    capsys.readouterr()
    with caplog.at_level(logging.DEBUG):
        code = main(["playlist", "push", "Mine", "--data-dir", str(catalog)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "'home'" in err and supysonic.url in err and "SONIQUEBAY_SUBSONIC_HOME_PASSWORD" in err
    with db.connection(catalog / "catalog.db") as conn:
        stored = json.dumps([list(r) for r in conn.execute("SELECT * FROM playlist_pushes")])
        errors = json.dumps([list(r) for r in conn.execute("SELECT * FROM scan_errors")])
    for text in (out, err, caplog.text, stored, errors):
        assert wrong not in text and wrong.encode().hex() not in text
    assert "auth_error" in stored


@pytest.mark.corpus
@pytest.mark.slow
def test_server_down_waits_then_reaches_it(supysonic, catalog, monkeypatch, capsys):
    down = settings.SubsonicServer("subsonic", f"http://127.0.0.1:{free_port()}", supysonic.user, supysonic.password)
    with db.connection(catalog / "catalog.db") as conn:
        pipeline.save_playlist(conn, "Later", pipeline.PlaylistRequest("filter", length=4, seed=2,
                                                                        filters=_known()))
        with quick_http() as http:
            stats = pipeline.refresh_playlists(conn, playlists_dir=catalog / "playlists", servers=[down], http=http)
        assert stats.deferred == 1 and stats.pushes == {"deferred": 1}
        saved = repo.get_definition(conn, "Later")
        (state,) = repo.push_states(conn, saved.playlist_id)
        assert state.status == "deferred" and "did not answer" in state.message
        assert (catalog / "playlists" / "Later.m3u8").is_file()  # the file does not wait for the server
        items = _waiting(conn)
        assert [playlist_id for _, playlist_id in items] == [saved.playlist_id]
        # the server comes back: the waiting push is retried from the stored entries and its item is done
        up = settings.SubsonicServer("subsonic", supysonic.url, supysonic.user, supysonic.password)
        with quick_http() as http:
            retried = pipeline.refresh_playlists(conn, playlists_dir=catalog / "playlists", names=[], servers=[up],
                                                 http=http, retry_items=items)
        assert retried.pushes == {"ok": 1}
        (state,) = repo.push_states(conn, saved.playlist_id)
        assert state.status == "ok" and state.pushed == 4
        assert conn.execute("SELECT state FROM deferred_work WHERE work_id = ?", (items[0][0],)).fetchone()[0] \
            == "done"
    assert ("Later", relative_entries(catalog, "Later", supysonic.folder)) in server_playlists(supysonic)


def _known():
    return pipeline.pl.PlaylistFilters(exclude_genres=("Unheard",))


def _waiting(conn):
    """Claim the due deferred playlist pushes, as the asset's run does (the first retry is due after a backoff)."""
    import time

    from soniquebay_assets.catalog import deferred
    from soniquebay_assets.pipeline import playlist_push

    deferred.claim(conn, playlist_push.DEFERRED_KIND, "test-claim", now=time.time() + 3600)
    return pipeline.claimed_pushes(conn, "test-claim")


@pytest.mark.corpus
@pytest.mark.slow
def test_a_garbage_answer_is_an_error_record_not_a_crash(catalog, capsys):
    garbage = [b"<html><body>502 Bad Gateway</body></html>", b'{"subsonic-response": {"status": "ok", "vers',
               b"<?xml version='1.0'?><rss version='2.0'><channel/></rss>", b"\x00\xff\xfe binary"]
    with db.connection(catalog / "catalog.db") as conn:
        pipeline.save_playlist(conn, "Odd", pipeline.PlaylistRequest("filter", length=3, filters=_known()))
        for body in garbage:
            for server in serve():
                for method in ("ping", "search3", "getPlaylists", "getPlaylist", "createPlaylist"):
                    server.set(f"/rest/{method}.view", Reply(200, body, {"Content-Type": "text/html"}))
                target = settings.SubsonicServer("odd", server.base_url, "u", "secret-password-1")
                with quick_http() as http:
                    stats = pipeline.refresh_playlists(conn, playlists_dir=catalog / "playlists", servers=[target],
                                                       http=http)
                assert stats.pushes == {"error": 1}, body
                (row,) = conn.execute("SELECT reason, detail FROM scan_errors WHERE path = 'subsonic://odd/Odd'")
                assert row[0] == "subsonic_bad_answer" and "odd" in row[1], row
                assert "secret-password-1" not in row[1]


@pytest.mark.corpus
@pytest.mark.slow
def test_a_server_answering_503_is_retried_with_backoff_then_waits(catalog):
    with db.connection(catalog / "catalog.db") as conn:
        pipeline.save_playlist(conn, "Busy", pipeline.PlaylistRequest("filter", length=3, filters=_known()))
        for server in serve():
            server.set("/rest/ping.view", Reply(503, b"overloaded"))
            target = settings.SubsonicServer("busy", server.base_url, "u", "secret-password-2")
            with quick_http() as http:
                stats = pipeline.refresh_playlists(conn, playlists_dir=catalog / "playlists", servers=[target],
                                                   http=http)
                assert http.stats["retries"] == http.max_retries  # bounded: then the push waits
            assert server.hits("/rest/ping.view") == http.max_retries + 1
        assert stats.pushes == {"deferred": 1}
        (state,) = repo.push_states(conn, repo.get_definition(conn, "Busy").playlist_id)
        assert state.status == "deferred" and "503" in state.message and "secret-password-2" not in state.message
        assert conn.execute("SELECT COUNT(*) FROM deferred_work WHERE kind = 'playlists' AND state = 'pending'"
                            ).fetchone()[0] == 1


@pytest.mark.corpus
@pytest.mark.slow
def test_a_file_the_server_does_not_know_is_reported_with_its_reason(supysonic, catalog, monkeypatch, capsys):
    subsonic_env(monkeypatch, supysonic)
    assert main(["playlist", "save", "Mixed", "filter", "-n", "5", "--genre", "Unheard", "--genre",
                 "Romantic Classical", "--seed", "3", "--data-dir", str(catalog)]) == 0
    capsys.readouterr()
    code, result = push_json(catalog, "Mixed", capsys=capsys)
    outcome = result["per_playlist"]["Mixed"][0]["targets"]["subsonic"]
    assert code == 0 and outcome["status"] == "partial"
    unknown = [u for u in outcome["unmatched"] if "elsewhere" in u["path"]]
    assert unknown and len(unknown) == len(outcome["unmatched"])
    assert all("not on the server" in u["reason"] and "Only here" in u["reason"] for u in unknown)
    assert outcome["pushed"] == 5 - len(unknown) > 0


# -------------------------------------------------------------------------------- token handshake (API >= 1.13)


def _fake_server(version: str, *, token_code: int | None = None):
    """A Subsonic answering with `version`: accepts a correct token (or refuses tokens with `token_code`) and
    the hex password; records how each request authenticated."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        if "t" in q:
            seen.append("token")
            good = q["t"] == hashlib.md5(("pässword" + q["s"]).encode()).hexdigest()
            error = token_code or (None if good else 40)
        else:
            seen.append("password")
            error = None if q.get("p") == "enc:" + "pässword".encode().hex() else 40
        body = {"status": "ok", "version": version} if error is None else \
            {"status": "failed", "version": version, "error": {"code": error, "message": "no"}}
        return httpx.Response(200, json={"subsonic-response": body})

    return httpx.MockTransport(handler), seen


@pytest.mark.parametrize(("version", "token_code", "auth", "expected"), [
    ("1.16.1", None, "token", ["token", "token"]),          # Navidrome, Gonic: the salted token
    ("1.16.1", 41, "password", ["token", "password", "password"]),  # token refused (LDAP users): the password
    ("1.12.0", 10, "password", ["token", "password", "password"]),  # supysonic's answer to a token
])
def test_token_auth_from_api_1_13_and_the_password_otherwise(version, token_code, auth, expected):
    transport, seen = _fake_server(version, token_code=token_code)
    with HttpClient(transport=transport, max_retries=0) as http:
        client = SubsonicClient(http, label="x", url="http://music.test", user="u", password="pässword")
        client.call("getPlaylists")
        assert client.auth == auth and seen == expected
        assert "pässword" not in http.redact(f"http://music.test/rest/ping.view?u=u&p=enc:{'pässword'.encode().hex()}")
