"""Write a few tags into one audio file safely: a copy beside it is edited, read back and checked, then renamed
over the original (mode and owner kept), so an interrupted write never leaves a half-written file.

`read_native(path, fmt)` gives a file's tags as native key -> text values (what domain.tag_writing plans
with) plus each value's exact form (what the journal keeps to undo); `write_file` applies a list of `KeyEdit`s.
Every failure is a `WriteError` with a short stable reason and a detail saying what to do.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from soniquebay_assets.library.process_guard import pid_alive
from soniquebay_assets.library.tag_blocks import (
    KeyEdit,
    NativeValue,
    TagBlock,
    WriteError,
    open_tag_block,
    stream_facts,
)
from soniquebay_assets.library.walker import content_fingerprint

TEMP_MARK = ".sbwrite-"  # temporary copies are ".<name>.sbwrite-<pid>-<random>.tmp" beside the file


@dataclass(frozen=True)
class FileState:
    """Size and modification time of a file when its tags were read: a write refuses a file changed since."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class WrittenFile:
    size: int
    mtime_ns: int
    fingerprint: str
    written: dict[str, NativeValue]  # the keys as they now are in the file (absent keys left out)


def read_native(path: str, fmt: str) -> tuple[dict[str, NativeValue], FileState]:
    """A file's tags (native key -> value) and its size and mtime as they were read."""
    before = _stat(path)
    block = open_tag_block(path, fmt)
    try:
        native = block.native()
    except Exception as exc:  # a value mutagen parsed but cannot show: that file's error only
        raise WriteError("tag not readable", f"{type(exc).__name__}: {str(exc)[:120]}; re-tag the file with "
                                             "another tagger, then write again") from exc
    return native, FileState(before.st_size, before.st_mtime_ns)


