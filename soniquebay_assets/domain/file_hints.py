"""The read pattern a tag reader announces to the kernel for the file it is handed."""

from __future__ import annotations

import os


def advise_scattered_reads(fd: int) -> None:
    """No readahead for this file: tag reading touches a few KB at the head, middle and tail of large files, and
    the device's readahead (up to several MB per access here) made a cold 20,000-file read 2.4x longer."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        except OSError:
            pass  # a filesystem that takes no advice reads the same, only slower


def announce_reads(files: list[tuple[str | bytes, list[tuple[int, int]]]]) -> None:
    """Ask the kernel to fetch these (path, [(offset, length), ...]) regions now, all at once: read one by one,
    a cold library waits on the disk once per region; announced, the device serves them in parallel."""
    if not hasattr(os, "posix_fadvise"):
        return
    for path, regions in files:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue  # the reader will say why
        try:
            for offset, length in regions:
                os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)
