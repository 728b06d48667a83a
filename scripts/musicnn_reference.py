#!/usr/bin/env python3
"""Reference taggrams of the ORIGINAL musicnn models (its own TensorFlow graph, librosa front end and
checkpoints) on corpus excerpts: the fixture the torch port is held to (soniquebay_assets_tests/data/
musicnn_reference.json).

Runs in a separate environment, never the project's (TensorFlow is an eval-only dependency):

    python -m venv /tmp/musicnn-ref && /tmp/musicnn-ref/bin/pip install tensorflow-cpu==2.21.0 \
        "tf-keras~=2.21.0" librosa==0.11.0 soundfile soxr==1.1.0 numpy==1.26.4 ml-dtypes==0.5.1
    pip download musicnn==0.1.0 --no-deps -d /tmp/musicnn-wheel && unzip -q -o \
        /tmp/musicnn-wheel/musicnn-0.1.0-py3-none-any.whl -d /tmp/musicnn-wheel/unpacked
    TF_USE_LEGACY_KERAS=1 /tmp/musicnn-ref/bin/python scripts/musicnn_reference.py \
        --musicnn /tmp/musicnn-wheel/unpacked --corpus /work/shared/corpus

numpy 1.26, not 2: musicnn's `np.log10(10000 * float16_spectrogram + 1)` relies on numpy 1's value-based
casting (float32); numpy 2 keeps float16 and overflows to inf, and the original model answers NaN on loud music.
The input audio of each excerpt (decoded, mixed to mono, resampled to 16 kHz) is made by
`reference_audio` below, which the test repeats; its SHA-256 is stored so the test proves it fed the same samples.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parent.parent / "soniquebay_assets_tests" / "data" / "musicnn_reference.json"
# (corpus path, excerpt start s, excerpt length s): metal, orchestral, game electronica, rock-ish, ambient
EXCERPTS = (
    ("music/fretsonfire-muldjord/muldjord/chaos_god/song.ogg", 40.0, 12.0),
    ("music/wesnoth/elf-land.ogg", 20.0, 12.0),
    ("music/xmoto/usr/share/games/xmoto/Textures/Musics/ridealong.ogg", 30.0, 12.0),
    ("music/asc-mp3/usr/share/games/asc/music/time_to_strike.mp3", 30.0, 12.0),
    ("music/warzone2100/albums/legacy_soundtrack/track5.opus", 30.0, 12.0),
)
MODELS = ("MSD_musicnn", "MTT_musicnn")


def reference_audio(path: Path, start_s: float, length_s: float) -> np.ndarray:
    """The excerpt as float32 mono at 16 kHz: soundfile decode, channel mean, soxr 'HQ' (librosa's default)."""
    import soundfile
    import soxr

    with soundfile.SoundFile(str(path)) as handle:
        sr = handle.samplerate
        handle.seek(int(round(start_s * sr)))
        block = handle.read(int(round(length_s * sr)), dtype="float32", always_2d=True)
    mono = block.mean(axis=1, dtype=np.float32)
    return soxr.resample(mono, sr, 16000, quality="HQ").astype(np.float32)


def audio_digest(audio: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(audio, dtype="<f4").tobytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--musicnn", type=Path, required=True, help="the unpacked musicnn wheel (holds musicnn/)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # musicnn's tf.compat.v1.layers need Keras 2
    sys.path.insert(0, str(args.musicnn))
    import librosa
    import soundfile
    import tensorflow as tf
    from musicnn.extractor import extractor

    excerpts = []
    with tempfile.TemporaryDirectory() as scratch:
        for relative, start_s, length_s in EXCERPTS:
            audio = reference_audio(args.corpus / relative, start_s, length_s)
            wav = Path(scratch) / "excerpt.wav"
            soundfile.write(str(wav), audio, 16000, subtype="FLOAT")  # librosa.load at 16 kHz reads it back as is
            models = {}
            for model in MODELS:
                taggram, labels, features = extractor(str(wav), model=model, input_length=3,
                                                      input_overlap=False, extract_features=True)
                # musicnn's extractor repeats the first patch's penultimate layer for the later patches (its
                # loop appends the first batch's value): only the first patch's is a reference
                models[model] = {"labels": list(labels), "probabilities": np.round(taggram, 7).tolist(),
                                 "penultimate_first_patch": np.round(features["penultimate"][0], 6).tolist()}
            excerpts.append({"path": relative, "start_s": start_s, "length_s": length_s,
                             "audio_sha256": audio_digest(audio), "samples": int(audio.size), "models": models})
            print(relative, {m: len(v["probabilities"]) for m, v in models.items()}, file=sys.stderr)
    if int(np.__version__.split(".")[0]) >= 2:
        raise SystemExit("run with numpy 1.26 (see the docstring): numpy 2 breaks musicnn's float16 front end")
    fixture = {"made_by": "scripts/musicnn_reference.py", "musicnn": "0.1.0", "tensorflow": tf.__version__,
               "numpy": np.__version__,
               "librosa": librosa.__version__, "soxr": __import__("soxr").__version__, "excerpts": excerpts}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
