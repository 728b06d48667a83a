"""The GraphQL schema (graphene): artists, albums and tracks with filters, keyset cursors and sorts; a track's
analysis, external metadata and cover; similar tracks by track or by text; the library's summary; mutations for
the user's decisions only. Resolvers hold no SQL: they call catalog/ and pipeline/ functions."""

from __future__ import annotations

import graphene
from graphene.types.generic import GenericScalar

from soniquebay_assets.api import errors
from soniquebay_assets.catalog import browse

MAX_SIMILAR = 100
DEFAULT_SIMILAR = 10


def _context(info):
    return info.context


def _page_size(info, first: int | None) -> int | None:
    if first is not None and first < 1:
        raise errors.ApiError(f"first={first}: ask for at least 1 row")
    if first is not None and first > browse.MAX_PAGE_SIZE:
        _context(info).warn(f"first={first} is above the largest page: {browse.MAX_PAGE_SIZE} rows served; "
                            "page on with pageInfo.endCursor")
    return first


def _k(info, k: int) -> int:
    if k < 1:
        raise errors.ApiError(f"k={k}: ask for at least 1 track")
    if k > MAX_SIMILAR:
        _context(info).warn(f"k={k} is above the most similar tracks served: {MAX_SIMILAR} returned")
    return min(k, MAX_SIMILAR)


def _enum_name(value) -> str:
    return getattr(value, "name", value)


# ------------------------------------------------------------------------------------------ small types


class PageInfo(graphene.ObjectType):
    end_cursor = graphene.String(description="pass as `after` to get the next page")
    has_next_page = graphene.Boolean(required=True)
    page_size = graphene.Int(required=True, description="rows asked for, capped at the largest page")


class Moods(graphene.ObjectType):
    """Analysed mood scores, 0..1."""

    happy = graphene.Float()
    sad = graphene.Float()
    aggressive = graphene.Float()
    relaxed = graphene.Float()
    party = graphene.Float()


_ANALYSIS_TEXT = {"analyzed_at", "status", "error", "key", "mode", "camelot", "open_key", "decoder"}
_ANALYSIS_INT = {"analysis_version", "beat_count"}
# Everything the enrichment stage measured (null: not measured, never a default), one field per stored column.
TrackAnalysis = type("TrackAnalysis", (graphene.ObjectType,), {
    "__doc__": "Everything the enrichment stage measured (null: not measured, never a default).",
    **{name: graphene.String() if name in _ANALYSIS_TEXT else graphene.Int() if name in _ANALYSIS_INT
       else graphene.Float() for name in ("analysis_version", "analyzed_at", *browse.ANALYSIS_FIELDS)},
})


class ExternalRecording(graphene.ObjectType):
    """What an online service (MusicBrainz, AcoustID) says this track is."""

    source = graphene.String(required=True)
    recording_id = graphene.String()
    title = graphene.String()
    artist = graphene.String()
    score = graphene.Float()
    fetched_at = graphene.String()


class Cover(graphene.ObjectType):
    """A stored picture; `url` serves a 150, 300 or 600 px version."""

    entity_type = graphene.String(required=True)
    entity_id = graphene.Int(required=True)
    source = graphene.String()
    sha256 = graphene.String()
    mime = graphene.String()
    width = graphene.Int()
    height = graphene.Int()
    fetched_at = graphene.String()
    url = graphene.String(required=True, size=graphene.Int(default_value=300))

    @staticmethod
    def resolve_url(root, info, size=300):
        if size not in (150, 300, 600):
            raise errors.ApiError(f"size={size}: covers come in 150, 300 and 600 px")
        return cover_url(root["entity_type"], root["entity_id"], size, root.get("sha256"))


def cover_url(entity_type: str, entity_id: int, size: int, sha256: str | None) -> str:
    """The address of a cover; the content hash makes it change when the picture does (cached for a year)."""
    version = f"&v={sha256[:16]}" if sha256 else ""
    return f"/covers/{entity_type}/{entity_id}?size={size}{version}"


