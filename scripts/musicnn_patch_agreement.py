#!/usr/bin/env python3
"""How far the catalog's learned tags (a few patches of the decoded excerpts) are from the whole track's (every
3-second patch of the whole file, musicnn's own way): top-5 agreement per model, for 1 to 4 patches.

    python scripts/musicnn_patch_agreement.py /work/shared/corpus/music --limit 12
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

AUDIO = {".ogg", ".mp3", ".flac", ".opus", ".wav"}


def whole_track_batch(path: Path) -> np.ndarray:
    import soundfile
    import soxr

    from soniquebay_assets.domain.analysis import musicnn

    data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    audio = soxr.resample(data.mean(axis=1), sr, musicnn.SR, quality="HQ")
    return musicnn.patches(musicnn.log_mel(audio))


def top(values: dict[str, float], n: int = 5) -> set[str]:
    return {k for k, _ in sorted(values.items(), key=lambda kv: -kv[1])[:n]}


def main(argv: list[str] | None = None) -> int:
    from soniquebay_assets.domain.analysis import music_tags
    from soniquebay_assets.library.audio_decode import decode_track

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--min-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in AUDIO and "guitar" not in p.name)
    rows = []
    for path in files:
        decoded = decode_track(path, measure_loudness=False)
        if (decoded.duration_s or 0) < args.min_seconds:
            continue
        whole = music_tags.tag_batch(whole_track_batch(path))
        row = {"file": str(path.relative_to(args.folder)), "whole_patches": whole.patches}
        for count in (1, 2, 3, 4):
            sample = music_tags.tag_segments(decoded.segments, decoded.sr, count)
            row[count] = {m: len(top(getattr(sample, m)) & top(getattr(whole, m))) / 5 for m in ("msd", "mtt")}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
        if len(rows) >= args.limit:
            break
    summary = {count: {m: round(float(np.mean([r[count][m] for r in rows])), 3) for m in ("msd", "mtt")}
               for count in (1, 2, 3, 4)}
    print(json.dumps({"tracks": len(rows), "top5_agreement_by_patches": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
