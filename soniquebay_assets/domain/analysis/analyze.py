"""One entry point: decoded samples in, every enrichment feature out, with an honest status.

A value that could not be measured is None (stored as NULL), never a default: the old system wrote 120 BPM
when its tracker failed. `status` is 'ok' when everything was measured, 'partial' when some features are
missing (the `error` text lists which and why), 'error' only when nothing could be decoded (set by callers).

The analysis is made of parts, each with the ANALYSIS_VERSION at which its code last changed (PART_VERSIONS).
A row written at analysis version v holds current results for every part whose version is <= v, so a version
bump recomputes and rewrites only the parts whose code changed (and the parts derived from them, PART_INPUTS).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from soniquebay_assets.domain.analysis.features import spectral_features
from soniquebay_assets.domain.analysis.key import estimate_key
from soniquebay_assets.domain.analysis.loudness import Loudness, measure_loudness
from soniquebay_assets.domain.analysis.moods import mood_scores
from soniquebay_assets.domain.analysis.music_tags import MIN_SECONDS as MIN_TAG_SECONDS
from soniquebay_assets.domain.analysis.music_tags import tag_segments
from soniquebay_assets.domain.analysis.spectrum import compute_spectrum
from soniquebay_assets.domain.analysis.tempo import estimate_tempo

# The ANALYSIS_VERSION at which each part's code last changed. Bump the part you change to a number above
# every other part's; ANALYSIS_VERSION follows. Enrichment then re-measures the older rows' outdated parts by
# itself (the CLI's scan and enrich at once, the platform's deferred runs behind new files).
PART_VERSIONS: dict[str, int] = {"tempo": 5, "key": 7, "loudness": 11, "tags": 9, "moods": 9}
# Parts computed from others' results: recomputed whenever one of their inputs is.
PART_INPUTS: dict[str, tuple[str, ...]] = {"moods": ("tags",)}
ANALYSIS_VERSION = max(PART_VERSIONS.values())
# AnalysisResult fields each part writes; the rest (status, error, duration, decoder...) are rewritten each time.
PART_FIELDS: dict[str, tuple[str, ...]] = {
    "tempo": ("bpm", "bpm_confidence", "beat_count"),
    "key": ("key", "mode", "key_confidence", "camelot", "open_key"),
    "loudness": ("loudness_lufs", "loudness_range_lu", "replaygain_track_gain_db", "replaygain_track_peak",
                 "sample_peak", "true_peak_dbtp", "loudness_histogram"),
    "moods": ("energy", "danceability", "acousticness", "instrumentalness", "mood_happy", "mood_sad",
              "mood_aggressive", "mood_relaxed", "mood_party", "spectral_centroid", "spectral_rolloff",
              "spectral_flatness", "zero_crossing_rate"),
    "tags": ("music_tags", "audio_embedding"),
}
ALL_PARTS = frozenset(PART_VERSIONS)
ANALYSIS_SR = 22050
SILENCE_PEAK = 1e-4  # -80 dBFS: below this a file is treated as silent
MIN_LOUDNESS_SECONDS = 0.4  # one BS.1770 gating block


def parts_to_recompute(stored_version: int | None) -> frozenset[str]:
    """Parts a row written at `stored_version` (None: never analysed) must recompute, derived parts included."""
    if stored_version is None:
        return ALL_PARTS
    return with_dependents(p for p, version in PART_VERSIONS.items() if version > stored_version)


def with_dependents(parts: Iterable[str]) -> frozenset[str]:
    """`parts` and every part computed from one of them."""
    result = set(parts)
    grown = True
    while grown:
        grown = False
        for part, inputs in PART_INPUTS.items():
            if part not in result and result.intersection(inputs):
                result.add(part)
                grown = True
    return frozenset(result)


@dataclass
class AnalysisResult:
    """Mirrors the track_analysis table (minus ids and timestamps)."""

    status: str = "ok"
    error: str | None = None
    bpm: float | None = None
    bpm_confidence: float | None = None
    beat_count: int | None = None
    key: str | None = None
    mode: str | None = None
    key_confidence: float | None = None
    key_strength: float | None = None  # not stored in the catalog: reported by analyze_file and eval
    camelot: str | None = None
    open_key: str | None = None
    loudness_lufs: float | None = None
    loudness_range_lu: float | None = None
    replaygain_track_gain_db: float | None = None
    replaygain_track_peak: float | None = None  # true peak, linear (as ReplayGain tags carry it)
    sample_peak: float | None = None
    true_peak_dbtp: float | None = None
    loudness_histogram: bytes | None = None  # gating blocks, for album loudness (loudness.BlockHistogram)
    energy: float | None = None
    danceability: float | None = None
    acousticness: float | None = None
    instrumentalness: float | None = None
    mood_happy: float | None = None
    mood_sad: float | None = None
    mood_aggressive: float | None = None
    mood_relaxed: float | None = None
    mood_party: float | None = None
    spectral_centroid: float | None = None
    spectral_rolloff: float | None = None
    spectral_flatness: float | None = None
    zero_crossing_rate: float | None = None
    music_tags: str | None = None  # JSON {"msd": {tag: p}, "mtt": {tag: p}} (music_tags.MusicTags.as_json)
    audio_embedding: bytes | None = None  # both taggers' penultimate layers, float32 little-endian
    duration_s: float | None = None
    analyzed_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    parts: frozenset[str] = ALL_PARTS  # the parts this result measured (the others' fields are left None)

    def as_row(self) -> dict:
        """Field values of the measured parts and the common fields (status, error, durations)."""
        row = asdict(self)
        row.pop("notes")
        row.pop("parts")
        for part, names in PART_FIELDS.items():
            if part not in self.parts:
                for name in names:
                    row.pop(name)
        return row


def analyze_samples(y: np.ndarray | list[np.ndarray], sr: int, *, duration_s: float | None = None,
                    decode_note: str | None = None, loudness: Loudness | None = None,
                    layout: Sequence[str] | None = None, parts: Iterable[str] | None = None) -> AnalysisResult:
    """Analyse samples at rate `sr`: a whole programme (frames x channels, or mono), or excerpts of it.

    loudness: the whole file's, measured by the decoder; when None it is measured on `y` itself (its channels
    named by `layout`). duration_s: the whole file's duration when `y` holds excerpts; decode_note: why decoding
    was partial. parts: the parts to report (default all); their inputs are computed as needed."""
    wanted = ALL_PARTS if parts is None else frozenset(parts)
    needed = set(wanted)
    for part in wanted:
        needed.update(PART_INPUTS.get(part, ()))
    if loudness is None:
        whole = y if not isinstance(y, (list, tuple)) else np.concatenate([_mono(a) for a in y] or [np.zeros(0)])
        whole = np.nan_to_num(np.asarray(whole, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if whole.ndim == 2 and whole.shape[0] <= 8 < whole.shape[1]:
            whole = whole.T  # channels x frames
        loudness = measure_loudness(whole, sr, layout)
    segments = _as_segments(y)
    if sr != ANALYSIS_SR and segments:
        import soxr

        segments = [soxr.resample(s, sr, ANALYSIS_SR, quality="MQ").astype(np.float32) for s in segments]
        sr = ANALYSIS_SR
    result = AnalysisResult(parts=wanted)
    if decode_note:
        result.notes.append(decode_note)
    analysed = sum(s.size for s in segments) / sr
    result.analyzed_seconds = round(analysed, 3)
    result.duration_s = round(duration_s if duration_s else analysed, 3)
    if not segments:
        result.status, result.error = "error", "no audio samples"
        return result

    result.loudness_lufs, result.loudness_range_lu = loudness.integrated_lufs, loudness.range_lu
    result.replaygain_track_gain_db = loudness.track_gain_db
    result.sample_peak = None if loudness.sample_peak is None else round(loudness.sample_peak, 6)
    result.replaygain_track_peak = None if loudness.true_peak is None else round(loudness.true_peak, 6)
    result.true_peak_dbtp = loudness.true_peak_dbtp
    result.loudness_histogram = loudness.histogram.to_bytes()

    silent = (loudness.sample_peak or 0.0) < SILENCE_PEAK or (
        loudness.integrated_lufs is None and loudness.seconds >= MIN_LOUDNESS_SECONDS)
    if silent:
        result.notes.append("silent audio: tempo, key, loudness, tags and moods not measured")
        result.loudness_lufs = result.loudness_range_lu = result.replaygain_track_gain_db = None
    else:
        if "loudness" in wanted:
            if loudness.integrated_lufs is None:
                result.notes.append(f"too short for loudness (needs {MIN_LOUDNESS_SECONDS} s)")
            elif loudness.range_lu is None:
                result.notes.append("too short for loudness range (needs 3 s)")
        _tonal_parts(result, segments, sr, loudness, needed, wanted)
        _learned_parts(result, segments, sr, needed, wanted)
    if result.notes:
        result.status = "partial"
        result.error = "; ".join(result.notes)
    return result


def _tonal_parts(result: AnalysisResult, segments: list[np.ndarray], sr: int, loudness: Loudness,
                 needed: set[str], wanted: frozenset[str]) -> None:
    """Tempo, key, spectral features and moods from the excerpts' shared spectrum."""
    if not needed & {"tempo", "key", "moods"}:
        return
    spectrum = compute_spectrum(segments, sr)
    tempo = key = None
    if "tempo" in needed:
        tempo = estimate_tempo(spectrum)
        if tempo.bpm is not None:
            result.bpm, result.bpm_confidence = tempo.bpm, tempo.confidence
            result.beat_count = int(round(tempo.bpm * result.duration_s / 60.0))
        elif "tempo" in wanted:
            result.notes.append(tempo.reason)
    if "key" in needed:
        key = estimate_key(spectrum)
        if key.key is not None:
            result.key, result.mode, result.key_confidence = key.key, key.mode, key.confidence
            result.key_strength = key.strength
            result.camelot, result.open_key = key.camelot, key.open_key
        elif "key" in wanted:
            result.notes.append(key.reason)
    if "moods" not in needed:
        return
    feats = spectral_features(spectrum, segments)
    result.spectral_centroid, result.spectral_rolloff = feats.centroid_hz, feats.rolloff_hz
    result.spectral_flatness, result.zero_crossing_rate = feats.flatness, feats.zero_crossing_rate