def _cover(entity_type: str, entity_id: int, row: dict | None) -> dict | None:
    return None if row is None else {**row, "entity_type": entity_type, "entity_id": entity_id}


class MatchCandidate(graphene.ObjectType):
    """A MusicBrainz release kept for the user to decide on, with its score and what made it."""

    release_id = graphene.String(required=True)
    release_group_id = graphene.String()
    title = graphene.String()
    artist = graphene.String()
    date = graphene.String()
    label = graphene.String()
    country = graphene.String()
    track_count = graphene.Int()
    score = graphene.Float()
    service_score = graphene.Int()
    title_score = graphene.Float(resolver=lambda root, info: _component(root, "title"))
    artist_score = graphene.Float(resolver=lambda root, info: _component(root, "artist"))
    track_count_score = graphene.Float(resolver=lambda root, info: _component(root, "track_count"))
    durations_score = graphene.Float(resolver=lambda root, info: _component(root, "durations"))


def _component(candidate: dict, name: str) -> float | None:
    """One part of a candidate's score (title, artist, track count, durations; null when not measured)."""
    return (candidate.get("components") or {}).get(name)


class AlbumMatch(graphene.ObjectType):
    """The release MusicBrainz matched (automatically or by the user's decision)."""

    status = graphene.String(required=True)
    decided_by = graphene.String()
    source = graphene.String()
    release_id = graphene.String()
    release_group_id = graphene.String()
    title = graphene.String()
    artist = graphene.String()
    label = graphene.String()
    date = graphene.String()
    track_count = graphene.Int()
    score = graphene.Float()
    fetched_at = graphene.String()


# ------------------------------------------------------------------------------------------ entities


class Artist(graphene.ObjectType):
    id = graphene.Int(required=True, source="artist_id")
    name = graphene.String(required=True)
    musicbrainz_artist_id = graphene.String()
    summary = graphene.String(description="Last.fm's summary")
    listeners = graphene.Int()
    tags = graphene.List(graphene.NonNull(graphene.String), required=True)
    similar_artists = graphene.List(graphene.NonNull(graphene.String), required=True)
    genres = graphene.List(graphene.NonNull(graphene.String), required=True)
    lastfm_url = graphene.String()
    track_count = graphene.Int(required=True)
    album_count = graphene.Int(required=True)
    image = graphene.Field(Cover)
    albums = graphene.List(graphene.NonNull(lambda: Album), required=True)

    @staticmethod
    def resolve_image(root, info):
        return _cover("artist", root["artist_id"], _context(info).artist_covers.get(root["artist_id"]))

    @staticmethod
    def resolve_albums(root, info):
        ctx = _context(info)
        ids = ctx.artist_albums.get(root["artist_id"]) or []
        return ctx.saw_albums([a for a in ctx.albums.get_many(ids) if a])


