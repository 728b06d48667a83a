"""Playlist generation on a library handed in as arrays: requests, filters, the rules every kind obeys
(one recording once, an artist at most once per window, a target length), smooth ordering, and the kinds that
need no search index (filter, path, clusters; similar/radio/text rank their candidates through the caller).

Pure logic (stdlib + numpy): the catalog loads `PlaylistLibrary`, the pipeline resolves seeds and ranks
candidates, this module decides what goes in and in which order.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from soniquebay_assets.domain import embedding_text as et

KINDS = ("similar", "radio", "text", "filter", "path", "clusters")
DEFAULT_LENGTH = 25
DEFAULT_ARTIST_WINDOW = 3
MAX_LENGTH = 5000
MOODS = ("happy", "sad", "aggressive", "relaxed", "party")
MATCH_STATUSES = ("tagged", "matched", "candidates", "unmatched", "pending")  # as catalog.external names them
DEFAULT_MOOD_THRESHOLD = 0.5
# Longer playlists (a whole cluster) keep the greedy order: each 2-opt move weighs n x n reversals.
TWO_OPT_MAX = 300
# Two files of one recording (formats, remasters kept apart by their recording id) differ by a few seconds at most.
SAME_RECORDING_SECONDS = 4.0


class PlaylistRequestError(ValueError):
    """A request that cannot be served as given; the message says what to change."""


# ------------------------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class PlaylistFilters:
    """Rules a track must pass to enter a playlist (None / empty = no rule)."""

    bpm_min: float | None = None
    bpm_max: float | None = None
    key: str | None = None                 # "A minor", "Am", "8A": tracks in that key ...
    compatible_keys: bool = False          # ... or, with this, Camelot-compatible with it (or with the seed)
    energy_min: float | None = None
    energy_max: float | None = None
    danceability_min: float | None = None
    danceability_max: float | None = None
    moods: tuple[tuple[str, float], ...] = ()   # (mood, least score), e.g. (("relaxed", 0.5),)
    genres: tuple[str, ...] = ()           # any of these
    exclude_genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    duration_min: float | None = None      # seconds
    duration_max: float | None = None
    loudness_min: float | None = None      # LUFS
    loudness_max: float | None = None
    match_status: tuple[str, ...] = ()     # album MusicBrainz match status (MATCH_STATUSES)

    def is_empty(self) -> bool:
        return self == PlaylistFilters()

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in (None, False, ()):
                out[f.name] = [list(v) for v in value] if f.name == "moods" else (
                    list(value) if isinstance(value, tuple) else value)
        return out

    @classmethod
    def from_json(cls, data: dict | None) -> PlaylistFilters:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise PlaylistRequestError(f"unknown filter(s): {', '.join(sorted(unknown))}")
        if "moods" in data:
            data["moods"] = tuple((str(m), float(t)) for m, t in data["moods"])
        for name in ("genres", "exclude_genres", "match_status"):
            if name in data:
                data[name] = tuple(str(v) for v in data[name])
        return cls(**data)

    def validate(self) -> None:
        for low, high in (("bpm_min", "bpm_max"), ("energy_min", "energy_max"), ("year_min", "year_max"),
                          ("danceability_min", "danceability_max"), ("duration_min", "duration_max"),
                          ("loudness_min", "loudness_max")):  # fmt: skip
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise PlaylistRequestError(f"{low.replace('_', '-')} {a} is above {high.replace('_', '-')} {b}")
        if self.key is not None and et.camelot_code(self.key, None, self.key) is None:
            raise PlaylistRequestError(f"key {self.key!r} is not a key: write e.g. 'A minor', 'F#m', 'Bb' or '8A'")
        for mood, threshold in self.moods:
            if mood not in MOODS:
                raise PlaylistRequestError(f"mood {mood!r}: choose from {', '.join(MOODS)}")
            if not 0.0 <= threshold <= 1.0:
                raise PlaylistRequestError(f"mood {mood} threshold {threshold}: give a score from 0 to 1")
        for status in self.match_status:
            if status not in MATCH_STATUSES:
                raise PlaylistRequestError(f"match status {status!r}: choose from {', '.join(MATCH_STATUSES)}")


@dataclass(frozen=True)
class PlaylistRequest:
    """What to generate: a kind, its seeds, the filters, the length and the rules' parameters."""

    kind: str
    track: str | None = None               # similar: a track id or path
    artist: str | None = None              # radio: an artist name ...
    album_id: int | None = None            # ... or an album id
    text: str | None = None                # text: a description
    from_track: str | None = None          # path: start and end (ids or paths)
    to_track: str | None = None
    clusters: int | None = None            # clusters: how many playlists
    length: int | None = None              # entries (default 25 unless minutes is given; 0 = whole cluster)
    minutes: float | None = None
    artist_window: int = DEFAULT_ARTIST_WINDOW
    seed: int = 0
    name: str | None = None
    filters: PlaylistFilters = field(default_factory=PlaylistFilters)

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if v is not None and k != "filters"}
        if not self.filters.is_empty():
            out["filters"] = self.filters.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict) -> PlaylistRequest:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise PlaylistRequestError(f"unknown request field(s): {', '.join(sorted(unknown))}")
        data["filters"] = PlaylistFilters.from_json(data.get("filters"))
        return cls(**data)

    @property
    def target_count(self) -> int | None:
        """Entries wanted; None when a duration is asked for (or a whole cluster)."""
        if self.minutes is not None:
            return None
        if self.length is None:
            return DEFAULT_LENGTH
        return self.length or None

    @property
    def target_seconds(self) -> float | None:
        return None if self.minutes is None else float(self.minutes) * 60.0

    def validate(self) -> PlaylistRequest:
        """The request itself, checked; PlaylistRequestError says what is missing or wrong."""
        if self.kind not in KINDS:
            raise PlaylistRequestError(f"unknown playlist kind {self.kind!r}: choose from {', '.join(KINDS)}")
        needs = {
            "similar": (self.track is not None, "a seed track (--track PATH|ID)"),
            "radio": ((self.artist is not None) != (self.album_id is not None),
                      "one seed: --artist NAME or --album ID"),
            "text": (bool(self.text and self.text.strip()), "a description (e.g. \"calm piano, slow\")"),
            "path": (self.from_track is not None and self.to_track is not None,
                     "both ends: --from TRACK and --to TRACK"),
            "clusters": (self.clusters is not None and 1 <= self.clusters <= 500,
                         "a number of playlists from 1 to 500 (--k N)"),
        }
        ok, what = needs.get(self.kind, (True, ""))
        if not ok:
            raise PlaylistRequestError(f"a {self.kind} playlist needs {what}")
        if self.length is not None and not 0 <= self.length <= MAX_LENGTH:
            raise PlaylistRequestError(f"-n {self.length}: give a number of entries from 1 to {MAX_LENGTH}")
        if self.length == 0 and self.kind != "clusters":
            raise PlaylistRequestError("-n 0 (no limit) only applies to clusters; give a number of entries")
        if self.minutes is not None and not 0 < self.minutes <= 24 * 60:
            raise PlaylistRequestError(f"--minutes {self.minutes}: give a duration from 1 minute to 24 hours")
        if self.length is not None and self.minutes is not None:
            raise PlaylistRequestError("give either -n ENTRIES or --minutes M, not both")
        if self.kind == "path" and self.target_count is not None and self.target_count < 2:
            raise PlaylistRequestError("a path playlist needs at least 2 entries (its two ends)")
        if not 1 <= self.artist_window <= 50:
            raise PlaylistRequestError(f"--artist-window {self.artist_window}: give a window from 1 to 50")
        self.filters.validate()
        return self


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class PlaylistEntry:
    position: int
    track_id: int
    path: str
    artist: str
    title: str
    duration: float | None
    reason: str
    album: str = ""
    bpm: float | None = None
    camelot: str | None = None

    def to_json(self) -> dict:
        return {"position": self.position, "track_id": self.track_id, "path": self.path, "artist": self.artist,
                "title": self.title, "duration": None if self.duration is None else round(self.duration, 2),
                "reason": self.reason, "album": self.album, "bpm": self.bpm, "camelot": self.camelot}


