"""Decode only the excerpt windows of an audio file, once, to mono float32 at the analysis sample rate.

soundfile (libsndfile) reads WAV, FLAC, Ogg Vorbis/Opus, MP3 and AIFF by seeking to each window. Containers
libsndfile cannot read (M4A/AAC, WMA, WebM, ...) go through an `ffmpeg` subprocess when ffmpeg is on PATH;
otherwise a DecodeError with reason "ffmpeg_missing" says what to install.

Partial decodes are kept, not thrown away: when a file stops decoding part-way (truncated FLAC/WAV, a corrupt
frame), the windows and chunks read before the failure are returned with `partial_reason` set, and the caller
records the analysis as status 'partial'.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soniquebay_assets.domain.analysis.excerpts import Window, choose_windows

ANALYSIS_SR = 22050
CHUNK_SECONDS = 5.0  # read windows in chunks so a mid-window failure keeps what came before
FFMPEG_ONLY_SUFFIXES = {".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".asf", ".webm", ".mka", ".ac3", ".eac3"}
SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".caf", ".w64", ".rf64"}
FFMPEG_INSTALL_HINT = "install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg)"


class DecodeError(Exception):
    """Nothing usable could be decoded; `reason` is short and stable (used for counts), `detail` explains."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedAudio:
    """Mono excerpts at `sr`, plus what the container said about the whole file."""

    segments: list[np.ndarray]
    sr: int
    duration_s: float | None
    source_sr: int | None
    channels: int | None
    windows: list[Window] = field(default_factory=list)
    partial_reason: str | None = None
    decoder: str = "soundfile"


def decode_excerpts(path: str | Path, *, sr: int = ANALYSIS_SR, duration_hint: float | None = None,
                    ffmpeg: str | None = None) -> DecodedAudio:
    """Decode the excerpt windows of `path`; raises DecodeError when nothing at all can be decoded."""
    path = Path(path)
    if not path.is_file():
        raise DecodeError("missing_file", f"{path} does not exist")
    if path.suffix.lower() not in FFMPEG_ONLY_SUFFIXES:
        try:
            return _decode_soundfile(path, sr, duration_hint)
        except DecodeError as exc:
            if exc.reason != "unsupported_format":
                raise
            soundfile_error = exc
    else:
        soundfile_error = None
    ffmpeg_bin = ffmpeg or shutil.which("ffmpeg")
    if ffmpeg_bin is None:
        if soundfile_error is not None and path.suffix.lower() in SOUNDFILE_SUFFIXES:
            # a format libsndfile reads, but this file is damaged: ffmpeg would be a second opinion, not a fix
            raise DecodeError("undecodable", soundfile_error.detail)
        what = f"{path.suffix} files" if soundfile_error is None and path.suffix else "this file"
        detail = f"decoding {what} needs ffmpeg, which is not on PATH: {FFMPEG_INSTALL_HINT}"
        if soundfile_error is not None:
            detail += f" (libsndfile: {soundfile_error.detail})"
        raise DecodeError("ffmpeg_missing", detail)
    return _decode_ffmpeg(path, sr, ffmpeg_bin, duration_hint)


def _to_mono(block: np.ndarray) -> np.ndarray:
    """Equal-weight downmix of all channels (5.1 included; LFE is not treated specially)."""
    return block.mean(axis=1) if block.ndim == 2 and block.shape[1] > 1 else block.reshape(-1)


def _resample(x: np.ndarray, source_sr: int, sr: int) -> np.ndarray:
    if source_sr == sr or x.size == 0:
        return x.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(x.astype(np.float32, copy=False), source_sr, sr, quality="MQ").astype(np.float32)