class Album(graphene.ObjectType):
    id = graphene.Int(required=True, source="album_id")
    title = graphene.String(required=True)
    album_artist = graphene.String(required=True)
    artists = graphene.List(graphene.NonNull(Artist), required=True)
    year = graphene.Int()
    date = graphene.String()
    original_date = graphene.String()
    is_compilation = graphene.Boolean(required=True)
    track_count = graphene.Int(required=True)
    duration_s = graphene.Float()
    loudness_lufs = graphene.Float(description="the album gated as one programme (BS.1770)")
    replaygain_album_gain_db = graphene.Float()
    replaygain_album_peak = graphene.Float(description="highest true peak of its tracks, linear")
    musicbrainz_release_id = graphene.String(description="tagged in the files, else the matched release")
    match_status = graphene.String(required=True, description="tagged, matched, candidates, unmatched or pending")
    match = graphene.Field(AlbumMatch)
    candidates = graphene.List(graphene.NonNull(MatchCandidate), required=True)
    cover = graphene.Field(Cover)
    tracks = graphene.List(graphene.NonNull(lambda: Track), required=True)

    @staticmethod
    def resolve_musicbrainz_release_id(root, info):
        status = root["match_status"]
        return root["tagged_release_id"] if status == "tagged" else (
            root["release_id"] if status == "matched" else None)

    @staticmethod
    def resolve_match(root, info):
        if root["match_status"] in ("tagged", "pending"):
            return None
        return {"status": root["match_status"], "decided_by": root["decided_by"], "source": root["source"],
                "release_id": root["release_id"], "release_group_id": root["release_group_id"],
                "title": root["release_title"], "artist": root["release_artist"], "label": root["label"],
                "date": root["release_date"], "track_count": root["release_track_count"], "score": root["score"],
                "fetched_at": root["fetched_at"]}

    @staticmethod
    def resolve_artists(root, info):
        ctx = _context(info)
        ids = ctx.album_artists.get(root["album_id"]) or []
        return ctx.saw_artists([a for a in ctx.artists.get_many(ids) if a])

    @staticmethod
    def resolve_cover(root, info):
        return _cover("album", root["album_id"], _context(info).album_covers.get(root["album_id"]))

    @staticmethod
    def resolve_tracks(root, info):
        ctx = _context(info)
        ids = ctx.album_tracks.get(root["album_id"]) or []
        return ctx.saw_tracks([t for t in ctx.tracks.get_many(ids) if t])


class SimilarTrack(graphene.ObjectType):
    score = graphene.Float(required=True, description="cosine similarity of the two tracks' vectors")
    track = graphene.Field(graphene.NonNull(lambda: Track))


class RadioFilterInput(graphene.InputObjectType):
    """Constraints on similar tracks: skip the seed's album, a BPM range, harmonically compatible keys."""

    exclude_same_album = graphene.Boolean(default_value=False)
    bpm_min = graphene.Float()
    bpm_max = graphene.Float()
    compatible_keys = graphene.Boolean(default_value=False)


class Track(graphene.ObjectType):
    id = graphene.Int(required=True, source="track_id")
    title = graphene.String(required=True)
    artist = graphene.String(required=True, source="artist_display", description="the artist as tagged (display string)")
    artists = graphene.List(graphene.NonNull(graphene.String), required=True)
    featured_artists = graphene.List(graphene.NonNull(graphene.String), required=True)
    album_id = graphene.Int(required=True)
    album_title = graphene.String(required=True)
    album_artist = graphene.String(required=True)
    album = graphene.Field(graphene.NonNull(Album))
    track_number = graphene.Int()
    track_total = graphene.Int()
    disc_number = graphene.Int()
    disc_total = graphene.Int()
    year = graphene.Int()
    duration_s = graphene.Float()
    format = graphene.String()
    codec = graphene.String()
    bitrate = graphene.Int()
    sample_rate = graphene.Int()
    channels = graphene.Int()
    bit_depth = graphene.Int()
    path = graphene.String(required=True, description="the file in the music library")
    musicbrainz_recording_id = graphene.String()
    isrc = graphene.String()
    composer = graphene.String()
    label = graphene.String()
    quality_score = graphene.Float()
    title_from_fallback = graphene.Boolean(required=True)
    genres = graphene.List(graphene.NonNull(graphene.String), required=True)
    genres_normalized = graphene.List(graphene.NonNull(graphene.String), required=True)
    bpm = graphene.Float(description="analysed tempo, or the tagged one when the analysis is unsure")
    bpm_source = graphene.String()
    key = graphene.String()
    mode = graphene.String()
    camelot = graphene.String()
    open_key = graphene.String()
    key_source = graphene.String()
    loudness_lufs = graphene.Float()
    replaygain_track_gain_db = graphene.Float()
    energy = graphene.Float()
    danceability = graphene.Float()
    moods = graphene.Field(Moods)
    mood_tags = graphene.List(graphene.NonNull(graphene.String), required=True)
    match_status = graphene.String(required=True)
    analysis = graphene.Field(TrackAnalysis)
    external = graphene.List(graphene.NonNull(ExternalRecording), required=True)
    cover = graphene.Field(Cover, description="the album's cover")
    similar = graphene.List(graphene.NonNull(SimilarTrack), required=True,
                            k=graphene.Int(default_value=DEFAULT_SIMILAR), filter=RadioFilterInput())

    @staticmethod
    def resolve_album(root, info):
        return _context(info).albums.get(root["album_id"])

    @staticmethod
    def resolve_analysis(root, info):
        return _context(info).analysis.get(root["track_id"])

    @staticmethod
    def resolve_external(root, info):
        return _context(info).external.get(root["track_id"]) or []

    @staticmethod
    def resolve_cover(root, info):
        return _cover("album", root["album_id"], _context(info).album_covers.get(root["album_id"]))

    @staticmethod
    def resolve_similar(root, info, k=DEFAULT_SIMILAR, filter=None):  # noqa: A002 - the GraphQL argument's name
        return _similar(info, root["track_id"], k, filter) or []


