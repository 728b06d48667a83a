"""Synthetic audio with exact truth (tempo, key), for tests, `soniquebay bench analyze` and sanity checks."""

from __future__ import annotations

import numpy as np

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
TIMBRES = ("sine", "saw", "square", "piano", "organ")
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor: the raised 7th is what makes V major in minor keys


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _burst(sr: int, seconds: float, decay_s: float, rng: np.random.Generator, kind: str) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = np.exp(-t / decay_s)
    if kind == "kick":
        phase = 2 * np.pi * np.cumsum(50.0 + 90.0 * np.exp(-t / 0.03)) / sr
        return np.sin(phase) * env
    noise = rng.standard_normal(t.size)
    if kind == "hat":
        noise = np.diff(noise, prepend=0.0)  # crude high-pass
    return noise * env


def _place(out: np.ndarray, sound: np.ndarray, times: np.ndarray, sr: int, gain: float) -> None:
    for when in times:
        start = int(round(when * sr))
        if start >= out.size:
            break
        end = min(out.size, start + sound.size)
        out[start:end] += gain * sound[: end - start]


def drum_pattern(bpm: float, seconds: float, sr: int = 22050, style: str = "rock", seed: int = 0) -> np.ndarray:
    """Kick/snare/hi-hat loop; the beat (quarter note) is `bpm`. Styles: rock, four_on_floor, halftime_hats."""
    rng = _rng(seed)
    beat = 60.0 / bpm
    beats = np.arange(0, seconds, beat)
    kick, snare, hat = (_burst(sr, 0.25, 0.08, rng, "kick"), _burst(sr, 0.2, 0.05, rng, "snare"),
                        _burst(sr, 0.05, 0.01, rng, "hat"))
    out = np.zeros(int(seconds * sr))
    if style == "four_on_floor":
        _place(out, kick, beats, sr, 0.8)
        _place(out, hat, beats + beat / 2, sr, 0.15)
        _place(out, snare, beats[1::2], sr, 0.4)
    else:
        _place(out, kick, beats[0::2], sr, 0.8)
        _place(out, snare, beats[1::2], sr, 0.5)
        _place(out, hat, beats, sr, 0.2)
        if style == "rock":
            _place(out, hat, beats + beat / 2, sr, 0.1)
    out += 0.002 * rng.standard_normal(out.size)
    return (out / max(1e-9, np.abs(out).max()) * 0.7).astype(np.float32)


def _note(freq: float, seconds: float, sr: int, timbre: str) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    if timbre == "sine":
        partials = [(1, 1.0)]
    elif timbre == "saw":
        partials = [(n, 1.0 / n) for n in range(1, 9)]
    elif timbre == "square":
        partials = [(n, 1.0 / n) for n in range(1, 10, 2)]
    elif timbre == "organ":
        partials = [(1, 1.0), (2, 0.7), (4, 0.4), (8, 0.2)]
    else:  # piano-like: decaying harmonics
        partials = [(n, 0.8**n) for n in range(1, 7)]
    wave = np.zeros(t.size)
    nyquist = sr / 2
    for n, amp in partials:
        if freq * n < nyquist:
            wave += amp * np.sin(2 * np.pi * freq * n * t)
    attack = np.minimum(1.0, t / 0.01)
    env = attack * (np.exp(-t / 0.6) if timbre == "piano" else np.minimum(1.0, (seconds - t) / 0.05))
    return wave * env


def _midi_to_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def key_excerpt(tonic: int, mode: str, seconds: float = 8.0, sr: int = 22050, timbre: str = "piano",
                kind: str = "progression") -> np.ndarray:
    """Chord progression (I-IV-V-I / i-iv-V-i) or ascending+descending scale in the key (tonic pitch class)."""
    scale = _MAJOR_SCALE if mode == "major" else _MINOR_SCALE
    base = 48 + tonic  # C3 .. B3
    events: list[list[float]] = []
    if kind == "scale":
        steps = [*scale, 12, *reversed(scale)]
        events = [[base + 12 + s] for s in steps]
    else:
        for degree in (0, 3, 4, 0):
            triad = [scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]
            events.append([base - 12 + triad[0]] + [base + n for n in triad])
    dur = seconds / len(events)
    out = np.concatenate([sum(_note(_midi_to_hz(m), dur, sr, timbre) for m in chord) for chord in events])
    return (out / max(1e-9, np.abs(out).max()) * 0.6).astype(np.float32)


def song(bpm: float, tonic: int, mode: str, seconds: float, sr: int = 22050, seed: int = 0) -> np.ndarray:
    """Drums plus a repeating chord progression: a stand-in for a real track (used by the benchmark)."""
    drums = drum_pattern(bpm, seconds, sr, style="rock", seed=seed)
    bar = 4 * 60.0 / bpm
    loop = key_excerpt(tonic, mode, seconds=4 * bar, sr=sr, timbre=TIMBRES[seed % len(TIMBRES)])
    chords = np.resize(loop, drums.size)
    return (0.5 * drums + 0.5 * chords).astype(np.float32)
