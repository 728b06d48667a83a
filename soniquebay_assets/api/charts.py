"""Small inline SVG pictures of the library for the page: a tempo histogram, a Camelot key wheel, mood bars.
Plain markup (no script, no style attributes), so the page's content security policy stays strict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

# Camelot number -> (major key, minor key): the wheel's outer and inner rings.
CAMELOT_NAMES = {
    1: ("B", "Ab minor"), 2: ("F#", "Eb minor"), 3: ("Db", "Bb minor"), 4: ("Ab", "F minor"),
    5: ("Eb", "C minor"), 6: ("Bb", "G minor"), 7: ("F", "D minor"), 8: ("C", "A minor"),
    9: ("G", "E minor"), 10: ("D", "B minor"), 11: ("A", "F# minor"), 12: ("E", "C# minor"),
}


def _shade(share: float) -> str:
    """Teal from pale (rare) to deep (common)."""
    share = max(0.0, min(1.0, share))
    light = (232, 246, 244)
    deep = (13, 122, 112)
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(light, deep, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def tempo_histogram(bins: Mapping[str, int], width: int = 420, height: int = 150) -> Markup:
    """Bars per 10-BPM bin ('120-129': count) from 60 to 200 BPM (slower and faster folded into the ends)."""
    lows = list(range(60, 200, 10))
    counts = dict.fromkeys(lows, 0)
    for label, count in bins.items():
        try:
            low = int(str(label).split("-")[0])
        except ValueError:
            continue
        counts[min(max(low, lows[0]), lows[-1])] += int(count)
    top = max(counts.values()) or 1
    pad_left, pad_bottom, pad_top = 8, 22, 8
    plot_h = height - pad_bottom - pad_top
    step = (width - pad_left * 2) / len(lows)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="tracks per tempo, 60 to 200 BPM">']
    for i, low in enumerate(lows):
        bar_h = plot_h * counts[low] / top
        x = pad_left + i * step
        y = pad_top + plot_h - bar_h
        label = f"{low}-{low + 9} BPM" if 60 < low < 190 else (f"under {low + 10} BPM" if low == 60 else
                                                               f"{low} BPM and over")
        parts.append(f'<rect class="bar" x="{x + 1:.1f}" y="{y:.1f}" width="{step - 2:.1f}" height="{bar_h:.1f}" '
                     f'rx="2"><title>{escape(label)}: {counts[low]} tracks</title></rect>')
        if low % 20 == 0:
            parts.append(f'<text class="axis" x="{x + step / 2:.1f}" y="{height - 6}" '
                         f'text-anchor="middle">{low}</text>')
    parts.append(f'<line class="baseline" x1="{pad_left}" x2="{width - pad_left}" y1="{pad_top + plot_h}" '
                 f'y2="{pad_top + plot_h}"/></svg>')
    return Markup("".join(parts))


def _segment(cx: float, cy: float, r_in: float, r_out: float, start: float, end: float) -> str:
    def point(r: float, angle: float) -> str:
        return f"{cx + r * math.sin(angle):.2f},{cy - r * math.cos(angle):.2f}"

    return (f"M{point(r_out, start)} A{r_out},{r_out} 0 0 1 {point(r_out, end)} "
            f"L{point(r_in, end)} A{r_in},{r_in} 0 0 0 {point(r_in, start)} Z")


def key_wheel(keys: Sequence[tuple[str, str | None, int]], size: int = 240) -> Markup:
    """The Camelot wheel (majors outside, minors inside), each key shaded by how many tracks are in it."""
    counts: dict[str, int] = {}
    for _name, camelot, count in keys:
        if camelot:
            counts[camelot] = counts.get(camelot, 0) + int(count)
    top = max(counts.values(), default=0) or 1
    c = size / 2
    rings = {"B": (c * 0.62, c * 0.96), "A": (c * 0.28, c * 0.62)}
    parts = [f'<svg class="chart wheel" viewBox="0 0 {size} {size}" role="img" '
             f'aria-label="tracks per key on the Camelot wheel">']
    for number in range(1, 13):
        start = math.radians((number - 8) * 30 - 15)  # 8 (C major / A minor) at the top, as DJs draw it
        end = start + math.radians(30)
        for letter, (r_in, r_out) in rings.items():
            code = f"{number}{letter}"
            count = counts.get(code, 0)
            name = CAMELOT_NAMES[number][0 if letter == "B" else 1]
            name = f"{name} major" if letter == "B" else name
            parts.append(f'<path class="key" d="{_segment(c, c, r_in, r_out, start, end)}" '
                         f'fill="{_shade(count / top)}"><title>{escape(code)} {escape(name)}: {count} tracks'
                         f'</title></path>')
            mid = (start + end) / 2
            r_mid = (r_in + r_out) / 2
            dark = count / top > 0.55
            parts.append(f'<text class="keylabel{" on-dark" if dark else ""}" x="{c + r_mid * math.sin(mid):.1f}" '
                         f'y="{c - r_mid * math.cos(mid) + 4:.1f}" text-anchor="middle">{code}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


MOOD_ORDER = ("happy", "sad", "relaxed", "aggressive", "party", "energy", "danceability")


def mood_bars(means: Mapping[str, float], width: int = 300) -> Markup:
    """Mean analysed score per mood, 0..1, one bar each."""
    rows = [(name, float(means[name])) for name in MOOD_ORDER if name in means]
    if not rows:
        return Markup('<p class="muted">No mood analysis yet.</p>')
    bar_x, row_h = 96, 22
    height = row_h * len(rows) + 4
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="mean mood scores">']
    for i, (name, value) in enumerate(rows):
        y = 2 + i * row_h
        full = width - bar_x - 40
        parts.append(f'<text class="axis" x="{bar_x - 8}" y="{y + 15}" text-anchor="end">{escape(name)}</text>')
        parts.append(f'<rect class="track" x="{bar_x}" y="{y + 4}" width="{full}" height="12" rx="6"/>')
        parts.append(f'<rect class="bar" x="{bar_x}" y="{y + 4}" width="{full * max(0.0, min(value, 1.0)):.1f}" '
                     f'height="12" rx="6"><title>{escape(name)}: {value:.2f}</title></rect>')
        parts.append(f'<text class="axis" x="{width - 4}" y="{y + 15}" text-anchor="end">{value:.2f}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def mood_meter(value: float | None) -> Markup:
    """A tiny inline bar for one score in a table cell."""
    if value is None:
        return Markup("")
    share = max(0.0, min(float(value), 1.0))
    return Markup(f'<svg class="meter" viewBox="0 0 40 6" role="img" aria-label="{share:.2f}">'
                  f'<rect class="track" width="40" height="6" rx="3"/>'
                  f'<rect class="bar" width="{40 * share:.1f}" height="6" rx="3"/></svg>')
