"""Tempo from an onset-strength envelope: autocorrelation, a comb over beat multiples, and an octave rule.

Pure numpy (no librosa, no numba JIT). Documented octave rule, see `choose_octave`:
the comb finds the periodicity family (T and its multiples/sub-multiples all share lags); among the levels
F*2^j and 3F*2^j of the comb's winner F that fall inside [MIN_BPM, MAX_BPM] we report the FASTEST level whose own beat lag is supported
by the autocorrelation with at least SUPPORT_RATIO of the strongest level's support. A real pulse at T makes the
autocorrelation peak at T's lag and at all slower levels (T/2, T/4 hit the same onsets), so slower levels are
always "supported"; only a faster level that is really played (not just a quieter off-beat) passes the ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soniquebay_assets.domain.analysis.spectrum import Spectrum

MIN_BPM = 50.0
MAX_BPM = 210.0
SUPPORT_RATIO = 0.55
MIN_SECONDS = 5.0  # below this there are too few beats for a periodicity estimate
COMB_HARMONICS = 4
BAND_EDGES_HZ = np.geomspace(40.0, 10000.0, 25)


@dataclass(frozen=True)
class TempoEstimate:
    """A measured tempo: BPM, confidence in [0, 1], onset rate (onsets per second) for mood heuristics."""

    bpm: float | None
    confidence: float | None
    onset_rate: float
    reason: str = ""


def onset_envelopes(spectrum: Spectrum) -> list[np.ndarray]:
    """Log-compressed spectral flux over 24 log-spaced bands, locally de-meaned and rectified, per excerpt."""
    freqs = spectrum.freqs
    bands = np.zeros((len(BAND_EDGES_HZ) - 1, freqs.size), dtype=np.float32)
    for i, (lo, hi) in enumerate(zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True)):
        mask = (freqs >= lo) & (freqs < hi)
        if mask.any():
            bands[i, mask] = 1.0 / mask.sum()
    scale = max((float(m.max()) for m in spectrum.magnitudes if m.size), default=0.0)
    envelopes = []
    smooth = max(1, int(round(0.4 * spectrum.frame_rate)))
    for mags in spectrum.magnitudes:
        if scale <= 0 or mags.shape[1] < 3:
            envelopes.append(np.zeros(max(mags.shape[1], 0), dtype=np.float32))
            continue
        banded = np.log1p(1000.0 * (bands @ mags) / scale)
        flux = np.maximum(0.0, np.diff(banded, axis=1)).sum(axis=0)
        flux = np.concatenate([[0.0], flux])
        local = np.convolve(flux, np.ones(smooth) / smooth, mode="same")
        envelopes.append(np.maximum(0.0, flux - local).astype(np.float32))
    return envelopes


def autocorrelation(envelopes: list[np.ndarray], max_lag: int) -> np.ndarray | None:
    """Unbiased, length-weighted mean autocorrelation of the envelopes, normalised so lag 0 is 1."""
    total = np.zeros(max_lag + 1)
    weight = 0.0
    for env in envelopes:
        n = env.size
        if n <= max_lag * 1.2 or not np.any(env):
            continue
        x = env - env.mean()
        spec = np.fft.rfft(x, 2 * n)
        r = np.fft.irfft(np.abs(spec) ** 2)[: max_lag + 1]
        r = r / (n - np.arange(max_lag + 1))
        if r[0] <= 0:
            continue
        total += (r / r[0]) * n
        weight += n
    if weight == 0:
        return None
    return total / weight


def _support(acf: np.ndarray, lag: float) -> float:
    """Autocorrelation at `lag` (fractional frames), taking the local maximum within +-2 %."""
    lo, hi = int(np.floor(lag * 0.98)), int(np.ceil(lag * 1.02))
    hi = min(hi, acf.size - 1)
    if lo >= acf.size - 1:
        return 0.0
    return float(acf[lo : hi + 1].max())


def _comb(acf: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Mean autocorrelation over the first COMB_HARMONICS multiples of each lag that fit in the ACF."""
    total = np.zeros_like(lags)
    count = np.zeros_like(lags)
    positions = np.arange(acf.size)
    for k in range(1, COMB_HARMONICS + 1):
        at = lags * k
        ok = at <= acf.size - 1
        total[ok] += np.interp(at[ok], positions, acf)
        count[ok] += 1
    return np.where(count > 0, total / np.maximum(count, 1), -1.0)


