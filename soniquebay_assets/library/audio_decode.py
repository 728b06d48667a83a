"""Decode an audio file once, from start to end, at its own sample rate: every block goes through the loudness
meter (the whole track, every channel), and the excerpt windows that tempo, key and moods analyse are cut from
the same blocks, downmixed to mono and resampled to the analysis rate.

soundfile (libsndfile) reads WAV, FLAC, Ogg Vorbis, MP3 and AIFF. Opus goes through an `ffmpeg` subprocess when
ffmpeg is on PATH (its decoder is 2-3x faster than libsndfile's on Opus, measured: docs/enrichment.md), else
through libsndfile; containers libsndfile cannot read (M4A/AAC, WMA, WebM, ...) need ffmpeg, and without it a
DecodeError with reason "ffmpeg_missing" says what to install. ffmpeg hands over a WAV stream, whose header
names the channel layout.

Partial decodes are kept, not thrown away: when a file stops decoding part-way (truncated FLAC/WAV, a corrupt
frame), what was read before the failure is measured and analysed, with `partial_reason` set, and the caller
records the analysis as status 'partial'.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soniquebay_assets.domain.analysis.excerpts import Window, choose_windows
from soniquebay_assets.domain.analysis.loudness import (
    Loudness,
    LoudnessMeter,
    default_layout,
    layout_from_mask,
)

ANALYSIS_SR = 22050
BLOCK_FRAMES = 1 << 18  # about 6 s at 44.1 kHz per read: few Python calls, a block stays in cache
FFMPEG_ONLY_SUFFIXES = {".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".asf", ".webm", ".mka", ".ac3", ".eac3"}
SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".caf", ".w64", ".rf64"}
# libsndfile reads these, but ffmpeg decodes them faster (measured per format, docs/enrichment.md)
FFMPEG_FASTER_SUFFIXES = {".opus"}
VORBIS_ORDER_SUFFIXES = {".ogg", ".oga", ".opus"}  # Vorbis / Opus mapping family 1 channel order
FFMPEG_INSTALL_HINT = "install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg)"
# ffmpeg decodes at hundreds of times real time; a process slower than this is stuck
FFMPEG_TIMEOUT_S = 120.0
FFMPEG_SECONDS_PER_AUDIO_SECOND = 0.2
# A file whose length nobody knows before decoding: its excerpts are chosen within its first 10 minutes.
UNKNOWN_LENGTH_WINDOW_S = 600.0


class DecodeError(Exception):
    """Nothing usable could be decoded; `reason` is short and stable (used for counts), `detail` explains."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedAudio:
    """Mono excerpts at `sr`, the whole file's loudness, and what the container said about the file."""

    segments: list[np.ndarray]
    sr: int
    duration_s: float | None
    source_sr: int | None
    channels: int | None
    windows: list[Window] = field(default_factory=list)
    partial_reason: str | None = None
    decoder: str = "soundfile"
    loudness: Loudness | None = None
    layout: tuple[str, ...] = ()


def decode_track(path: str | Path, *, sr: int = ANALYSIS_SR, duration_hint: float | None = None,
                 ffmpeg: str | None = None, measure_loudness: bool = True) -> DecodedAudio:
    """Decode `path` once: its loudness (unless measure_loudness is False) and its excerpt windows at `sr`;
    raises DecodeError when nothing at all can be decoded."""
    path = Path(path)
    if not path.is_file():
        raise DecodeError("missing_file", f"{path} does not exist")
    suffix = path.suffix.lower()
    ffmpeg_bin = ffmpeg or shutil.which("ffmpeg")
    soundfile_error: DecodeError | None = None
    if suffix not in FFMPEG_ONLY_SUFFIXES and not (suffix in FFMPEG_FASTER_SUFFIXES and ffmpeg_bin):
        try:
            return _decode_soundfile(path, sr, duration_hint, measure_loudness)
        except DecodeError as exc:
            if exc.reason != "unsupported_format":
                raise
            soundfile_error = exc
    if ffmpeg_bin is None:
        if soundfile_error is not None and suffix in SOUNDFILE_SUFFIXES:
            # a format libsndfile reads, but this file is damaged: ffmpeg would be a second opinion, not a fix
            raise DecodeError("undecodable", soundfile_error.detail)
        what = f"{path.suffix} files" if soundfile_error is None and path.suffix else "this file"
        detail = f"decoding {what} needs ffmpeg, which is not on PATH: {FFMPEG_INSTALL_HINT}"
        if soundfile_error is not None:
            detail += f" (libsndfile: {soundfile_error.detail})"
        raise DecodeError("ffmpeg_missing", detail)
    return _decode_ffmpeg(path, sr, ffmpeg_bin, duration_hint, measure_loudness)