def _radio(filter_input) -> object:
    from soniquebay_assets.catalog.vector_search import RadioFilters

    if not filter_input:
        return RadioFilters()
    return RadioFilters(exclude_same_album=bool(filter_input.get("exclude_same_album")),
                        bpm_min=filter_input.get("bpm_min"), bpm_max=filter_input.get("bpm_max"),
                        compatible_keys=bool(filter_input.get("compatible_keys")))


def _similar_rows(info, found) -> list[dict]:
    ctx = _context(info)
    ctx.tracks.want([f.track_id for f in found])
    rows = [(f.score, ctx.tracks.get(f.track_id)) for f in found]
    ctx.saw_tracks([row for _, row in rows if row])
    return [{"score": round(float(score), 6), "track": row} for score, row in rows if row]


def _similar(info, track_id: int, k: int, filter_input) -> list[dict] | None:
    from soniquebay_assets.catalog import vector_search

    ctx = _context(info)
    k = _k(info, k)
    if not ctx.access.vector_search:
        raise errors.ApiError("similar-track search is off on this server: its SQLite cannot load sqlite-vec")
    try:
        found = vector_search.search_similar(ctx.conn, track_id=int(track_id), k=k, filters=_radio(filter_input),
                                             describe=False)
    except LookupError as exc:  # no vector: an unknown track is null, a known one without a vector an error
        if ctx.tracks.get(int(track_id)) is None:
            return None
        raise errors.ApiError(str(exc)) from None
    return _similar_rows(info, found)


# ------------------------------------------------------------------------------------------ playlists


class PlaylistEntry(graphene.ObjectType):
    position = graphene.Int(required=True)
    reason = graphene.String(required=True, description="why this track is here")
    track_id = graphene.Int(required=True)
    title = graphene.String(required=True)
    artist = graphene.String(required=True)
    album = graphene.String()
    path = graphene.String(required=True)
    duration_s = graphene.Float(source="duration")
    bpm = graphene.Float()
    camelot = graphene.String()
    track = graphene.Field(lambda: Track, description="the track as the catalog has it now (null once deleted)")

    @staticmethod
    def resolve_track(root, info):
        ctx = _context(info)
        row = ctx.tracks.get(root.track_id)
        return ctx.saw_tracks([row])[0] if row else None


class Playlist(graphene.ObjectType):
    """A playlist as made: its entries in order, what it is and notes on what fell short."""

    name = graphene.String(required=True)
    kind = graphene.String(required=True)
    description = graphene.String()
    notes = graphene.List(graphene.NonNull(graphene.String), required=True)
    count = graphene.Int(required=True)
    minutes = graphene.Float(required=True)
    entries = graphene.List(graphene.NonNull(PlaylistEntry), required=True)

    @staticmethod
    def resolve_count(root, info):
        return len(root.entries)

    @staticmethod
    def resolve_entries(root, info):
        _context(info).tracks.want([e.track_id for e in root.entries])
        return list(root.entries)


