"""What a track is embedded from: its descriptive text, its audio-feature vector, and how both combine.

Pure logic (stdlib + numpy). The text model lives in `library/embedder.py`, storage in `catalog/vectors.py`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# Bounds keep one pathological tag (a 10 kB title) from dominating the text or the tokenizer's time.
MAX_FIELD_CHARS = 200
MAX_LIST_ITEMS = 8
MAX_TEXT_CHARS = 1000
EMPTY_TRACK_TEXT = "Unknown track"

# Bump when the feature list or its transforms change: stored vectors are then rebuilt, never mixed.
FEATURE_SET_VERSION = 1
FEATURE_NAMES: tuple[str, ...] = (
    "bpm",
    "loudness_lufs",
    "energy",
    "danceability",
    "acousticness",
    "instrumentalness",
    "mood_happy",
    "mood_sad",
    "mood_aggressive",
    "mood_relaxed",
    "mood_party",
    "log_spectral_centroid",
    "log_spectral_rolloff",
    "spectral_flatness",
    "zero_crossing_rate",
    "log_duration_s",
    "mode_major",
    "key_sin",
    "key_cos",
)
# Standardized values are clipped so one outlier (a 2-hour live set) cannot dominate the audio block.
Z_CLIP = 4.0
MIN_STD = 1e-6

_MOOD_WORDS = {
    "mood_happy": "happy",
    "mood_sad": "sad",
    "mood_aggressive": "aggressive",
    "mood_relaxed": "relaxed calm",
    "mood_party": "party",
}
_CONTROL = re.compile(r"[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\ufeff]+")
_SPACES = re.compile(r"\s+")

# ---------------------------------------------------------------------------------------------- keys

_PITCH_CLASS = {
    "C": 0, "B#": 0, "C#": 1, "DB": 1, "D": 2, "D#": 3, "EB": 3, "E": 4, "FB": 4, "F": 5, "E#": 5,
    "F#": 6, "GB": 6, "G": 7, "G#": 8, "AB": 8, "A": 9, "A#": 10, "BB": 10, "B": 11, "CB": 11,
}  # fmt: skip
_PITCH_NAME = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
# Camelot number of each pitch class: major keys are "B", minor keys "A" (C major = 8B, A minor = 8A).
_CAMELOT_MAJOR = {0: 8, 7: 9, 2: 10, 9: 11, 4: 12, 11: 1, 6: 2, 1: 3, 8: 4, 3: 5, 10: 6, 5: 7}
_CAMELOT_MINOR = {9: 8, 4: 9, 11: 10, 6: 11, 1: 12, 8: 1, 3: 2, 10: 3, 5: 4, 0: 5, 7: 6, 2: 7}
_CAMELOT_RE = re.compile(r"^\s*(1[0-2]|[1-9])\s*([ABab])\s*$")
_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#♯b♭]?)\s*(.*)$")


def parse_mode(mode: object) -> str | None:
    """'major' / 'minor' from the many spellings analysis tools use (1/0, 'maj', 'm', 'Minor')."""
    if mode is None:
        return None
    if isinstance(mode, (int, float)) and not isinstance(mode, bool):
        return "major" if int(mode) == 1 else "minor" if int(mode) == 0 else None
    text = str(mode).strip().casefold()
    if text in ("major", "maj", "1", "ionian"):
        return "major"
    if text in ("minor", "min", "m", "0", "aeolian"):
        return "minor"
    return None


def parse_key(key: object, mode: object = None) -> tuple[int, str] | None:
    """(pitch class 0-11, 'major'|'minor') from 'C', 'F#', 'Bb minor', 'Am', 'C#m' plus an optional mode."""
    if key is None:
        return None
    match = _KEY_RE.match(str(key))
    if not match:
        return None
    letter, accidental, rest = match.groups()
    accidental = {"♯": "#", "♭": "B", "b": "B"}.get(accidental, accidental)
    pitch = _PITCH_CLASS.get(letter.upper() + accidental)
    if pitch is None:
        return None
    found_mode = parse_mode(mode)
    if found_mode is None:
        rest = rest.strip().casefold()
        found_mode = "minor" if rest in ("m", "min", "minor") or rest.startswith("min") else "major"
    return pitch, found_mode


def camelot_code(key: object = None, mode: object = None, camelot: object = None) -> str | None:
    """The Camelot wheel code ('8A', '11B') from a stored camelot value or from key + mode."""
    if camelot:
        match = _CAMELOT_RE.match(str(camelot))
        if match:
            return f"{int(match.group(1))}{match.group(2).upper()}"
    parsed = parse_key(key, mode)
    if parsed is None:
        return None
    pitch, found_mode = parsed
    if found_mode == "minor":
        return f"{_CAMELOT_MINOR[pitch]}A"
    return f"{_CAMELOT_MAJOR[pitch]}B"


def compatible_camelot(code: str) -> list[str]:
    """Harmonic neighbours for mixing: same code, +-1 on the wheel with the same letter, same number other letter."""
    match = _CAMELOT_RE.match(code or "")
    if not match:
        return []
    number, letter = int(match.group(1)), match.group(2).upper()
    other = "B" if letter == "A" else "A"
    up = number % 12 + 1
    down = (number - 2) % 12 + 1
    return [f"{number}{letter}", f"{up}{letter}", f"{down}{letter}", f"{number}{other}"]


def key_words(key: object, mode: object, camelot: object = None) -> str | None:
    """'C minor' style words for the embedding text, from key/mode or a Camelot code."""
    parsed = parse_key(key, mode)
    if parsed is None:
        code = camelot_code(camelot=camelot)
        if code is None:
            return None
        number, letter = int(code[:-1]), code[-1]
        table = _CAMELOT_MINOR if letter == "A" else _CAMELOT_MAJOR
        pitch = next(p for p, n in table.items() if n == number)
        parsed = (pitch, "minor" if letter == "A" else "major")
    return f"{_PITCH_NAME[parsed[0]]} {parsed[1]}"


# ---------------------------------------------------------------------------------------------- text


def clean_field(value: object, limit: int = MAX_FIELD_CHARS) -> str:
    """NFC text without control characters, whitespace collapsed, cut at `limit` without splitting a character."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates from bad tags become U+FFFD
    text = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    if len(text) <= limit:
        return text
    cut = limit
    # Never leave a base letter without its combining accents, nor half of a ZWJ/variation sequence.
    while cut > 0 and (unicodedata.combining(text[cut]) or text[cut] in "\u200d\ufe0f"):
        cut -= 1
    return text[:cut].rstrip() + "…"


