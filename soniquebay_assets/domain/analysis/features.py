"""Spectral descriptors from the shared spectrum, and the zero-crossing rate from the samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soniquebay_assets.domain.analysis.spectrum import Spectrum

ROLLOFF_FRACTION = 0.85
SILENT_FRAME_DB = -60.0  # frames this far below the loudest frame are left out of the means


@dataclass(frozen=True)
class SpectralFeatures:
    """Means over non-silent frames: centroid and roll-off in Hz, flatness in [0, 1], ZCR per sample."""

    centroid_hz: float | None
    rolloff_hz: float | None
    flatness: float | None
    zero_crossing_rate: float | None
    voice_band_ratio: float | None  # share of magnitude in 300-3400 Hz, used by the instrumentalness heuristic


def spectral_features(spectrum: Spectrum, segments: list[np.ndarray]) -> SpectralFeatures:
    """Frame-wise descriptors (same definitions as librosa's), averaged over the frames that carry sound."""
    mags = spectrum.concatenated()
    zcr = _zero_crossing_rate(segments)
    if mags.size == 0:
        return SpectralFeatures(None, None, None, zcr, None)
    energy = mags.sum(axis=0)
    if float(energy.max()) <= 0:
        return SpectralFeatures(None, None, None, zcr, None)
    loud = energy > energy.max() * 10 ** (SILENT_FRAME_DB / 20)
    m = mags[:, loud].astype(np.float64)
    freqs = spectrum.freqs
    total = m.sum(axis=0)
    centroid = float(np.mean((freqs @ m) / total))
    cumulative = np.cumsum(m, axis=0)
    rolloff_bins = np.argmax(cumulative >= ROLLOFF_FRACTION * total, axis=0)
    rolloff = float(np.mean(freqs[rolloff_bins]))
    power = np.maximum(m * m, 1e-10)
    flatness = float(np.mean(np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)))
    band = (freqs >= 300) & (freqs <= 3400)
    voice = float(m[band].sum() / m.sum())
    return SpectralFeatures(round(centroid, 1), round(rolloff, 1), round(flatness, 5), zcr, round(voice, 4))


def _zero_crossing_rate(segments: list[np.ndarray]) -> float | None:
    crossings, samples = 0, 0
    for y in segments:
        if y.size < 2:
            continue
        signs = np.signbit(y)
        crossings += int(np.count_nonzero(signs[1:] != signs[:-1]))
        samples += y.size - 1
    return round(crossings / samples, 5) if samples else None
