"""Perceptual scores in [0, 1] from measured features. These are HEURISTICS, not trained models: each formula
is written out below and in docs/enrichment.md so a user can judge what a score means.

Inputs (all measured elsewhere): integrated loudness L (LUFS), spectral centroid C (Hz), spectral flatness F,
onset rate R (onsets/s), tempo T (BPM) and its confidence P, mode (major/minor) and key confidence K,
voice-band ratio V (share of spectral magnitude in 300-3400 Hz).

    loud   = clip((L + 40) / 32)            -40 LUFS -> 0, -8 LUFS -> 1
    bright = clip((C - 800) / 3200)         800 Hz -> 0, 4 kHz -> 1
    noisy  = clip(F / 0.3)
    busy   = clip(R / 6)                    six onsets per second -> 1
    pace   = exp(-0.5 * (log2(T / 120) / 0.4)^2)   1 at 120 BPM, 0.5 about 0.47 octave away (0 if T unknown)
    energy           = 0.5 loud + 0.25 bright + 0.25 busy
    danceability     = P * (0.4 + 0.6 pace) * (0.5 + 0.5 busy)
    acousticness     = (1 - bright) * (1 - noisy) * (1 - 0.5 loud)
    instrumentalness = 1 - clip((V - 0.35) / 0.4)   (a crude proxy: vocals concentrate energy in 300-3400 Hz)
    valence          = 0.5 + 0.5 * s * K,  s = +1 major, -1 minor (0.5 when the key is unknown)
    happy      = valence * (0.5 + 0.5 energy)
    sad        = (1 - valence) * (1 - energy)
    aggressive = energy * (0.5 bright + 0.5 noisy) * (1.5 - valence)
    relaxed    = (1 - energy) * (1 - busy)
    party      = danceability * (0.5 + 0.5 energy)
(every score is clipped to [0, 1])
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


@dataclass(frozen=True)
class MoodScores:
    energy: float
    danceability: float
    acousticness: float
    instrumentalness: float
    happy: float
    sad: float
    aggressive: float
    relaxed: float
    party: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.__dict__.items()}


def mood_scores(*, loudness_lufs: float, centroid_hz: float, flatness: float, onset_rate: float,
                bpm: float | None, bpm_confidence: float | None, mode: str | None,
                key_confidence: float | None, voice_band_ratio: float) -> MoodScores:
    """The formulas of the module docstring; every input must be measured (the caller skips silence)."""
    loud = _clip((loudness_lufs + 40.0) / 32.0)
    bright = _clip((centroid_hz - 800.0) / 3200.0)
    noisy = _clip(flatness / 0.3)
    busy = _clip(onset_rate / 6.0)
    pace = math.exp(-0.5 * (math.log2(bpm / 120.0) / 0.4) ** 2) if bpm else 0.0
    pulse = bpm_confidence or 0.0
    energy = _clip(0.5 * loud + 0.25 * bright + 0.25 * busy)
    danceability = _clip(pulse * (0.4 + 0.6 * pace) * (0.5 + 0.5 * busy))
    acousticness = _clip((1 - bright) * (1 - noisy) * (1 - 0.5 * loud))
    instrumentalness = 1.0 - _clip((voice_band_ratio - 0.35) / 0.4)
    sign = 1.0 if mode == "major" else -1.0 if mode == "minor" else 0.0
    valence = 0.5 + 0.5 * sign * (key_confidence or 0.0)
    return MoodScores(
        energy=energy,
        danceability=danceability,
        acousticness=acousticness,
        instrumentalness=instrumentalness,
        happy=_clip(valence * (0.5 + 0.5 * energy)),
        sad=_clip((1 - valence) * (1 - energy)),
        aggressive=_clip(energy * (0.5 * bright + 0.5 * noisy) * (1.5 - valence)),
        relaxed=_clip((1 - energy) * (1 - busy)),
        party=_clip(danceability * (0.5 + 0.5 * energy)),
    )
