"""One walk over the library roots: every audio candidate with size and mtime, and every path refused."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from soniquebay_assets.domain.file_hints import advise_scattered_reads
from soniquebay_assets.domain.layout import album_folder_key, shard_for

AUDIO_EXTENSIONS = frozenset(
    ".mp3 .mp2 .flac .ogg .oga .opus .spx .m4a .m4b .mp4 .aac .alac .wav .wave .aif .aiff .aifc .wma .asf "
    ".ape .wv .mpc .mp+ .dsf .dff .tak .tta .ofr .ofs .webm .mka .caf .ac3 .eac3".split()
)


@dataclass(frozen=True)
class FoundFile:
    """An audio candidate seen by the walk."""

    path: str  # absolute, as the OS gave it (may hold surrogate escapes for non-UTF-8 bytes)
    root: str
    album_folder: str
    shard: str
    size: int
    mtime_ns: int

    @property
    def display_path(self) -> str:
        return display_path(self.path)

    @property
    def raw_path(self) -> bytes | None:
        return os.fsencode(self.path) if self.display_path != self.path else None


@dataclass(frozen=True)
class WalkProblem:
    """A path the walk refused or could not read, with a short reason."""

    path: str
    reason: str
    detail: str = ""
    severity: str = "error"


@dataclass
class WalkResult:
    roots: list[str]
    files: list[FoundFile] = field(default_factory=list)
    problems: list[WalkProblem] = field(default_factory=list)
    unavailable_roots: list[str] = field(default_factory=list)  # missing/unreadable: never delete their tracks


def display_path(path: str) -> str:
    """A valid UTF-8 text form of a path; undecodable bytes become \\xNN escapes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_within(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def walk_library(roots: list[str | Path]) -> WalkResult:
    """Walk every root once (os.scandir, iterative); symlinks are followed only inside the roots."""
    real_roots = [os.path.realpath(str(r)) for r in roots]
    result = WalkResult(roots=real_roots)
    for root in real_roots:
        if not os.path.isdir(root):
            result.unavailable_roots.append(root)
            result.problems.append(
                WalkProblem(root, "library root unavailable", "the folder does not exist or is not mounted; "
                            "its tracks are kept until it is back")
            )
            continue
        if not os.access(root, os.R_OK | os.X_OK):
            result.unavailable_roots.append(root)
            result.problems.append(WalkProblem(root, "permission denied", "give the scanner read access to the root"))
            continue
        _walk_root(root, real_roots, result)
    return result


def _walk_root(root: str, roots: list[str], result: WalkResult) -> None:
    visited_dirs = {os.path.realpath(root)}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                entries = list(entries)
        except PermissionError:
            result.problems.append(WalkProblem(folder, "permission denied", "the folder cannot be listed"))
            continue
        except OSError as exc:
            result.problems.append(WalkProblem(folder, "folder unreadable", exc.strerror or str(exc)))
            continue
        rel_dir = os.path.relpath(folder, root)
        album_folder = album_folder_key("" if rel_dir == "." else rel_dir)
        shard = shard_for(root + "/" + album_folder)
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue  # hidden files, AppleDouble "._x", .Trash
            try:
                if entry.is_symlink():
                    _follow_symlink(entry, root, roots, album_folder, shard, stack, visited_dirs, result)
                elif entry.is_dir(follow_symlinks=False):
                    visited_dirs.add(os.path.realpath(entry.path))
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False) and _is_audio_name(name):
                    st = entry.stat(follow_symlinks=False)
                    result.files.append(FoundFile(entry.path, root, album_folder, shard, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                continue  # vanished during the walk: it simply is not there
            except OSError as exc:
                result.problems.append(WalkProblem(entry.path, "unreadable entry", exc.strerror or str(exc)))


def _follow_symlink(entry, root, roots, album_folder, shard, stack, visited_dirs, result) -> None:
    path = entry.path
    try:
        target_stat = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            result.problems.append(WalkProblem(path, "symlink loop", "the link points back to itself"))
        elif exc.errno == errno.ENOENT:
            if _is_audio_name(entry.name) or not os.path.splitext(entry.name)[1]:
                result.problems.append(WalkProblem(path, "broken symlink", f"target missing: {os.readlink(path)}"))
        else:
            result.problems.append(WalkProblem(path, "unreadable symlink", exc.strerror or str(exc)))
        return
    target = os.path.realpath(path)
    if not is_within(target, roots):
        result.problems.append(
            WalkProblem(path, "symlink outside library roots", f"points to {display_path(target)}; refused")
        )
        return
    if stat.S_ISDIR(target_stat.st_mode):
        if target in visited_dirs:
            result.problems.append(WalkProblem(path, "symlink loop", f"folder {display_path(target)} already walked"))
            return
        visited_dirs.add(target)
        stack.append(path)
    elif stat.S_ISREG(target_stat.st_mode) and _is_audio_name(entry.name):
        result.files.append(FoundFile(path, root, album_folder, shard, target_stat.st_size, target_stat.st_mtime_ns))


def _is_audio_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in AUDIO_EXTENSIONS


FINGERPRINT_CHUNK = 16384


def fingerprint_regions(size: int) -> list[tuple[int, int]]:
    """(offset, length) of the head, middle and tail a file's content fingerprint reads."""
    chunk = FINGERPRINT_CHUNK
    return [(offset, chunk) for offset in sorted({0, max(0, size // 2 - chunk // 2), max(0, size - chunk)})]


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


def content_fingerprint(path: str, size: int) -> str:
    """Cheap identity of a file's content: its size plus hashes of its head, middle and tail."""
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as handle:
        advise_scattered_reads(handle.fileno())
        for offset, length in fingerprint_regions(size):
            handle.seek(offset)
            h.update(handle.read(length))
    return h.hexdigest()