def _join(values: Iterable[object]) -> str:
    seen, items = set(), []
    for value in values:
        text = clean_field(value)
        if text and text.casefold() not in seen:
            seen.add(text.casefold())
            items.append(text)
        if len(items) >= MAX_LIST_ITEMS:
            break
    return ", ".join(items)


def tempo_word(bpm: float) -> str:
    if bpm < 76:
        return "slow"
    if bpm < 108:
        return "moderate"
    if bpm < 140:
        return "upbeat"
    return "fast"


@dataclass(frozen=True)
class TrackText:
    """The descriptive inputs of one track's embedding text."""

    title: str | None = None
    artists: Sequence[str] = ()
    album: str | None = None
    album_artist: str | None = None
    genres: Sequence[str] = ()
    year: int | None = None
    analysis: Mapping[str, object] | None = field(default=None)


def _mood_words(analysis: Mapping[str, object]) -> list[str]:
    moods = [word for column, word in _MOOD_WORDS.items() if _num(analysis.get(column), 0.0) >= 0.5]
    energy = _num(analysis.get("energy"))
    if energy is not None and energy >= 0.66:
        moods.append("energetic")
    elif energy is not None and energy <= 0.33:
        moods.append("mellow")
    for column, word, threshold in (
        ("acousticness", "acoustic", 0.5),
        ("instrumentalness", "instrumental", 0.5),
        ("danceability", "danceable", 0.6),
    ):
        if _num(analysis.get(column), 0.0) >= threshold:
            moods.append(word)
    return moods


def analysis_fields(analysis: Mapping[str, object] | None) -> dict[str, str]:
    """Mood, tempo and key phrases from an analysis row; empty when the track is not analysed."""
    if not analysis:
        return {}
    fields = {}
    moods = _mood_words(analysis)
    if moods:
        fields["mood"] = "mood: " + ", ".join(moods)
    bpm = _num(analysis.get("bpm"))
    if bpm and 20 <= bpm <= 400:
        fields["tempo"] = f"{tempo_word(bpm)} tempo"
    words = key_words(analysis.get("key"), analysis.get("mode"), analysis.get("camelot"))
    if words:
        fields["key"] = f"{words} key"
    return fields


