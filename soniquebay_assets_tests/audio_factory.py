"""Real audio files for tests: PCM made with numpy, written by soundfile, tagged by mutagen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SUBTYPE_BY_EXT = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS", ".aiff": "PCM_16", ".mp3": "MPEG_LAYER_III"}
FORMAT_BY_EXT = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".mp3": "MP3", ".opus": "OGG"}


def tone(seconds: float = 1.0, freq: float = 440.0, sr: int = 22050, channels: int = 1) -> np.ndarray:
    """A sine tone with a little noise, shape (frames, channels)."""
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def click_track(bpm: float, seconds: float, sr: int = 22050) -> np.ndarray:
    """A metronome: one decaying 1 kHz click (50 ms, half scale) per beat."""
    t = np.arange(int(0.05 * sr)) / sr
    click = 0.5 * np.sin(2 * np.pi * 1000.0 * t) * np.exp(-t / 0.01)
    out = np.zeros(int(seconds * sr))
    for when in np.arange(0, seconds, 60.0 / bpm):
        start = int(round(when * sr))
        end = min(out.size, start + click.size)
        out[start:end] += click[: end - start]
    return out.astype(np.float32)


def write_audio(path: Path, seconds: float = 1.0, sr: int = 22050, channels: int = 1, freq: float = 440.0) -> Path:
    """Write an untagged audio file whose container follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    subtype = "OPUS" if ext == ".opus" else SUBTYPE_BY_EXT[ext]
    if ext == ".opus":
        sr = 48000
    sf.write(str(path), tone(seconds, freq, sr, channels), sr, format=FORMAT_BY_EXT[ext], subtype=subtype)
    return path


def write_tagged(path: Path, seconds: float = 1.0, **tags: object) -> Path:
    """Write audio and tag it with mutagen; tag names are format-neutral (title, artist, album, albumartist,
    tracknumber, discnumber, date, genre, compilation, musicbrainz_albumid, ...). Lists give multiple values."""
    write_audio(path, seconds=seconds)
    if not tags:
        return path
    ext = path.suffix.lower()
    if ext in (".flac", ".ogg", ".opus"):
        import mutagen

        audio = mutagen.File(str(path))
        if audio.tags is None:
            audio.add_tags()
        for key, value in tags.items():
            audio.tags[_VORBIS.get(key, key.upper())] = [str(v) for v in _as_list(value)]
        audio.save()
    elif ext in (".mp3", ".wav", ".aiff"):
        _write_id3(path, tags)
    else:
        raise ValueError(f"no tag writer for {ext}")
    return path


_VORBIS = {"musicbrainz_recordingid": "MUSICBRAINZ_TRACKID", "compilation": "COMPILATION"}


def _as_list(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _write_id3(path: Path, tags: dict) -> None:
    from mutagen import id3

    frames = {
        "title": id3.TIT2, "artist": id3.TPE1, "album": id3.TALB, "albumartist": id3.TPE2,
        "tracknumber": id3.TRCK, "discnumber": id3.TPOS, "date": id3.TDRC, "genre": id3.TCON,
        "compilation": id3.TCMP, "bpm": id3.TBPM, "composer": id3.TCOM,
    }
    txxx = {
        "musicbrainz_albumid": "MusicBrainz Album Id",
        "musicbrainz_artistid": "MusicBrainz Artist Id",
        "musicbrainz_releasegroupid": "MusicBrainz Release Group Id",
    }
    ext = path.suffix.lower()
    if ext == ".mp3":
        try:
            tag = id3.ID3(str(path))
        except id3.ID3NoHeaderError:
            tag = id3.ID3()
    else:
        from mutagen import File

        audio = File(str(path))
        if audio.tags is None:
            audio.add_tags()
        tag = audio.tags
    for key, value in tags.items():
        values = [str(v) for v in _as_list(value)]
        if key in frames:
            tag.add(frames[key](encoding=3, text=values))
        elif key in txxx:
            tag.add(id3.TXXX(encoding=3, desc=txxx[key], text=values))
        elif key == "musicbrainz_recordingid":
            tag.add(id3.UFID(owner="http://musicbrainz.org", data=values[0].encode()))
        else:
            tag.add(id3.TXXX(encoding=3, desc=key, text=values))
    if ext == ".mp3":
        tag.save(str(path), v2_version=4)
    else:
        tag.save(str(path))