def _stat(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise WriteError("file vanished", "the file was moved or deleted; rescan, then write again") from None
    except OSError as exc:
        raise WriteError("write error", f"{exc.strerror or exc}; check the disk or share") from None
    if not stat.S_ISREG(st.st_mode):
        raise WriteError("not a regular file", "only regular files are written")
    return st


def check_writable(path: str, *, break_hard_links: bool = False) -> os.stat_result:
    """The file's stat when it can be replaced by a rewritten copy; a WriteError saying why not otherwise."""
    st = _stat(path)
    if st.st_nlink > 1 and not break_hard_links:
        raise WriteError("file has hard links", f"{st.st_nlink - 1} other name(s) share this file (a download "
                                                "client's copy?): writing gives the library its own copy, which "
                                                "doubles its disk space; pass --break-hard-links to write it anyway")
    folder = os.path.dirname(path) or "."
    try:
        read_only_mount = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only_mount = False
    if read_only_mount:
        raise WriteError("read-only file system", "the music folder is mounted read-only; mount it read-write "
                                                  "on the host that writes tags")
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        raise WriteError("file is read-only", "the file is marked read-only; `chmod u+w` it to let SoniqueBay "
                                              "write its tags, or leave it out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise WriteError("folder not writable", f"a copy is written beside the file first: give this user "
                                                f"write access to {folder}")
    return st


def _open_temp(path: str) -> tuple[str, int]:
    """A new hidden file beside `path` for its copy: (its path, a descriptor open for writing)."""
    folder, name = os.path.split(path)
    temp = os.path.join(folder, f".{name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        return temp, os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise _os_error(exc, folder or ".") from None


def remove_stale_copies(path: str) -> int:
    """Delete temporary copies of this file left by a writer that died (its process is gone); returns how many."""
    folder, name = os.path.split(path)
    prefix = f".{name}{TEMP_MARK}"
    removed = 0
    try:
        entries = os.listdir(folder or ".")
    except OSError:
        return 0
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid_text = entry[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and (int(pid_text) == os.getpid() or pid_alive(int(pid_text))):
            continue
        try:
            os.unlink(os.path.join(folder, entry))
            removed += 1
        except OSError:
            pass
    return removed


def _os_error(exc: OSError, folder: str) -> WriteError:
    if exc.errno == errno.EROFS:
        return WriteError("read-only file system", "the music folder is mounted read-only; mount it read-write "
                                                   "on the host that writes tags")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return WriteError("folder not writable", f"a copy is written beside the file first: give this user "
                                                 f"write access to {folder}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return WriteError("disk full", "no room for the copy written beside the file; free some space")
    return WriteError("write error", f"{exc.strerror or exc}; check the disk or share")


def _copy(source: str, target_fd: int, size: int) -> None:
    with open(source, "rb") as handle:
        offset = 0
        try:
            while offset < size:
                sent = os.sendfile(target_fd, handle.fileno(), offset, min(size - offset, 1 << 30))
                if sent == 0:
                    break
                offset += sent
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) or offset:
                raise
            handle.seek(0)
            while chunk := handle.read(1 << 20):
                os.write(target_fd, chunk)
            offset = size
        if offset != size:
            raise WriteError("file changed since read", "the file shrank while it was copied; write again")


def _expected_texts(kind: str, version: int, edit: KeyEdit) -> tuple[str, ...] | None:
    if edit.raw is not None:
        return None  # an exact old form: compared as a whole below
    texts = edit.texts
    if texts is not None and kind == "id3" and version == 3 and len(texts) > 1:
        return ("/".join(texts),)
    if texts is not None and edit.key == "tmpo":
        return tuple(str(int(round(float(t)))) for t in texts)
    return texts


def _verify(before: TagBlock, after: TagBlock, edits: Sequence[KeyEdit], stream_before: tuple, stream_after: tuple) -> None:
    """The copy holds exactly the edits: the edited keys carry their new values, everything else is unchanged."""
    if stream_before != stream_after:
        raise WriteError("verification failed", f"the audio stream reads differently after the write "
                                                f"({stream_before} -> {stream_after}); the file was left as it was")
    touched = {e.key for e in edits}
    now = after.native()
    version = getattr(before, "version", 4)
    for edit in edits:
        got = now.get(edit.key)
        if edit.raw is not None:
            if got is None or got.raw != edit.raw:
                raise WriteError("verification failed", f"{edit.key} did not read back as restored")
            continue
        want = _expected_texts(before.kind, version, edit)
        if want is None:
            if got is not None:
                raise WriteError("verification failed", f"{edit.key} is still in the file")
        elif got is None or got.texts != want:
            raise WriteError("verification failed", f"{edit.key} read back as "
                                                    f"{None if got is None else list(got.texts)}, not {list(want)}")
    old_dump, new_dump = before.dump_without(touched), after.dump_without(touched)
    if old_dump != new_dump:
        raise WriteError("verification failed", f"{_differences(old_dump, new_dump)} would change too (mutagen "
                                                "cannot write it back as it is); the file was left as it was")


def _differences(old: Any, new: Any, where: str = "") -> str:
    """The first few places two dumps differ, for the error detail."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = [_differences(old.get(k), new.get(k), k) for k in sorted(set(old) | set(new), key=str)
                 if old.get(k) != new.get(k)]
        return ", ".join(found[:3]) + (" ..." if len(found) > 3 else "")
    return where or "the tag block"


def write_file(path: str, fmt: str, edits: Sequence[KeyEdit], expected: FileState, *,
               break_hard_links: bool = False) -> WrittenFile:
    """Apply `edits` to a copy of `path`, verify the copy, then rename it over `path`. Raises WriteError; on any
    failure the original file is untouched and the copy removed."""
    st = check_writable(path, break_hard_links=break_hard_links)
    if (st.st_size, st.st_mtime_ns) != (expected.size, expected.mtime_ns):
        raise WriteError("file changed since read", "the file changed after its tags were read; write again")
    remove_stale_copies(path)
    folder = os.path.dirname(path) or "."
    temp, fd = _open_temp(path)
    try:
        after = _write_copy(path, temp, fd, fmt, edits, st)
        now = os.stat(path)
        if (now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            raise WriteError("file changed since read", "the file changed while it was being written; write again")
        os.replace(temp, path)
    except BaseException as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(exc, WriteError) or not isinstance(exc, Exception):
            raise
        # one file's surprise (a disk error, a mutagen bug) is that file's error, never the run's end
        if isinstance(exc, OSError):
            raise _os_error(exc, folder) from exc
        raise WriteError("tag not writable", f"{type(exc).__name__}: {str(exc)[:120]}") from exc
    _fsync_folder(folder)
    final = os.stat(path)
    written = {e.key: v for e in edits if (v := after.native().get(e.key)) is not None}
    return WrittenFile(final.st_size, final.st_mtime_ns, content_fingerprint(path, final.st_size), written)


def _write_copy(path: str, temp: str, fd: int, fmt: str, edits: Sequence[KeyEdit], st: os.stat_result) -> TagBlock:
    """Copy `path` into the open `temp`, edit and save the copy, flush it, check it: the copy's tag block."""
    try:
        _copy(path, fd, st.st_size)
        os.fsync(fd)
    finally:
        os.close(fd)
    before = open_tag_block(path, fmt)
    stream_before = stream_facts(path, fmt)
    editing = open_tag_block(temp, fmt)
    editing.apply(edits)
    editing.save(temp)
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    after = open_tag_block(temp, fmt)
    _verify(before, after, edits, stream_before, stream_facts(temp, fmt))
    _keep_mode_and_owner(temp, st, path)
    return after


def _keep_mode_and_owner(temp: str, st: os.stat_result, original: str) -> None:
    """The copy takes the file's mode, owner and extended attributes (ACLs, labels, user.* notes)."""
    _copy_extended_attributes(original, temp)
    os.chmod(temp, stat.S_IMODE(st.st_mode))
    mine = os.stat(temp)
    if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
        try:
            os.chown(temp, st.st_uid, st.st_gid)
        except PermissionError:
            raise WriteError("cannot keep owner", f"the file belongs to uid {st.st_uid} gid {st.st_gid}; write "
                                                  "tags as that user (or root) so it keeps its owner") from None


def _copy_extended_attributes(source: str, target: str) -> None:
    if not hasattr(os, "listxattr"):
        return
    try:
        names = os.listxattr(source)
    except OSError:
        return  # a file system without them
    for name in names:
        try:
            os.setxattr(target, name, os.getxattr(source, name))
        except OSError as exc:
            if not name.startswith(("security.", "trusted.")) and exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise WriteError("cannot keep attributes", f"extended attribute {name}: {exc.strerror or exc}; "
                                                           "write tags as the file's owner or root") from None


def _publish_new(temp: str, path: str) -> None:
    """Give the finished copy its name without ever replacing a file someone made meanwhile: a hard link
    fails if the name exists; file systems without hard links (FAT, some shares) get a checked rename."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(temp, path)
        return
    os.unlink(temp)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_new_file(path: str, data: bytes, *, like: str | None = None) -> os.stat_result:
    """Create `path` (it must not exist) with `data`, atomically, with the mode and owner of the folder's files
    (`like`, e.g. a track beside it) minus execute bits. Raises WriteError."""
    folder = os.path.dirname(path) or "."
    if os.path.lexists(path):
        raise WriteError("file exists", f"{os.path.basename(path)} is already there; it is left as it is")
    temp, fd = _open_temp(path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if like is not None:
            template = os.stat(like)
            os.chmod(temp, stat.S_IMODE(template.st_mode) & 0o666)
            try:
                if (template.st_uid, template.st_gid) != (os.getuid(), os.getgid()):
                    os.chown(temp, template.st_uid, template.st_gid)
            except PermissionError:
                pass  # a new file may belong to the writer; the track files keep theirs
        else:
            os.chmod(temp, 0o644)
        _publish_new(temp, path)
    except FileExistsError:
        os.unlink(temp)
        raise WriteError("file exists", f"{os.path.basename(path)} appeared meanwhile; it is left as it is") from None
    except BaseException as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _os_error(exc, folder) from None
        raise
    _fsync_folder(folder)
    return os.stat(path)
