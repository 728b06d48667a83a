#!/usr/bin/env python3
"""Build the tempo/key development set: music21 corpus scores rendered with FluidSynth at chosen tempi,
meters and instruments, plus a truth TSV (path, bpm, key, meter, instrument, source).

usage: python scripts/build_dev_set.py [--out data/devset] [--count 200] [--seed 11] [--jobs 2]
                                     [--exclude-sources OTHER/truth.tsv] [--polyphonic]

`--exclude-sources` leaves out the scores of another set's truth file, so that a second seed gives a
validation set with no score in common with the first (choices made on one set are checked on the other).
`--polyphonic` builds a key check set instead: every allowed score with two or more parts (madrigals, masses,
piano and chamber music; any meter), each on piano, organ and strings, 40 s at 60-120 BPM.

Needs `pip install music21` (the `eval` extra) and the fluidsynth binary with a General MIDI soundfont
(Debian: fluidsynth fluid-soundfont-gm). Score sources are disjoint from the reserved check set: the
music21 corpus WITHOUT its Bach chorales, Haydn/Mozart/Beethoven string quartets and the Essen, O'Neill
and Ryan folk collections. Key truth = the score's key signature, kept only when music21's key analysis
agrees with it (major or minor reading of the signature) and the final bass note is that tonic.
Tempo truth = beats per minute of the meter's beat (dotted quarter in 6/8 and 9/8, half note in 2/2).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RENDER_SR = 22050

# (corpus path, max scores to take from it); opus files (abc books) hold many scores each
SOURCES = (
    [(f"airdsAirs/book{i}.abc", 400) for i in range(1, 7)]
    + [("miscFolk/americanfifeopus.abc", 100), ("miscFolk/northumbrianminstrelsyopus.abc", 100),
       ("nottingham-dataset/reelsa-c.abc", 10)]
)
SINGLE_PREFIXES = ("beach/", "chopin/", "corelli/", "cpebach/", "handel/", "joplin/", "leadSheet/",
                   "mozart/k545/", "schubert/", "schumann_clara/", "schumann_robert/", "verdi/", "weber/",
                   "bach/bwv846", "monteverdi/", "trecento/", "palestrina/", "josquin/", "luca/",
                   "ciconia/", "lusitano/", "johnson_j_r/", "liliuokalani/")
RESERVED = ("bach/bwv", "essenFolksong/", "oneills1850/", "ryansMammoth/", "haydn/", "beethoven/",
            "mozart/k80", "mozart/k155", "mozart/k156", "mozart/k458")
# single scores the independent held-out check renders: never in the dev, validation or polyphonic sets
RESERVED_SCORES = ("beach/prayer_of_a_tired_child", "chopin/mazurka06-2", "corelli/opus3no1/1grave", "cpebach/h186",
                   "johnson_j_r/lift_every_voice", "joplin/maple_leaf_rag", "liliuokalani/aloha_oe",
                   "schubert/Lindenbaum", "schumann_clara/opus17/movement3", "schumann_robert/dichterliebe_no2",
                   "schumann_robert/opus41no1/movement2", "schumann_robert/opus41no1/movement5",
                   "schumann_robert/opus48no2")


def is_reserved(path: str) -> bool:
    """A corpus path the held-out check uses (its collections, or one of its single scores)."""
    if path.rsplit(".", 1)[0] in RESERVED_SCORES:
        return True
    return any(path.startswith(r) for r in RESERVED) and not path.startswith("bach/bwv846")
MAX_PALESTRINA = 120
MAX_TRECENTO = 40

METERS = ("4/4", "3/4", "2/2", "6/8", "9/8", "2/4")
# beat BPM ranges per meter (log-uniform draw): what players take for these metres
TEMPO_RANGE = {"4/4": (60, 180), "3/4": (70, 190), "2/2": (55, 120), "6/8": (50, 125),
               "9/8": (50, 120), "2/4": (60, 150)}
QUOTA = {"4/4": 0.24, "3/4": 0.2, "2/2": 0.16, "6/8": 0.2, "9/8": 0.12, "2/4": 0.08}
MINOR_SHARE = 0.4
SETUPS = ("piano", "organ", "strings", "guitar", "band")
PROGRAMS = {"piano": [0], "organ": [19], "strings": [40, 41, 42, 48], "guitar": [24, 25],
            "band": [0, 25, 4, 56]}  # band: melody/harmony instruments besides bass + drums
BASS_PROGRAM = 33


def score_list() -> list[tuple[str, int | None]]:
    """(corpus path, opus index or None) for every allowed score."""
    from music21 import corpus

    items: list[tuple[str, int | None]] = []
    for path, _ in SOURCES:
        items.append((path, -1))  # expanded later: an opus
    palestrina = trecento = 0
    for p in sorted(str(x).split("/corpus/")[-1] for x in corpus.getPaths()):
        if is_reserved(p):
            continue
        if not any(p.startswith(s) for s in SINGLE_PREFIXES):
            continue
        if p.startswith("palestrina/"):
            palestrina += 1
            if palestrina % 11 or palestrina > 11 * MAX_PALESTRINA:
                continue
        if p.startswith("trecento/"):
            trecento += 1
            if trecento % 2 or trecento > 2 * MAX_TRECENTO:
                continue
        items.append((p, None))
    return items


def describe(score, source: str, *, any_meter: bool = False) -> dict | None:
    """Meter, key truth and note events of one score, or None when it fails the truth checks (any_meter: a key
    check set, with no tempo truth, takes meters outside METERS)."""
    from music21 import harmony, key, meter

    flat = score.flatten()
    signatures = {ts.ratioString for ts in flat.getElementsByClass(meter.TimeSignature)}
    if len(signatures) != 1:
        return None
    ts = flat.getElementsByClass(meter.TimeSignature)[0]
    if ts.ratioString not in METERS and not any_meter:
        return None
    keysigs = list(flat.getElementsByClass(key.KeySignature))
    if not keysigs or len({k.sharps for k in keysigs}) != 1:
        return None
    try:
        analysed = score.analyze("key")
    except Exception:  # noqa: BLE001 - an unanalysable score is simply not used
        return None
    if analysed.mode not in ("major", "minor") or analysed.sharps != keysigs[0].sharps:
        return None
    parts = list(score.parts) if score.parts else [score]
    events = []  # (part index, onset ql, duration ql, midi pitch)
    chords = []  # (onset ql, root pitch class)
    for index, part in enumerate(parts):
        stripped = part.stripTies().flatten()
        for n in stripped.notes:
            if isinstance(n, harmony.ChordSymbol):
                if index == 0 and n.root() is not None:
                    chords.append((float(n.offset), n.root().pitchClass))
                continue
            if n.duration.quarterLength <= 0:
                continue
            for p in n.pitches:
                events.append((index, float(n.offset), float(n.duration.quarterLength), int(p.midi)))
    if len(events) < 16:
        return None
    end = max(o + d for _, o, d, _ in events)
    last_onset = max(o for _, o, _, _ in events)
    final_bass = min(m for _, o, d, m in events if o + d >= end - 1e-6 or o == last_onset)
    if final_bass % 12 != analysed.tonic.pitchClass:
        return None
    tonic = analysed.tonic.name.replace("-", "b")
    return {"source": source, "meter": ts.ratioString, "beat_ql": float(ts.beatDuration.quarterLength),
            "bar_ql": float(ts.barDuration.quarterLength), "key": f"{tonic} {analysed.mode}",
            "parts": len(parts), "length_ql": end, "events": events, "chords": chords,
            "anacrusis_ql": _anacrusis(score)}


def _anacrusis(score) -> float:
    """Offset of the first full bar (pick-up length), so the drums' downbeats land on bar lines."""
    part = score.parts[0] if score.parts else score
    measures = list(part.getElementsByClass("Measure"))
    if measures and measures[0].duration.quarterLength < measures[0].barDuration.quarterLength - 1e-6:
        return float(measures[0].duration.quarterLength)
    return 0.0


