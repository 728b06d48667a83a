"""Which parts of a long track get analysed: a bounded set of excerpt windows."""

from __future__ import annotations

from dataclasses import dataclass

# Three 20 s windows (at 20 %, 50 % and 80 % of the track) see intro-free material from the start,
# middle and end of a song while keeping decode + analysis cost independent of track length.
EXCERPT_SECONDS = 20.0
EXCERPT_POSITIONS = (0.2, 0.5, 0.8)
# Below this length the whole file is cheaper to read than to seek around in.
WHOLE_FILE_BELOW_S = EXCERPT_SECONDS * len(EXCERPT_POSITIONS) * 1.25


@dataclass(frozen=True)
class Window:
    """An excerpt: start and length in seconds of the source file."""

    start_s: float
    length_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s


def choose_windows(
    duration_s: float,
    *,
    excerpt_s: float = EXCERPT_SECONDS,
    positions: tuple[float, ...] = EXCERPT_POSITIONS,
) -> list[Window]:
    """Windows centred on `positions` of the track, non-overlapping; the whole file when it is short."""
    if duration_s <= 0:
        return []
    if duration_s <= excerpt_s * len(positions) * 1.25:
        return [Window(0.0, duration_s)]
    windows: list[Window] = []
    for position in positions:
        start = min(max(0.0, position * duration_s - excerpt_s / 2), duration_s - excerpt_s)
        if windows and start < windows[-1].end_s:
            start = windows[-1].end_s
        if start + excerpt_s > duration_s:
            break
        windows.append(Window(round(start, 3), excerpt_s))
    return windows
