"""MusiCNN taggers (Pons & Serra 2019, MSD_musicnn and MTT_musicnn) ported to torch from the `musicnn` wheel.

The weights are the wheel's trained checkpoints converted by scripts/convert_musicnn.py (soniquebay_assets/
models/musicnn, ISC licence kept beside them). The front end is musicnn's own: mono audio at 16 kHz, a librosa
mel spectrogram (512-point FFT, hop 256, 96 bands), rounded to float16, log10(10000 x + 1), cut in 187-frame
(3 s) patches. Each patch gets 50 tag probabilities and a 200-value penultimate layer; a track's tags are the
mean over its patches, as musicnn's tagger averages its taggram.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

SR = 16000
FFT_HOP = 256
FFT_SIZE = 512
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1, as musicnn's extractor computes it
PATCH_SAMPLES = (PATCH_FRAMES - 1) * FFT_HOP  # audio that yields exactly PATCH_FRAMES centred frames
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
MODELS = ("MSD_musicnn", "MTT_musicnn")

MSD_LABELS = ("rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
              "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
              "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
              "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
              "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
              "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy")
MTT_LABELS = ("guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
              "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
              "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal",
              "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance",
              "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal",
              "female voice", "choral")
LABELS = {"MSD_musicnn": MSD_LABELS, "MTT_musicnn": MTT_LABELS}


@functools.cache
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SR, n_fft=FFT_SIZE, n_mels=N_MELS).T.astype(np.float32)  # (257, 96), Slaney


@functools.cache
def _window() -> np.ndarray:
    from scipy.signal import get_window

    return get_window("hann", FFT_SIZE, fftbins=True).astype(np.float32)


def mel_power(audio_16k: np.ndarray) -> np.ndarray:
    """(frames, 96) librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96), transposed.

    librosa's own filter bank; the centred, zero-padded STFT is written out here because librosa.stft JIT-compiles
    numba helpers on its first call in a process with an empty cache (~25 s), which every fresh worker would pay."""
    y = np.pad(np.asarray(audio_16k, dtype=np.float32), FFT_SIZE // 2)
    if y.size < FFT_SIZE:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, FFT_SIZE)[::FFT_HOP]
    spectrum = np.fft.rfft(frames * _window(), axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    return power @ _mel_basis()


def log_mel(audio_16k: np.ndarray) -> np.ndarray:
    """(frames, 96) log-compressed mel spectrogram of mono 16 kHz audio, exactly as musicnn's batch_data."""
    mel = mel_power(audio_16k)
    # musicnn rounds its spectrograms to float16; under the numpy it pinned (< 1.17, value-based casting)
    # `10000 * mel` then promoted to float32. numpy 2 would keep float16 and overflow to inf on loud music.
    mel = mel.astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000) * mel + np.float32(1))


def patches(mel: np.ndarray) -> np.ndarray:
    """Consecutive non-overlapping 187-frame patches (musicnn's batching without overlap): (n, 187, 96)."""
    count = (mel.shape[0] - PATCH_FRAMES) // PATCH_FRAMES + 1 if mel.shape[0] >= PATCH_FRAMES else 0
    if count == 0:
        return np.zeros((0, PATCH_FRAMES, N_MELS), dtype=np.float32)
    return np.stack([mel[i * PATCH_FRAMES:(i + 1) * PATCH_FRAMES] for i in range(count)]).astype(np.float32)


@functools.cache
def _weights(model: str) -> dict[str, np.ndarray]:
    path = resources.files("soniquebay_assets").joinpath(f"models/musicnn/{model}.npz")
    with path.open("rb") as handle, np.load(handle) as archive:
        return {name: archive[name] for name in archive.files}


def _max_over_frequency(y, sign, scale, shift):
    """max over the last axis of relu(v) * scale + shift per channel (axis 1), where y = v * sign (see _signed).

    relu then a positive scale keeps the order of the values and a negative one reverses it (rounding is
    monotone too), so the maximum is the transformed max or min of v, i.e. sign times the max of y:
    bit-identical to transforming every value first, without three passes over the large activations."""
    import torch

    extreme = y.amax(dim=3) * sign[:, None]
    return torch.relu(extreme) * scale[:, None] + shift[:, None]


def _signed(convolution, norm):
    """The convolution negated on the channels whose batch-norm scale is negative (exact: negation commutes
    with every rounding), so that one max over frequency serves them all."""
    (kernel, bias), (scale, shift) = convolution, norm
    sign = (scale >= 0).float() * 2 - 1
    return (kernel * sign[:, None, None, None], bias * sign), (sign, scale, shift)