def _to_mono(block: np.ndarray) -> np.ndarray:
    """Equal-weight downmix of all channels (the excerpts' input; loudness weighs channels itself)."""
    if block.shape[1] == 1:
        return block[:, 0].copy()
    mono = block[:, 0] + block[:, 1]
    for channel in range(2, block.shape[1]):
        mono += block[:, channel]
    mono /= block.shape[1]
    return mono


def _resample(x: np.ndarray, source_sr: int, sr: int) -> np.ndarray:
    if source_sr == sr or x.size == 0:
        return x.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(x.astype(np.float32, copy=False), source_sr, sr, quality="MQ").astype(np.float32)


class _Stream:
    """What every decoded block goes through: the loudness meter and the excerpt windows."""

    def __init__(self, source_sr: int, channels: int, layout: tuple[str, ...], windows: list[Window],
                 measure_loudness: bool):
        self.source_sr, self.channels, self.layout = source_sr, channels, layout
        self.meter = LoudnessMeter(source_sr, channels, layout) if measure_loudness else None
        self.windows = windows
        self.spans = [(int(round(w.start_s * source_sr)), int(round(w.start_s * source_sr))
                       + int(round(w.length_s * source_sr))) for w in windows]
        self.pieces: list[list[np.ndarray]] = [[] for _ in windows]
        self.frames = 0

    def add(self, block: np.ndarray) -> None:
        start, end = self.frames, self.frames + block.shape[0]
        if self.meter is not None:
            self.meter.add(block)
        for pieces, (first, last) in zip(self.pieces, self.spans, strict=True):
            lo, hi = max(first, start), min(last, end)
            if lo < hi:
                pieces.append(_to_mono(block[lo - start : hi - start]))
        self.frames = end

    def cut_windows(self, windows: list[Window]) -> None:
        """Re-cut the excerpts from the one window collected from the start (when the length came late)."""
        collected = np.concatenate(self.pieces[0]) if self.pieces and self.pieces[0] else np.zeros(0, np.float32)
        self.windows = windows
        self.pieces = []
        for window in windows:
            first = int(round(window.start_s * self.source_sr))
            self.pieces.append([collected[first : first + int(round(window.length_s * self.source_sr))]])

    def segments(self, sr: int) -> list[np.ndarray]:
        return [_resample(np.concatenate(p), self.source_sr, sr) for p in self.pieces if p and sum(map(len, p))]

    def result(self, sr: int, *, duration: float, partial: str | None, decoder: str) -> DecodedAudio:
        segments = self.segments(sr)
        if not segments or sum(s.size for s in segments) == 0:
            raise DecodeError("undecodable", partial or "no samples could be decoded")
        loudness = self.meter.result() if self.meter is not None else None
        return DecodedAudio(segments, sr, duration, self.source_sr, self.channels, self.windows, partial,
                            decoder, loudness, self.layout)


def _decode_soundfile(path: Path, sr: int, duration_hint: float | None, measure_loudness: bool) -> DecodedAudio:
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
        stream = _Stream(source_sr, channels, _soundfile_layout(path, channels), choose_windows(duration),
                         measure_loudness)
        # float PCM may hold NaN or infinities (a damaged file); one would poison the K filter's state
        stored_as_float = handle.subtype in ("FLOAT", "DOUBLE")
        partial: str | None = None
        try:
            while True:
                block = handle.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                if stored_as_float:
                    block = np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
                stream.add(block)
        except Exception as exc:
            partial = (f"decoding stopped at {stream.frames / source_sr:.1f} s of {duration:.1f} s: "
                       f"{str(exc).strip() or type(exc).__name__}")
    if partial is None and stream.frames < frames * 0.98:
        partial = (f"audio ends at {stream.frames / source_sr:.1f} s but the header says {duration:.1f} s "
                   "(truncated file?)")
    if partial is None and duration_hint and duration < 0.95 * duration_hint - 0.5:
        # libsndfile clamps a truncated WAV to the bytes present; the tag reader saw the header's length
        partial = (f"audio ends at {duration:.1f} s but the file's header said {duration_hint:.1f} s "
                   "(truncated file?)")
    return stream.result(sr, duration=duration, partial=partial, decoder="soundfile")


def _soundfile_layout(path: Path, channels: int) -> tuple[str, ...]:
    """Channel order as libsndfile hands it: the container's own (Vorbis order in Ogg, the WAV mask when a WAV
    file has one, the WAV default otherwise)."""
    if channels <= 2:
        return default_layout(channels)
    suffix = path.suffix.lower()
    if suffix in VORBIS_ORDER_SUFFIXES:
        return default_layout(channels, vorbis_order=True)
    if suffix in (".wav", ".wave"):
        try:
            with open(path, "rb") as handle:
                mask = _wav_channel_mask(handle.read(1 << 16))
        except OSError:
            mask = None
        if mask:
            return layout_from_mask(mask, channels) or default_layout(channels)
    return default_layout(channels)


