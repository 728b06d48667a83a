"""Read hints never block, never fail a read, and never change what is read."""

from __future__ import annotations

import os

from soniquebay_assets.domain.file_hints import advise_scattered_reads
from soniquebay_assets.domain.tags import read_tags
from soniquebay_assets.library.walker import announce_reads


def test_announcing_odd_paths_neither_blocks_nor_raises(tmp_path, make_audio):
    song = make_audio(tmp_path / "song.flac", seconds=2.0, title="Hinted")
    fifo = tmp_path / "pipe.mp3"
    os.mkfifo(fifo)  # opening a FIFO for reading without O_NONBLOCK would wait for a writer forever
    (tmp_path / "folder.ogg").mkdir()
    regions = [(0, 65536), (1000, 16384)]
    announce_reads([(str(song), regions), (str(fifo), regions), (str(tmp_path / "folder.ogg"), regions),
                    (str(tmp_path / "gone.mp3"), regions), (os.fsencode(song), regions)])
    assert read_tags(song).title == "Hinted"


def test_a_file_read_without_readahead_reads_the_same(tmp_path, make_audio):
    song = make_audio(tmp_path / "song.ogg", seconds=2.0, title="Scattered")
    with open(song, "rb") as plain:
        expected = plain.read()
    with open(song, "rb") as hinted:
        advise_scattered_reads(hinted.fileno())
        assert hinted.read() == expected