@dataclass(frozen=True)
class Playlist:
    """A generated playlist: its name, what it is, its entries in order, and notes on what fell short."""

    name: str
    kind: str
    entries: tuple[PlaylistEntry, ...]
    description: str = ""
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return float(sum(e.duration or 0.0 for e in self.entries))

    @property
    def minutes(self) -> float:
        return round(self.seconds / 60.0, 1)

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "entries": [e.to_json() for e in self.entries], "count": len(self.entries),
                "minutes": self.minutes, "notes": list(self.notes)}


# ------------------------------------------------------------------------------------------ the library


@dataclass
class PlaylistLibrary:
    """Every track of a catalog as parallel arrays (row order = track id order), plus its vectors when it has
    some. `state` identifies the catalog content it was read from."""

    track_ids: np.ndarray               # int64
    paths: list[str]
    roots: list[str]
    titles: list[str]
    artists: list[str]                  # display strings
    albums: list[str]
    album_ids: np.ndarray               # int64
    artist_sets: list[frozenset[int]]   # main artist ids (the placeholder artist left out)
    artist_names: dict[int, str]
    duration: np.ndarray                # float64 seconds, NaN unknown (same for every float column)
    year: np.ndarray
    bpm: np.ndarray
    energy: np.ndarray
    danceability: np.ndarray
    loudness: np.ndarray
    moods: dict[str, np.ndarray]        # MOODS -> scores 0..1
    camelot: np.ndarray                 # int16 camelot index (see camelot_index), -1 unknown
    genres: list[frozenset[str]]        # casefolded, tagged and normalized
    match_status: np.ndarray            # object: MATCH_STATUSES
    recording: np.ndarray               # int64: rows with the same value are one recording
    utf8_path: np.ndarray               # bool: the path can be written into a UTF-8 playlist
    matrix: np.ndarray | None = None    # float32 unit vectors (m x d), rows per vector_row
    vector_row: np.ndarray | None = None  # int64 per track: its row in `matrix`, -1 without a vector
    vector_track_row: np.ndarray | None = None  # int64 per vector: its track's row, -1 for an orphan vector
    ranker: Any = None                  # ranked(query, count) -> (vector rows, scores), best first (a search index)
    text_space: tuple[str, et.Weights] | None = None  # model name and weights text queries are embedded with
    genre_display: dict[str, str] = field(default_factory=dict)  # casefolded genre -> its usual spelling
    state: str = ""
    position: dict[int, int] = field(default_factory=dict)
    typical_duration: float = 240.0     # the median duration: stands in for a track's unknown one
    checked_at: float = 0.0             # monotonic time `state` was last found current (set by the catalog)

    def __post_init__(self) -> None:
        if not self.position:
            self.position = {int(t): i for i, t in enumerate(self.track_ids.tolist())}
        if self.vector_row is None:
            self.vector_row = np.full(len(self.track_ids), -1, dtype=np.int64)
        known = self.duration[~np.isnan(self.duration)]
        if len(known):
            self.typical_duration = float(np.median(known))

    def __len__(self) -> int:
        return len(self.track_ids)

    @property
    def has_vectors(self) -> bool:
        return self.matrix is not None and bool((self.vector_row >= 0).any())

    def vector(self, row: int) -> np.ndarray | None:
        vrow = int(self.vector_row[row])
        return None if vrow < 0 or self.matrix is None else self.matrix[vrow]

    def camelot_code(self, row: int) -> str | None:
        return camelot_name(int(self.camelot[row]))

    def row_of_path(self, path: str) -> int | None:
        """The row of the track at `path` (as stored), from an index built on first use."""
        index = self.__dict__.get("_row_by_path")
        if index is None:
            index = self.__dict__["_row_by_path"] = {p: i for i, p in enumerate(self.paths)}
        return index.get(path)

    def with_genres(self, names: Sequence[str]) -> np.ndarray:
        """Rows having any of these genres (casefolded keys), from an index built on first use."""
        index = self.__dict__.get("_genre_rows")
        if index is None:
            lists: dict[str, list[int]] = {}
            for row, keys in enumerate(self.genres):
                for key in keys:
                    lists.setdefault(key, []).append(row)
            index = self.__dict__["_genre_rows"] = {k: np.array(v, dtype=np.int64) for k, v in lists.items()}
        mask = np.zeros(len(self.track_ids), dtype=bool)
        for name in names:
            mask[index.get(name, np.zeros(0, dtype=np.int64))] = True
        return mask