class SavedPlaylist(graphene.ObjectType):
    """A saved playlist definition and its playlists (one, or one per cluster): as last made by the playlists
    stage, or made now when the stage has not made them yet (`materializedAt` is then null)."""

    id = graphene.Int(required=True, source="playlist_id")
    name = graphene.String(required=True)
    kind = graphene.String(required=True)
    request = GenericScalar(required=True, description="the generation request it was saved with (JSON)")
    created_at = graphene.String()
    updated_at = graphene.String()
    materialized_at = graphene.String()
    m3u8_url = graphene.String(required=True, description="the first part as an M3U8 download (`?part=N` for others)")
    parts = graphene.List(graphene.NonNull(Playlist), required=True)

    @staticmethod
    def resolve_m3u8_url(root, info):
        return playlist_url(root["name"])

    @staticmethod
    def resolve_parts(root, info):
        from soniquebay_assets.api import playlists

        return playlists.parts_of(_context(info).conn, root)


def playlist_url(name: str) -> str:
    from urllib.parse import quote

    return f"/playlists/{quote(name, safe='')}.m3u8"


class MoodThresholdInput(graphene.InputObjectType):
    mood = graphene.String(required=True, description="happy, sad, aggressive, relaxed or party")
    min = graphene.Float(required=True, description="least score, 0..1")


class PlaylistFiltersInput(graphene.InputObjectType):
    bpm_min = graphene.Float()
    bpm_max = graphene.Float()
    key = graphene.String(description="'A minor', 'Am', '8A'")
    compatible_keys = graphene.Boolean()
    energy_min = graphene.Float()
    energy_max = graphene.Float()
    danceability_min = graphene.Float()
    danceability_max = graphene.Float()
    moods = graphene.List(graphene.NonNull(MoodThresholdInput))
    genres = graphene.List(graphene.NonNull(graphene.String))
    exclude_genres = graphene.List(graphene.NonNull(graphene.String))
    year_min = graphene.Int()
    year_max = graphene.Int()
    duration_min = graphene.Float()
    duration_max = graphene.Float()
    loudness_min = graphene.Float()
    loudness_max = graphene.Float()
    match_status = graphene.List(graphene.NonNull(graphene.String))


class PlaylistRequestInput(graphene.InputObjectType):
    """What to make: a kind and what it needs (similar: track; radio: artist or albumId; text: text; path:
    fromTrack and toTrack; clusters: clusters), the length (entries or minutes) and the filters."""

    kind = graphene.String(required=True, description="similar, radio, text, filter, path or clusters")
    track = graphene.String(description="a track id or path")
    artist = graphene.String()
    album_id = graphene.Int()
    text = graphene.String()
    from_track = graphene.String()
    to_track = graphene.String()
    clusters = graphene.Int()
    length = graphene.Int()
    minutes = graphene.Float()
    artist_window = graphene.Int()
    seed = graphene.Int()
    filters = PlaylistFiltersInput()


# ------------------------------------------------------------------------------------------ listings


class TrackSort(graphene.Enum):
    ID = "ID"
    TITLE = "TITLE"
    ARTIST = "ARTIST"
    ALBUM = "ALBUM"
    YEAR = "YEAR"
    BPM = "BPM"
    DURATION = "DURATION"
    ADDED = "ADDED"


class AlbumSort(graphene.Enum):
    ID = "ID"
    ARTIST = "ARTIST"
    TITLE = "TITLE"
    YEAR = "YEAR"
    ADDED = "ADDED"


class ArtistSort(graphene.Enum):
    ID = "ID"
    NAME = "NAME"


class TrackFilterInput(graphene.InputObjectType):
    text = graphene.String(description="words in the title, artist, album or album artist")
    genre = graphene.String()
    year_min = graphene.Int()
    year_max = graphene.Int()
    bpm_min = graphene.Float()
    bpm_max = graphene.Float()
    key = graphene.String(description="'A minor', 'Am', 'F#', '8A' (the analysed key)")
    compatible_keys = graphene.Boolean(default_value=False, description="with key: Camelot neighbours too")
    moods = graphene.List(graphene.NonNull(graphene.String), description="mood tags, all required")
    match_status = graphene.String()
    album_id = graphene.Int()
    artist_id = graphene.Int()