def polyphonic_score_list() -> list[str]:
    """Single-score corpus entries that may hold part-writing (every 7th Palestrina movement)."""
    from music21 import corpus

    skipped = ("essenFolksong", "oneills", "ryans", "nottingham", "airds", "miscFolk", "schoenberg", "demos",
               "theoryExercises", "leadSheet")
    items, palestrina = [], 0
    for p in sorted(str(x).split("/corpus/")[-1] for x in corpus.getPaths()):
        if is_reserved(p):
            continue
        if p.endswith(".abc") or p.startswith(skipped):
            continue
        if p.startswith("palestrina/"):
            palestrina += 1
            if palestrina % 7:
                continue
        items.append(p)
    return items


def survey_polyphonic(path: str) -> dict | None:
    """A score with two or more parts that passes the key-truth checks, in any meter (the first one's bars)."""
    from music21 import corpus, meter

    try:
        score = corpus.parse(path)
        if hasattr(score, "scores") or len(score.parts) < 2:
            return None
        signatures = list(score.recurse().getElementsByClass(meter.TimeSignature))
        if not signatures:
            return None
        for later in signatures[1:]:
            if later.ratioString != signatures[0].ratioString:
                later.activeSite.remove(later)
        return describe(score, path, any_meter=True)
    except Exception:  # noqa: BLE001 - an unusable score is simply not used
        return None


