"""ITU-R BS.1770-4 loudness (K-weighting, gated 400 ms blocks), EBU Tech 3342 loudness range,
ReplayGain 2.0 track gain and sample peak, computed over the analysed excerpts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REPLAYGAIN_REFERENCE_LUFS = -18.0
ABSOLUTE_GATE_LUFS = -70.0


@dataclass(frozen=True)
class Loudness:
    """Integrated loudness (LUFS), loudness range (LU), ReplayGain 2.0 gain (dB) and peak (linear 0..1+)."""

    integrated_lufs: float | None
    range_lu: float | None
    track_gain_db: float | None
    peak: float | None


def _biquad(kind: str, fc: float, q: float, gain_db: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ-cookbook biquads with the BS.1770 stage parameters (same design pyloudnorm uses)."""
    a_gain = 10 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * fc / sr
    alpha = np.sin(w0) / (2.0 * q)
    cos = np.cos(w0)
    if kind == "high_shelf":
        sq = 2 * np.sqrt(a_gain) * alpha
        b = [a_gain * ((a_gain + 1) + (a_gain - 1) * cos + sq), -2 * a_gain * ((a_gain - 1) + (a_gain + 1) * cos),
             a_gain * ((a_gain + 1) + (a_gain - 1) * cos - sq)]
        a = [(a_gain + 1) - (a_gain - 1) * cos + sq, 2 * ((a_gain - 1) - (a_gain + 1) * cos),
             (a_gain + 1) - (a_gain - 1) * cos - sq]
    else:  # high pass
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    return np.asarray(b) / a[0], np.asarray(a) / a[0]


def k_weight(y: np.ndarray, sr: int) -> np.ndarray:
    """Pre-filter (high shelf +4 dB at 1.5 kHz) then RLB high-pass (38 Hz), as in BS.1770."""
    from scipy.signal import lfilter

    out = np.asarray(y, dtype=np.float64)
    for kind, fc, q, gain in (("high_shelf", 1681.97, 0.7071752369554193, 3.999843853973347),
                              ("high_pass", 38.13547087602444, 0.5003270373238773, 0.0)):
        fc = min(fc, 0.45 * sr)  # keep the design valid at very low sample rates
        b, a = _biquad(kind, fc, q, gain, sr)
        out = lfilter(b, a, out)
    return out


def _block_powers(weighted: np.ndarray, sr: int, block_s: float, step_s: float) -> np.ndarray:
    """Mean square of the K-weighted signal in sliding blocks (cumulative sums, so any step is cheap)."""
    size, step = int(round(block_s * sr)), max(1, int(round(step_s * sr)))
    if weighted.size < size:
        return np.zeros(0)
    csum = np.concatenate([[0.0], np.cumsum(weighted * weighted)])
    starts = np.arange(0, weighted.size - size + 1, step)
    return (csum[starts + size] - csum[starts]) / size


def _lufs(power: np.ndarray | float) -> np.ndarray | float:
    return -0.691 + 10.0 * np.log10(np.maximum(power, 1e-20))


def _gated_mean(powers: np.ndarray, relative_gate_lu: float) -> tuple[float | None, np.ndarray]:
    above_abs = powers[_lufs(powers) > ABSOLUTE_GATE_LUFS]
    if above_abs.size == 0:
        return None, above_abs
    relative = _lufs(above_abs.mean()) + relative_gate_lu
    kept = above_abs[_lufs(above_abs) > relative]
    if kept.size == 0:
        return None, kept
    return float(kept.mean()), kept


def measure_loudness(segments: list[np.ndarray], sr: int) -> Loudness:
    """Loudness over all excerpts together; blocks never straddle two excerpts. None = not measurable
    (under 0.4 s of audio, or everything below the -70 LUFS absolute gate, i.e. silence)."""
    momentary, short_term, peak = [], [], 0.0
    for segment in segments:
        if segment.size == 0:
            continue
        peak = max(peak, float(np.abs(segment).max()))
        weighted = k_weight(segment, sr)
        momentary.append(_block_powers(weighted, sr, 0.4, 0.1))
        short_term.append(_block_powers(weighted, sr, 3.0, 0.1))
    blocks = np.concatenate(momentary) if momentary else np.zeros(0)
    mean_power, _ = _gated_mean(blocks, -10.0)
    integrated = None if mean_power is None else round(float(_lufs(mean_power)), 2)
    lra = None
    st = np.concatenate(short_term) if short_term else np.zeros(0)
    _, kept = _gated_mean(st, -20.0)
    if kept.size >= 2:
        levels = _lufs(kept)
        lra = round(float(np.percentile(levels, 95) - np.percentile(levels, 10)), 2)
    gain = None if integrated is None else round(REPLAYGAIN_REFERENCE_LUFS - integrated, 2)
    has_audio = any(s.size for s in segments)
    return Loudness(integrated, lra, gain, round(peak, 6) if has_audio else None)