class _Network:
    """musicnn's build_musicnn at inference (batch norm on moving statistics, no dropout), in torch."""

    def __init__(self, weights: dict[str, np.ndarray]):
        import torch

        self.torch = torch

        def tensor(name: str):
            return torch.from_numpy(np.ascontiguousarray(weights[name], dtype=np.float32))

        def bn(index: int):
            prefix = "batch_normalization" + (f"_{index}" if index else "")
            scale = tensor(f"{prefix}/gamma") / torch.sqrt(tensor(f"{prefix}/moving_variance") + BN_EPSILON)
            return scale, tensor(f"{prefix}/beta") - tensor(f"{prefix}/moving_mean") * scale

        def conv(index: int):
            prefix = "conv2d" + (f"_{index}" if index else "")
            kernel = tensor(f"{prefix}/kernel")  # TF (height, width, in, out) -> torch (out, in, height, width)
            return kernel.permute(3, 2, 0, 1).contiguous(), tensor(f"{prefix}/bias")

        self.input_bn = bn(0)
        # front end: two timbral convolutions (7 frames x 38 / 67 bands) and three temporal ones (128/64/32
        # frames x 1 band), each followed by ReLU, batch norm and a max over frequency
        self.timbral = [_signed(conv(0), bn(1)), _signed(conv(1), bn(2))]
        self.temporal = [_signed(conv(2), bn(3)), _signed(conv(3), bn(4)), _signed(conv(4), bn(5))]
        # mid end: three 7-frame convolutions over the whole feature axis (1-D in time), dense connections
        self.midend = []
        for index, norm in ((5, 6), (6, 7), (7, 8)):
            kernel, bias = conv(index)
            self.midend.append(((kernel[:, 0].permute(0, 2, 1).contiguous(), bias), bn(norm)))
        self.pool_bn = bn(9)
        self.dense = (tensor("dense/kernel"), tensor("dense/bias"))
        self.dense_bn = bn(10)
        self.output = (tensor("dense_1/kernel"), tensor("dense_1/bias"))

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 187, 96) log-mel patches -> (n, 50) probabilities and (n, 200) penultimate activations."""
        torch = self.torch
        functional = torch.nn.functional
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))[:, None]  # n, 1, time, mel
            x = x * self.input_bn[0] + self.input_bn[1]
            features = []
            padded = functional.pad(x, (0, 0, 3, 3))
            for (kernel, bias), norm in self.timbral:
                features.append(_max_over_frequency(functional.conv2d(padded, kernel, bias), *norm))
            for (kernel, bias), norm in self.temporal:
                size = kernel.shape[2]  # TF 'same' padding: the extra frame of an even kernel goes after
                y = functional.conv2d(functional.pad(x, (0, 0, (size - 1) // 2, size // 2)), kernel, bias)
                features.append(_max_over_frequency(y, *norm))
            front = torch.cat(features, dim=1)  # n, 561, time
            layers, previous = [front], None
            for (kernel, bias), (scale, shift) in self.midend:
                y = torch.relu(functional.conv1d(layers[-1], kernel, bias, padding=3))
                y = y * scale[:, None] + shift[:, None]
                previous = y if previous is None else y + previous
                layers.append(previous)
            midend = torch.cat(layers, dim=1)  # n, 753, time
            # musicnn flattens [max, mean] per feature: max0, mean0, max1, mean1, ...
            pooled = torch.stack([midend.amax(dim=2), midend.mean(dim=2)], dim=2).flatten(1)
            pooled = pooled * self.pool_bn[0] + self.pool_bn[1]
            hidden = torch.relu(pooled @ self.dense[0] + self.dense[1])
            penultimate = hidden * self.dense_bn[0] + self.dense_bn[1]
            logits = penultimate @ self.output[0] + self.output[1]
            return torch.sigmoid(logits).numpy(), penultimate.numpy()


@functools.cache
def network(model: str) -> _Network:
    """The model's network, built once per process."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: one of {MODELS}")
    return _Network(_weights(model))


@dataclass(frozen=True)
class Taggram:
    """Per-patch outputs of one model: probabilities (n, 50) and penultimate activations (n, 200)."""

    model: str
    probabilities: np.ndarray
    penultimate: np.ndarray

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS[self.model]

    def mean(self) -> dict[str, float]:
        """The track's tags: each label's probability averaged over the patches."""
        return dict(zip(self.labels, (float(p) for p in self.probabilities.mean(axis=0)), strict=True))


def run(model: str, batch: np.ndarray, chunk: int = 8) -> Taggram:
    """Tag a batch of (n, 187, 96) log-mel patches with `model`, `chunk` patches at a time (bounded memory)."""
    outputs = [network(model)(batch[i:i + chunk]) for i in range(0, max(batch.shape[0], 1), chunk)]
    return Taggram(model, np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs]))