def _decode_soundfile(path: Path, sr: int, duration_hint: float | None = None) -> DecodedAudio:
    import soundfile as sf

    try:
        handle = sf.SoundFile(str(path))
    except Exception as exc:  # libsndfile raises LibsndfileError/RuntimeError for anything it cannot parse
        raise DecodeError("unsupported_format", str(exc).strip() or type(exc).__name__) from exc
    with handle:
        source_sr, channels, frames = handle.samplerate, handle.channels, handle.frames
        if source_sr <= 0 or frames <= 0:
            raise DecodeError("no_audio", f"container reports {frames} frames at {source_sr} Hz")
        duration = frames / source_sr
        windows = choose_windows(duration)
        segments: list[np.ndarray] = []
        partial: str | None = None
        chunk = max(1, int(CHUNK_SECONDS * source_sr))
        position = 0
        for window in windows:
            wanted = int(round(window.length_s * source_sr))
            pieces: list[np.ndarray] = []
            got = 0
            try:
                start_frame = int(round(window.start_s * source_sr))
                _seek(handle, start_frame, chunk, position)
                position = start_frame
                while got < wanted:
                    block = handle.read(min(chunk, wanted - got), dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        break
                    pieces.append(_to_mono(block))
                    got += block.shape[0]
                    position += block.shape[0]
            except Exception as exc:
                partial = (f"decoding stopped at {(window.start_s + got / source_sr):.1f} s of "
                           f"{duration:.1f} s: {str(exc).strip() or type(exc).__name__}")
            if pieces:
                segments.append(_resample(np.concatenate(pieces), source_sr, sr))
            if partial is None and got < wanted * 0.98:
                partial = (f"audio ends at {(window.start_s + got / source_sr):.1f} s but the header says "
                           f"{duration:.1f} s (truncated file?)")
            if partial is not None:
                break
    if not segments or sum(s.size for s in segments) == 0:
        raise DecodeError("undecodable", partial or "no samples could be decoded")
    if partial is None and duration_hint and duration < 0.95 * duration_hint - 0.5:
        # libsndfile clamps a truncated WAV to the bytes present; the tag reader saw the header's length
        partial = (f"audio ends at {duration:.1f} s but the file's header said {duration_hint:.1f} s "
                   "(truncated file?)")
    return DecodedAudio(segments, sr, duration, source_sr, channels, windows, partial, "soundfile")


def _seek(handle, frame: int, chunk: int, position: int) -> None:
    """Seek, or for codecs libsndfile cannot seek in (DWVW, GSM: even tell() fails) read forward and discard
    up to `frame`; `position` is where we know the handle stands."""
    if position == frame:
        return
    try:
        handle.seek(frame)
        return
    except Exception:
        if position > frame:
            raise
    while position < frame:
        skipped = handle.read(min(chunk, frame - position), dtype="float32", always_2d=True).shape[0]
        if skipped == 0:
            raise EOFError(f"file ends before frame {frame}")
        position += skipped


def _probe_duration(path: Path) -> float | None:
    try:
        import mutagen

        info = mutagen.File(str(path))
        length = float(info.info.length) if info is not None and info.info else 0.0
        return length if length > 0 else None
    except Exception:
        return None


def _decode_ffmpeg(path: Path, sr: int, ffmpeg_bin: str, duration_hint: float | None) -> DecodedAudio:
    duration = duration_hint or _probe_duration(path)
    windows = choose_windows(duration) if duration else [Window(0.0, 0.0)]
    segments: list[np.ndarray] = []
    partial: str | None = None
    for window in windows:
        cmd = [ffmpeg_bin, "-nostdin", "-v", "error", "-ss", f"{window.start_s:.3f}"]
        if window.length_s > 0:
            cmd += ["-t", f"{window.length_s:.3f}"]
        cmd += ["-i", str(path), "-vn", "-ac", "1", "-ar", str(sr), "-f", "f32le", "-"]
        proc = subprocess.run(cmd, capture_output=True, timeout=120)
        samples = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
        if samples.size:
            segments.append(samples)
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            partial = f"ffmpeg exited {proc.returncode}: {message[-1] if message else ''}"
            break
    if not segments:
        raise DecodeError("undecodable", partial or "ffmpeg produced no samples")
    if duration is None:
        duration = sum(s.size for s in segments) / sr
        windows = [Window(0.0, duration)]
    return DecodedAudio(segments, sr, duration, None, None, windows, partial, "ffmpeg")
