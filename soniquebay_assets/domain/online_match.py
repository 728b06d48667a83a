"""Scoring MusicBrainz releases against a cataloged album (title, artist, track count, track durations).

Pure: it reads MusicBrainz JSON it is handed (real field names: `releases`, `artist-credit`, `media`, `tracks`,
`recording`, `length`, `release-group`, `label-info`, `score`) and returns numbers. The threshold and the weights
are documented in docs/online.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher

from soniquebay_assets.domain.albums import UNKNOWN_ARTIST

# An album whose best release scores at least this is matched automatically; below, candidates are kept for the
# user. 0.85 needs near-identical title and artist plus a consistent track list: one wrong component (a different
# artist, a deluxe edition with extra tracks, durations off by more than a few seconds) falls below it.
MATCH_THRESHOLD = 0.85
WEIGHTS = {"title": 0.30, "artist": 0.25, "track_count": 0.15, "durations": 0.30}
# Floors no weighted mean can buy off: a tribute band with the same track list is still another artist.
MIN_TITLE = 0.8
MIN_ARTIST = 0.8
# A track within this many seconds of the release's length counts as identical; at DURATION_WORST_S or more apart
# it counts as unrelated (rips, pregaps and rounding move lengths by a second or two).
DURATION_SAME_S = 3.0
DURATION_WORST_S = 30.0
CANDIDATES_KEPT = 5
VARIOUS_ARTISTS = frozenset({"various artists", "various", "va"})

_BRACKETED = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]\s*")
_NON_WORD = re.compile(r"[^\w]+")


def normalize_text(text: str | None) -> str:
    """Casefolded, accents and punctuation removed, '&' read as 'and', whitespace collapsed."""
    s = unicodedata.normalize("NFKD", text or "")
    s = "".join(c for c in s if not unicodedata.combining(c)).casefold().replace("&", " and ")
    return " ".join(_NON_WORD.sub(" ", s).split())


def text_similarity(a: str | None, b: str | None) -> float:
    """0..1; also compares without bracketed suffixes ('(Remastered)', '[Deluxe Edition]') and keeps the better."""
    pairs = [(a or "", b or ""), (_BRACKETED.sub(" ", a or ""), _BRACKETED.sub(" ", b or ""))]
    best = 0.0
    for x, y in pairs:
        nx, ny = normalize_text(x), normalize_text(y)
        if not nx or not ny:
            continue
        best = max(best, 1.0 if nx == ny else SequenceMatcher(None, nx, ny).ratio())
    return best


def artist_similarity(album_artist: str | None, credit: str | None, *,
                      compilation: bool = False) -> float | None:
    """None when the album has no artist to compare (untagged): the score then rests on the rest, and the
    artist floor keeps such an album from being matched automatically."""
    if not album_artist or album_artist == UNKNOWN_ARTIST:
        return None
    if compilation and normalize_text(credit) in VARIOUS_ARTISTS:
        return 1.0
    return text_similarity(album_artist, credit)


def track_count_score(album_count: int, release_count: int | None) -> float | None:
    """1 for the same count, falling to 0 when one has half again as many tracks as the other."""
    if not release_count or not album_count:
        return None
    diff = abs(album_count - release_count) / max(album_count, release_count)
    return max(0.0, 1.0 - 2.0 * diff)


def duration_score(album_s: Sequence[float | None], release_ms: Sequence[int | None]) -> float | None:
    """Mean per-track closeness of lengths paired in order; None when no pair has both lengths."""
    scores = []
    for mine, theirs in zip(album_s, release_ms, strict=False):
        if mine is None or theirs is None or mine <= 0 or theirs <= 0:
            continue
        gap = abs(float(mine) - theirs / 1000.0)
        if gap <= DURATION_SAME_S:
            scores.append(1.0)
        else:
            scores.append(max(0.0, 1.0 - (gap - DURATION_SAME_S) / (DURATION_WORST_S - DURATION_SAME_S)))
    if not scores:
        return None
    # Tracks the other side lacks count as unrelated pairs.
    missing = abs(len(album_s) - len(release_ms))
    return sum(scores) / (len(scores) + missing)


def weighted(components: dict[str, float | None]) -> float:
    """Weighted mean of the available components (a missing one gives its weight to the others)."""
    total = sum(WEIGHTS[k] for k, v in components.items() if v is not None)
    if not total:
        return 0.0
    return sum(WEIGHTS[k] * v for k, v in components.items() if v is not None) / total


@dataclass(frozen=True)
class AlbumFacts:
    """What the catalog knows of an album, from its files' tags."""

    title: str
    album_artist: str
    durations_s: tuple[float | None, ...]  # in disc/track order
    compilation: bool = False

    @property
    def track_count(self) -> int:
        return len(self.durations_s)


