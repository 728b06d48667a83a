"""Tag write-back, the file side: field tables and value forms (pure), and the safe writer on a file of every
writable format of the corpus: only the named fields change (every other tag and picture, and the decoded audio,
identical), the journaled old values restore the file exactly."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import mutagen
import mutagen.apev2
import numpy as np
import pytest
import soundfile as sf

from soniquebay_assets.domain import tag_writing as tw
from soniquebay_assets.domain.tags import read_tags
from soniquebay_assets.library.tag_blocks import KeyEdit, WriteError, writable_kind
from soniquebay_assets.library.tag_writer import FileState, read_native, remove_stale_copies, write_file

RELEASE = "3f3f2e6a-1d1c-4e4b-9a55-2a5e7d3a9b10"
GROUP = "7d0e7e2d-52b4-4b6e-9f7e-0c4fd7ee3c8b"
RECORDING = "0a8e8d55-4b83-4f8a-9732-fbb5ded9f344"
ARTISTS = ("1b8e8d55-4b83-4f8a-9732-fbb5ded9f344", "2c8e8d55-4b83-4f8a-9732-fbb5ded9f344")
FACTS = tw.TrackFacts(
    1, replaygain_track_gain=-7.031, replaygain_track_peak=0.988553, replaygain_album_gain=-6.5,
    replaygain_album_peak=0.999, bpm=127.6, bpm_confidence=0.9, key="C#", mode="minor", key_confidence=0.9,
    musicbrainz_recording_id=RECORDING, musicbrainz_release_id=RELEASE, musicbrainz_release_group_id=GROUP,
    musicbrainz_artist_ids=ARTISTS, musicbrainz_album_artist_ids=ARTISTS[:1])
ALL = tw.WriteOptions(frozenset(tw.FIELD_GROUPS), overwrite=frozenset({"bpm", "initial_key"}))


# ---------------------------------------------------------------------------------------------- pure rules


def test_key_notations_and_value_forms():
    assert [tw.key_text(k, m) for k, m in [("A", "minor"), ("F#", "major"), ("Eb", "minor"), ("C#", "minor"),
                                            ("Ab", "major"), ("Bb", "minor")]] == ["Am", "F#", "Ebm", "C#m", "Ab", "Bbm"]
    assert tw.key_text("A", "minor", "camelot") == "8A" and tw.key_text("C", "major", "camelot") == "8B"
    assert tw.key_text("A", "minor", "openkey") == "1m" and tw.key_text("G", "major", "openkey") == "2d"
    assert tw.format_gain(-7.031) == "-7.03 dB" and tw.format_peak(0.9885531) == "0.988553"
    # Opus: Q7.8 dB relative to -23 LUFS, i.e. the ReplayGain gain (-18 LUFS) minus 5 dB
    assert tw.r128_gain(-7.03) == str(round(-12.03 * 256)) and tw.r128_gain(200.0) == "32767"
    assert tw.format_bpm(127.6) == "128"
    # a key tag in any notation is the same key
    assert tw.same_value("initial_key", ["8A"], ["Am"]) and tw.same_value("initial_key", ["A minor"], ["Am"])
    assert tw.same_value("initial_key", ["1m"], ["Am"]) and not tw.same_value("initial_key", ["C"], ["Am"])
    assert tw.same_value("replaygain_track_gain", ["-7.030000 dB"], ["-7.03 dB"])


def test_groups_and_credited_ids():
    assert tw.parse_groups("replaygain, BPM,key") == {"replaygain", "bpm", "key"}
    assert tw.parse_groups("all") == set(tw.GROUPS)
    with pytest.raises(ValueError, match="unknown write-back field"):
        tw.parse_groups("replaygain,loudness")
    assert tw.credited_ids([("A", ARTISTS[0]), ("B", None)]) is None  # ids only when every artist has one
    assert tw.credited_ids([("Various Artists", None)]) == ("89ad4ac3-39f7-470e-963a-56509c546377",)


def test_plan_replaces_replaygain_fills_bpm_key_and_ids():
    current = {"TXXX:replaygain_track_gain": ["-3.00 dB"], "TBPM": ["120"], "TKEY": ["Am"],
               "TXXX:MusicBrainz Album Id": ["9f3f2e6a-1d1c-4e4b-9a55-2a5e7d3a9b10"], "TIT2": ["Song"]}
    wanted, _ = tw.wanted_values(FACTS, tw.WriteOptions(frozenset(tw.FIELD_GROUPS)))
    plan = tw.plan_file("id3", current, wanted)
    by_key = {c.key: c for c in plan.changes}
    # ReplayGain is replaced; the lower-case variant goes so players never read the stale one
    assert by_key["TXXX:replaygain_track_gain"].after is None
    assert by_key["TXXX:REPLAYGAIN_TRACK_GAIN"].after == ("-7.03 dB",)
    # the file's own BPM, key and release id stay (another value, no --overwrite)
    assert {"TBPM", "TKEY", "TXXX:MusicBrainz Album Id", "TIT2"}.isdisjoint(by_key)
    assert set(plan.kept) == {"bpm", "initial_key", "musicbrainz_release_id"}
    assert by_key["UFID:http://musicbrainz.org"].after == (RECORDING,)
    assert by_key["TXXX:MusicBrainz Artist Id"].after == ARTISTS
    overwritten = tw.plan_file("id3", current, wanted, overwrite={"bpm", "initial_key"})
    assert {c.key: c.after for c in overwritten.changes}["TBPM"] == ("128",)
    # a file that already says it all gets no change
    done = {**{c.key: list(c.after) for c in overwritten.changes if c.after}, "TIT2": ["Song"],
            "TXXX:MusicBrainz Album Id": current["TXXX:MusicBrainz Album Id"]}
    assert tw.plan_file("id3", done, wanted, overwrite={"bpm", "initial_key"}).changes == []


def test_opus_gets_r128_gains_and_loses_replaygain_tags():
    current = {"REPLAYGAIN_TRACK_GAIN": ["-1.00 dB"], "replaygain_track_peak": ["0.5"], "TITLE": ["x"]}
    wanted, _ = tw.wanted_values(FACTS, tw.WriteOptions(frozenset({"replaygain"})))
    plan = tw.plan_file("opus", current, wanted)
    after = {c.key: c.after for c in plan.changes}
    assert after == {"R128_TRACK_GAIN": (tw.r128_gain(-7.031),), "R128_ALBUM_GAIN": (tw.r128_gain(-6.5),),
                     "REPLAYGAIN_TRACK_GAIN": None, "replaygain_track_peak": None}
    assert "Opus has no peak tag" in plan.kept["replaygain_track_peak"]


def test_low_confidence_and_stale_values_are_not_written():
    weak = tw.TrackFacts(1, bpm=90.0, bpm_confidence=0.05, key="C", mode="major", key_confidence=0.1)
    options = tw.WriteOptions(frozenset({"bpm", "key"}), min_bpm_confidence=0.2, min_key_confidence=0.25)
    wanted, missing = tw.wanted_values(weak, options)
    assert wanted == {} and missing == {"bpm": "low confidence", "initial_key": "low confidence"}


def test_cover_folders_skip_the_root_and_climb_out_of_disc_folders(tmp_path):
    root = str(tmp_path)
    album = os.path.join(root, "Artist", "Album")
    assert tw.cover_folders([os.path.join(album, "CD1", "01.flac"), os.path.join(album, "CD2", "01.flac")],
                            root) == [album]
    assert tw.cover_folders([os.path.join(root, "loose.mp3")], root) == []


# ---------------------------------------------------------------------------------------------- every format

# One file per writable format of the corpus (tagged ones where the corpus has them, pictures included).
CORPUS_FILES = [
    ("converted/LupusMechanicus - Legacy Soundtrack (2020)/01 - Uncertain Future.mp3", "mp3"),  # ID3v2.3
    ("edge/mutagen/id3v1v2-combined.mp3", "mp3"),  # ID3v2.4 and an ID3v1 trailer
    ("edge/beets/image.mp3", "mp3"),  # two APIC pictures
    ("edge/beets/image.flac", "flac"),  # pictures, no comment block yet
    ("converted/Jens Erler - Musix 4 XMoto (2008)/01 - Madeira Stew.flac", "flac"),
    ("edge/beets/image.ogg", "ogg_vorbis"),  # METADATA_BLOCK_PICTURE
    ("edge/beets/full.opus", "opus"),
    ("edge/beets/image.m4a", "mp4"),  # covr
    ("edge/beets/full.alac.m4a", "mp4"),
    ("edge/mutagen/silence-2s-PCM-44100-16-ID3v23.wav", "wav"),
    ("edge/picard/test.wav", "wav"),  # no ID3 chunk yet
    ("edge/beets/full.aiff", "aiff"),
    ("edge/beets/full.dsf", "dsf"),
    ("edge/picard/test.wma", "asf"),
    ("edge/beets/image.ape", "ape"),
    ("edge/beets/full.wv", "wavpack"),
    ("edge/beets/full.mpc", "musepack"),
    ("edge/picard/test.tak", "tak"),
    ("edge/picard/test.ofr", "optimfrog"),  # no decoder anywhere: tags only
    ("edge/picard/test.spx", "speex"),
    ("edge/picard/test-oggflac.oga", "ogg_flac"),
]
SOUNDFILE_FORMATS = {"mp3", "flac", "ogg_vorbis", "opus", "wav", "aiff"}

# The names players read, restated from Picard's and beets' tables (not taken from the code under test).
EXPECTED_KEYS = {
    "id3": {"TXXX:REPLAYGAIN_TRACK_GAIN", "TXXX:REPLAYGAIN_TRACK_PEAK", "TXXX:REPLAYGAIN_ALBUM_GAIN",
            "TXXX:REPLAYGAIN_ALBUM_PEAK", "TBPM", "TKEY", "UFID:http://musicbrainz.org", "TXXX:MusicBrainz Album Id",
            "TXXX:MusicBrainz Release Group Id", "TXXX:MusicBrainz Artist Id", "TXXX:MusicBrainz Album Artist Id"},
    "vorbis": {"replaygain_track_gain", "replaygain_track_peak", "replaygain_album_gain", "replaygain_album_peak",
               "bpm", "initialkey", "musicbrainz_trackid", "musicbrainz_albumid", "musicbrainz_releasegroupid",
               "musicbrainz_artistid", "musicbrainz_albumartistid"},
    "opus": {"r128_track_gain", "r128_album_gain", "bpm", "initialkey", "musicbrainz_trackid", "musicbrainz_albumid",
             "musicbrainz_releasegroupid", "musicbrainz_artistid", "musicbrainz_albumartistid"},
    "mp4": {"----:com.apple.iTunes:replaygain_track_gain", "----:com.apple.iTunes:replaygain_track_peak",
            "----:com.apple.iTunes:replaygain_album_gain", "----:com.apple.iTunes:replaygain_album_peak", "tmpo",
            "----:com.apple.iTunes:initialkey", "----:com.apple.iTunes:MusicBrainz Track Id",
            "----:com.apple.iTunes:MusicBrainz Album Id", "----:com.apple.iTunes:MusicBrainz Release Group Id",
            "----:com.apple.iTunes:MusicBrainz Artist Id", "----:com.apple.iTunes:MusicBrainz Album Artist Id"},
    "ape": {"replaygain_track_gain", "replaygain_track_peak", "replaygain_album_gain", "replaygain_album_peak",
            "bpm", "initialkey", "musicbrainz_trackid", "musicbrainz_albumid", "musicbrainz_releasegroupid",
            "musicbrainz_artistid", "musicbrainz_albumartistid"},
    "asf": {"REPLAYGAIN_TRACK_GAIN", "REPLAYGAIN_TRACK_PEAK", "REPLAYGAIN_ALBUM_GAIN", "REPLAYGAIN_ALBUM_PEAK",
            "WM/BeatsPerMinute", "WM/InitialKey", "MusicBrainz/Track Id", "MusicBrainz/Album Id",
            "MusicBrainz/Release Group Id", "MusicBrainz/Artist Id", "MusicBrainz/Album Artist Id"},
}


def dump_tags(path: Path) -> dict[str, list[str]]:
    """Every tag item and picture as mutagen's generic reader gives it: key -> digests of the values' reprs."""
    audio = mutagen.File(str(path))
    out: dict[str, list[str]] = {}
    tags = audio.tags
    if tags is not None:
        items = list(list.__iter__(tags)) if isinstance(tags, list) else list(tags.items())
        for key, value in items:
            out.setdefault(str(key), []).append(hashlib.sha1(repr(value).encode()).hexdigest())
    for index, picture in enumerate(getattr(audio, "pictures", []) or []):
        out[f"flac-picture-{index}"] = [hashlib.sha1(picture.write()).hexdigest()]
    if path.suffix == ".mp3":
        with open(path, "rb") as handle:
            handle.seek(-128, os.SEEK_END)
            trailer = handle.read()
        out["id3v1-trailer"] = [hashlib.sha1(trailer).hexdigest() if trailer[:3] == b"TAG" else "none"]
    return {k: sorted(v) for k, v in out.items()}


def audio_digest(path: Path, fmt: str) -> str | None:
    """A hash of the decoded samples: ffmpeg (every format here but OptimFROG), else soundfile where it decodes;
    None when nothing decodes the file."""
    if shutil.which("ffmpeg") is not None:
        result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s32le", "-"],
                                capture_output=True, check=False, timeout=60)
        return hashlib.sha256(result.stdout).hexdigest() if result.returncode == 0 and result.stdout else None
    if os.environ.get("CI") == "true":
        pytest.fail("ffmpeg is needed to decode the corpus formats (scripts/install.sh installs it)")
    if fmt not in SOUNDFILE_FORMATS:
        pytest.skip("ffmpeg not installed: cannot decode this format to compare its audio")
    try:
        data, rate = sf.read(str(path), dtype="int32", always_2d=True)
    except sf.LibsndfileError as exc:
        pytest.skip(f"ffmpeg not installed and soundfile cannot decode this file ({exc})")
    return hashlib.sha256(np.ascontiguousarray(data).tobytes() + str(rate).encode()).hexdigest()


def _write(path: Path, fmt: str, options: tw.WriteOptions = ALL):
    native, state = read_native(str(path), fmt)
    wanted, _ = tw.wanted_values(FACTS, options)
    plan = tw.plan_file(writable_kind(fmt), {k: v.texts for k, v in native.items()}, wanted, options.overwrite)
    return native, plan, write_file(str(path), fmt, [KeyEdit(c.key, c.after) for c in plan.changes], state)


@pytest.mark.corpus
@pytest.mark.slow  # every writable format of the corpus, each decoded before and after: ~1 s apiece
@pytest.mark.parametrize(("relative", "fmt"), CORPUS_FILES, ids=[Path(r).name for r, _ in CORPUS_FILES])
def test_only_the_named_fields_change_and_undo_restores(tmp_path, corpus_dir, relative, fmt):
    path = tmp_path / Path(relative).name
    shutil.copy(corpus_dir / relative, path)
    path.chmod(0o640)
    tags_before, audio_before = dump_tags(path), audio_digest(path, fmt)
    ids_before = read_tags(str(path))
    kind = writable_kind(fmt)

    native, plan, written = _write(path, fmt)

    tags_after = dump_tags(path)
    changed = {k for k in set(tags_before) | set(tags_after) if tags_before.get(k) != tags_after.get(k)}
    allowed = {k.lower() for k in EXPECTED_KEYS[kind]} | {k.lower() for k in tw.OPUS_OBSOLETE}
    assert changed and {k.lower() for k in changed} <= allowed, changed - allowed
    missing = {k for k in EXPECTED_KEYS[kind] if k.lower() not in {t.lower() for t in tags_after}}
    assert not missing, f"not written under the names players read: {missing}"
    assert audio_digest(path, fmt) == audio_before  # the audio is bit for bit the same
    assert (path.stat().st_mode & 0o777) == 0o640
    assert written.size == path.stat().st_size
    # the catalog's own reader sees the values (its tables are the ones every scan uses)
    record = read_tags(str(path))
    assert record.bpm == 128 and record.initial_key == "C#m"
    assert record.replaygain_track_gain == pytest.approx(-7.03, abs=0.01)
    # ids only fill gaps: a file's own id stays
    assert record.musicbrainz_recording_id == (ids_before.musicbrainz_recording_id or RECORDING)
    assert record.musicbrainz_release_id == (ids_before.musicbrainz_release_id or RELEASE)
    if kind != "opus":
        assert record.replaygain_track_peak == pytest.approx(0.988553, abs=1e-6)

    # undo from the journaled exact forms: the file reads as it did, tags and pictures and audio
    state = FileState(path.stat().st_size, path.stat().st_mtime_ns)
    undo = [KeyEdit(c.key, None, native[c.key].raw if c.key in native else None) for c in reversed(plan.changes)]
    write_file(str(path), fmt, undo, state)
    assert dump_tags(path) == tags_before
    assert audio_digest(path, fmt) == audio_before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no copy left behind


def test_writing_twice_changes_nothing_the_second_time(tmp_path, corpus_dir):
    path = tmp_path / "song.flac"
    shutil.copy(corpus_dir / "edge/beets/full.flac", path)
    path.chmod(0o644)
    _write(path, "flac")
    native, state = read_native(str(path), "flac")
    wanted, _ = tw.wanted_values(FACTS, ALL)
    assert tw.plan_file("vorbis", {k: v.texts for k, v in native.items()}, wanted, ALL.overwrite).changes == []


def test_read_only_file_and_id3v22_are_refused_and_left_intact(tmp_path, corpus_dir):
    locked = tmp_path / "locked.flac"
    shutil.copy(corpus_dir / "edge/beets/full.flac", locked)
    locked.chmod(0o444)
    digest = hashlib.sha256(locked.read_bytes()).hexdigest()
    with pytest.raises(WriteError) as refused:
        _write(locked, "flac")
    assert refused.value.reason == "file is read-only" and "chmod" in refused.value.detail
    old = tmp_path / "old.mp3"
    shutil.copy(corpus_dir / "edge/mutagen/id3v22-test.mp3", old)
    old.chmod(0o644)
    with pytest.raises(WriteError) as v22:
        _write(old, "mp3")
    assert v22.value.reason == "tag not writable" and "ID3v2.2" in v22.value.detail
    ape_only = tmp_path / "ape.mp3"
    shutil.copy(corpus_dir / "edge/mutagen/no-tags.mp3", ape_only)
    ape_only.chmod(0o644)
    ape = mutagen.apev2.APEv2()
    ape["Title"] = "kept in APEv2"
    ape.save(str(ape_only))
    with pytest.raises(WriteError, match="APEv2 only"):
        _write(ape_only, "mp3")  # a new ID3 tag would hide the title from every player that prefers ID3
    assert read_tags(str(ape_only)).title == "kept in APEv2"
    assert hashlib.sha256(locked.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ape.mp3", "locked.flac", "old.mp3"]


def test_hard_links_are_kept_unless_asked_and_attributes_follow_the_file(tmp_path, corpus_dir):
    path = tmp_path / "song.flac"
    shutil.copy(corpus_dir / "edge/beets/full.flac", path)
    path.chmod(0o644)
    seeding = tmp_path / "seeding.flac"
    os.link(path, seeding)  # a download client's name for the same data
    try:
        os.setxattr(path, "user.origin", b"bandcamp")
    except OSError:
        pass  # a file system without user attributes: the rest still holds
    with pytest.raises(WriteError) as linked:
        _write(path, "flac")
    assert linked.value.reason == "file has hard links" and "--break-hard-links" in linked.value.detail
    seeding_tags = dump_tags(seeding)
    native, state = read_native(str(path), "flac")
    key = next(k for k in native if k.upper() == "BPM")
    write_file(str(path), "flac", [KeyEdit(key, ("128",))], state, break_hard_links=True)
    assert mutagen.File(str(path))["BPM"] == ["128"] and dump_tags(seeding) == seeding_tags
    assert path.stat().st_nlink == 1 and seeding.stat().st_nlink == 1
    if hasattr(os, "getxattr") and "user.origin" in os.listxattr(seeding):
        assert os.getxattr(path, "user.origin") == b"bandcamp"


def test_a_file_changed_since_it_was_read_is_not_overwritten(tmp_path, corpus_dir):
    path = tmp_path / "song.flac"
    shutil.copy(corpus_dir / "edge/beets/full.flac", path)
    path.chmod(0o644)
    native, state = read_native(str(path), "flac")
    os.utime(path, ns=(state.mtime_ns + 10**9, state.mtime_ns + 10**9))  # someone else saved it meanwhile
    with pytest.raises(WriteError, match="changed"):
        write_file(str(path), "flac", [KeyEdit("BPM", ("128",))], state)


def test_stale_copies_of_dead_writers_are_removed(tmp_path):
    track = tmp_path / "a.flac"
    track.write_bytes(b"x")
    dead = tmp_path / ".a.flac.sbwrite-999999999-abcd.tmp"  # no such process
    alive = tmp_path / f".a.flac.sbwrite-{os.getpid()}-abcd.tmp"
    dead.write_bytes(b"partial")
    alive.write_bytes(b"in use")
    assert remove_stale_copies(str(track)) == 1
    assert not dead.exists() and alive.exists()
