#!/usr/bin/env python3
"""Fit the major/minor key profiles of domain/analysis/key.py on a dev set (scripts/build_dev_set.py).

usage: python scripts/fit_key_profiles.py data/devset/truth.tsv

Each profile is the mean, tonic-aligned pitch-class profile (key.pitch_class_profile, normalised to sum 1)
of the dev-set excerpts in that mode. Prints the 2-fold cross-validated exact / MIREX score of the fitted
profiles next to the published ones (Krumhansl-Kessler, Temperley, EDMA), then the constant to paste.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def profile_of(path: str) -> np.ndarray:
    from soniquebay_assets.domain.analysis.analyze import ANALYSIS_SR, _as_segments
    from soniquebay_assets.domain.analysis.key import pitch_class_profile
    from soniquebay_assets.domain.analysis.spectrum import compute_spectrum
    from soniquebay_assets.library.audio_decode import decode_track

    decoded = decode_track(path, measure_loudness=False)
    segments = _as_segments(decoded.segments)
    if decoded.sr != ANALYSIS_SR:
        import soxr

        segments = [soxr.resample(s, decoded.sr, ANALYSIS_SR).astype(np.float32) for s in segments]
    return pitch_class_profile(compute_spectrum(segments, ANALYSIS_SR))


def fit(chromas: list[np.ndarray], truths: list[tuple[int, str]]) -> tuple[tuple, tuple]:
    sums = np.zeros((2, 12))
    for c, (tonic, mode) in zip(chromas, truths, strict=True):
        sums[int(mode == "minor")] += np.roll(c / max(1e-12, c.sum()), -tonic)
    sums /= sums.sum(axis=1, keepdims=True)
    return tuple(round(float(x), 4) for x in sums[0]), tuple(round(float(x), 4) for x in sums[1])


def score(chromas, truths, profiles) -> str:
    from soniquebay_assets.domain.analysis import evaluation
    from soniquebay_assets.domain.analysis.key import key_scores

    pairs = []
    for c, t in zip(chromas, truths, strict=True):
        best = int(np.argmax(key_scores(c, profiles)))
        pairs.append(((best % 12, "major" if best < 12 else "minor"), t))
    r = evaluation.key_report(pairs)
    return f"exact {r['exact']:.3f}  MIREX {r['mirex_weighted']:.3f}  {r['confusions']}"


def main() -> int:
    from soniquebay_assets.cli.analysis_cmds import read_truth_table
    from soniquebay_assets.domain.analysis import evaluation
    from soniquebay_assets.domain.analysis.key import PROFILES

    rows, _ = read_truth_table(Path(sys.argv[1]), "key")
    truths = [evaluation.parse_key(value) for _, value, _ in rows]
    with ProcessPoolExecutor(2) as pool:
        chromas = list(pool.map(profile_of, [str(p) for p, _, _ in rows], chunksize=4))
    for name, profile in PROFILES.items():
        print(f"{name:12s} {score(chromas, truths, [profile])}")
    print(f"{'in use':12s} {score(chromas, truths, None)}  (KEY_PROFILE_SET and MINOR_BIAS, floor-removed view"
          " only: estimate_key also averages in the whole-spectrum and spectral-peak views)")
    even, odd = list(range(0, len(rows), 2)), list(range(1, len(rows), 2))
    fitted_even = fit([chromas[i] for i in even], [truths[i] for i in even])
    fitted_odd = fit([chromas[i] for i in odd], [truths[i] for i in odd])
    print(f"{'fitted (2-fold CV)':12s} on odd: {score([chromas[i] for i in odd], [truths[i] for i in odd], [fitted_even])}"
          f"\n{'':12s} on even: {score([chromas[i] for i in even], [truths[i] for i in even], [fitted_odd])}")
    major, minor = fit(chromas, truths)
    print(f"KEY_PROFILES = (\n    {major},\n    {minor},\n)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