def survey_one(item: tuple[str, int | None]) -> list[dict]:
    """All usable scores of one corpus entry (an opus yields many)."""
    from music21 import corpus

    path, opus = item
    try:
        parsed = corpus.parse(path)
    except Exception:  # noqa: BLE001
        return []
    scores = list(parsed.scores) if opus == -1 and hasattr(parsed, "scores") else [parsed]
    out = []
    for i, sc in enumerate(scores[:400]):
        try:
            d = describe(sc, f"{path}#{i}" if opus == -1 else path)
        except Exception:  # noqa: BLE001
            d = None
        if d:
            out.append(d)
    return out


# ---------------------------------------------------------------- MIDI writing and rendering

def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, tracks: list[list[tuple[float, bytes]]]) -> None:
    """Type-1 SMF at 120 qpm, 480 ticks per quarter: each track is (seconds, raw event bytes)."""
    ticks_per_s = 960
    chunks = [b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks) + 1, 480)]
    tempo = b"\x00\xff\x51\x03" + (500000).to_bytes(3, "big") + b"\x00\xff\x2f\x00"
    chunks.append(b"MTrk" + struct.pack(">I", len(tempo)) + tempo)
    for events in tracks:
        data = bytearray()
        now = 0
        for t, raw in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80)):
            tick = max(now, int(round(t * ticks_per_s)))
            data += _varlen(tick - now) + raw
            now = tick
        data += b"\x00\xff\x2f\x00"
        chunks.append(b"MTrk" + struct.pack(">I", len(data)) + bytes(data))
    path.write_bytes(b"".join(chunks))


def _note(track, channel, start, end, pitch, velocity):
    pitch = max(0, min(127, pitch))
    track.append((start, bytes([0x90 | channel, pitch, max(1, min(127, velocity))])))
    track.append((max(start + 0.02, end), bytes([0x80 | channel, pitch, 0])))


DRUMS = {  # per meter: (position in beats within the bar, drum note, velocity)
    "4/4": [(0, 36, 110), (2, 36, 95), (1, 38, 100), (3, 38, 100)] + [(i / 2, 42, 70) for i in range(8)],
    "2/4": [(0, 36, 110), (1, 38, 100)] + [(i / 2, 42, 70) for i in range(4)],
    "2/2": [(0, 36, 110), (1, 38, 105)] + [(i / 2, 42, 70) for i in range(4)],
    "3/4": [(0, 36, 110), (1, 38, 80), (2, 38, 80)] + [(i, 42, 70) for i in range(3)],
    "6/8": [(0, 36, 110), (1, 38, 100)] + [(i / 3, 42, 65) for i in range(6)],
    "9/8": [(0, 36, 110), (1, 38, 90), (2, 38, 90)] + [(i / 3, 42, 65) for i in range(9)],
}