# Each field is embedded on its own and the unit vectors are summed with these weights. Album, artist,
# genre, decade, mood, tempo and key strings repeat across a library, so their embeddings are cached and
# the model mostly encodes short titles: ~5x the throughput of one long sentence per track on 2 cores.
FIELD_WEIGHTS = {
    "title": 1.0,
    "artist": 1.0,
    "album": 0.8,
    "genre": 1.0,
    "decade": 0.3,
    "mood": 0.8,
    "tempo": 0.5,
    "key": 0.5,
}


def text_fields(track: TrackText) -> dict[str, str]:
    """The bounded, cleaned text of each field of a track (absent fields left out); never empty."""
    fields: dict[str, str] = {}
    title = clean_field(track.title)
    if title:
        fields["title"] = title
    artists = _join(track.artists)
    if artists:
        fields["artist"] = artists
    album = clean_field(track.album)
    if album:
        album_artist = clean_field(track.album_artist)
        if album_artist and album_artist.casefold() not in artists.casefold():
            album = f"{album} by {album_artist}"
        fields["album"] = album
    genres = _join(track.genres)
    if genres:
        fields["genre"] = genres
    if track.year and 1000 <= int(track.year) <= 9999:
        fields["decade"] = f"{int(track.year) // 10 * 10}s music"
    fields.update(analysis_fields(track.analysis))
    if not fields:
        fields["title"] = EMPTY_TRACK_TEXT
    return fields


_LABELS = {"title": "Title", "artist": "Artist", "album": "Album", "genre": "Genre"}


def embedding_text(track: TrackText) -> str:
    """The readable text a track is embedded from, e.g. 'Title: X. Artist: A. Album: Y. Genre: rock. 1990s music.'"""
    fields = text_fields(track)
    parts = [f"{_LABELS[name]}: {text}" if name in _LABELS else text for name, text in fields.items()]
    return clean_field(". ".join(parts) + ".", MAX_TEXT_CHARS)


def compose_text_vector(field_vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Weighted sum of the unit field embeddings, L2-normalized: the track's text block."""
    if not field_vectors:
        raise ValueError("a track needs at least one embedded text field")
    total = sum(FIELD_WEIGHTS.get(name, 0.5) * np.asarray(vec, dtype=np.float64) for name, vec in field_vectors.items())
    norm = float(np.linalg.norm(total))
    if not math.isfinite(norm) or norm == 0:
        raise ValueError("text embedding is zero or not finite")
    return (total / norm).astype(np.float32)


# ---------------------------------------------------------------------------------------------- audio


def _num(value: object, default: float | None = None) -> float | None:
    if value is None or isinstance(value, bool):
        return default
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _log_positive(value: object) -> float | None:
    number = _num(value)
    return math.log1p(number) if number is not None and number >= 0 else None


def raw_features(analysis: Mapping[str, object] | None) -> list[float | None] | None:
    """The FEATURE_NAMES values of one analysis row (None where unknown); None when nothing is known."""
    if not analysis:
        return None
    code = camelot_code(analysis.get("key"), analysis.get("mode"), analysis.get("camelot"))
    key_angle = None
    mode_major = None
    if code is not None:
        key_angle = 2 * math.pi * (int(code[:-1]) - 1) / 12  # the wheel is circular: 12A sits next to 1A
        mode_major = 1.0 if code.endswith("B") else 0.0
    values: dict[str, float | None] = {
        "bpm": _num(analysis.get("bpm")),
        "loudness_lufs": _num(analysis.get("loudness_lufs")),
        "log_spectral_centroid": _log_positive(analysis.get("spectral_centroid")),
        "log_spectral_rolloff": _log_positive(analysis.get("spectral_rolloff")),
        "log_duration_s": _log_positive(analysis.get("duration_s")),
        "mode_major": mode_major,
        "key_sin": math.sin(key_angle) if key_angle is not None else None,
        "key_cos": math.cos(key_angle) if key_angle is not None else None,
    }
    out = [values[name] if name in values else _num(analysis.get(name)) for name in FEATURE_NAMES]
    return out if any(v is not None for v in out) else None


@dataclass(frozen=True)
class ScalerStats:
    """Per-feature mean and std fit over the whole catalog; `version` ties every stored vector to its fit."""

    version: int
    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    n_samples: int

    def to_json(self) -> dict:
        return {"names": list(self.names), "mean": list(self.mean), "std": list(self.std), "n": self.n_samples}


def fit_scaler(rows: Iterable[Sequence[float | None] | None], version: int) -> ScalerStats:
    """Mean/std per feature over all rows, ignoring unknown values; a constant feature gets std 1."""
    matrix = [[np.nan if v is None else float(v) for v in row] for row in rows if row is not None]
    n_features = len(FEATURE_NAMES)
    if not matrix:
        return ScalerStats(version, FEATURE_NAMES, (0.0,) * n_features, (1.0,) * n_features, 0)
    data = np.asarray(matrix, dtype=np.float64)
    known = np.isfinite(data)
    counts = known.sum(axis=0)
    filled = np.where(known, data, 0.0)
    mean = np.divide(filled.sum(axis=0), counts, out=np.zeros(n_features), where=counts > 0)
    centered = np.where(known, data - mean, 0.0)
    var = np.divide((centered**2).sum(axis=0), counts, out=np.zeros(n_features), where=counts > 0)
    std = np.sqrt(var)
    std = np.where(std < MIN_STD, 1.0, std)
    return ScalerStats(version, FEATURE_NAMES, tuple(mean.tolist()), tuple(std.tolist()), len(matrix))


def standardize(raw: Sequence[float | None], scaler: ScalerStats) -> np.ndarray:
    """Z-scores clipped to +-Z_CLIP; unknown values become 0 (the catalog mean)."""
    values = np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)
    z = (values - np.asarray(scaler.mean)) / np.asarray(scaler.std)
    z = np.where(np.isfinite(z), z, 0.0)
    return np.clip(z, -Z_CLIP, Z_CLIP)