def choose_octave(acf: np.ndarray, frame_rate: float, family_bpm: float) -> tuple[float, float]:
    """The documented octave rule (module docstring): fastest well-supported level inside the BPM range."""
    # the comb may land on a sub-multiple of the beat (T/2, T/3, T/4 share its lags), so we look at
    # octave levels of the family and of its triple
    levels = [family_bpm * m * 2.0**j for j in range(-3, 4) for m in (1, 3)]
    levels = [b for b in levels if MIN_BPM <= b <= MAX_BPM]
    if not levels:  # the family straddles the range: fold into it
        b = family_bpm
        while b < MIN_BPM:
            b *= 2
        while b > MAX_BPM:
            b /= 2
        levels = [b]
    supports = {b: _support(acf, 60.0 * frame_rate / b) for b in levels}
    best = max(supports.values())
    if best <= 0:  # no level repeats at all: report the best one; the caller turns this into "no pulse"
        chosen = max(levels, key=supports.__getitem__)
        return chosen, supports[chosen]
    chosen = max(b for b in levels if supports[b] >= SUPPORT_RATIO * best)
    return chosen, supports[chosen]


def _refine(acf: np.ndarray, frame_rate: float, bpm: float) -> float:
    """Sub-frame precision: maximise the comb within +-4 % of `bpm` on a 0.05 BPM grid."""
    grid = np.arange(bpm * 0.96, bpm * 1.04, 0.05)
    scores = _comb(acf, 60.0 * frame_rate / grid)
    return float(grid[int(np.argmax(scores))])


def estimate_tempo(spectrum: Spectrum) -> TempoEstimate:
    """BPM with confidence, or bpm=None and a reason when the audio has no measurable pulse."""
    envelopes = onset_envelopes(spectrum)
    fps = spectrum.frame_rate
    seconds = sum(e.size for e in envelopes) / fps
    onset_rate = _onset_rate(envelopes, fps)
    longest = max((e.size for e in envelopes), default=0) / fps
    if longest < MIN_SECONDS:
        return TempoEstimate(None, None, onset_rate, f"too short for tempo ({longest:.1f} s < {MIN_SECONDS} s)")
    max_lag = int(min(longest / 1.25 - 1.0 / fps, 4 * COMB_HARMONICS * 60.0 / 40.0) * fps)
    acf = autocorrelation(envelopes, max_lag)
    if acf is None or seconds == 0:
        return TempoEstimate(None, None, onset_rate, "no onsets (silent or constant audio)")
    grid = np.arange(40.0, 240.0, 0.25)
    comb = _comb(acf, 60.0 * fps / grid)
    family = float(grid[int(np.argmax(comb))])
    bpm, support = choose_octave(acf, fps, family)
    if support <= 0:
        return TempoEstimate(None, None, onset_rate, "no periodic pulse in the onsets")
    bpm = _refine(acf, fps, bpm)
    # confidence: how far the chosen beat's autocorrelation stands above the typical lag, on a 0..1 scale
    lo, hi = int(0.25 * fps), min(acf.size - 1, int(2.0 * fps))
    baseline = float(np.median(acf[lo:hi])) if hi > lo else 0.0
    confidence = float(np.clip((support - baseline) / max(1e-9, 1.0 - baseline), 0.0, 1.0))
    return TempoEstimate(round(bpm, 2), round(confidence, 3), onset_rate)


def _onset_rate(envelopes: list[np.ndarray], fps: float) -> float:
    """Peaks per second of the onset envelope above a quarter of its 99th percentile."""
    joined = np.concatenate(envelopes) if envelopes else np.zeros(0)
    if joined.size < 3 or not np.any(joined):
        return 0.0
    threshold = 0.25 * float(np.percentile(joined, 99))
    mid = joined[1:-1]
    peaks = (mid > joined[:-2]) & (mid >= joined[2:]) & (mid > threshold)
    return float(peaks.sum() / (joined.size / fps))