@dataclass
class ReleaseCandidate:
    """One MusicBrainz release, as a search result or (with `track_lengths_ms`) a full lookup."""

    release_id: str
    title: str
    artist: str
    track_count: int | None
    release_group_id: str | None = None
    date: str | None = None
    label: str | None = None
    country: str | None = None
    service_score: int | None = None  # MusicBrainz's own search score, 0..100
    track_lengths_ms: tuple[int | None, ...] | None = None
    recording_ids: tuple[str | None, ...] | None = None
    artist_ids: dict[str, str] = field(default_factory=dict)  # credited name (release, tracks) -> artist id
    score: float = 0.0
    components: dict[str, float | None] = field(default_factory=dict)

    def summary(self) -> dict:
        """The JSON kept for a candidate (no per-track lists)."""
        out = asdict(self)
        for key in ("track_lengths_ms", "recording_ids", "artist_ids"):
            out.pop(key)
        out["score"] = round(self.score, 4)
        out["components"] = {k: (round(v, 4) if v is not None else None) for k, v in self.components.items()}
        return out


def score_candidate(album: AlbumFacts, candidate: ReleaseCandidate) -> ReleaseCandidate:
    """Fill `score` and `components`; durations count only once the release's track lengths are known."""
    components: dict[str, float | None] = {
        "title": text_similarity(album.title, candidate.title),
        "artist": artist_similarity(album.album_artist, candidate.artist, compilation=album.compilation),
        "track_count": track_count_score(album.track_count, candidate.track_count),
        "durations": (duration_score(album.durations_s, candidate.track_lengths_ms)
                      if candidate.track_lengths_ms is not None else None),
    }
    candidate.components = components
    candidate.score = weighted(components)
    return candidate


def _credit_name(credits: object) -> tuple[str, dict[str, str]]:
    """Display name of an `artist-credit` list (names joined by their join phrases) and name -> artist id."""
    if not isinstance(credits, list):
        return "", {}
    parts, ids = [], {}
    for credit in credits:
        if not isinstance(credit, dict):
            continue
        artist = credit.get("artist") if isinstance(credit.get("artist"), dict) else {}
        name = str(credit.get("name") or artist.get("name") or "")
        parts.append(name + str(credit.get("joinphrase") or ""))
        if artist.get("id") and name:
            ids[name] = str(artist["id"])
            if artist.get("name"):
                ids.setdefault(str(artist["name"]), str(artist["id"]))
    return "".join(parts).strip(), ids


def _label(info: object) -> str | None:
    for item in info if isinstance(info, list) else []:
        label = item.get("label") if isinstance(item, dict) else None
        if isinstance(label, dict) and label.get("name"):
            return str(label["name"])
    return None


def parse_release(data: dict) -> ReleaseCandidate | None:
    """A release object (search result or lookup) as a candidate; None when it lacks an id."""
    if not isinstance(data, dict) or not data.get("id"):
        return None
    artist, artist_ids = _credit_name(data.get("artist-credit"))
    group = data.get("release-group") if isinstance(data.get("release-group"), dict) else {}
    media = [m for m in data.get("media") or [] if isinstance(m, dict)]
    lengths: list[int | None] | None = None
    recordings: list[str | None] | None = None
    if any(isinstance(m.get("tracks"), list) for m in media):
        lengths, recordings = [], []
        for medium in sorted(media, key=lambda m: int(m.get("position") or 0)):
            for track in medium.get("tracks") or []:
                if not isinstance(track, dict):
                    continue
                recording = track.get("recording") if isinstance(track.get("recording"), dict) else {}
                for credits in (track.get("artist-credit"), recording.get("artist-credit")):
                    for name, mbid in _credit_name(credits)[1].items():
                        artist_ids.setdefault(name, mbid)
                length = track.get("length") if track.get("length") is not None else recording.get("length")
                lengths.append(int(length) if isinstance(length, int | float) else None)
                recordings.append(str(recording["id"]) if recording.get("id") else None)
    count = data.get("track-count")
    if not isinstance(count, int):
        counts = [m.get("track-count") for m in media if isinstance(m.get("track-count"), int)]
        count = sum(counts) if counts else (len(lengths) if lengths is not None else None)
    score = data.get("score")
    return ReleaseCandidate(
        release_id=str(data["id"]), title=str(data.get("title") or ""), artist=artist, track_count=count,
        release_group_id=str(group["id"]) if group.get("id") else None, date=str(data.get("date") or "") or None,
        label=_label(data.get("label-info")), country=str(data.get("country") or "") or None,
        service_score=int(score) if isinstance(score, int | float) or str(score).isdigit() else None,
        track_lengths_ms=tuple(lengths) if lengths is not None else None,
        recording_ids=tuple(recordings) if recordings is not None else None, artist_ids=artist_ids)


