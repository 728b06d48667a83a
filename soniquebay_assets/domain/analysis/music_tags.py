"""Learned tags of a track: both MusiCNN taggers run on a few 3-second patches of the decoded excerpts.

MSD_musicnn costs about 1.2 G multiply-adds per patch (MTT_musicnn as much), so a track gets PATCHES_PER_TRACK
patches, one at the centre of each excerpt window (start, middle, end of the song) rather than all of them;
docs/enrichment.md gives how far this sample's top tags are from the whole track's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from soniquebay_assets.domain.analysis import musicnn

PATCHES_PER_TRACK = 3
# resampled around each patch so that the resampler's edges stay out of it
_MARGIN_S = 0.25
_PATCH_S = musicnn.PATCH_SAMPLES / musicnn.SR
MIN_SECONDS = _PATCH_S  # shorter audio gets no tags (the models see 3-second patches)
# Genres among the tags (canonical spelling is domain.genres' job); a track gains those at or above GENRE_MIN.
MSD_GENRES = ("rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal",
              "chillout", "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock",
              "ambient", "experimental", "Hip-Hop", "country", "funk", "electro", "heavy metal", "Progressive rock",
              "rnb", "indie pop", "House")
MTT_GENRES = ("classical", "techno", "electronic", "rock", "ambient", "indian", "opera", "pop", "new age", "dance",
              "country", "metal")
GENRE_MIN = 0.3
MAX_GENRES = 2


@dataclass(frozen=True)
class MusicTags:
    """Each model's tag probabilities (averaged over the patches) and the two penultimate layers, averaged."""

    msd: dict[str, float]
    mtt: dict[str, float]
    embedding: np.ndarray  # float32, 200 MSD then 200 MTT values
    patches: int

    def as_json(self) -> str:
        return json.dumps({"msd": {k: round(v, 4) for k, v in self.msd.items()},
                           "mtt": {k: round(v, 4) for k, v in self.mtt.items()}}, separators=(",", ":"))

    def embedding_bytes(self) -> bytes:
        return np.asarray(self.embedding, dtype="<f4").tobytes()


def patch_starts(lengths_s: list[float], count: int = PATCHES_PER_TRACK) -> list[tuple[int, float]]:
    """(segment index, start second) of up to `count` patches: centred in each excerpt in turn, spread evenly
    inside the excerpts when there are fewer excerpts than patches (a short file is one excerpt)."""
    usable = [i for i, length in enumerate(lengths_s) if length >= MIN_SECONDS]
    if not usable:
        return []
    per_segment = {i: count // len(usable) + (1 if rank < count % len(usable) else 0)
                   for rank, i in enumerate(usable)}
    starts = []
    for i in usable:
        n = min(per_segment[i], int(lengths_s[i] // _PATCH_S))
        for k in range(n):  # n equal slots, a patch centred in each
            centre = lengths_s[i] * (k + 0.5) / n
            starts.append((i, min(max(0.0, centre - _PATCH_S / 2), lengths_s[i] - _PATCH_S)))
    return starts


def patch_batch(segments: list[np.ndarray], sr: int, count: int = PATCHES_PER_TRACK) -> np.ndarray:
    """(n, 187, 96) log-mel patches, musicnn's front end on 16 kHz audio resampled from mono `segments` at `sr`."""
    import soxr

    out = []
    for index, start_s in patch_starts([s.size / sr for s in segments], count):
        segment = segments[index]
        first = max(0, int(round((start_s - _MARGIN_S) * sr)))
        piece = segment[first:int(round((start_s + _PATCH_S + _MARGIN_S) * sr))]
        audio = soxr.resample(np.asarray(piece, dtype=np.float32), sr, musicnn.SR, quality="HQ")
        offset = int(round((start_s - first / sr) * musicnn.SR / musicnn.FFT_HOP))  # frames before the patch
        mel = musicnn.log_mel(audio)[offset:offset + musicnn.PATCH_FRAMES]
        if mel.shape[0] == musicnn.PATCH_FRAMES:
            out.append(mel)
    if not out:
        return np.zeros((0, musicnn.PATCH_FRAMES, musicnn.N_MELS), dtype=np.float32)
    return np.stack(out).astype(np.float32)


def tag_batch(batch: np.ndarray, chunk: int = 8) -> MusicTags | None:
    """Both models on the patches, `chunk` at a time (a patch's activations take ~12 MB); None when there is none."""
    if batch.shape[0] == 0:
        return None
    msd, mtt = (musicnn.run(model, batch, chunk) for model in musicnn.MODELS)
    embedding = np.concatenate([msd.penultimate.mean(axis=0), mtt.penultimate.mean(axis=0)]).astype(np.float32)
    return MusicTags(msd.mean(), mtt.mean(), embedding, int(batch.shape[0]))


def tag_segments(segments: list[np.ndarray], sr: int, count: int = PATCHES_PER_TRACK) -> MusicTags | None:
    """Learned tags of a track from its decoded mono excerpts; None when none is 3 s long."""
    return tag_batch(patch_batch(segments, sr, count))


def model_genres(tags: dict) -> list[str]:
    """The genre tags at or above GENRE_MIN (either model), most probable first, at most MAX_GENRES."""
    scored: dict[str, float] = {}
    for source, names in (("msd", MSD_GENRES), ("mtt", MTT_GENRES)):
        for name in names:
            p = tags.get(source, {}).get(name)
            if p is not None and p >= GENRE_MIN:
                scored[name.lower()] = max(scored.get(name.lower(), 0.0), p)
    return [name for name, _ in sorted(scored.items(), key=lambda kv: -kv[1])[:MAX_GENRES]]
