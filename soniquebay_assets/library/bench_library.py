"""Distinct synthetic tracks for `soniquebay bench vectors`: real-library shape, no two texts alike."""

from __future__ import annotations

import random

from soniquebay_assets.domain.layout import SHARD_COUNT

_ADJECTIVES = (
    "blue golden electric broken silver velvet neon wild lonely crimson hollow distant violet northern secret "
    "burning frozen quiet restless sweet bitter gentle heavy painted shining silent endless empty faded fragile "
    "glorious hidden holy humble lazy lucky mellow midnight modern naked open pale perfect purple radiant rusty "
    "sacred savage scarlet shallow simple sleepy slow sonic strange sunny tender tired twisted urban wicked young"
).split()
_NOUNS = (
    "highway fire river shadow heart dream city light rain ocean thunder echo moon desert storm garden ghost "
    "sugar morning stone honey road mirror window engine harbor island kingdom lantern machine meadow mountain "
    "orchard paradise planet prairie railway satellite signal skyline spark station summer tide tower valley "
    "village voyage wave whisper winter wolf anchor arrow bridge candle canyon circus comet compass diamond "
    "feather forest frontier glacier horizon lighthouse magnet orbit pilot pocket radio rocket saddle"
).split()
_VERBS = (
    "dancing falling rising running waiting chasing drifting dreaming fading flying hiding holding leaving "
    "losing missing moving praying riding shaking singing sleeping spinning stealing walking burning breaking "
    "calling carrying crying feeling finding"
).split()
_FIRST = (
    "Anna Ben Clara David Elena Felix Grace Hugo Iris Jonas Kate Leo Maya Nina Oscar Paula Quinn Rosa Sam Tara "
    "Umar Vera Will Xenia Yann Zoe Aiko Bruno Chloe Diego Emma Farid Greta Hiro Ines Jack Kofi Lena Marco Nora"
).split()
_LAST = (
    "Adams Berg Costa Dubois Eriksen Fischer Garcia Hansen Ito Jansen Kowalski Larsen Moreau Nakamura Olsen "
    "Petrov Quiroga Rossi Silva Tanaka Ueda Varga Weber Xu Yilmaz Zimmer Abara Bianchi Carter Delgado Evans "
    "Fontaine Gruber Horvat Ivanova Jovanovic Keller Lindqvist Meyer Novak"
).split()
GENRES = (
    "rock", "indie rock", "jazz", "bebop", "classical", "piano", "electronic", "house", "techno", "ambient",
    "hip hop", "soul", "funk", "blues", "country", "folk", "metal", "thrash metal", "punk", "pop", "synthpop",
    "reggae", "dub", "latin", "bossa nova", "soundtrack", "chiptune", "drum and bass", "trance", "r&b",
)  # fmt: skip
# Typical tempo and energy of each genre, so that audio features carry the structure a real library has.
_GENRE_TEMPO = {"house": 124, "techno": 130, "trance": 138, "drum and bass": 172, "hip hop": 92, "ambient": 80,
                "classical": 96, "piano": 84, "metal": 140, "thrash metal": 170, "punk": 165, "reggae": 76,
                "dub": 72, "bossa nova": 120, "bebop": 200, "jazz": 130, "blues": 96, "soul": 100, "funk": 108}
_KEYS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
_TITLE_SHAPES = (
    lambda r: f"{r.choice(_ADJECTIVES)} {r.choice(_NOUNS)}",
    lambda r: f"{r.choice(_VERBS)} {r.choice(_ADJECTIVES)} {r.choice(_NOUNS)}",
    lambda r: f"{r.choice(_NOUNS)} of the {r.choice(_ADJECTIVES)} {r.choice(_NOUNS)}",
    lambda r: f"the {r.choice(_NOUNS)} is {r.choice(_VERBS)}",
    lambda r: f"{r.choice(_ADJECTIVES)} {r.choice(_NOUNS)} {r.choice(_NOUNS)}",
)


def _unique(make, taken: set[str], rng: random.Random) -> str:
    """A new string from `make`; after a few collisions, a numbered variant (real titles repeat like that)."""
    for _ in range(20):
        value = make(rng).title()
        if value not in taken:
            taken.add(value)
            return value
    base, number = make(rng).title(), 2
    while f"{base} {number}" in taken:
        number += 1
    taken.add(f"{base} {number}")
    return f"{base} {number}"


def _artist_name(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    return f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}s"