class AlbumFilterInput(graphene.InputObjectType):
    text = graphene.String(description="words in the title or album artist")
    match_status = graphene.String(description="tagged, matched, candidates, unmatched or pending")
    year_min = graphene.Int()
    year_max = graphene.Int()
    artist_id = graphene.Int()
    has_cover = graphene.Boolean()


class ArtistFilterInput(graphene.InputObjectType):
    text = graphene.String()


def _filter(cls, given) -> object:
    values = {k: v for k, v in dict(given or {}).items() if v is not None}
    if "moods" in values:
        values["moods"] = tuple(values["moods"])
    return cls(**values)


def _connection(page: browse.Page, count) -> dict:
    return {"nodes": page.rows, "page_info": {"end_cursor": page.end_cursor, "has_next_page": page.has_next_page,
                                             "page_size": page.page_size}, "count": count}


def _connection_type(node: type, noun: str) -> type:
    """`<Node>Connection { nodes, pageInfo, totalCount }`: one keyset page of a listing."""
    return type(f"{node.__name__}Connection", (graphene.ObjectType,), {
        "nodes": graphene.List(graphene.NonNull(node), required=True),
        "page_info": graphene.Field(graphene.NonNull(PageInfo)),
        "total_count": graphene.Int(required=True, description=f"{noun} matching the filter (counted when asked)",
                                    resolver=lambda root, info: root["count"]()),
    })


TrackConnection = _connection_type(Track, "tracks")
AlbumConnection = _connection_type(Album, "albums")
ArtistConnection = _connection_type(Artist, "artists")


class KeyCount(graphene.ObjectType):
    key = graphene.String(required=True, description="tonic and mode, e.g. 'A minor'")
    camelot = graphene.String()
    tracks = graphene.Int(required=True)


class NamedCount(graphene.ObjectType):
    name = graphene.String(required=True)
    count = graphene.Int(required=True)


class NamedValue(graphene.ObjectType):
    name = graphene.String(required=True)
    value = graphene.Float(required=True)


class Library(graphene.ObjectType):
    """The whole library at a glance: counts, tempo histogram, keys, moods, match statuses."""

    tracks = graphene.Int(required=True)
    albums = graphene.Int(required=True)
    artists = graphene.Int(required=True)
    analysed = graphene.Int(required=True)
    covered_albums = graphene.Int(required=True)
    bpm_histogram = graphene.List(graphene.NonNull(NamedCount), required=True, description="10-BPM bins")
    keys = graphene.List(graphene.NonNull(KeyCount), required=True)
    mood_tags = graphene.List(graphene.NonNull(NamedCount), required=True)
    mood_means = graphene.List(graphene.NonNull(NamedValue), required=True)
    match_statuses = graphene.List(graphene.NonNull(NamedCount), required=True)


def library_view(summary: browse.LibrarySummary) -> dict:
    pairs = lambda d: [{"name": k, "count": v} for k, v in d.items()]  # noqa: E731
    return {"tracks": summary.tracks, "albums": summary.albums, "artists": summary.artists,
            "analysed": summary.analysed, "covered_albums": summary.covered_albums,
            "bpm_histogram": pairs(summary.bpm_histogram),
            "keys": [{"key": k, "camelot": c, "tracks": n} for k, c, n in summary.keys],
            "mood_tags": pairs(summary.mood_tags),
            "mood_means": [{"name": k, "value": v} for k, v in summary.mood_means.items()],
            "match_statuses": pairs(summary.match_statuses)}


def _catalog_call(fn, *args, **kwargs):
    """A browse call whose bad filters and cursors are the client's to fix, said as such."""
    try:
        return fn(*args, **kwargs)
    except (browse.BadFilter, browse.BadCursor) as exc:
        raise errors.ApiError(str(exc)) from None


