"""The web page: server-rendered Jinja2 templates (no Node build), a few lines of plain script for live search,
"more albums" and decisions, which go through the same GraphQL mutations as any client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from soniquebay_assets.api import charts
from soniquebay_assets.api.auth import COOKIE_NAME, token_matches
from soniquebay_assets.api.schema import cover_url, playlist_url
from soniquebay_assets.catalog import browse

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
GRID_PAGE = 48
SIMILAR_ON_PAGE = 20


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _top_mood(moods: dict | None) -> tuple[str, float] | None:
    """The strongest measured mood of a track, for a table cell."""
    measured = [(name, value) for name, value in (moods or {}).items() if value is not None]
    return max(measured, key=lambda item: item[1]) if measured else None


TEMPLATES.env.filters["duration"] = _duration
TEMPLATES.env.filters["top_mood"] = _top_mood
TEMPLATES.env.globals["cover_url"] = cover_url
TEMPLATES.env.globals["playlist_url"] = playlist_url
TEMPLATES.env.globals["meter"] = charts.mood_meter


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    api = request.app.state.api
    context.update(authorized=bool(request.scope.get("state", {}).get("authorized")),
                   token_configured=api.config.token is not None)
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return _render(request, "error.html", status=status, status_code=status, message=message)


SUMMARY_SECONDS = 30.0
_summaries: dict[str, tuple[float, browse.LibrarySummary]] = {}


def _summary(api: Any, conn: Any) -> browse.LibrarySummary:
    """The library's picture for the home page, made at most every SUMMARY_SECONDS per process (its tempo
    histogram reads every analysed track: tens of milliseconds on a large library)."""
    made, summary = _summaries.get(api.config.catalog_url, (0.0, None))
    if summary is None or time.monotonic() - made > SUMMARY_SECONDS:
        summary = browse.library_summary(conn)
        _summaries[api.config.catalog_url] = (time.monotonic(), summary)
    return summary


def _grid(request: Request) -> dict[str, Any]:
    api = request.app.state.api
    query = request.query_params.get("q", "").strip()[:200]
    after = request.query_params.get("after") or None
    with api.access.reader() as conn:
        try:
            page = browse.album_page(conn, browse.AlbumFilter(text=query or None), sort="ARTIST",
                                     first=GRID_PAGE, after=after)
        except browse.BadCursor:
            page = browse.album_page(conn, browse.AlbumFilter(text=query or None), sort="ARTIST", first=GRID_PAGE)
        covers = browse.covers_of(conn, "album", [a["album_id"] for a in page.rows])
        total = browse.album_count(conn, browse.AlbumFilter(text=query or None)) if not after else None
        summary = _summary(api, conn) if not after and not query else None
    return {"albums": page.rows, "covers": covers, "page": page, "query": query, "total": total,
            "summary": summary}


def home(request: Request) -> Response:
    """Album grid with lazy-loaded covers, a search box and a picture of the library's tempo, keys and moods."""
    data = _grid(request)
    if request.query_params.get("partial") == "grid":
        return _render(request, "_grid.html", **data)
    if data["summary"] is not None:
        data["tempo_svg"] = charts.tempo_histogram(data["summary"].bpm_histogram)
        data["key_svg"] = charts.key_wheel(data["summary"].keys)
        data["mood_svg"] = charts.mood_bars(data["summary"].mood_means)
    return _render(request, "home.html", **data)


def album_page(request: Request) -> Response:
    """An album: cover, tracks with tempo, key, moods and loudness, and its MusicBrainz candidates."""
    api = request.app.state.api
    album_id = request.path_params["album_id"]
    with api.access.reader() as conn:
        album = browse.albums_by_id(conn, [album_id]).get(album_id)
        if album is None:
            return error_page(request, 404, f"There is no album {album_id} in the catalog.")
        track_ids = browse.track_ids_of_albums(conn, [album_id])[album_id]
        tracks = browse.tracks_by_id(conn, track_ids)
        cover = browse.covers_of(conn, "album", [album_id]).get(album_id)
    return _render(request, "album.html", album=album, tracks=[tracks[t] for t in track_ids if t in tracks],
                   cover=cover)