def distinct_library(n_tracks: int, seed: int) -> list[dict]:
    """n tracks, ~10 per album and ~3 albums per artist, every title, album and artist name distinct."""
    rng = random.Random(seed)
    titles: set[str] = set()
    albums: set[str] = set()
    artists: set[str] = set()
    tracks: list[dict] = []
    album_no = 0
    while len(tracks) < n_tracks:
        artist = _unique(_artist_name, artists, rng)
        genres = rng.sample(GENRES, rng.choice((1, 1, 2)))
        tempo_centre = _GENRE_TEMPO.get(genres[0], rng.uniform(85, 140))
        energy_centre = min(0.95, max(0.05, (tempo_centre - 60) / 140 + rng.gauss(0, 0.1)))
        for _ in range(rng.randint(1, 5)):
            album_no += 1
            album = _unique(lambda r: f"{r.choice(_ADJECTIVES)} {r.choice(_NOUNS)}", albums, rng)
            year = rng.randint(1960, 2025)
            key = rng.choice(_KEYS)
            for number in range(rng.randint(6, 14)):
                title = _unique(rng.choice(_TITLE_SHAPES), titles, rng)
                energy = min(1.0, max(0.0, rng.gauss(energy_centre, 0.12)))
                tracks.append({
                    "title": title, "artist": artist, "album": album, "genres": genres, "year": year,
                    "shard": f"{album_no % SHARD_COUNT:02x}", "number": number,
                    "analysis": {"bpm": max(50.0, rng.gauss(tempo_centre, 8)),
                                 "key": key if rng.random() < 0.4 else rng.choice(_KEYS),
                                 "mode": rng.choice(("major", "minor")), "energy": energy,
                                 "danceability": min(1.0, max(0.0, rng.gauss(energy, 0.15))),
                                 "mood_happy": rng.random(), "mood_relaxed": min(1.0, max(0.0, 1 - energy + rng.gauss(0, 0.1))),
                                 "loudness_lufs": -20 + 14 * energy + rng.gauss(0, 1.5),
                                 "spectral_centroid": rng.uniform(800, 4000), "duration_s": rng.uniform(120, 420)},
                })  # fmt: skip
    return tracks[:n_tracks]


def composed_vectors(encode, n: int, seed: int, *, pool: int = 8000, out=None):
    """n track vectors composed the way the vectors stage composes them (weighted field embeddings + scaled audio
    features), from the real-model embeddings of the field texts of `pool` distinct tracks: ~10 tracks per album,
    album fields shared, titles drawn per track, analysis words and
    audio features from a track of the same pool album. For index measurements at sizes that cannot be
    embedded here; `encode(texts)` returns unit rows. Written into `out` (n x dim, e.g. a memmap) when given."""
    import numpy as np

    from soniquebay_assets.domain import embedding_text as et

    library = distinct_library(pool, seed)
    fields = [et.text_fields(et.TrackText(t["title"], (t["artist"],), t["album"], None, tuple(t["genres"]), t["year"],
                                          t["analysis"])) for t in library]
    names = sorted({name for f in fields for name in f})
    texts = sorted({text for f in fields for text in f.values()})
    embedded = encode(texts)
    row_of = {text: i for i, text in enumerate(texts)}
    # per field: the embedding row of each pool track's text for that field (-1 when the track has none)
    field_rows = {name: np.array([row_of.get(f.get(name), -1) if name in f else -1 for f in fields]) for name in names}
    raw = [et.raw_features(t["analysis"]) for t in library]
    scaler = et.fit_scaler(raw, 1)
    audio = np.stack([et.standardize(r, scaler) for r in raw]).astype(np.float32)
    album_fields = {"artist", "album", "genre", "decade"}
    # the pool's tracks of one album are consecutive: analysis is drawn from the album's own tracks, so tempo,
    # mood and audio features follow genre and artist as in a real library
    album_names = [t["album"] for t in library]
    starts: dict[str, int] = {}
    counts: dict[str, int] = {}
    for i, name in enumerate(album_names):
        starts.setdefault(name, i)
        counts[name] = counts.get(name, 0) + 1
    first = np.array([starts[name] for name in album_names])
    size = np.array([counts[name] for name in album_names])
    weights = et.Weights()
    rng = np.random.default_rng(seed)
    text_dim = embedded.shape[1]
    out = out if out is not None else np.empty((n, text_dim + audio.shape[1]), dtype=np.float32)
    for start in range(0, n, 65536):
        rows = np.arange(start, min(n, start + 65536))
        album_pick = np.random.default_rng([seed, 1, 0]).integers(0, pool, size=n // 10 + 1)[rows // 10]
        title_pick = rng.integers(0, pool, size=len(rows))
        track_pick = first[album_pick] + (rng.random(len(rows)) * size[album_pick]).astype(np.int64)
        text = np.zeros((len(rows), text_dim), dtype=np.float64)
        for name in names:
            pick = album_pick if name in album_fields else title_pick if name == "title" else track_pick
            idx = field_rows[name][pick]
            present = idx >= 0
            text[present] += et.FIELD_WEIGHTS.get(name, 0.5) * embedded[idx[present]]
        text /= np.linalg.norm(text, axis=1, keepdims=True)
        sound = (audio[track_pick] + rng.normal(0, 0.3, size=(len(rows), audio.shape[1]))) / np.sqrt(audio.shape[1])
        block = np.concatenate([weights.text * text, weights.audio * sound], axis=1)
        out[rows] = (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float32)
    return out