def _wav_channel_mask(header: bytes) -> int | None:
    """dwChannelMask of a RIFF/WAVE header using WAVE_FORMAT_EXTENSIBLE, else None."""
    fmt = _wav_fmt(header)
    if fmt is None or len(fmt) < 24 or struct.unpack_from("<H", fmt)[0] != 0xFFFE:
        return None
    return struct.unpack_from("<I", fmt, 20)[0]


def _wav_fmt(header: bytes) -> bytes | None:
    if header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(header):
        chunk, size = header[offset : offset + 4], struct.unpack_from("<I", header, offset + 4)[0]
        if chunk == b"fmt ":
            return header[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)
    return None


def _probe_duration(path: Path) -> float | None:
    try:
        import mutagen

        info = mutagen.File(str(path))
        length = float(info.info.length) if info is not None and info.info else 0.0
        return length if length > 0 else None
    except Exception:
        return None


class _WavPipe:
    """Reads the WAV stream ffmpeg writes to a pipe (sizes unknown): the fmt chunk, then float32 frames."""

    def __init__(self, pipe):
        self.pipe = pipe
        riff = self._exactly(12)
        if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RF64") or riff[8:12] != b"WAVE":
            raise ValueError("no WAV stream")
        self.fmt = b""
        while True:
            head = self._exactly(8)
            if len(head) < 8:
                raise ValueError("WAV stream without data")
            chunk, size = head[:4], struct.unpack_from("<I", head, 4)[0]
            if chunk == b"data":
                break
            body = self._exactly(size + (size & 1))
            if chunk == b"fmt ":
                self.fmt = body[:size]
        if len(self.fmt) < 16:
            raise ValueError("WAV stream without a fmt chunk")
        tag, self.channels, self.sample_rate = struct.unpack_from("<HHI", self.fmt)
        bits = struct.unpack_from("<H", self.fmt, 14)[0]
        if bits != 32 or tag not in (3, 0xFFFE):
            raise ValueError(f"expected 32-bit float samples, got format {tag:#x} with {bits} bits")
        self.layout = default_layout(self.channels)
        if tag == 0xFFFE and len(self.fmt) >= 24:
            self.layout = layout_from_mask(struct.unpack_from("<I", self.fmt, 20)[0], self.channels) or self.layout
        self._frame_bytes = 4 * self.channels
        self._carry = b""

    def _exactly(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            piece = self.pipe.read(n - got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def blocks(self, frames: int):
        while True:
            data = self._carry + self._exactly(frames * self._frame_bytes)
            whole = len(data) // self._frame_bytes * self._frame_bytes
            self._carry = data[whole:]
            if whole:
                yield np.frombuffer(data[:whole], dtype="<f4").reshape(-1, self.channels)
            if len(data) < frames * self._frame_bytes:
                return


def _decode_ffmpeg(path: Path, sr: int, ffmpeg_bin: str, duration_hint: float | None,
                   measure_loudness: bool) -> DecodedAudio:
    duration = duration_hint or _probe_duration(path)
    cmd = [ffmpeg_bin, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn", "-map_metadata", "-1",
           "-fflags", "+bitexact", "-c:a", "pcm_f32le", "-f", "wav", "-"]
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty ffmpeg cannot block on stderr
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
        watchdog = threading.Timer(FFMPEG_TIMEOUT_S + FFMPEG_SECONDS_PER_AUDIO_SECOND * (duration or 0), proc.kill)
        watchdog.start()
        stream: _Stream | None = None
        failure: str | None = None
        try:
            reader = _WavPipe(proc.stdout)
            # without a duration the excerpts come from the first minutes (the file is read whole all the same)
            windows = choose_windows(duration) if duration else [Window(0.0, UNKNOWN_LENGTH_WINDOW_S)]
            stream = _Stream(reader.sample_rate, reader.channels, reader.layout, windows, measure_loudness)
            for block in reader.blocks(BLOCK_FRAMES):
                stream.add(block)
        except ValueError as exc:
            failure = str(exc)
        finally:
            proc.stdout.close()
            returncode = proc.wait()
            watchdog.cancel()
        errors.seek(0)
        message = errors.read().decode("utf-8", "replace").strip().splitlines()
    partial: str | None = None
    if returncode != 0:
        partial = f"ffmpeg exited {returncode}: {message[-1] if message else failure or ''}".strip()
    if stream is None or stream.frames == 0:
        raise DecodeError("undecodable", partial or failure or "ffmpeg produced no samples")
    decoded_s = stream.frames / stream.source_sr
    if duration is None:
        duration = decoded_s
        stream.cut_windows(choose_windows(min(decoded_s, UNKNOWN_LENGTH_WINDOW_S)))
    elif partial is None and decoded_s < 0.95 * duration - 0.5:
        partial = f"audio ends at {decoded_s:.1f} s but the file's header said {duration:.1f} s (truncated file?)"
    return stream.result(sr, duration=duration, partial=partial, decoder="ffmpeg")