def _listing(info, page_of, count_of, filter_class, saw: str, *, sort, descending=False, first=None, after=None,
             filter=None) -> dict:  # noqa: A002 - the GraphQL argument's name
    """One page of a listing (the rows' related objects fetched together if asked) and its count on demand."""
    ctx = _context(info)
    filters = _filter(filter_class, filter)
    page = _catalog_call(page_of, ctx.conn, filters, sort=_enum_name(sort), descending=descending,
                         first=_page_size(info, first), after=after)
    getattr(ctx, saw)(page.rows)
    return _connection(page, lambda: count_of(ctx.conn, filters))


def _one(info, loader: str, saw: str, entity_id: int) -> dict | None:
    ctx = _context(info)
    row = getattr(ctx, loader).get(int(entity_id))
    return getattr(ctx, saw)([row])[0] if row else None


class Query(graphene.ObjectType):
    tracks = graphene.Field(graphene.NonNull(TrackConnection), filter=TrackFilterInput(),
                            sort=TrackSort(default_value="ARTIST"), descending=graphene.Boolean(default_value=False),
                            first=graphene.Int(default_value=browse.DEFAULT_PAGE_SIZE), after=graphene.String())
    track = graphene.Field(Track, id=graphene.Int(required=True))
    albums = graphene.Field(graphene.NonNull(AlbumConnection), filter=AlbumFilterInput(),
                            sort=AlbumSort(default_value="ARTIST"), descending=graphene.Boolean(default_value=False),
                            first=graphene.Int(default_value=browse.DEFAULT_PAGE_SIZE), after=graphene.String())
    album = graphene.Field(Album, id=graphene.Int(required=True))
    artists = graphene.Field(graphene.NonNull(ArtistConnection), filter=ArtistFilterInput(),
                             sort=ArtistSort(default_value="NAME"), descending=graphene.Boolean(default_value=False),
                             first=graphene.Int(default_value=browse.DEFAULT_PAGE_SIZE), after=graphene.String())
    artist = graphene.Field(Artist, id=graphene.Int(required=True))
    similar = graphene.List(graphene.NonNull(SimilarTrack), track_id=graphene.Int(required=True),
                            k=graphene.Int(default_value=DEFAULT_SIMILAR), filter=RadioFilterInput(),
                            description="tracks nearest to a track (null when the track does not exist)")
    similar_to_text = graphene.List(graphene.NonNull(SimilarTrack), required=True, text=graphene.String(required=True),
                                    k=graphene.Int(default_value=DEFAULT_SIMILAR), filter=RadioFilterInput(),
                                    description="tracks nearest to a description, e.g. 'calm piano at night'")
    library = graphene.Field(graphene.NonNull(Library))
    playlists = graphene.List(graphene.NonNull(SavedPlaylist), required=True)
    playlist = graphene.Field(SavedPlaylist, name=graphene.String(required=True))
    generate_playlist = graphene.List(graphene.NonNull(Playlist), required=True,
                                      request=PlaylistRequestInput(required=True),
                                      description="make a playlist now, without saving it")

    @staticmethod
    def resolve_tracks(root, info, **arguments):
        return _listing(info, browse.track_page, browse.track_count, browse.TrackFilter, "saw_tracks", **arguments)

    @staticmethod
    def resolve_track(root, info, id):  # noqa: A002
        return _one(info, "tracks", "saw_tracks", id)

    @staticmethod
    def resolve_albums(root, info, **arguments):
        return _listing(info, browse.album_page, browse.album_count, browse.AlbumFilter, "saw_albums", **arguments)

    @staticmethod
    def resolve_album(root, info, id):  # noqa: A002
        return _one(info, "albums", "saw_albums", id)

    @staticmethod
    def resolve_artists(root, info, **arguments):
        return _listing(info, browse.artist_page, browse.artist_count, browse.ArtistFilter, "saw_artists",
                        **arguments)

    @staticmethod
    def resolve_artist(root, info, id):  # noqa: A002
        return _one(info, "artists", "saw_artists", id)

    @staticmethod
    def resolve_similar(root, info, track_id, k=DEFAULT_SIMILAR, filter=None):  # noqa: A002
        return _similar(info, track_id, k, filter)

    @staticmethod
    def resolve_similar_to_text(root, info, text, k=DEFAULT_SIMILAR, filter=None):  # noqa: A002
        from soniquebay_assets.catalog import vector_search
        from soniquebay_assets.library.embedder import ModelNotFoundError
        from soniquebay_assets.pipeline import vectorize

        ctx = _context(info)
        k = _k(info, k)
        if not text.strip():
            raise errors.ApiError("text is empty: describe the music, e.g. 'calm piano at night'")
        if not ctx.access.vector_search:
            raise errors.ApiError("similar-track search is off on this server: its SQLite cannot load sqlite-vec")
        try:
            query = vectorize.text_query(ctx.conn, text)
        except (vectorize.NoVectorsYet, ModelNotFoundError) as exc:
            raise errors.ApiError(str(exc)) from None
        found = vector_search.search_similar(ctx.conn, vector=query, k=k, filters=_radio(filter), describe=False)
        return _similar_rows(info, found)

    @staticmethod
    def resolve_library(root, info):
        return library_view(browse.library_summary(_context(info).conn))

    @staticmethod
    def resolve_playlists(root, info):
        from soniquebay_assets.api import playlists

        return playlists.saved(_context(info).conn)

    @staticmethod
    def resolve_playlist(root, info, name):
        from soniquebay_assets.api import playlists

        found = playlists.saved(_context(info).conn, name)
        return found[0] if found else None

    @staticmethod
    def resolve_generate_playlist(root, info, request):
        from soniquebay_assets.api import playlists

        return playlists.generate(_context(info).conn, request)


