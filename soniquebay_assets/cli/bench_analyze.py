"""Analysis benchmark: real-time factor per core of the whole analysis (one decode: loudness of the whole track,
tempo, key, moods), of decoding alone and of decoding plus loudness, per format; beside loudgain on the same files."""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FORMATS = ("flac", "ogg", "mp3")
SOUNDFILE_FORMATS = {"flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III"),
                     "opus": ("OGG", "OPUS"), "wav": ("WAV", "PCM_16")}
FFMPEG_FORMATS = {"m4a": ["-c:a", "aac", "-b:a", "192k"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracks", type=int, default=3, help="number of synthetic tracks (default 3)")
    parser.add_argument("--minutes", type=float, default=4.0, help="length of each track (default 4)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"formats of the synthetic tracks, in turn (default {','.join(FORMATS)}; also "
                             f"{', '.join(sorted(set(SOUNDFILE_FORMATS) | set(FFMPEG_FORMATS) - set(FORMATS)))})")
    parser.add_argument("--files", type=Path, nargs="+", default=None,
                        help="benchmark these audio files (or folders' files) instead of synthetic tracks")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write them (default: a temp dir)")


def build_tracks(folder: Path, count: int, minutes: float, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Stereo 44.1 kHz songs (drums + chords) in the given formats in turn, like a real library."""
    import numpy as np
    import soundfile as sf

    from soniquebay_assets.domain.analysis.synth import song

    paths = []
    for i in range(count):
        fmt = formats[i % len(formats)]
        mono = song(90 + 17 * i, (5 * i) % 12, "minor" if i % 2 else "major", minutes * 60, sr=44100, seed=i)
        stereo = np.stack([mono, np.roll(mono, 50)], axis=1)
        path = folder / f"track{i:02d}.{fmt}"
        container, subtype = SOUNDFILE_FORMATS.get(fmt, ("WAV", "PCM_16"))
        target = path if fmt in SOUNDFILE_FORMATS else path.with_suffix(".wav")
        # written in 1 s blocks: one big sf.write of minutes of Vorbis segfaults in libsndfile 1.2.2
        rate = 48000 if fmt == "opus" else 44100
        if rate != 44100:
            import soxr

            stereo = soxr.resample(stereo, 44100, rate)
        with sf.SoundFile(str(target), "w", rate, 2, format=container, subtype=subtype) as out:
            for start in range(0, stereo.shape[0], rate):
                out.write(stereo[start : start + rate])
        if fmt in FFMPEG_FORMATS:
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(target), *FFMPEG_FORMATS[fmt],
                            str(path)], check=True)
            target.unlink()
        paths.append(path)
    return paths


def _cpu() -> float:
    """CPU seconds of this process and of the children it waited for (ffmpeg decoding Opus, M4A...)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(paths: list[str]) -> dict:
    """Runs inside a fresh worker process: per file, decode alone, decode + loudness, the whole analysis."""
    from soniquebay_assets.library.audio_decode import decode_track
    from soniquebay_assets.pipeline.enrich import analyze_file

    analyze_file(paths[0])  # warm-up: imports and first-call costs are not per-track costs
    tracks = []
    wall_started = time.perf_counter()
    for path in paths:
        t0 = _cpu()
        decode_track(path, measure_loudness=False)
        t1 = _cpu()
        decode_track(path)
        t2 = _cpu()
        values = analyze_file(path).values
        t3 = _cpu()
        tracks.append({"file": Path(path).name, "format": Path(path).suffix.lstrip(".").lower(),
                       "decode_cpu": t1 - t0, "decode_loudness_cpu": t2 - t1, "analysis_cpu": t3 - t2,
                       "audio_seconds": values.get("duration_s") or 0.0,
                       "analysed_seconds": values.get("analyzed_seconds") or 0.0,
                       "status": values["status"], "decoder": values.get("decoder"), "bpm": values.get("bpm"),
                       "key": values.get("key"), "mode": values.get("mode"), "key_strength": values.get("key_strength"),
                       "loudness_lufs": values.get("loudness_lufs"), "true_peak_dbtp": values.get("true_peak_dbtp"),
                       "error": values.get("error")})
    return {"tracks": tracks, "wall": time.perf_counter() - wall_started,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _loudgain_cpu(paths: list[str]) -> dict | None:
    """loudgain (ReplayGain 2.0 on libebur128: loudness, range, true peak) on the same files, CPU per file."""
    binary = shutil.which("loudgain")
    if binary is None:
        return None
    per_file = []
    for path in paths:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([binary, "-O", "-q", path], capture_output=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        per_file.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return {"cpu_seconds_by_file": [round(c, 3) for c in per_file]}


def _factor(audio: float, cpu: float) -> float | None:
    return round(audio / cpu, 1) if cpu > 0 else None


def run(args: argparse.Namespace) -> dict:
    from soniquebay_assets.library.process_pool import process_pool
    from soniquebay_assets.pipeline.enrich import init_analysis_worker
    from soniquebay_assets.pipeline.loudness_eval import audio_files
    from soniquebay_assets.settings import DataDir

    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip())
    work = Path(tempfile.mkdtemp(prefix="soniquebay-bench-analyze-", dir=args.workdir))
    try:
        if args.files:
            paths = audio_files(args.files)
        else:
            paths = build_tracks(work, args.tracks, args.minutes, formats)
        # a worker like the enrichment pool's, so its peak RSS is a worker's, not the generator's
        with process_pool(1, init_analysis_worker, (str(DataDir().numba_cache),)) as pool:
            m = pool.submit(measure, [str(p) for p in paths]).result()
        peer = _loudgain_cpu([str(p) for p in paths])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tracks = m["tracks"]
    audio = sum(t["audio_seconds"] for t in tracks)
    cpu = sum(t["analysis_cpu"] for t in tracks)
    by_format = {}
    for fmt in sorted({t["format"] for t in tracks}):
        group = [t for t in tracks if t["format"] == fmt]
        seconds = sum(t["audio_seconds"] for t in group)
        by_format[fmt] = {
            "tracks": len(group), "decoder": group[0]["decoder"], "audio_seconds": round(seconds, 1),
            "analysis_realtime_factor_per_core": _factor(seconds, sum(t["analysis_cpu"] for t in group)),
            "decode_realtime_factor_per_core": _factor(seconds, sum(t["decode_cpu"] for t in group)),
            "decode_loudness_realtime_factor_per_core": _factor(seconds, sum(t["decode_loudness_cpu"] for t in group)),
        }
        if peer:
            loudgain_cpu = sum(c for c, t in zip(peer["cpu_seconds_by_file"], tracks, strict=True)
                               if t["format"] == fmt)
            by_format[fmt]["loudgain_realtime_factor_per_core"] = _factor(seconds, loudgain_cpu)
    report = {
        "benchmark": "analyze",
        "tracks": len(tracks),
        "track_minutes": None if args.files else args.minutes,
        "audio_seconds": round(audio, 1),
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(m["wall"], 3),
        "analysed_seconds": round(sum(t["analysed_seconds"] for t in tracks), 1),
        "cpu_seconds_measured_as": "CPU time of the worker and of the decoders it ran (ffmpeg), not wall time: "
                                   "the machine may be loaded",
        "realtime_factor_per_core": _factor(audio, cpu),
        # per second analysed by tempo, key and moods (the excerpts); loudness reads the whole track
        "realtime_factor_per_analysed_second": round(sum(t["analysed_seconds"] for t in tracks) / cpu, 1)
        if cpu else None,
        "seconds_per_4min_track": round(240.0 * cpu / audio, 3) if audio else None,
        "decode_realtime_factor_per_core": _factor(audio, sum(t["decode_cpu"] for t in tracks)),
        "decode_loudness_realtime_factor_per_core": _factor(audio, sum(t["decode_loudness_cpu"] for t in tracks)),
        "by_format": by_format,
        "worker_peak_rss_mb": round(m["peak_rss_mb"], 1),
        "peak_rss_mb": round(m["peak_rss_mb"], 1),
        "target_realtime_factor": 300,
        "target_peak_rss_mb": 1024,
        "results": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in t.items()} for t in tracks],
    }
    if peer:
        report["loudgain_realtime_factor_per_core"] = _factor(audio, sum(peer["cpu_seconds_by_file"]))
        report["vs_loudgain"] = round(report["realtime_factor_per_core"] / report["loudgain_realtime_factor_per_core"],
                                      2) if report["realtime_factor_per_core"] and report[
            "loudgain_realtime_factor_per_core"] else None
    return report
