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