# ------------------------------------------------------------------------------------------ decisions


class AcceptMatch(graphene.Mutation):
    """Accept a MusicBrainz release for an album (the same decision as `soniquebay match --accept`)."""

    class Arguments:
        album_id = graphene.Int(required=True)
        release_id = graphene.String(required=True)

    Output = Album

    @staticmethod
    def mutate(root, info, album_id, release_id):
        from soniquebay_assets.api import decisions

        return decisions.decide(_context(info), album_id, accept=release_id)


class RejectMatch(graphene.Mutation):
    """None of the candidates is this album (the same decision as `soniquebay match --reject`)."""

    class Arguments:
        album_id = graphene.Int(required=True)

    Output = Album

    @staticmethod
    def mutate(root, info, album_id):
        from soniquebay_assets.api import decisions

        return decisions.decide(_context(info), album_id, accept=None)


class SavePlaylist(graphene.Mutation):
    """Save a playlist definition under a name (checked: it can be made); the playlists stage writes and pushes it."""

    class Arguments:
        name = graphene.String(required=True)
        request = PlaylistRequestInput(required=True)

    Output = SavedPlaylist

    @staticmethod
    def mutate(root, info, name, request):
        from soniquebay_assets.api import playlists

        return playlists.save(_context(info), name, request)


class DeletedPlaylist(graphene.ObjectType):
    name = graphene.String(required=True)
    files_removed = graphene.Int(required=True, description="M3U8 files the playlists stage had written")
    servers = GenericScalar(required=True, description="what each Subsonic server answered (JSON)")


class DeletePlaylist(graphene.Mutation):
    """Delete a saved playlist: its definition, its M3U8 files and its copies on Subsonic servers."""

    class Arguments:
        name = graphene.String(required=True)

    Output = DeletedPlaylist

    @staticmethod
    def mutate(root, info, name):
        from soniquebay_assets.api import playlists

        return playlists.delete(_context(info), name)


class Mutation(graphene.ObjectType):
    accept_match = AcceptMatch.Field()
    reject_match = RejectMatch.Field()
    save_playlist = SavePlaylist.Field()
    delete_playlist = DeletePlaylist.Field()


schema = graphene.Schema(query=Query, mutation=Mutation, auto_camelcase=True)