def _learned_parts(result: AnalysisResult, segments: list[np.ndarray], sr: int, needed: set[str],
                   wanted: frozenset[str]) -> None:
    """The MusiCNN taggers' tags and embedding, and the moods derived from the tags (moods.py)."""
    if "tags" not in needed:
        return
    tags = tag_segments(segments, sr)
    if tags is None:
        result.notes.append(f"too short for learned tags and moods (needs {MIN_TAG_SECONDS:.1f} s)")
        return
    if "tags" in wanted:
        result.music_tags, result.audio_embedding = tags.as_json(), tags.embedding_bytes()
    if "moods" not in wanted:
        return
    moods = mood_scores({"msd": tags.msd, "mtt": tags.mtt})
    result.energy, result.danceability = moods.energy, moods.danceability
    result.acousticness, result.instrumentalness = moods.acousticness, moods.instrumentalness
    result.mood_happy, result.mood_sad, result.mood_aggressive = moods.happy, moods.sad, moods.aggressive
    result.mood_relaxed, result.mood_party = moods.relaxed, moods.party
    for name in PART_FIELDS["moods"][:9]:
        if getattr(result, name) is not None:
            setattr(result, name, round(getattr(result, name), 3))


def _mono(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1) if a.shape[1] <= 8 else a.mean(axis=0)
    return a


def _as_segments(y: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """Accept one array (mono, or frames x channels) or a list of excerpt arrays; return mono float32 arrays."""
    arrays = y if isinstance(y, (list, tuple)) else [y]
    out = []
    for a in arrays:
        a = np.nan_to_num(_mono(a), nan=0.0, posinf=0.0, neginf=0.0)
        if a.size:
            out.append(a)
    return out