def parse_search(payload: dict) -> list[ReleaseCandidate]:
    releases = payload.get("releases") if isinstance(payload, dict) else None
    return [c for c in (parse_release(r) for r in releases or []) if c is not None]


@dataclass
class MatchDecision:
    status: str  # matched | candidates | unmatched
    best: ReleaseCandidate | None
    candidates: list[ReleaseCandidate]


def rank(album: AlbumFacts, candidates: Sequence[ReleaseCandidate]) -> list[ReleaseCandidate]:
    """Candidates scored and sorted best first (ties: MusicBrainz's own score, then id for stability)."""
    scored = [score_candidate(album, c) for c in candidates]
    return sorted(scored, key=lambda c: (-c.score, -(c.service_score or 0), c.release_id))


def is_confident(candidate: ReleaseCandidate) -> bool:
    """Matched automatically: fully looked up, over the threshold and over each floor (a missing title or
    artist component counts as below its floor)."""
    parts = candidate.components
    return (candidate.score >= MATCH_THRESHOLD and parts.get("durations") is not None
            and (parts.get("title") or 0.0) >= MIN_TITLE and (parts.get("artist") or 0.0) >= MIN_ARTIST)


def decide(album: AlbumFacts, looked_up: Sequence[ReleaseCandidate],
           others: Sequence[ReleaseCandidate]) -> MatchDecision:
    """`matched` when a fully looked-up release reaches the threshold; else the best few as `candidates`."""
    full = rank(album, looked_up)
    confident = [c for c in full if is_confident(c)]
    if confident:
        return MatchDecision("matched", confident[0], full[:CANDIDATES_KEPT])
    seen = {c.release_id for c in full}
    pool = full + [c for c in rank(album, others) if c.release_id not in seen]
    pool.sort(key=lambda c: -c.score)
    if not pool:
        return MatchDecision("unmatched", None, [])
    return MatchDecision("candidates", pool[0], pool[:CANDIDATES_KEPT])


def artist_id_from_search(name: str, payload: dict, *, min_service_score: int = 90,
                          min_similarity: float = 0.9) -> tuple[str | None, float]:
    """(MusicBrainz artist id, similarity) of the search's best artist when it is clearly the same name."""
    for artist in (payload.get("artists") if isinstance(payload, dict) else None) or []:
        if not isinstance(artist, dict) or not artist.get("id"):
            continue
        similarity = max(text_similarity(name, artist.get("name")), text_similarity(name, artist.get("sort-name")))
        service = artist.get("score")
        service = int(service) if isinstance(service, int | float) or str(service).isdigit() else 0
        if service >= min_service_score and similarity >= min_similarity:
            return str(artist["id"]), similarity
        break  # only the top result: lower ones would be guesses
    return None, 0.0


def acoustid_best(results: Sequence[dict], *, min_score: float = 0.8) -> dict | None:
    """The best AcoustID result's first recording with a title: {recording_id, title, artist, score}."""
    for result in results:
        score = float(result.get("score") or 0.0)
        if score < min_score:
            return None
        for recording in result.get("recordings") or []:
            if not isinstance(recording, dict) or not recording.get("title"):
                continue
            artists = [a.get("name", "") for a in recording.get("artists") or [] if isinstance(a, dict)]
            return {"recording_id": recording.get("id"), "title": str(recording["title"]),
                    "artist": ", ".join(a for a in artists if a) or None, "score": score}
    return None
