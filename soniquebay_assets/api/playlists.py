"""Playlists through the API: saved ones and ones made on request, through the playlists stage's own functions
(`pipeline.playlists`), and GET /playlists/{name}.m3u8."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from soniquebay_assets import settings
from soniquebay_assets.api.errors import ApiError, NotAuthorized
from soniquebay_assets.domain.playlists import Playlist, PlaylistRequest, PlaylistRequestError

M3U8_TYPE = "audio/x-mpegurl"


def request_from(given: dict) -> PlaylistRequest:
    """A generation request from GraphQL input (or the page's form), checked; ApiError says what to change."""
    data = {k: v for k, v in dict(given).items() if v is not None}
    filters = {k: v for k, v in dict(data.pop("filters", None) or {}).items() if v is not None}
    if "moods" in filters:
        filters["moods"] = [(m["mood"], m["min"]) for m in filters["moods"]]
    if filters:
        data["filters"] = filters
    try:
        return PlaylistRequest.from_json(data).validate()
    except (PlaylistRequestError, TypeError, ValueError) as exc:
        raise ApiError(str(exc)) from None


def saved(conn: Any, name: str | None = None) -> list[dict]:
    """Saved playlists (all, or the one named) with the parts the playlists stage last made."""
    from soniquebay_assets.pipeline import playlists as stage

    return [{**asdict(definition), "stored_parts": parts} for definition, parts in stage.saved_playlists(conn, name)]


def parts_of(conn: Any, view: dict) -> list[Playlist]:
    """The stored parts, or the playlist made now from its definition when the stage has not made it yet."""
    if view["stored_parts"]:
        return view["stored_parts"]
    return generate(conn, {**view["request"], "name": view["name"]})


def generate(conn: Any, given: dict | PlaylistRequest) -> list[Playlist]:
    from soniquebay_assets.pipeline import playlists as stage

    request = given if isinstance(given, PlaylistRequest) else request_from(given)
    try:
        return stage.generate(conn, request)
    except PlaylistRequestError as exc:
        raise ApiError(str(exc)) from None


def save(ctx: Any, name: str, given: dict) -> dict:
    from soniquebay_assets.pipeline import playlists as stage

    if not ctx.authorized:
        raise NotAuthorized("saving a playlist needs the API token")
    request = request_from(given)
    with ctx.access.writer() as conn:
        try:
            definition = stage.save_playlist(conn, name, request)
        except PlaylistRequestError as exc:
            raise ApiError(str(exc)) from None
    return {**asdict(definition), "stored_parts": []}


def delete(ctx: Any, name: str) -> dict:
    from soniquebay_assets.pipeline import playlists as stage

    if not ctx.authorized:
        raise NotAuthorized("deleting a playlist needs the API token")
    with ctx.access.writer() as conn:
        try:
            outcome = stage.delete_playlist(conn, name, servers=settings.subsonic_servers(),
                                            contact=settings.http_contact())
        except PlaylistRequestError as exc:
            raise ApiError(str(exc)) from None
    return {"name": outcome["name"], "files_removed": len(outcome["files_removed"]), "servers": outcome["servers"]}


def m3u8_download(conn: Any, name: str, part: int) -> tuple[str, str] | None:
    """(file name, M3U8 text) of part `part` (1-based) of the saved playlist `name`; None when there is none."""
    from soniquebay_assets.pipeline import playlists as stage

    found = saved(conn, name)
    if not found:
        return None
    parts = parts_of(conn, found[0])
    if not 1 <= part <= len(parts):
        return None
    suffix = f" ({part})" if len(parts) > 1 else ""
    return f"{name}{suffix}.m3u8", stage.m3u8_text(parts[part - 1], prefix=settings.playlists_path_prefix())


async def m3u8_endpoint(request: Request) -> Response:
    """GET /playlists/{name}.m3u8[?part=N]: a saved playlist as an M3U8 download (the name is a catalog key)."""
    import anyio

    api = request.app.state.api
    name = request.path_params["name"]
    part_text = request.query_params.get("part", "1")
    if not part_text.isdigit():
        return JSONResponse({"error": "part must be a number from 1"}, status_code=400)

    def read() -> tuple[str, str] | None:
        with api.access.reader() as conn:
            return m3u8_download(conn, name, int(part_text))

    try:
        found = await anyio.to_thread.run_sync(read, limiter=api.slow_lane)
    except ApiError as exc:  # its definition cannot be made any more (e.g. its seed track was deleted)
        return JSONResponse({"error": str(exc)}, status_code=409)
    if found is None:
        return JSONResponse({"error": f"no saved playlist named {name[:80]!r} (or no such part)"}, status_code=404)
    filename, text = found
    return Response(text, media_type=M3U8_TYPE, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
        "Cache-Control": "no-cache"})
