"""The user's decisions on MusicBrainz matches, made through the same function as `soniquebay match`."""

from __future__ import annotations

from contextlib import closing, nullcontext

from soniquebay_assets.api.errors import ApiError, NotAuthorized
from soniquebay_assets.catalog import browse


def decide(ctx, album_id: int, *, accept: str | None) -> dict:
    """Accept `accept` (a MusicBrainz release id) for the album, or reject its candidates; the album after it."""
    from soniquebay_assets.clients.http import HttpError
    from soniquebay_assets.clients.musicbrainz import is_mbid
    from soniquebay_assets.pipeline import online

    if not ctx.authorized:
        raise NotAuthorized("decisions need the API token")
    if accept is not None and not is_mbid(accept):
        raise ApiError(f"releaseId {accept!r} is not a MusicBrainz release id (36 characters, like "
                       "b84ee12a-09ef-421b-82de-0441a926375b)")
    services = online.decision_services() if accept is not None else None
    with closing(services) if services is not None else nullcontext(), ctx.access.writer() as conn:
        try:
            online.decide_album(conn, int(album_id), accept=accept, services=services)
        except LookupError as exc:
            raise ApiError(str(exc).strip("'\"")) from None
        except HttpError:
            raise ApiError("MusicBrainz could not be asked; nothing was changed, try again later") from None
        return browse.albums_by_id(conn, [int(album_id)])[int(album_id)]