def arrange(d: dict, setup: str, bpm: float, seconds: float, rng: random.Random) -> list[list]:
    """MIDI tracks for one excerpt: the score (looped to `seconds`) on the set-up's instruments."""
    sec_per_ql = 60.0 / (bpm * d["beat_ql"])
    length_ql = math.ceil((d["length_ql"] - d["anacrusis_ql"]) / d["bar_ql"]) * d["bar_ql"] + d["anacrusis_ql"]
    loops = max(1, math.ceil(seconds / (length_ql * sec_per_ql)))
    programs = PROGRAMS[setup]
    n_parts = d["parts"]
    tracks: list[list] = []
    lowest_part = n_parts - 1
    for part in range(n_parts):
        if setup == "strings":
            program = programs[3] if n_parts == 1 else programs[min(2, part * 3 // max(1, n_parts))]
        elif setup == "band":
            program = programs[part % 2] if n_parts > 1 else rng.choice(programs)
        else:
            program = programs[part % len(programs)]
        channel = part % 9
        track = [(0.0, bytes([0xC0 | channel, program]))]
        shift = 0
        if setup == "band" and part == lowest_part and n_parts > 1:
            track = [(0.0, bytes([0xC0 | channel, BASS_PROGRAM]))]
            lows = [m for p, _, _, m in d["events"] if p == part]
            shift = -12 * max(0, round((min(lows) - 28) / 12)) if lows else 0
        for loop in range(loops):
            base = loop * length_ql
            for p, onset, dur, midi in d["events"]:
                if p != part:
                    continue
                start = (base + onset) * sec_per_ql + rng.gauss(0, 0.006)
                if start >= seconds:
                    continue
                _note(track, channel, max(0.0, start), min(seconds, (base + onset + dur) * sec_per_ql * 0.97),
                      midi + shift, int(rng.gauss(80, 10)))
        tracks.append(track)
    if setup == "band":
        if n_parts == 1:  # a melody: bass plays the chord roots, or the melody note at each beat, two octaves down
            bass = [(0.0, bytes([0xC0 | 8, BASS_PROGRAM]))]
            roots = d["chords"]
            for loop in range(loops):
                base = loop * length_ql
                beat = d["anacrusis_ql"]
                while beat < length_ql:
                    pc = None
                    if roots:
                        earlier = [r for o, r in roots if o <= beat + 1e-6]
                        pc = earlier[-1] if earlier else None
                    if pc is None:
                        sounding = [m for _, o, du, m in d["events"] if o <= beat + 1e-6 < o + du]
                        pc = sounding[0] % 12 if sounding else None
                    t = (base + beat) * sec_per_ql
                    if pc is not None and t < seconds:
                        _note(bass, 8, t, min(seconds, t + d["beat_ql"] * sec_per_ql * 0.9), 36 + pc,
                              int(rng.gauss(90, 6)))
                    beat += d["beat_ql"]
            tracks.append(bass)
        drums: list = []
        bar_s = d["bar_ql"] * sec_per_ql
        beat_s = d["beat_ql"] * sec_per_ql
        t0 = d["anacrusis_ql"] * sec_per_ql
        pattern = DRUMS[d["meter"]]
        bar = 0
        while t0 + bar * bar_s < seconds:
            for pos, drum, vel in pattern:
                t = t0 + bar * bar_s + pos * beat_s + rng.gauss(0, 0.004)
                if 0 <= t < seconds:
                    _note(drums, 9, t, t + 0.08, drum, int(vel + rng.gauss(0, 6)))
            bar += 1
        tracks.append(drums)
    return tracks


def render(job: dict) -> dict:
    """Write the MIDI, render it with FluidSynth, trim to the excerpt length and save mono FLAC."""
    import numpy as np
    import soundfile as sf

    rng = random.Random(job["seed"])
    tracks = arrange(job["desc"], job["setup"], job["bpm"], job["seconds"], rng)
    out = Path(job["path"])
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        write_midi(mid, tracks)
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(RENDER_SR), "-F", str(wav),
                        SOUNDFONT, str(mid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    y = y.mean(axis=1)[: int(job["seconds"] * sr)]
    peak = float(np.abs(y).max()) or 1.0
    sf.write(str(out), (y * (0.7 / peak)).astype(np.float32), sr, subtype="PCM_16")
    return {k: job[k] for k in ("path", "bpm", "key", "meter", "setup", "source", "seconds")}


def choose(pool_items: list[dict], count: int, rng: random.Random) -> list[dict]:
    """Meter quotas, and within each meter up to MINOR_SHARE minor keys (folk corpora are mostly major)."""
    by_meter: dict[str, dict[str, list[dict]]] = {m: {"major": [], "minor": []} for m in METERS}
    for d in pool_items:
        by_meter[d["meter"]][d["key"].split()[1]].append(d)
    chosen: list[dict] = []
    rest: list[dict] = []
    for m in METERS:
        for items in by_meter[m].values():
            rng.shuffle(items)
        quota = int(round(QUOTA[m] * count))
        minors = by_meter[m]["minor"][: int(round(MINOR_SHARE * quota))]
        majors = by_meter[m]["major"][: quota - len(minors)]
        chosen += minors + majors
        rest += [d for d in by_meter[m]["minor"] + by_meter[m]["major"] if d not in minors and d not in majors]
    rng.shuffle(rest)
    rest.sort(key=lambda d: d["key"].endswith("major"))  # fill with minor keys first
    return chosen + rest[: max(0, count - len(chosen))]


def polyphonic_jobs(pool_items: list[dict], args: argparse.Namespace, rng: random.Random) -> list[dict]:
    """Every surveyed score on piano, organ and strings: 40 s at 60-120 BPM of its notated beat."""
    jobs = []
    for d in pool_items:
        for setup in ("piano", "organ", "strings"):
            bpm = round(math.exp(rng.uniform(math.log(60), math.log(120))), 1)
            i = len(jobs)
            jobs.append({"desc": d, "setup": setup, "bpm": bpm, "seconds": 40.0, "key": d["key"], "meter": d["meter"],
                         "source": d["source"], "seed": args.seed * 100003 + i,
                         "path": str(args.out / f"{i:03d}_{setup}_{round(bpm)}.flac")})
    return jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/devset"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--exclude-sources", type=Path, action="append", default=[],
                        help="a truth.tsv whose scores (source column) this set must not use")
    parser.add_argument("--polyphonic", action="store_true",
                        help="a key check set of part-writing (any meter) instead of the tempo/key dev set")
    args = parser.parse_args()
    try:
        import music21  # noqa: F401
    except ImportError:
        print("build_dev_set: needs music21: pip install 'soniquebay-assets[eval]' (or pip install music21)",
              file=sys.stderr)
        return 2
    if not Path(SOUNDFONT).exists():
        print(f"build_dev_set: soundfont {SOUNDFONT} missing (apt-get install fluid-soundfont-gm)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    survey_file = args.out / "survey.json"
    if survey_file.exists():
        pool_items = json.loads(survey_file.read_text())
    elif args.polyphonic:
        with ProcessPoolExecutor(args.jobs) as pool:
            pool_items = [d for d in pool.map(survey_polyphonic, polyphonic_score_list(), chunksize=2) if d]
        survey_file.write_text(json.dumps(pool_items))
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            pool_items = [d for batch in pool.map(survey_one, score_list()) for d in batch]
        survey_file.write_text(json.dumps(pool_items))
    print(f"build_dev_set: {len(pool_items)} scores pass the key-truth checks", file=sys.stderr)
    excluded = set()
    for other in args.exclude_sources:
        lines = other.read_text(encoding="utf-8").splitlines()
        column = lines[0].split("\t").index("source")
        excluded |= {line.split("\t")[column] for line in lines[1:] if line.strip()}
    if excluded:
        pool_items = [d for d in pool_items if d["source"] not in excluded]
        print(f"build_dev_set: {len(pool_items)} left after excluding {len(excluded)} sources", file=sys.stderr)
    rng = random.Random(args.seed)
    jobs = polyphonic_jobs(pool_items, args, rng) if args.polyphonic else []
    chosen = [] if args.polyphonic else choose(pool_items, args.count, rng)
    for i, d in enumerate(chosen):
        lo, hi = TEMPO_RANGE[d["meter"]]
        bpm = round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 1)
        setup = SETUPS[i % len(SETUPS)]
        name = f"{i:03d}_{setup}_{d['meter'].replace('/', '-')}_{round(bpm)}.flac"
        jobs.append({"desc": d, "setup": setup, "bpm": bpm, "seconds": round(rng.uniform(30, 60), 1),
                     "key": d["key"], "meter": d["meter"], "source": d["source"], "seed": args.seed * 100003 + i,
                     "path": str(args.out / name)})
    rows = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(render, jobs):
            rows.append(row)
    with (args.out / "truth.tsv").open("w", encoding="utf-8") as f:
        f.write("path\tbpm\tkey\tmeter\tinstrument\tseconds\tsource\n")
        for r in rows:
            f.write(f"{Path(r['path']).name}\t{r['bpm']}\t{r['key']}\t{r['meter']}\t{r['setup']}\t{r['seconds']}"
                    f"\t{r['source']}\n")
    print(f"build_dev_set: {len(rows)} excerpts, truth in {args.out / 'truth.tsv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
