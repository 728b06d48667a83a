"""Extended M3U (UTF-8) text for a playlist: `#EXTM3U`, `#PLAYLIST:`, `#EXTINF:<s>,<artist> - <title>`, then
the file's location: relative to the playlist when both sit under the same library root, else absolute (with an
optional FROM=TO prefix rewrite for a server that mounts the music elsewhere). Pure string work."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

_LINE_BREAKS = re.compile(r"[\r\n\u0085\u2028\u2029]+")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


class PathPrefixError(ValueError):
    """A --path-prefix that is not FROM=TO with two absolute paths."""


@dataclass(frozen=True)
class PathPrefix:
    source: str
    target: str

    @classmethod
    def parse(cls, text: str | None) -> PathPrefix | None:
        if not text:
            return None
        source, sep, target = text.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise PathPrefixError(f"path prefix {text!r}: write FROM=TO, e.g. /srv/music=/music")
        source, target = source.strip(), target.strip()
        if not source.startswith("/") or not target.startswith("/"):
            raise PathPrefixError(f"path prefix {text!r}: both sides must be absolute paths")
        return cls(source.rstrip("/") or "/", target.rstrip("/") or "/")

    def apply(self, path: str) -> str:
        if path == self.source:
            return self.target
        head = self.source if self.source.endswith("/") else self.source + "/"
        if path.startswith(head):
            return (self.target if self.target.endswith("/") else self.target + "/") + path[len(head):]
        return path


def _under(path: str, folder: str) -> bool:
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder.endswith("/") else folder + "/")


def location(path: str, playlist_file: str | None, roots: Sequence[str], prefix: PathPrefix | None) -> str:
    """Where the playlist points for `path`: relative when the playlist and the file share a library root."""
    if playlist_file is not None:
        folder = os.path.dirname(playlist_file)
        for root in roots:
            if _under(folder, root) and _under(path, root):
                return os.path.relpath(path, folder)
    return prefix.apply(path) if prefix else path


def one_line(text: str) -> str:
    return _LINE_BREAKS.sub(" ", text or "").strip()


def render(title: str, entries: Sequence, *, playlist_file: str | None, roots: Sequence[str],
           prefix: PathPrefix | None = None) -> str:
    """The playlist file's text; `entries` carry path, artist, title and duration (seconds or None)."""
    lines = ["#EXTM3U", f"#PLAYLIST:{one_line(title)}"]
    for entry in entries:
        seconds = -1 if entry.duration is None else int(round(entry.duration))
        lines.append(f"#EXTINF:{seconds},{one_line(entry.artist)} - {one_line(entry.title)}")
        lines.append(location(entry.path, playlist_file, roots, prefix))
    return "\n".join(lines) + "\n"


def file_name(title: str) -> str:
    """A file name for a playlist title: no separators or control characters, no leading dot, bounded."""
    name = _UNSAFE_NAME.sub("_", one_line(title)).strip(" .") or "playlist"
    return name[:150] + ".m3u8"
