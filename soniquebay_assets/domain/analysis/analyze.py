"""One entry point: decoded samples in, every enrichment feature out, with an honest status.

A value that could not be measured is None (stored as NULL), never a default: the old system wrote 120 BPM
when its tracker failed. `status` is 'ok' when everything was measured, 'partial' when some features are
missing (the `error` text lists which and why), 'error' only when nothing could be decoded (set by callers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from soniquebay_assets.domain.analysis.features import spectral_features
from soniquebay_assets.domain.analysis.key import estimate_key
from soniquebay_assets.domain.analysis.loudness import measure_loudness
from soniquebay_assets.domain.analysis.moods import mood_scores
from soniquebay_assets.domain.analysis.spectrum import compute_spectrum
from soniquebay_assets.domain.analysis.tempo import estimate_tempo

# Bump when an algorithm change alters stored values; `enrich --force-version` then re-runs older rows.
ANALYSIS_VERSION = 7
ANALYSIS_SR = 22050
SILENCE_PEAK = 1e-4  # -80 dBFS: below this a file is treated as silent


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
    replaygain_track_peak: float | None = None
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
    duration_s: float | None = None
    analyzed_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("notes")
        return row


def _as_segments(y: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """Accept one array (mono, or frames x channels) or a list of excerpt arrays; return mono float32 arrays."""
    arrays = y if isinstance(y, (list, tuple)) else [y]
    out = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float32)
        if a.ndim == 2:
            a = a.mean(axis=1) if a.shape[1] <= 8 else a.mean(axis=0)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        if a.size:
            out.append(a)
    return out


def analyze_samples(y: np.ndarray | list[np.ndarray], sr: int, *, duration_s: float | None = None,
                    decode_note: str | None = None) -> AnalysisResult:
    """Analyse mono (or multichannel) samples or excerpts at sample rate `sr`.

    duration_s: the whole file's duration when `y` holds excerpts; decode_note: why decoding was partial."""
    segments = _as_segments(y)
    if sr != ANALYSIS_SR and segments:
        import soxr

        segments = [soxr.resample(s, sr, ANALYSIS_SR, quality="MQ").astype(np.float32) for s in segments]
        sr = ANALYSIS_SR
    result = AnalysisResult()
    if decode_note:
        result.notes.append(decode_note)
    analysed = sum(s.size for s in segments) / sr
    result.analyzed_seconds = round(analysed, 3)
    result.duration_s = round(duration_s if duration_s else analysed, 3)
    if not segments:
        result.status, result.error = "error", "no audio samples"
        return result

    loud = measure_loudness(segments, sr)
    result.loudness_lufs, result.loudness_range_lu = loud.integrated_lufs, loud.range_lu
    result.replaygain_track_gain_db, result.replaygain_track_peak = loud.track_gain_db, loud.peak

    spectrum = compute_spectrum(segments, sr)
    feats = spectral_features(spectrum, segments)
    result.spectral_centroid, result.spectral_rolloff = feats.centroid_hz, feats.rolloff_hz
    result.spectral_flatness, result.zero_crossing_rate = feats.flatness, feats.zero_crossing_rate

    silent = (loud.peak or 0.0) < SILENCE_PEAK or loud.integrated_lufs is None
    if silent:
        result.notes.append("silent audio: tempo, key, loudness and moods not measured")
        result.replaygain_track_gain_db = None
    else:
        tempo = estimate_tempo(spectrum)
        if tempo.bpm is None:
            result.notes.append(tempo.reason)
        else:
            result.bpm, result.bpm_confidence = tempo.bpm, tempo.confidence
            result.beat_count = int(round(tempo.bpm * result.duration_s / 60.0))
        key = estimate_key(spectrum)
        if key.key is None:
            result.notes.append(key.reason)
        else:
            result.key, result.mode, result.key_confidence = key.key, key.mode, key.confidence
            result.key_strength = key.strength
            result.camelot, result.open_key = key.camelot, key.open_key
        if loud.range_lu is None:
            result.notes.append("too short for loudness range (needs 3 s)")
        if None not in (feats.centroid_hz, feats.flatness, feats.voice_band_ratio):
            moods = mood_scores(
                loudness_lufs=loud.integrated_lufs, centroid_hz=feats.centroid_hz, flatness=feats.flatness,
                onset_rate=tempo.onset_rate, bpm=tempo.bpm, bpm_confidence=tempo.confidence, mode=key.mode,
                key_confidence=key.confidence, voice_band_ratio=feats.voice_band_ratio,
            )
            result.energy, result.danceability = moods.energy, moods.danceability
            result.acousticness, result.instrumentalness = moods.acousticness, moods.instrumentalness
            result.mood_happy, result.mood_sad, result.mood_aggressive = moods.happy, moods.sad, moods.aggressive
            result.mood_relaxed, result.mood_party = moods.relaxed, moods.party
            if tempo.bpm is None:  # danceability and party need a measured pulse
                result.danceability = result.mood_party = None
            for name in ("energy", "danceability", "acousticness", "instrumentalness", "mood_happy",
                         "mood_sad", "mood_aggressive", "mood_relaxed", "mood_party"):
                if getattr(result, name) is not None:
                    setattr(result, name, round(getattr(result, name), 3))
    if result.notes:
        result.status = "partial"
        result.error = "; ".join(result.notes)
    return result
