"""Subsonic / OpenSubsonic servers (Navidrome, Gonic, Airsonic, supysonic): ping, song search, playlists.

Authentication follows the API: a salted token (`t` = md5(password + salt), `s` = salt) from API 1.13.0 on;
the password itself, hex-encoded (`p=enc:...`), for older servers or when the server refuses tokens (error 41;
supysonic reports 1.12.0 and answers a token with error 10). The password and its hex form are registered with
the shared client's redactor, which also blanks the `p` and `t` parameters of every URL it reports, so no log
line, error or metadata carries them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from soniquebay_assets.clients.http import HttpClient, HttpError

CLIENT_NAME = "soniquebay"
TOKEN_API = (1, 13, 0)
OUR_API = (1, 16, 1)
RATE_PER_S = 20.0  # a music server on the LAN answers this fast; the shared client still paces and breaks
MAX_GET_URL = 6000  # longer requests (playlists of hundreds of songs) go as a form POST: Tomcat caps URLs at 8 KB
MAX_ANSWER_BYTES = 20 * 1024 * 1024

ERROR_MISSING_PARAMETER = 10
ERROR_WRONG_CREDENTIALS = 40
ERROR_TOKEN_UNSUPPORTED = 41
ERROR_NOT_AUTHORIZED = 50
ERROR_NOT_FOUND = 70
# Down, overloaded, slow: the shared client retried; the work waits in the deferred queue.
UNREACHABLE = frozenset({"timeout", "connect_error", "transport_error", "server_error", "rate_limited",
                         "circuit_open"})


class SubsonicError(Exception):
    """A Subsonic request that failed; `reason` is short and stable."""

    def __init__(self, reason: str, message: str, *, code: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.code = code


class SubsonicSetupError(SubsonicError):
    """Wrong credentials, a refused account or a URL that is no Subsonic server: a person must fix a setting."""


class SubsonicUnavailable(SubsonicError):
    """The server did not answer usefully after the retries (down, 5xx, timeouts): try again later."""


class SubsonicBadAnswer(SubsonicError):
    """The server answered something that is not a Subsonic XML/JSON response."""


@dataclass(frozen=True)
class SubsonicSong:
    id: str
    title: str
    artist: str
    album: str
    duration: float | None
    path: str | None


@dataclass(frozen=True)
class SubsonicPlaylist:
    id: str
    name: str
    owner: str | None
    song_count: int
    comment: str


def parse_version(text: object) -> tuple[int, ...]:
    parts = []
    for piece in str(text or "").split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


def display_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))


def as_list(value: Any) -> list:
    """JSON answers give one child as an object and several as a list; XML gives what _element_dict made."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _element_dict(element: ElementTree.Element) -> dict:
    """An XML element as the JSON form of the API: attributes, and children by tag (always lists)."""
    out: dict[str, Any] = dict(element.attrib)
    for child in element:
        tag = child.tag.rsplit("}", 1)[-1]
        out.setdefault(tag, []).append(_element_dict(child))
    if element.text and element.text.strip() and not len(element):
        out["value"] = element.text.strip()
    return out


def parse_answer(content: bytes, content_type: str = "") -> dict:
    """The `subsonic-response` object of a JSON or XML answer; SubsonicBadAnswer for anything else."""
    text = content.lstrip()
    if text[:1] in (b"{", b"["):
        try:
            payload = json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SubsonicBadAnswer("bad_answer", f"invalid JSON ({type(exc).__name__})") from None
        body = payload.get("subsonic-response") if isinstance(payload, dict) else None
        if not isinstance(body, dict):
            raise SubsonicBadAnswer("bad_answer", "JSON without a subsonic-response object")
        return body
    if text[:1] == b"<":
        try:
            root = ElementTree.fromstring(content)
        except ElementTree.ParseError as exc:
            raise SubsonicBadAnswer("bad_answer", f"invalid XML ({exc})") from None
        if root.tag.rsplit("}", 1)[-1] != "subsonic-response":
            raise SubsonicBadAnswer("bad_answer", f"XML whose root is <{root.tag}>, not <subsonic-response>")
        body = _element_dict(root)
        for key, value in list(body.items()):  # top-level single children are objects, as in JSON
            if isinstance(value, list) and len(value) == 1:
                body[key] = value[0]
        return body
    kind = content_type.split(";")[0] or "unknown type"
    raise SubsonicBadAnswer("bad_answer", f"neither JSON nor XML ({kind}, {len(content)} bytes)")


