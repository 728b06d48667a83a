"""Analysis benchmark: real-time factor, seconds per 4-minute track and peak RSS of the enrichment worker code."""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

FORMATS = ("flac", "ogg", "mp3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracks", type=int, default=3, help="number of synthetic tracks (default 3)")
    parser.add_argument("--minutes", type=float, default=4.0, help="length of each track (default 4)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write them (default: a temp dir)")


def build_tracks(folder: Path, count: int, minutes: float) -> list[Path]:
    """Stereo 44.1 kHz songs (drums + chords) in FLAC, Ogg Vorbis and MP3, like a real library."""
    import numpy as np
    import soundfile as sf

    from soniquebay_assets.domain.analysis.synth import song

    paths = []
    for i in range(count):
        fmt = FORMATS[i % len(FORMATS)]
        mono = song(90 + 17 * i, (5 * i) % 12, "minor" if i % 2 else "major", minutes * 60, sr=44100, seed=i)
        stereo = np.stack([mono, np.roll(mono, 50)], axis=1)
        path = folder / f"track{i:02d}.{fmt}"
        subtype = {"flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}[fmt]
        # written in 1 s blocks: one big sf.write of minutes of Vorbis segfaults in libsndfile 1.2.2
        with sf.SoundFile(str(path), "w", 44100, 2, format={"flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}[fmt],
                          subtype=subtype) as out:
            for start in range(0, stereo.shape[0], 44100):
                out.write(stereo[start : start + 44100])
        paths.append(path)
    return paths


def measure(paths: list[str]) -> dict:
    """Runs inside a fresh worker process: analyse each file with the pipeline's worker function."""
    from soniquebay_assets.pipeline.enrich import analyze_file

    analyze_file(paths[0])  # warm-up: imports and first-call costs are not per-track costs
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    audio_seconds, analysed_seconds, per_track, results = 0.0, 0.0, [], []
    for path in paths:
        t0 = time.process_time()
        values = analyze_file(path).values
        per_track.append(time.process_time() - t0)
        audio_seconds += values.get("duration_s") or 0.0
        analysed_seconds += values.get("analyzed_seconds") or 0.0
        results.append({"file": Path(path).name, "status": values["status"], "bpm": values.get("bpm"),
                        "key": values.get("key"), "mode": values.get("mode"),
                        "key_strength": values.get("key_strength"), "error": values.get("error")})
    return {"cpu": time.process_time() - cpu_started, "wall": time.perf_counter() - wall_started,
            "audio_seconds": audio_seconds, "analysed_seconds": analysed_seconds, "per_track": per_track, "results": results,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(args: argparse.Namespace) -> dict:
    from soniquebay_assets.library.process_pool import process_pool
    from soniquebay_assets.pipeline.enrich import init_analysis_worker
    from soniquebay_assets.settings import DataDir

    work = Path(tempfile.mkdtemp(prefix="soniquebay-bench-analyze-", dir=args.workdir))
    try:
        paths = build_tracks(work, args.tracks, args.minutes)
        # a worker like the enrichment pool's, so its peak RSS is a worker's, not the generator's
        with process_pool(1, init_analysis_worker, (str(DataDir().numba_cache),)) as pool:
            m = pool.submit(measure, [str(p) for p in paths]).result()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    scale = 240.0 / (args.minutes * 60)
    return {
        "benchmark": "analyze",
        "tracks": len(paths),
        "track_minutes": args.minutes,
        "audio_seconds": round(m["audio_seconds"], 1),
        "cpu_seconds": round(m["cpu"], 3),
        "wall_seconds": round(m["wall"], 3),
        "analysed_seconds": round(m["analysed_seconds"], 1),
        "cpu_seconds_measured_as": "process CPU time of the worker (not wall time: the machine may be loaded)",
        "realtime_factor_per_core": round(m["audio_seconds"] / m["cpu"], 1) if m["cpu"] else None,
        # per second actually decoded and analysed (the excerpts), so the saving of excerpts shows
        "realtime_factor_per_analysed_second": round(m["analysed_seconds"] / m["cpu"], 1) if m["cpu"] else None,
        "seconds_per_4min_track": round(scale * sum(m["per_track"]) / len(m["per_track"]), 3),
        "worker_peak_rss_mb": round(m["peak_rss_mb"], 1),
        "peak_rss_mb": round(m["peak_rss_mb"], 1),
        "target_realtime_factor": 300,
        "target_peak_rss_mb": 1024,
        "results": m["results"],
    }