def camelot_index(code: str | None) -> int:
    """'8A' -> 14 ((number - 1) * 2 + letter, A = 0, B = 1); -1 for none."""
    code = et.camelot_code(camelot=code) if code else None
    if code is None:
        return -1
    return (int(code[:-1]) - 1) * 2 + (1 if code[-1] == "B" else 0)


def camelot_name(index: int) -> str | None:
    return None if index < 0 else f"{index // 2 + 1}{'B' if index % 2 else 'A'}"


def camelot_compatible(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: same code, one step either way with the same letter, or the relative key; False if unknown."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    na, nb, la, lb = a // 2, b // 2, a % 2, b % 2
    step = (na - nb) % 12
    ok = (a == b) | ((la == lb) & ((step == 1) | (step == 11))) | ((na == nb) & (la != lb))
    return ok & (a >= 0) & (b >= 0)


_WORDS = re.compile(r"[\W_]+", re.UNICODE)


def identity_text(text: str | None) -> str:
    """Casefolded NFKC words without punctuation: how a title or artist is compared across files."""
    return _WORDS.sub(" ", unicodedata.normalize("NFKC", text or "").casefold()).strip()


def recording_groups(recording_ids: Sequence[Sequence[str]], titles: Sequence[str], artists: Sequence[str],
                     durations: np.ndarray) -> np.ndarray:
    """One group number per track: tracks sharing a recording id (MusicBrainz, AcoustID), or with the same
    title and artist and durations within SAME_RECORDING_SECONDS / 2, are one recording."""
    n = len(titles)
    parent = np.arange(n, dtype=np.int64)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    first: dict[tuple, int] = {}

    def join(key: tuple, row: int) -> None:
        other = first.setdefault(key, row)
        if other != row:
            a, b = find(other), find(row)
            if a != b:
                parent[max(a, b)] = min(a, b)

    half = SAME_RECORDING_SECONDS / 2
    artist_keys: dict[str, str] = {}  # artists repeat across a library, titles hardly
    for row in range(n):
        for rid in recording_ids[row]:
            if rid:
                join(("id", rid), row)
        artist = artist_keys.get(artists[row])
        if artist is None:
            artist = artist_keys[artists[row]] = identity_text(artists[row])
        title = identity_text(titles[row])
        if not title:
            continue
        seconds = durations[row]
        if math.isnan(seconds):
            join(("tag", title, artist, None), row)
        else:  # two offset grids: durations closer than `half` always share a bucket
            join(("tag", title, artist, "a", int(seconds // SAME_RECORDING_SECONDS)), row)
            join(("tag", title, artist, "b", int((seconds + half) // SAME_RECORDING_SECONDS)), row)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


# ------------------------------------------------------------------------------------------ filters


def reference_camelot(filters: PlaylistFilters, seed_rows: Sequence[int], library: PlaylistLibrary) -> int:
    """The key that --key / --compatible-keys refer to: the given key, else the first seed with a known key."""
    if filters.key:
        return camelot_index(et.camelot_code(filters.key, None, filters.key))
    for row in seed_rows:
        if library.camelot[row] >= 0:
            return int(library.camelot[row])
    return -1


def _range(mask: np.ndarray, values: np.ndarray, low: float | None, high: float | None) -> None:
    if low is not None:
        mask &= values >= low   # NaN compares False: a bound drops tracks without the value
    if high is not None:
        mask &= values <= high


def filter_mask(library: PlaylistLibrary, filters: PlaylistFilters, seed_rows: Sequence[int] = ()) -> np.ndarray:
    """Rows passing every filter."""
    mask = np.ones(len(library), dtype=bool)
    _range(mask, library.bpm, filters.bpm_min, filters.bpm_max)
    _range(mask, library.energy, filters.energy_min, filters.energy_max)
    _range(mask, library.danceability, filters.danceability_min, filters.danceability_max)
    _range(mask, library.year, filters.year_min, filters.year_max)
    _range(mask, library.duration, filters.duration_min, filters.duration_max)
    _range(mask, library.loudness, filters.loudness_min, filters.loudness_max)
    for mood, threshold in filters.moods:
        mask &= library.moods[mood] >= threshold
    if filters.key or filters.compatible_keys:
        reference = reference_camelot(filters, seed_rows, library)
        if reference < 0:
            raise PlaylistRequestError("--compatible-keys needs a key: give --key (e.g. 'A minor' or '8A') or a seed "
                                       "track whose key is known (run the enrich stage)")
        if filters.compatible_keys:
            mask &= camelot_compatible(library.camelot, np.full(len(library), reference))
        else:
            mask &= library.camelot == reference
    if filters.genres:
        mask &= library.with_genres([identity_text(g) for g in filters.genres])
    if filters.exclude_genres:
        mask &= ~library.with_genres([identity_text(g) for g in filters.exclude_genres])
    if filters.match_status:
        mask &= np.isin(library.match_status, list(filters.match_status))
    return mask


# ------------------------------------------------------------------------------------------ ordering


def transition_costs(library: PlaylistLibrary, rows: np.ndarray, to: np.ndarray | None = None) -> np.ndarray:
    """Cost of playing each of `to` (default: `rows` again) after each of `rows`: tempo step, key clash on the
    Camelot wheel, energy jump, sound (vector) distance. Symmetric; 0 from a row to itself."""
    rows = np.asarray(rows, dtype=np.int64)
    to = rows if to is None else np.asarray(to, dtype=np.int64)
    step = np.abs(library.bpm[rows][:, None] - library.bpm[to][None, :])
    cost = np.where(np.isnan(step), 0.6, np.minimum(step / 10.0, 2.0))
    keys, other = library.camelot[rows].astype(np.int64), library.camelot[to].astype(np.int64)
    known = (keys[:, None] >= 0) & (other[None, :] >= 0)
    cost += np.where(known, np.where(camelot_compatible(keys[:, None], other[None, :]), 0.0, 1.0), 0.5)
    jump = np.abs(library.energy[rows][:, None] - library.energy[to][None, :])
    cost += np.where(np.isnan(jump), 0.3, np.minimum(jump * 2.0, 1.0))
    if library.matrix is not None:
        here, there = library.vector_row[rows], library.vector_row[to]
        similarity = library.matrix[np.maximum(here, 0)] @ library.matrix[np.maximum(there, 0)].T
        both = (here >= 0)[:, None] & (there >= 0)[None, :]
        cost += np.where(both, np.clip(1.0 - similarity, 0.0, 2.0) * 2.0, 0.5)
    cost[rows[:, None] == to[None, :]] = 0.0
    return cost


def window_ok(artist_sets: Sequence[frozenset[int]], order: Sequence[int], window: int) -> bool:
    """No artist twice among any `window` consecutive entries."""
    for i in range(len(order)):
        mine = artist_sets[order[i]]
        if not mine:
            continue
        for j in range(max(0, i - window + 1), i):
            if mine & artist_sets[order[j]]:
                return False
    return True


def _fits_window(artist_sets: Sequence[frozenset[int]], order: Sequence[int], candidate: int, window: int) -> bool:
    mine = artist_sets[candidate]
    if not mine:
        return True
    return not any(mine & artist_sets[r] for r in order[max(0, len(order) - window + 1):] if window > 1)


@dataclass
class Target:
    """When a playlist is long enough: a number of entries or a duration (a track enters when half of it fits)."""

    count: int | None
    seconds: float | None
    fallback_duration: float = 240.0

    def full(self, count: int, seconds: float) -> bool:
        if self.count is not None:
            return count >= self.count
        if self.seconds is not None:
            return seconds >= self.seconds
        return False

    def admits(self, seconds: float, duration: float) -> bool:
        return self.seconds is None or seconds + duration / 2.0 <= self.seconds

    def estimate(self) -> int:
        if self.count is not None:
            return self.count
        if self.seconds is not None:
            return max(1, math.ceil(self.seconds / max(self.fallback_duration, 30.0)))
        return MAX_LENGTH


def target_of(request: PlaylistRequest, library: PlaylistLibrary) -> Target:
    return Target(request.target_count, request.target_seconds, library.typical_duration)


def _duration(library: PlaylistLibrary, row: int, target: Target) -> float:
    value = library.duration[row]
    return target.fallback_duration if math.isnan(value) else float(value)


def sequence(library: PlaylistLibrary, pool: np.ndarray, relevance: np.ndarray, *, start: Sequence[int],
             target: Target, window: int, smoothness: float = 0.1) -> list[int]:
    """Pick and order entries from `pool` (rows, best first, one per recording): each next entry is the most
    relevant that follows the previous one smoothly (tempo, key, energy, sound) and keeps the artist window;
    then the order is improved by 2-opt moves that keep the window. `start` rows open the playlist."""
    pool = np.asarray(pool, dtype=np.int64)
    start = [int(r) for r in start]
    everything = np.concatenate([np.asarray(start, dtype=np.int64), pool])
    # all pairs at once for a playlist-sized pool; a row at a time for a whole cluster (n x n would not fit)
    costs = transition_costs(library, everything) if len(everything) <= 1000 else None
    rel = np.concatenate([np.ones(len(start)), np.asarray(relevance, dtype=np.float64)])
    if len(rel) > len(start):
        span = rel[len(start):].max() - rel[len(start):].min()
        rel[len(start):] = (rel[len(start):] - rel[len(start):].min()) / span if span > 0 else 1.0
    order = list(range(len(start)))
    seconds = sum(_duration(library, r, target) for r in start)
    available = np.ones(len(everything), dtype=bool)
    available[: len(start)] = False
    artist_sets = [library.artist_sets[r] for r in everything.tolist()]
    while not target.full(len(order), seconds) and available.any():
        if order:
            step = costs[order[-1]] if costs is not None else \
                transition_costs(library, everything[order[-1]:order[-1] + 1], everything)[0]
            score = rel - smoothness * step
        else:
            score = rel.copy()
        score[~available] = -np.inf
        picked = None
        for candidate in np.argsort(-score, kind="stable").tolist():
            if not available[candidate]:
                break
            if _fits_window(artist_sets, order, candidate, window):
                picked = candidate
                break
        if picked is None:
            break  # every remaining candidate's artist is inside the window: a shorter playlist, not a broken rule
        duration = _duration(library, int(everything[picked]), target)
        if not target.admits(seconds, duration):
            available[picked] = False
            continue
        order.append(picked)
        seconds += duration
        available[picked] = False
    if len(order) <= TWO_OPT_MAX:
        chosen = everything[order]
        among = costs[np.ix_(order, order)] if costs is not None else transition_costs(library, chosen)
        positions = _two_opt(list(range(len(order))), among, [artist_sets[i] for i in order], window,
                             fixed=max(1, len(start)))
        return [int(chosen[i]) for i in positions]
    return [int(everything[i]) for i in order]


def _two_opt(order: list[int], costs: np.ndarray, artist_sets: list[frozenset[int]], window: int, *,
             fixed: int) -> list[int]:
    """Best-improvement 2-opt: reverse the segment that lowers the summed transition cost most while keeping the
    artist window, until none does; the first `fixed` entries stay where they are. (Costs are symmetric, so a
    reversal changes only the two transitions at its borders.)"""
    n = len(order)
    if n - fixed < 3:
        return order
    seq = np.array(order, dtype=np.int64)
    idx = np.arange(n)
    movable = (idx[:, None] >= fixed) & (idx[None, :] > idx[:, None])
    has_next = idx + 1 < n
    for _ in range(4 * n):
        before = seq[np.maximum(idx - 1, 0)]               # a_i: the entry before a segment starting at i
        after = np.where(has_next, seq[np.minimum(idx + 1, n - 1)], seq)  # d_j: the entry after one ending at j
        delta = (costs[np.ix_(before, seq)] - costs[before, seq][:, None]
                 + np.where(has_next[None, :], costs[np.ix_(seq, after)] - costs[seq, after][None, :], 0.0))
        delta[~movable] = 0.0
        moved = False
        for flat in np.argsort(delta, axis=None, kind="stable")[:8].tolist():
            i, j = divmod(flat, n)
            if delta[i, j] >= -1e-9:
                break
            trial = seq.copy()
            trial[i:j + 1] = trial[i:j + 1][::-1]
            lo, hi = max(0, i - window + 1), min(n, j + window)
            if window_ok([artist_sets[k] for k in trial[lo:hi].tolist()], range(hi - lo), window):
                seq, moved = trial, True
                break
        if not moved:
            break
    return seq.tolist()


def distinct_pool(library: PlaylistLibrary, candidates: np.ndarray, scores: np.ndarray, mask: np.ndarray,
                  used_recordings: set[int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """The best `size` candidates that pass `mask`, one per recording (the best-scored copy), none of
    `used_recordings`; (rows, scores), best first."""
    rows, kept = [], []
    seen = set(used_recordings)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    candidates = np.asarray(candidates, dtype=np.int64)
    for i in order.tolist():
        row = int(candidates[i])
        if not mask[row]:
            continue
        group = int(library.recording[row])
        if group in seen:
            continue
        seen.add(group)
        rows.append(row)
        kept.append(float(scores[i]))
        if len(rows) >= size:
            break
    return np.array(rows, dtype=np.int64), np.array(kept, dtype=np.float64)


def pool_size(target: Target, window: int) -> int:
    """Candidates handed to `sequence`: enough to choose for flow and to keep an artist window."""
    return int(target.estimate() * 2 + 10 * window)


def make_entries(library: PlaylistLibrary, rows: Sequence[int], reasons: Callable[[int], str]) -> tuple[PlaylistEntry, ...]:
    out = []
    for position, row in enumerate(rows, start=1):
        duration = library.duration[row]
        bpm = library.bpm[row]
        out.append(PlaylistEntry(
            position=position, track_id=int(library.track_ids[row]), path=library.paths[row],
            artist=library.artists[row], title=library.titles[row],
            duration=None if math.isnan(duration) else float(duration), reason=reasons(row),
            album=library.albums[row], bpm=None if math.isnan(bpm) else round(float(bpm), 1),
            camelot=library.camelot_code(row)))
    return tuple(out)


def short_notes(request: PlaylistRequest, target: Target, entries: Sequence[PlaylistEntry], candidates: int) -> list[str]:
    notes = []
    if target.count is not None and len(entries) < target.count:
        notes.append(f"{len(entries)} of {target.count} entries: {candidates} distinct tracks were candidates after "
                     f"the filters, and the artist window of {request.artist_window} allowed no more")
    if target.seconds is not None:
        seconds = sum(e.duration or 0.0 for e in entries)
        if seconds < target.seconds * 0.9:
            notes.append(f"{seconds / 60:.1f} of {target.seconds / 60:.0f} minutes: not enough distinct tracks passed "
                         f"the filters and the artist window")
    return notes


# ------------------------------------------------------------------------------------------ kinds


def ranked_playlist(library: PlaylistLibrary, request: PlaylistRequest, *, name: str, candidates: np.ndarray,
                    scores: np.ndarray, mask: np.ndarray, start: Sequence[int], start_reason: Callable[[int], str],
                    reason: Callable[[int, float], str], description: str = "") -> Playlist:
    """similar, radio, text: `candidates` (library rows) ranked by `scores`, filtered, one per recording, the
    artist window kept, ordered for flow after the `start` rows."""
    target = target_of(request, library)
    used = {int(library.recording[r]) for r in start}
    pool, pool_scores = distinct_pool(library, candidates, scores, mask, used, pool_size(target, request.artist_window))
    rows = sequence(library, pool, pool_scores, start=start, target=target, window=request.artist_window)
    by_row = dict(zip(pool.tolist(), pool_scores.tolist(), strict=True))
    starts = set(start)
    entries = make_entries(library, rows, lambda r: start_reason(r) if r in starts else reason(r, by_row[r]))
    return Playlist(name, request.kind, entries, description,
                    tuple(short_notes(request, target, entries, len(pool) + len(start))))


def filter_playlist(library: PlaylistLibrary, request: PlaylistRequest, mask: np.ndarray, *, name: str) -> Playlist:
    """Rules only: a sample of the passing tracks drawn with the request's seed, ordered for flow."""
    target = target_of(request, library)
    passing = np.flatnonzero(mask)
    rng = np.random.default_rng(request.seed)
    shuffled = passing[rng.permutation(len(passing))]
    # random scores in draw order: distinct_pool keeps the draw, one copy per recording
    pool, _ = distinct_pool(library, shuffled, -np.arange(len(shuffled), dtype=np.float64), mask, set(),
                            pool_size(target, request.artist_window))
    rows = sequence(library, pool, np.zeros(len(pool)), start=[], target=target, window=request.artist_window)
    entries = make_entries(library, rows, lambda r: "passes the filters")
    return Playlist(name, "filter", entries, describe_filters(request.filters),
                    tuple(short_notes(request, target, entries, int(mask.sum()))))


def describe_filters(filters: PlaylistFilters) -> str:
    parts = []
    for key, value in filters.to_json().items():
        if key == "moods":
            value = ", ".join(f"{m}>={t:g}" for m, t in value)
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        parts.append(f"{key.replace('_', ' ')} {value}")
    return "; ".join(parts) or "every track"


def _corridor(library: PlaylistLibrary, va: np.ndarray, vb: np.ndarray, *, points: int = 9,
              per_point: int = 2000) -> np.ndarray:
    """Vector rows of the tracks nearest a few points along the line from `va` to `vb` (a blend between two
    points ranks like a blend of their rankings): what a path's steps choose from. With a search index, its
    bit codes find them without reading every vector; else every vector is a candidate."""
    if library.ranker is None or len(library.matrix) <= points * per_point:
        return np.arange(len(library.matrix))
    found: set[int] = set()
    for t in np.linspace(0.0, 1.0, points):
        point = (1 - t) * va + t * vb
        point = (point / max(float(np.linalg.norm(point)), 1e-12)).astype(np.float32)
        found.update(library.ranker.ranked(point, per_point)[0].tolist())
    return np.array(sorted(found), dtype=np.int64)


def path_playlist(library: PlaylistLibrary, request: PlaylistRequest, start_row: int, end_row: int,
                  mask: np.ndarray, *, name: str, candidates_per_step: int = 200) -> Playlist:
    """A walk from `start_row` to `end_row` in vector space: each step is the track nearest the next point of
    the straight line between them that is strictly nearer the end than the step before (no repeats, filters
    and artist window kept), chosen for a smooth transition among the nearest few."""
    if library.matrix is None:
        raise PlaylistRequestError("a path playlist needs track vectors: run the vectors stage first")
    va, vb = library.vector(start_row), library.vector(end_row)
    if va is None or vb is None:
        missing = start_row if va is None else end_row
        raise PlaylistRequestError(f"track {int(library.track_ids[missing])} has no vector yet: run the vectors stage")
    if library.recording[start_row] == library.recording[end_row]:
        raise PlaylistRequestError("the path's two ends are the same recording: choose two different tracks")
    target = target_of(request, library)
    steps = max(2, target.estimate())
    vrows = library.vector_row
    vectors_near = _corridor(library, va, vb)
    ends = library.matrix[vectors_near] @ np.stack([va, vb]).T  # any point of the line scores as a blend of these
    rows = library.vector_track_row[vectors_near] if library.vector_track_row is not None else vectors_near
    start_b = float(library.matrix[vrows[start_row]] @ vb)
    end_b = float(library.matrix[vrows[end_row]] @ vb)
    # a step passes the filters, is neither end, and is nearer the end than the start is
    keep = (rows >= 0) & (ends[:, 1] > start_b) & (ends[:, 1] < end_b)
    keep[keep] &= mask[rows[keep]] & (rows[keep] != start_row) & (rows[keep] != end_row)
    rows = rows[keep]
    to_a, to_b = ends[keep, 0].astype(np.float64), ends[keep, 1].astype(np.float64)
    levels = np.sort(to_b) if len(to_b) else np.array([end_b])
    used = {int(library.recording[start_row]), int(library.recording[end_row])}
    order = [start_row]
    last_b = start_b
    seconds = _duration(library, start_row, target) + _duration(library, end_row, target)
    reasons = {start_row: "start of the path", end_row: "end of the path"}
    taken = np.zeros(len(rows), dtype=bool)
    inner = max(1, steps - 2)
    for k in range(1, steps - 1):
        if target.count is None and target.full(0, seconds):
            break
        t = k / (steps - 1)
        score = (1 - t) * to_a + t * to_b
        allowed = (~taken) & (to_b > last_b + 1e-7)
        if not allowed.any():
            break
        # progress toward the end is paced by the candidates' own spread: step k may go at most as near the end
        # as the (k+1)/(inner+1)-th of them, so every step has tracks to choose from and the end's sparse
        # neighbourhood is not reached early (a walk that ran out there would stop short)
        paced = allowed & (to_b <= levels[min(len(levels) - 1, int(np.ceil(len(levels) * (k + 1) / (inner + 1))) - 1)])
        allowed_idx = np.flatnonzero(paced if paced.any() else allowed)
        if len(allowed_idx) > candidates_per_step:
            allowed_idx = allowed_idx[np.argpartition(-score[allowed_idx], candidates_per_step - 1)[:candidates_per_step]]
        previous = library.vector(order[-1])
        sims = library.matrix[vrows[rows[allowed_idx]]] @ previous
        choice = None
        for i in np.argsort(-(score[allowed_idx] + 0.25 * sims), kind="stable").tolist():
            row = int(rows[allowed_idx[i]])
            if int(library.recording[row]) in used or not _fits_window(library.artist_sets, order, row,
                                                                        request.artist_window):
                continue
            choice = int(allowed_idx[i])
            break
        if choice is None:
            continue
        row = int(rows[choice])
        taken[choice] = True
        used.add(int(library.recording[row]))
        order.append(row)
        last_b = float(to_b[choice])
        seconds += _duration(library, row, target)
        reasons[row] = f"step {len(order) - 1}: {to_b[choice]:.2f} similar to the end, {to_a[choice]:.2f} to the start"
    # the end's artist must not come back too soon: drop the steps just before it until it fits
    while len(order) > 1 and not _fits_window(library.artist_sets, order, end_row, request.artist_window):
        order.pop()
    order.append(end_row)
    entries = make_entries(library, order, reasons.__getitem__)
    notes = []
    if target.count is not None and len(entries) < target.count:
        notes.append(f"{len(entries)} of {target.count} entries: no more tracks lie between the two ends that pass "
                     f"the filters, each nearer the end than the one before")
    description = f"from {library.artists[start_row]} - {library.titles[start_row]} to " \
                  f"{library.artists[end_row]} - {library.titles[end_row]}"
    return Playlist(name, "path", entries, description, tuple(notes))


# ------------------------------------------------------------------------------------------ clusters


def kmeans(points: np.ndarray, k: int, *, seed: int, iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centres) of k-means++ seeded Lloyd iterations on `points` (float32 rows), deterministic for `seed`."""
    rng = np.random.default_rng(seed)
    n = len(points)
    k = min(k, n)
    sample = points if n <= 20000 else points[np.sort(rng.choice(n, 20000, replace=False))]
    norms = (sample * sample).sum(axis=1)
    centres = [sample[int(rng.integers(len(sample)))]]
    closest = norms - 2 * sample @ centres[0] + centres[0] @ centres[0]
    for _ in range(1, k):
        weights = np.maximum(closest, 0)
        total = float(weights.sum())
        pick = int(rng.choice(len(sample), p=weights / total)) if total > 0 else int(rng.integers(len(sample)))
        centres.append(sample[pick])
        closest = np.minimum(closest, norms - 2 * sample @ sample[pick] + sample[pick] @ sample[pick])
    centre = np.array(centres, dtype=np.float32)
    point_norms = (points * points).sum(axis=1)
    labels = np.full(n, -1, dtype=np.int64)
    nearest = np.empty(n, dtype=np.float32)
    for _ in range(iterations):
        new_labels = np.empty(n, dtype=np.int64)
        centre_norms = (centre * centre).sum(axis=1)
        for start in range(0, n, 16384):  # by blocks: an n x k distance matrix is never whole
            block = slice(start, start + 16384)
            distance = point_norms[block, None] - 2 * points[block] @ centre.T + centre_norms[None, :]
            new_labels[block] = np.argmin(distance, axis=1)
            nearest[block] = distance[np.arange(len(distance)), new_labels[block]]
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        present = counts > 0
        sums = np.stack([np.bincount(labels, weights=points[:, d], minlength=k) for d in range(points.shape[1])],
                        axis=1)
        centre[present] = (sums[present] / counts[present][:, None]).astype(np.float32)
        for c in np.flatnonzero(~present).tolist():  # an empty cluster takes the point farthest from its centre
            far = int(np.argmax(nearest))
            centre[c] = points[far]
            nearest[far] = 0.0
    return labels, centre


def reduce_dimensions(matrix: np.ndarray, rows: np.ndarray, dims: int, *, seed: int) -> np.ndarray:
    """`matrix[rows]` projected on its first `dims` principal axes (fitted on a sample), block by block so that
    no copy of the selected vectors is ever whole: k-means on 100k tracks in a few tens of dimensions keeps the
    structure and costs a tenth of the time."""
    rng = np.random.default_rng(seed)
    picked = rows if len(rows) <= 10000 else np.sort(rng.choice(rows, 10000, replace=False))
    sample = matrix[picked].astype(np.float64)
    mean = sample.mean(axis=0)
    sample -= mean
    _, axes = np.linalg.eigh(sample.T @ sample)  # the covariance's axes, smallest first
    top = axes[:, ::-1][:, :min(dims, matrix.shape[1])].astype(np.float32)
    points = np.empty((len(rows), top.shape[1]), dtype=np.float32)
    centre = mean.astype(np.float32)
    for start in range(0, len(rows), 8192):
        points[start:start + 8192] = (matrix[rows[start:start + 8192]] - centre) @ top
    return points


def cluster_name(library: PlaylistLibrary, rows: np.ndarray, overall: dict) -> str:
    """A name from what sets the cluster apart: its most over-represented genres, its mood, its tempo."""
    parts = []
    counts: dict[str, int] = {}
    for row in rows.tolist():
        for genre in library.genres[row]:
            counts[genre] = counts.get(genre, 0) + 1
    size = max(len(rows), 1)
    ranked = sorted(((c / size) * (c / size) / max(overall["genre_share"].get(g, 1e-9), 1e-9), g)
                    for g, c in counts.items() if c / size >= 0.2)
    genres = [overall["genre_names"].get(g, g.title()) for _, g in sorted(ranked, reverse=True)[:2]]
    if genres:
        parts.append(" & ".join(genres))
    lifts = []
    for mood in MOODS:
        values = library.moods[mood][rows]
        values = values[~np.isnan(values)]
        if len(values) and overall["mood_std"][mood] > 0:
            lifts.append(((float(values.mean()) - overall["mood_mean"][mood]) / overall["mood_std"][mood], mood))
    energy = library.energy[rows]
    energy = energy[~np.isnan(energy)]
    if len(energy) and overall["energy_std"] > 0:
        z = (float(energy.mean()) - overall["energy_mean"]) / overall["energy_std"]
        lifts.append((z, "energetic") if z > 0 else (-z, "mellow"))
    lifts.sort(reverse=True)
    if lifts and lifts[0][0] >= 0.3:
        parts.append(lifts[0][1])
    bpm = library.bpm[rows]
    bpm = bpm[~np.isnan(bpm)]
    if len(bpm):
        median = float(np.median(bpm))
        parts.append(f"{et.tempo_word(median)} ~{median:.0f} BPM")
    return " · ".join(parts) or "mixed"


def _overall(library: PlaylistLibrary, rows: np.ndarray) -> dict:
    counts: dict[str, int] = {}
    for row in rows.tolist():
        for genre in library.genres[row]:
            counts[genre] = counts.get(genre, 0) + 1
    size = max(len(rows), 1)
    out: dict = {"genre_share": {g: c / size for g, c in counts.items()}, "mood_mean": {}, "mood_std": {},
                 "genre_names": library.genre_display}
    for mood in MOODS:
        values = library.moods[mood][rows]
        values = values[~np.isnan(values)]
        out["mood_mean"][mood] = float(values.mean()) if len(values) else 0.0
        out["mood_std"][mood] = float(values.std()) if len(values) else 0.0
    energy = library.energy[rows]
    energy = energy[~np.isnan(energy)]
    out["energy_mean"] = float(energy.mean()) if len(energy) else 0.0
    out["energy_std"] = float(energy.std()) if len(energy) else 0.0
    return out


def cluster_playlists(library: PlaylistLibrary, request: PlaylistRequest, mask: np.ndarray, *,
                      name: str) -> list[Playlist]:
    """The library (tracks passing the filters, with vectors) split by k-means into `clusters` groups, largest
    first; each a playlist of its tracks nearest the centre, named from its genres, mood and tempo."""
    if library.matrix is None:
        raise PlaylistRequestError("cluster playlists need track vectors: run the vectors stage first")
    eligible = np.flatnonzero(mask & (library.vector_row >= 0))
    # one copy per recording enters the clustering
    _, first = np.unique(library.recording[eligible], return_index=True)
    eligible = eligible[np.sort(first)]
    k = int(request.clusters or 1)
    if len(eligible) < k:
        raise PlaylistRequestError(f"{len(eligible)} distinct tracks with vectors pass the filters: too few for "
                                   f"{k} playlists (lower --k or loosen the filters)")
    points = reduce_dimensions(library.matrix, library.vector_row[eligible], 48, seed=request.seed)
    labels, centres = kmeans(points, k, seed=request.seed)
    overall = _overall(library, eligible)
    target = target_of(request, library)
    sizes = np.bincount(labels, minlength=k)
    playlists: list[Playlist] = []
    names_seen: dict[str, int] = {}
    for number, cluster in enumerate(sorted(range(k), key=lambda c: (-sizes[c], c)), start=1):
        members = np.flatnonzero(labels == cluster)
        if not len(members):
            continue
        distance = np.linalg.norm(points[members] - centres[cluster], axis=1)
        closeness = 1.0 / (1.0 + distance)
        rows = eligible[members]
        size = len(rows) if target.count is None and target.seconds is None else pool_size(target, request.artist_window)
        pool, pool_scores = distinct_pool(library, rows, closeness, mask, set(), size)
        ordered = sequence(library, pool, pool_scores, start=[], target=target, window=request.artist_window)
        label = cluster_name(library, rows, overall)
        names_seen[label] = names_seen.get(label, 0) + 1
        if names_seen[label] > 1:
            label = f"{label} ({names_seen[label]})"
        by_row = dict(zip(pool.tolist(), pool_scores.tolist(), strict=True))
        entries = make_entries(library, ordered,
                               lambda r, lab=label, score=by_row: f"cluster {lab}: {score[r]:.2f} to its centre")
        notes = short_notes(request, target, entries, len(pool))
        if target.count is None and target.seconds is None and len(entries) < len(pool):
            notes.append(f"{len(pool) - len(entries)} of the cluster's {len(pool)} tracks left out: their artists "
                         f"would come back within the artist window of {request.artist_window}")
        playlists.append(Playlist(f"{name} {number:02d}", "clusters", entries,
                                  f"{label} ({len(rows)} tracks in the cluster)", tuple(notes)))
    return playlists


# ------------------------------------------------------------------------------------------ quality


def transition_quality(library: PlaylistLibrary, rows: Sequence[int], window: int = DEFAULT_ARTIST_WINDOW) -> dict:
    """Mean BPM step between neighbours, share of Camelot-compatible transitions, artist repeats in the window."""
    rows = [int(r) for r in rows]
    steps, compatible, keyed, repeats = [], 0, 0, 0
    for a, b in zip(rows, rows[1:], strict=False):
        if not (math.isnan(library.bpm[a]) or math.isnan(library.bpm[b])):
            steps.append(abs(float(library.bpm[a] - library.bpm[b])))
        if library.camelot[a] >= 0 and library.camelot[b] >= 0:
            keyed += 1
            compatible += bool(camelot_compatible(np.array([library.camelot[a]]), np.array([library.camelot[b]]))[0])
    for i in range(len(rows)):
        for j in range(max(0, i - window + 1), i):
            if library.artist_sets[rows[i]] & library.artist_sets[rows[j]]:
                repeats += 1
    return {"entries": len(rows), "mean_bpm_step": round(float(np.mean(steps)), 2) if steps else None,
            "camelot_compatible_share": round(compatible / keyed, 3) if keyed else None,
            "artist_repeats_in_window": repeats}


def with_name(playlist: Playlist, name: str) -> Playlist:
    return replace(playlist, name=name)