def _song(item: dict) -> SubsonicSong | None:
    if not isinstance(item, dict) or not item.get("id") or str(item.get("isDir", "false")).lower() == "true":
        return None
    duration = item.get("duration")
    try:
        seconds = float(duration) if duration is not None else None
    except (TypeError, ValueError):
        seconds = None
    return SubsonicSong(str(item["id"]), str(item.get("title") or ""), str(item.get("artist") or ""),
                        str(item.get("album") or ""), seconds, str(item["path"]) if item.get("path") else None)


def _playlist(item: dict) -> SubsonicPlaylist | None:
    if not isinstance(item, dict) or not item.get("id"):
        return None
    try:
        count = int(item.get("songCount") or 0)
    except (TypeError, ValueError):
        count = 0
    return SubsonicPlaylist(str(item["id"]), str(item.get("name") or ""), item.get("owner"), count,
                            str(item.get("comment") or ""))


class SubsonicClient:
    """One server: `label` names it in results and messages, `setting` is the variable prefix that defines it."""

    def __init__(self, http: HttpClient, *, label: str, url: str, user: str, password: str,
                 setting: str = "SONIQUEBAY_SUBSONIC", max_get_url: int = MAX_GET_URL):
        self.http = http
        self.label = label
        self.base = url.rstrip("/")
        self.user = user
        self._password = password
        self.setting = setting
        self.max_get_url = max_get_url
        self.service = f"subsonic:{label}"
        self.version: tuple[int, ...] | None = None
        self.auth: str | None = None  # "token" or "password" once known
        http.set_service_rate(self.service, RATE_PER_S)
        http.add_secret(password)
        http.add_secret(password.encode("utf-8").hex())

    @property
    def where(self) -> str:
        return f"Subsonic server {self.label!r} ({display_url(self.base)})"

    # -- requests ---------------------------------------------------------------------------------------------

    def _credentials(self, mode: str) -> list[tuple[str, str]]:
        version = OUR_API if self.version is None else min(OUR_API, max(self.version, (1, 0, 0)))
        if mode == "token":
            version = max(version, TOKEN_API)
        params = [("u", self.user), ("v", ".".join(map(str, version))), ("c", CLIENT_NAME), ("f", "json")]
        if mode == "token":
            salt = secrets.token_hex(8)
            token = hashlib.md5((self._password + salt).encode("utf-8")).hexdigest()  # noqa: S324 (the API's)
            return [*params, ("t", token), ("s", salt)]  # the shared client redacts `t` and `p` wherever it reports
        return [*params, ("p", "enc:" + self._password.encode("utf-8").hex())]

    def _send(self, method: str, params: Sequence[tuple[str, str]], mode: str, *, retry: bool = True) -> dict:
        url = f"{self.base}/rest/{method}.view"
        pairs = [*self._credentials(mode), *params]
        try:
            query = "&".join(f"{k}={v}" for k, v in pairs)
            if len(url) + len(query) + 1 > self.max_get_url:
                response = self.http.post_form(url, pairs, accept="application/json, text/xml",
                                               max_bytes=MAX_ANSWER_BYTES, service=self.service, retry=retry)
            else:
                response = self.http.get(url, params=pairs, accept="application/json, text/xml",
                                         max_bytes=MAX_ANSWER_BYTES, service=self.service)
        except HttpError as exc:
            reason = exc.reason
            if reason in UNREACHABLE:
                raise SubsonicUnavailable(reason, f"{self.where} did not answer {method}: {self.http.redact(exc)}") \
                    from None
            raise SubsonicError(reason, f"{self.where}, {method}: {self.http.redact(exc)}") from None
        if response.status in (401, 403):
            raise SubsonicSetupError("wrong_credentials", self._credentials_hint(f"HTTP {response.status}"),
                                     code=ERROR_WRONG_CREDENTIALS)
        if response.status == 404:
            raise SubsonicSetupError("not_subsonic", f"{self.where} has no {method} (HTTP 404): is {self.setting}_URL "
                                     "the server's base URL (without /rest)?")
        if not 200 <= response.status < 300:
            raise SubsonicBadAnswer("bad_status", f"{self.where}, {method}: HTTP {response.status}")
        try:
            body = parse_answer(response.content, response.headers.get("content-type", ""))
        except SubsonicBadAnswer as exc:
            raise SubsonicBadAnswer(exc.reason, f"{self.where}, {method}: {exc}") from None
        if body.get("version"):
            self.version = parse_version(body["version"])
        return body

    def _credentials_hint(self, detail: str) -> str:
        return (f"{self.where} refused user {self.user!r} ({detail}): check {self.setting}_USER and "
                f"{self.setting}_PASSWORD (or _PASSWORD_FILE)")

    def _raise_for(self, method: str, body: dict) -> None:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        try:
            code = int(error.get("code"))
        except (TypeError, ValueError):
            code = None
        message = self.http.redact(str(error.get("message") or "no message"))
        if code == ERROR_WRONG_CREDENTIALS:
            raise SubsonicSetupError("wrong_credentials", self._credentials_hint(f"error 40: {message}"), code=code)
        if code == ERROR_NOT_AUTHORIZED:
            raise SubsonicSetupError("not_authorized", f"{self.where}: user {self.user!r} may not {method} "
                                     f"(error 50: {message}): give the account playlist rights", code=code)
        if code == ERROR_NOT_FOUND:
            raise SubsonicError("not_found", f"{self.where}, {method}: not found ({message})", code=code)
        raise SubsonicError("api_error", f"{self.where}, {method}: error {code}: {message}", code=code)

    def call(self, method: str, params: Sequence[tuple[str, str]] = (), *, retry: bool = True) -> dict:
        """The answer of a successful call; SubsonicError (or a subclass) otherwise."""
        if self.auth is None:
            self.connect()
        body = self._send(method, params, self.auth or "password", retry=retry)
        if body.get("status") != "ok":
            self._raise_for(method, body)
        return body

    def connect(self) -> tuple[int, ...]:
        """Choose the authentication: a token when the server speaks API 1.13.0 or later and accepts it, the
        hex-encoded password otherwise; SubsonicSetupError for wrong credentials. Returns the API version."""
        body = self._send("ping", (), "token")
        old = self.version is not None and self.version < TOKEN_API
        if body.get("status") == "ok" and not old:
            self.auth = "token"
            return self.version or OUR_API
        code = (body.get("error") or {}).get("code") if isinstance(body.get("error"), dict) else None
        refused_token = str(code) in (str(ERROR_TOKEN_UNSUPPORTED), "42") or (old and body.get("status") != "ok")
        if not (old or refused_token):
            self._raise_for("ping", body)
        body = self._send("ping", (), "password")
        if body.get("status") != "ok":
            self._raise_for("ping", body)
        self.auth = "password"
        return self.version or (1, 0, 0)

    # -- API --------------------------------------------------------------------------------------------------

    def search_songs(self, query: str, *, count: int = 50, offset: int = 0) -> list[SubsonicSong]:
        body = self.call("search3", [("query", query), ("songCount", str(count)), ("songOffset", str(offset)),
                                     ("artistCount", "0"), ("albumCount", "0")])
        result = body.get("searchResult3") or {}
        return [s for s in (_song(i) for i in as_list(result.get("song") if isinstance(result, dict) else None)) if s]

    def playlists(self) -> list[SubsonicPlaylist]:
        """The playlists this user owns (others' public playlists left out)."""
        body = self.call("getPlaylists")
        block = body.get("playlists") or {}
        found = [p for p in (_playlist(i) for i in as_list(block.get("playlist") if isinstance(block, dict) else None))
                 if p]
        return [p for p in found if p.owner in (None, self.user)]

    def playlist_songs(self, playlist_id: str) -> list[SubsonicSong]:
        body = self.call("getPlaylist", [("id", playlist_id)])
        block = body.get("playlist") or {}
        return [s for s in (_song(i) for i in as_list(block.get("entry") if isinstance(block, dict) else None)) if s]

    def create_playlist(self, name: str, song_ids: Sequence[str]) -> str | None:
        """A new playlist (never retried blindly: a lost answer may still have created it); its id when the
        server says (API 1.14+), else None (look it up by name)."""
        body = self.call("createPlaylist", [("name", name), *(("songId", s) for s in song_ids)], retry=False)
        created = _playlist(body.get("playlist")) if isinstance(body.get("playlist"), dict) else None
        return created.id if created else None

    def replace_songs(self, playlist_id: str, song_ids: Sequence[str]) -> None:
        """The playlist's songs become exactly `song_ids`, in order (createPlaylist with an id updates in place)."""
        self.call("createPlaylist", [("playlistId", playlist_id), *(("songId", s) for s in song_ids)])

    def set_comment(self, playlist_id: str, comment: str) -> None:
        self.call("updatePlaylist", [("playlistId", playlist_id), ("comment", comment)])

    def delete_playlist(self, playlist_id: str) -> None:
        self.call("deletePlaylist", [("id", playlist_id)])