def _made_playlist(request: Request, conn: Any, track_id: int) -> dict[str, Any]:
    """The playlist the track page's form asks for (`?make=similar|path&to=...&length=N`), made now."""
    from soniquebay_assets.api import playlists
    from soniquebay_assets.api.errors import ApiError

    make = request.query_params.get("make")
    out: dict[str, Any] = {"make": make, "to": request.query_params.get("to", "")[:200], "made": None,
                           "made_request": None, "make_problem": None}
    if make not in ("similar", "path"):
        return out
    length_text = request.query_params.get("length", "20")
    length = int(length_text) if length_text.isdigit() else 20
    wanted: dict[str, Any] = {"kind": make, "length": max(2, min(length, 200))}
    if make == "similar":
        wanted["track"] = str(track_id)
    else:
        target = _track_reference(conn, out["to"])
        if isinstance(target, str):
            out["make_problem"] = target
            return out
        wanted.update(from_track=str(track_id), to_track=str(target))
    try:
        out["made"] = playlists.generate(conn, wanted)[0]
        out["made_request"] = wanted
    except ApiError as exc:
        out["make_problem"] = str(exc)
    return out


def _track_reference(conn: Any, text: str) -> int | str:
    """A track id from what the "to" field holds: a suggestion ("123 · Title — Artist"), an id, or words that
    name one track; else what to do, as a message."""
    head = text.strip().split(" ", 1)[0]
    if head.isdigit():
        return int(head)
    if not text.strip():
        return "Say which track the path goes to: type part of its title and pick it from the list."
    page = browse.track_page(conn, browse.TrackFilter(text=text), sort="TITLE", first=2)
    if len(page.rows) == 1:
        return int(page.rows[0]["track_id"])
    return (f"No track matches “{text}”." if not page.rows else
            f"Several tracks match “{text}”: pick one from the list.")


def track_page(request: Request) -> Response:
    """A track: its facts and analysis, similar tracks, and a playlist to make from it."""
    from soniquebay_assets.catalog import vector_search

    api = request.app.state.api
    track_id = request.path_params["track_id"]
    similar: list[dict] = []
    similar_problem = None
    with api.access.reader() as conn:
        track = browse.tracks_by_id(conn, [track_id]).get(track_id)
        if track is None:
            return error_page(request, 404, f"There is no track {track_id} in the catalog.")
        analysis = browse.analysis_by_track(conn, [track_id]).get(track_id)
        external = browse.external_by_track(conn, [track_id]).get(track_id, [])
        cover = browse.covers_of(conn, "album", [track["album_id"]]).get(track["album_id"])
        if api.access.vector_search:
            try:
                found = vector_search.search_similar(conn, track_id=track_id, k=SIMILAR_ON_PAGE, describe=False)
                rows = browse.tracks_by_id(conn, [f.track_id for f in found])
                similar = [{"score": f.score, **rows[f.track_id]} for f in found if f.track_id in rows]
            except LookupError as exc:
                similar_problem = str(exc)
        else:
            similar_problem = "similar-track search is off on this server (its SQLite cannot load sqlite-vec)"
        made = _made_playlist(request, conn, track_id)
    return _render(request, "track.html", track=track, analysis=analysis, external=external, cover=cover,
                   similar=similar, similar_problem=similar_problem, **made)


def playlists_page(request: Request) -> Response:
    """Saved playlists: what each holds, its M3U8 download per part, and Delete."""
    from soniquebay_assets.api import playlists
    from soniquebay_assets.api.errors import ApiError

    api = request.app.state.api
    rows = []
    with api.access.reader() as conn:
        for view in playlists.saved(conn):
            try:
                parts, problem = playlists.parts_of(conn, view), None
            except ApiError as exc:
                parts, problem = [], str(exc)
            rows.append({"view": view, "parts": parts, "problem": problem})
    return _render(request, "playlists.html", rows=rows)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host): a sign-in link cannot send anyone elsewhere."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def _small_form(request: Request, limit: int = 4096) -> dict[str, str]:
    """A urlencoded form of a few fields (the sign-in form), refused past `limit` bytes."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=8).items()}


async def login(request: Request) -> Response:
    """Sign in with the API token: it is kept in an HttpOnly, same-site cookie for the page's requests."""
    api = request.app.state.api
    if request.method == "GET":
        return _render(request, "login.html", next=_safe_next(request.query_params.get("next")), problem=None)
    form = await _small_form(request)
    token = form.get("token", "").strip()
    target = _safe_next(form.get("next") or "/")
    if not token_matches(api.config, token):
        problem = ("This server has no token configured: start it with SONIQUEBAY_API_TOKEN set."
                   if api.config.token is None else "That is not this server's token.")
        return _render(request, "login.html", status=401, next=target, problem=problem)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE_NAME, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https", max_age=30 * 24 * 3600)
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response
