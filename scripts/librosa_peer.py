"""librosa as a peer: beat_track tempo and a chroma key estimate (Krumhansl-Kessler profiles) on the same
excerpts the analysis reads; one JSON line per file (path, bpm, key, mode, cpu_seconds, audio_seconds).
usage: python scripts/librosa_peer.py TRUTH.tsv > out.jsonl   (first file is a warm-up, JIT excluded)

A peer to measure against, not a dependency: run it where librosa is installed (a separate venv); score its
output with `soniquebay eval tempo|key --truth TRUTH.tsv --estimates out.jsonl`."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import librosa
import numpy as np

from soniquebay_assets.library.audio_decode import decode_track

NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_of(chroma_mean):
    """Best correlation of the summed chroma with the 24 rotated Krumhansl-Kessler profiles: (r, tonic, mode)."""
    best = (-2, None, None)
    for mode, prof in (("major", MAJOR), ("minor", MINOR)):
        for t in range(12):
            r = np.corrcoef(chroma_mean, np.roll(prof, t))[0, 1]
            if r > best[0]:
                best = (r, NAMES[t], mode)
    return best


def analyse(path):
    """Decode as the analysis does (same excerpts), then time beat_track + chroma_cqt key on them."""
    d = decode_track(path)
    segs = [np.asarray(s, dtype=np.float32) for s in d.segments]
    segs = [s.mean(axis=1) if s.ndim == 2 else s for s in segs]
    t0 = time.process_time()
    sr = 22050
    if d.sr != sr:
        segs = [librosa.resample(s, orig_sr=d.sr, target_sr=sr) for s in segs]
    tempos, chromas = [], []  # per excerpt; a long track's three excerpts vote by median
    for s in segs:
        tempo, _ = librosa.beat.beat_track(y=s, sr=sr)
        tempos.append(float(np.atleast_1d(tempo)[0]))
        chromas.append(librosa.feature.chroma_cqt(y=s, sr=sr).sum(axis=1))
    bpm = float(np.median(tempos))
    strength, key, mode = key_of(np.sum(chromas, axis=0))
    cpu = time.process_time() - t0
    return {"path": path, "bpm": round(bpm, 2), "key": key, "mode": mode, "key_strength": round(float(strength), 3),
            "cpu_seconds": round(cpu, 3), "audio_seconds": round(sum(s.size for s in segs) / sr, 3)}


if __name__ == "__main__":
    truth = Path(sys.argv[1])
    lines = truth.read_text().splitlines()[1:]
    paths = [str(truth.parent / line.split("\t")[0]) for line in lines if line.strip()]
    analyse(paths[0])  # warm-up: numba JIT is not a per-file cost
    for p in paths:
        print(json.dumps(analyse(p)), flush=True)