@dataclass(frozen=True)
class Weights:
    """Relative norms of the text block and the audio block before the final L2 normalization."""

    text: float = 1.0
    audio: float = 0.5

    def __post_init__(self) -> None:
        for name in ("text", "audio"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"vector weight {name} must be a finite number >= 0, got {value!r}")
        if self.text == 0:
            raise ValueError("the text weight must be > 0: text-only tracks would get an all-zero vector")

    def to_json(self) -> dict:
        return {"text": self.text, "audio": self.audio}


def combine(text_vector: np.ndarray, audio_z: np.ndarray | None, weights: Weights) -> np.ndarray:
    """[w_text * text_unit, w_audio * audio_z / sqrt(n)] L2-normalized; a missing audio block stays zero."""
    text = np.asarray(text_vector, dtype=np.float64)
    if not np.all(np.isfinite(text)):
        raise ValueError("text embedding contains NaN or infinity")
    norm = np.linalg.norm(text)
    if norm == 0:
        raise ValueError("text embedding is all zeros")
    audio = np.zeros(len(FEATURE_NAMES))
    if audio_z is not None:
        # Scaled so an average track's audio block has norm ~1, comparable to the unit text block.
        audio = np.asarray(audio_z, dtype=np.float64) / math.sqrt(len(FEATURE_NAMES))
    vector = np.concatenate([weights.text * text / norm, weights.audio * audio])
    vector /= np.linalg.norm(vector)
    return vector.astype(np.float32)


def query_vector(text_vector: np.ndarray, weights: Weights) -> np.ndarray:
    """A free-text query lives in the same space with an empty (zero) audio block."""
    return combine(text_vector, None, weights)


def input_hash(text: str, raw: Sequence[float | None] | None, config_key: str, scaler_version: int) -> str:
    """Stable digest of everything a vector depends on: a different digest means re-vectorize."""
    payload = json.dumps(
        {
            "text": text,
            "raw": None if raw is None else [None if v is None else round(float(v), 6) for v in raw],
            "config": config_key,
            "scaler": scaler_version if raw is not None else 0,
        },
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def text_hash(text: str, model_name: str) -> str:
    """Key of a cached text embedding: same text + same model = same embedding."""
    return hashlib.sha256(f"{model_name}\n{text}".encode()).hexdigest()


def config_key(model_name: str, text_dim: int, weights: Weights) -> str:
    """Everything that fixes the vector space; when it changes the index is rebuilt from scratch."""
    payload = {
        "model": model_name,
        "text_dim": text_dim,
        "features": list(FEATURE_NAMES),
        "feature_set_version": FEATURE_SET_VERSION,
        "weights": weights.to_json(),
        "field_weights": FIELD_WEIGHTS,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
