"""Loudness of a whole programme as the decoder streams it: ITU-R BS.1770-4 / EBU R128 integrated loudness,
EBU Tech 3342 loudness range, true peak (oversampled) and sample peak, and the block histogram that lets an
album's loudness be gated over the union of its tracks' blocks (ReplayGain 2.0 album gain) without decoding
anything again.

Every channel is K-weighted at the file's own sample rate (the BS.1770 pre-filter and RLB high-pass, designed
for any rate by the bilinear transform that reproduces the standard's 48 kHz coefficients, as libebur128 and
ffmpeg do), squared and summed per 100 ms; a 400 ms gating block is four of those (75 % overlap), a 3 s
short-term block thirty. Channel weights are applied when the result is asked for, so a decoder that learns the
channel layout late can still say it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

REPLAYGAIN_REFERENCE_LUFS = -18.0
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
RANGE_RELATIVE_GATE_LU = -20.0
SURROUND_WEIGHT = 1.41

# Gating-block histogram for album loudness: 0.1 LU bins from the absolute gate up (libebur128's grid).
HISTOGRAM_STEP_LU = 0.1
HISTOGRAM_BINS = 1000

# Speaker names in WAVE_FORMAT_EXTENSIBLE channel-mask order (the order channels appear in a WAV stream).
MASK_SPEAKERS = ("FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC", "SL", "SR", "TC", "TFL", "TFC", "TFR",
                 "TBL", "TBC", "TBR")
# Default channel orders by channel count: WAV/FLAC/AIFF/ffmpeg, and Vorbis/Opus (mapping family 1).
WAV_ORDER = {1: ("FC",), 2: ("FL", "FR"), 3: ("FL", "FR", "FC"), 4: ("FL", "FR", "BL", "BR"),
             5: ("FL", "FR", "FC", "BL", "BR"), 6: ("FL", "FR", "FC", "LFE", "BL", "BR"),
             7: ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"), 8: ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR")}
VORBIS_ORDER = {1: ("FC",), 2: ("FL", "FR"), 3: ("FL", "FC", "FR"), 4: ("FL", "FR", "BL", "BR"),
                5: ("FL", "FC", "FR", "BL", "BR"), 6: ("FL", "FC", "FR", "BL", "BR", "LFE"),
                7: ("FL", "FC", "FR", "SL", "SR", "BC", "LFE"), 8: ("FL", "FC", "FR", "SL", "SR", "BL", "BR", "LFE")}

# True peak: a 49-tap Hann-windowed sinc interpolator (libebur128's), 4x below 96 kHz, 2x below 192 kHz.
INTERPOLATOR_TAPS = 49
# Peaks are searched in rows of this many samples; only rows whose neighbourhood could beat the peak found so far
# are oversampled (see LoudnessMeter._add_true_peak).
PEAK_ROW = 256
PEAK_SUBROW = 16
# Products of at most this many sub-rows stay under OpenBLAS's threading threshold: one thread, whatever the
# environment (its spinning helper threads cost a loaded machine 4x the CPU time of the product itself).
MATMUL_ROWS = 192
# The K filter runs on blocks of this many samples (see KFilter): larger blocks mean fewer block-to-block steps
# but a larger Toeplitz product per sample.
K_BLOCK = 32
# ... and the recurrence over blocks runs on chunks of this many blocks (see KFilter._block_states).
K_CHUNK = 16


def default_layout(channels: int, *, vorbis_order: bool = False) -> tuple[str, ...]:
    """The speaker of each channel when the container says nothing else ('' for an unknown position)."""
    table = VORBIS_ORDER if vorbis_order else WAV_ORDER
    return table.get(channels, tuple("" for _ in range(channels)))


def layout_from_mask(mask: int, channels: int) -> tuple[str, ...] | None:
    """Speakers of a WAVE_FORMAT_EXTENSIBLE channel mask, or None when the mask does not describe `channels`."""
    speakers = tuple(name for bit, name in enumerate(MASK_SPEAKERS) if mask >> bit & 1)
    return speakers if len(speakers) == channels else None


def channel_weights(layout: Sequence[str]) -> np.ndarray:
    """BS.1770-4 weights: 0 for LFE, 1.41 for surrounds at 60-120 degrees (the side pair, or the back pair of a
    layout without sides, as in 5.1 and quad), 1.0 for the rest (fronts, centre, rear pairs of 7.1)."""
    has_sides = "SL" in layout or "SR" in layout
    surrounds = {"SL", "SR"} | (set() if has_sides else {"BL", "BR"})
    return np.array([0.0 if name == "LFE" else SURROUND_WEIGHT if name in surrounds else 1.0 for name in layout])


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """Second-order sections of the K filter at `sample_rate` (pre-filter shelf, then the RLB high-pass)."""
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10 ** (gain_db / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, high_pass])


class KFilter:
    """The K filter as block matrix products, the same filter as running the two sections sample by sample
    (sosfilt) to float32 rounding, at a fraction of the CPU: a per-sample recurrence waits on each previous
    output, a product does not.

    With the cascade's state-space form (A, B, C, D; the state of sosfilt's two sections), a block of K_BLOCK
    samples x with state s at its start gives outputs T x + O s (T: the impulse response's first taps as a
    Toeplitz matrix, O: the state's free response) and leaves the state A^n s + G x. The input terms of every
    block are one BLAS product; the block-start states follow s' = M s + u (M = A^n), a recurrence over blocks,
    32 times shorter than the samples, solved in A's eigenbasis (one complex mode per section) in float64."""

    def __init__(self, sample_rate: int, block: int = K_BLOCK):
        from scipy.signal import sosfilt

        sos = k_weighting_sos(sample_rate)
        order = 2 * sos.shape[0]
        a, c = np.zeros((order, order)), np.zeros(order)
        for j in range(order):  # the state-space form, read off the reference filter itself
            unit = np.zeros(order)
            unit[j] = 1.0
            y, state = sosfilt(sos, [0.0], zi=unit.reshape(-1, 2))
            a[:, j], c[j] = state.reshape(-1), y[0]
        y, state = sosfilt(sos, [1.0], zi=np.zeros((sos.shape[0], 2)))
        b, d = state.reshape(-1), y[0]
        powers = [np.eye(order)]
        for _ in range(block):
            powers.append(a @ powers[-1])
        taps = np.array([d] + [c @ powers[m - 1] @ b for m in range(1, block)])
        toeplitz = np.zeros((block, block))
        for i in range(block):
            toeplitz[i, : i + 1] = taps[i::-1]
        self.block, self.order = block, order
        self._rows = self._out = np.zeros((0, 0), dtype=np.float32)
        state_gain = np.array([powers[block - 1 - j] @ b for j in range(block)])  # block x order
        free = np.array([c @ powers[i] for i in range(block)]).T  # order x block: outputs of a start state
        # [block's samples | its start state] @ this: the block's outputs
        self._outputs = np.concatenate([toeplitz.T, free]).astype(np.float32)
        self._state_gain, self._powers = state_gain, powers
        # M = A^n shares A's eigenvectors (A has two distinct conjugate pole pairs at any rate; M's eigenvalues
        # may underflow to 0 at low rates, A's do not); a real state is the real part of its modes' sum: one
        # mode of each conjugate pair, counted twice
        values, vectors = np.linalg.eig(a)
        kept = values.imag >= 0
        self._modes = values[kept] ** block
        to_modes = np.linalg.inv(vectors)[kept].T  # order x modes
        # a block's input share of the next state, straight in modes: real and imaginary parts interleaved
        self._drive = np.empty((block, 2 * kept.sum()), dtype=np.float32)
        self._drive[:, 0::2], self._drive[:, 1::2] = (state_gain @ to_modes).real, (state_gain @ to_modes).imag
        self._to_modes = to_modes
        # a state from its modes (interleaved real and imaginary parts): the real part of their weighted sum
        from_modes = vectors[:, kept] * np.where(values[kept].imag > 0, 2.0, 1.0)  # order x modes
        self._from_modes = np.empty((2 * kept.sum(), order))
        self._from_modes[0::2], self._from_modes[1::2] = from_modes.real.T, -from_modes.imag.T
        # within a chunk of K_CHUNK blocks, from a zero start: w_i = sum_j<i m^(i-1-j) drive_j, i = 0..K_CHUNK
        steps = np.arange(K_CHUNK + 1)[None, :] - 1 - np.arange(K_CHUNK)[:, None]
        self._chunk_sums = [np.where(steps >= 0, mode ** np.maximum(steps, 0), 0.0) for mode in self._modes]
        self._chunk_powers = [mode ** np.arange(K_CHUNK) for mode in self._modes]

    def initial_state(self, channels: int) -> np.ndarray:
        return np.zeros((channels, self.order))

    def run(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filter channels x frames (float32) from `state` (channels x order, float64): the outputs (float32,
        same shape; a view into a buffer the next call overwrites) and the state after the last frame."""
        channels, frames = x.shape
        n, count = self.block, len(self._modes)
        blocks = -(-frames // n)
        if blocks == 0:
            return np.zeros_like(x), state
        tail = frames - (blocks - 1) * n  # frames of the last block (1..n)
        rows, outputs = self._buffers(channels, blocks)  # each block's samples, then its start state
        rows[:, : blocks - 1, :n] = x[:, : (blocks - 1) * n].reshape(channels, blocks - 1, n)
        rows[:, blocks - 1, :tail] = x[:, (blocks - 1) * n :]
        rows[:, blocks - 1, tail:n] = 0.0
        flat = rows.reshape(channels * blocks, -1)
        drive = (flat[:, :n] @ self._drive).astype(np.float64).view(np.complex128).reshape(channels, blocks, count)
        states = self._block_states(drive, state @ self._to_modes)
        rows[:, :, n:] = states
        np.matmul(flat, self._outputs, out=outputs)
        end = states[:, -1] @ self._powers[tail].T + x[:, frames - tail :].astype(np.float64) @ \
            self._state_gain[n - tail :]
        return outputs.reshape(channels, blocks * n)[:, :frames], end

    def _buffers(self, channels: int, blocks: int) -> tuple[np.ndarray, np.ndarray]:
        """Work arrays kept from call to call: allocating megabytes per block costs the kernel page faults
        (freed large blocks go back to the system) as much CPU as the filter itself."""
        size = channels * blocks
        if self._rows.shape[0] < size:
            self._rows = np.empty((size, self.block + self.order), dtype=np.float32)
            self._out = np.empty((size, self.block), dtype=np.float32)
        return self._rows[:size].reshape(channels, blocks, -1), self._out[:size]

    def _block_states(self, drive: np.ndarray, start: np.ndarray) -> np.ndarray:
        """States at every block's start (channels x blocks x order) from the blocks' drives (channels x blocks x
        modes, complex) and the first block's start in modes: w_k+1 = m w_k + drive_k per mode, solved a chunk
        of blocks at a time (one product from a zero start, then each chunk's start added, scaled by m^i)."""
        from scipy.signal import lfilter

        channels, blocks, count = drive.shape
        chunks = -(-blocks // K_CHUNK)
        padded = np.zeros((channels, chunks * K_CHUNK, count), dtype=np.complex128)
        padded[:, :blocks] = drive
        modes = np.empty((channels, chunks, K_CHUNK, count), dtype=np.complex128)
        for i, mode in enumerate(self._modes):
            local = padded[:, :, i].reshape(channels * chunks, K_CHUNK) @ self._chunk_sums[i]
            local = local.reshape(channels, chunks, K_CHUNK + 1)
            # each chunk's start: the previous chunk's start times m^K_CHUNK plus its own zero-start end
            starts = np.empty((channels, chunks), dtype=np.complex128)
            starts[:, 0] = start[:, i]
            if chunks > 1:
                starts[:, 1:] = lfilter([1.0], [1.0, -mode ** K_CHUNK], local[:, :-1, K_CHUNK], axis=1,
                                        zi=(mode ** K_CHUNK * start[:, i])[:, None])[0]
            modes[:, :, :, i] = local[:, :, :K_CHUNK] + starts[:, :, None] * self._chunk_powers[i]
        flat = modes.reshape(channels, chunks * K_CHUNK, count)[:, :blocks]
        return (np.ascontiguousarray(flat).view(np.float64) @ self._from_modes).reshape(channels, blocks, -1)


def oversampling_factor(sample_rate: int) -> int:
    return 4 if sample_rate < 96000 else 2 if sample_rate < 192000 else 1


def interpolator_phases(factor: int, taps: int = INTERPOLATOR_TAPS) -> list[np.ndarray]:
    """Sub-filters of the oversampling interpolator for phases 1..factor-1 (phase 0 is the samples themselves):
    output factor*n + f = sum_t phase_f[t] * x[n - t]."""
    j = np.arange(taps)
    m = j - (taps - 1) / 2
    safe = np.where(m == 0, 1.0, m)
    coeffs = np.where(m == 0, 1.0, np.sin(safe * np.pi / factor) / (safe * np.pi / factor))
    coeffs = coeffs * 0.5 * (1 - np.cos(2 * np.pi * j / (taps - 1)))
    return [coeffs[f::factor] for f in range(1, factor)]


def _lufs(power: float) -> float:
    return -0.691 + 10.0 * math.log10(power)


def _power(lufs: float) -> float:
    return 10 ** ((lufs + 0.691) / 10)


@dataclass(frozen=True)
class BlockHistogram:
    """Counts of 400 ms gating blocks (above the absolute gate) in 0.1 LU bins, from bin `first` on: what album
    gating needs of a track, in a few hundred bytes."""

    first: int
    counts: tuple[int, ...]

    @classmethod
    def of_powers(cls, powers: np.ndarray) -> BlockHistogram:
        above = powers[powers > _power(ABSOLUTE_GATE_LUFS)]
        if above.size == 0:
            return cls(0, ())
        loudness = -0.691 + 10 * np.log10(above)
        bins = np.clip(((loudness - ABSOLUTE_GATE_LUFS) / HISTOGRAM_STEP_LU).astype(np.int64), 0,
                       HISTOGRAM_BINS - 1)
        counts = np.bincount(bins - bins.min())
        return cls(int(bins.min()), tuple(int(c) for c in counts))

    @property
    def blocks(self) -> int:
        return sum(self.counts)

    def to_bytes(self) -> bytes:
        """Version byte, first bin (uint16), then the counts as uint16 (uint32 when one exceeds 65535)."""
        wide = any(c > 0xFFFF for c in self.counts)
        body = np.asarray(self.counts, dtype="<u4" if wide else "<u2").tobytes()
        return bytes([2 if wide else 1]) + int(self.first).to_bytes(2, "little") + body

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockHistogram:
        if not data:
            return cls(0, ())
        if data[0] not in (1, 2):
            raise ValueError(f"unknown block histogram encoding {data[0]}")
        counts = np.frombuffer(data[3:], dtype="<u4" if data[0] == 2 else "<u2")
        return cls(int.from_bytes(data[1:3], "little"), tuple(int(c) for c in counts))


def gated_loudness(histograms: Iterable[BlockHistogram]) -> float | None:
    """Integrated loudness (LUFS) of the programme made of these histograms' blocks: relative gate over their
    union, each block at its bin's centre (as libebur128 gates albums); None when no block passes."""
    total = np.zeros(HISTOGRAM_BINS)
    for histogram in histograms:
        if histogram.counts:
            total[histogram.first : histogram.first + len(histogram.counts)] += histogram.counts
    if not total.any():
        return None
    energies = 10 ** ((ABSOLUTE_GATE_LUFS + (np.arange(HISTOGRAM_BINS) + 0.5) * HISTOGRAM_STEP_LU + 0.691) / 10)
    threshold = float(total @ energies / total.sum()) * 10 ** (RELATIVE_GATE_LU / 10)
    kept = energies >= threshold
    if not total[kept].any():
        return None
    return _lufs(float(total[kept] @ energies[kept] / total[kept].sum()))


@dataclass(frozen=True)
class AlbumGain:
    """ReplayGain 2.0 album values: the album's integrated loudness as one programme, its gain (dB, reference
    -18 LUFS) and peak (the highest of its tracks' true peaks, linear); None where nothing was measured."""

    loudness_lufs: float | None
    gain_db: float | None
    peak: float | None


def album_replaygain(histograms: Sequence[BlockHistogram], true_peaks: Sequence[float | None]) -> AlbumGain:
    loudness = gated_loudness(histograms)
    peaks = [p for p in true_peaks if p is not None]
    return AlbumGain(None if loudness is None else round(loudness, 2),
                     None if loudness is None else round(REPLAYGAIN_REFERENCE_LUFS - loudness, 2),
                     max(peaks) if peaks else None)


@dataclass(frozen=True)
class Loudness:
    """What the meter measured. Linear peaks (1.0 = full scale, may exceed 1); None = not measurable
    (integrated: no 400 ms block above the gates, i.e. silence or under 0.4 s; range: no 3 s block)."""

    integrated_lufs: float | None
    range_lu: float | None
    true_peak: float | None
    sample_peak: float | None
    histogram: BlockHistogram
    seconds: float

    @property
    def track_gain_db(self) -> float | None:
        """ReplayGain 2.0 track gain: -18 LUFS minus the integrated loudness."""
        return None if self.integrated_lufs is None else round(REPLAYGAIN_REFERENCE_LUFS - self.integrated_lufs, 2)

    @property
    def true_peak_dbtp(self) -> float | None:
        return None if not self.true_peak else round(20 * math.log10(self.true_peak), 2)


class LoudnessMeter:
    """Feed decoded blocks (frames x channels, float, interleaved as decoders give them) in order with `add`,
    then ask `result`. `layout` names each channel's speaker (default: the WAV order for the count)."""

    def __init__(self, sample_rate: int, channels: int, layout: Sequence[str] | None = None):
        if sample_rate <= 0 or channels <= 0:
            raise ValueError(f"no loudness for {channels} channels at {sample_rate} Hz")
        self.sample_rate, self.channels = sample_rate, channels
        self.layout = tuple(layout) if layout is not None else default_layout(channels)
        if len(self.layout) != channels:
            raise ValueError(f"layout names {len(self.layout)} channels, the meter has {channels}")
        weights = channel_weights(self.layout)
        self._weighted = np.flatnonzero(weights)  # the channels that count (an LFE does not)
        self._weights = weights[self._weighted]
        self._filter = KFilter(sample_rate)
        self._state = self._filter.initial_state(len(self._weighted))
        self._hop = (sample_rate + 5) // 10  # samples in 100 ms, as libebur128 rounds
        self._partial = np.zeros(len(self._weighted))  # energy of the 100 ms block under way, per channel
        self._partial_frames = 0
        self._energies: list[np.ndarray] = []  # channels x complete 100 ms blocks
        self._frames = 0
        self._sample_peak = 0.0
        self._true_peak = 0.0
        factor = oversampling_factor(sample_rate)
        self._phases = interpolator_phases(factor) if factor > 1 else []
        self._reach = max((len(p) for p in self._phases), default=1) - 1  # past samples one output uses
        # |interpolated value| <= this x the largest |sample| it is made of
        self._gain_bound = max((float(np.abs(p).sum()) for p in self._phases), default=1.0)
        self._toeplitz = self._subrow_matrix()
        self._history = np.zeros((self._reach, channels), dtype=np.float32)
        self._history_max = 0.0
        self._pending = np.zeros((0, channels), dtype=np.float32)  # frames short of a full peak row

    def _subrow_matrix(self) -> np.ndarray:
        """Maps PEAK_SUBROW outputs' inputs (reach past samples + the sub-row) to every phase's outputs."""
        if not self._phases:
            return np.zeros((0, 0), dtype=np.float32)
        width = PEAK_SUBROW + self._reach
        matrix = np.zeros((width, len(self._phases) * PEAK_SUBROW), dtype=np.float32)
        for p, phase in enumerate(self._phases):
            for i in range(PEAK_SUBROW):
                for t, coeff in enumerate(phase):
                    matrix[i + self._reach - t, p * PEAK_SUBROW + i] = coeff
        return matrix

    def add(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1:
            block = block[:, None]
        if block.shape[0] == 0:
            return
        if block.shape[1] != self.channels:
            raise ValueError(f"meter for {self.channels} channels got {block.shape[1]}")
        self._frames += block.shape[0]
        if self._weighted.size:  # else every channel weighs 0 (an LFE alone)
            weighted, self._state = self._filter.run(block.T[self._weighted], self._state)
            self._add_energies(weighted)
        self._add_peaks(block)

    def _add_energies(self, weighted: np.ndarray) -> None:
        """Sum of squares per 100 ms of each channel's K-weighted samples (channels x frames)."""
        hop, done, n = self._hop, 0, weighted.shape[1]
        if self._partial_frames:
            take = min(n, hop - self._partial_frames)
            self._partial += np.einsum("ij,ij->i", weighted[:, :take], weighted[:, :take], dtype=np.float64)
            self._partial_frames += take
            done = take
            if self._partial_frames == hop:
                self._energies.append(self._partial[:, None].copy())
                self._partial[:] = 0.0
                self._partial_frames = 0
        whole = (n - done) // hop
        if whole:
            blocks = weighted[:, done : done + whole * hop].reshape(weighted.shape[0], whole, hop)
            self._energies.append(np.einsum("cij,cij->ci", blocks, blocks, dtype=np.float64))
            done += whole * hop
        if done < n:
            self._partial += np.einsum("ij,ij->i", weighted[:, done:], weighted[:, done:], dtype=np.float64)
            self._partial_frames += n - done

    def _add_peaks(self, block: np.ndarray) -> None:
        if self._pending.shape[0]:
            block = np.concatenate([self._pending, block])
        rows = block.shape[0] // PEAK_ROW
        self._pending = block[rows * PEAK_ROW :].copy()
        if rows:
            self._peak_rows(block[: rows * PEAK_ROW])

    def _peak_rows(self, x: np.ndarray) -> None:
        """Sample peak of whole rows (all channels), and true peak where an inter-sample value could beat the
        best so far: a phase output is a weighted sum of `reach`+1 samples, so it cannot exceed the gain bound
        (the largest sum of a phase's absolute coefficients, 1.86 at 4x) times the largest of them. Rows are
        oversampled loudest first and only while that bound can beat the running peak: exact, and it skips
        the rows more than 5.4 dB under the peak, most of a track."""
        rows = x.reshape(-1, PEAK_ROW * self.channels)
        row_max = np.maximum(rows.max(axis=1), -rows.min(axis=1))
        self._sample_peak = max(self._sample_peak, float(row_max.max()))
        if self._phases:
            reach_max = np.maximum(row_max, np.concatenate([[self._history_max], row_max[:-1]]))
            best = max(self._true_peak, self._sample_peak)
            candidates = np.flatnonzero(reach_max * self._gain_bound > best)
            if candidates.size:
                inputs = self._subrow_inputs(x)
                order = candidates[np.argsort(-reach_max[candidates], kind="stable")]
                self._true_peak = max(best, self._oversampled_peak(inputs, order[:4]))
                rest = order[4:]
                rest = rest[reach_max[rest] * self._gain_bound > self._true_peak]
                if rest.size:
                    self._true_peak = max(self._true_peak, self._oversampled_peak(inputs, rest))
            self._history_max = float(reach_max[-1])
            self._history = x[-self._reach :].copy()

    def _subrow_inputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every sub-row's inputs (reach past frames, then the sub-row's own) of every channel, channel x
        sub-row x sample: the first sub-rows (those reaching into the previous block) copied with the history,
        the others as a view into the block."""
        head = -(-self._reach // PEAK_SUBROW)
        width = PEAK_SUBROW + self._reach
        joined = np.concatenate([self._history, x[: head * PEAK_SUBROW]])
        first = np.stack([joined[j * PEAK_SUBROW : j * PEAK_SUBROW + width].T for j in range(head)], axis=1)
        later = x[head * PEAK_SUBROW - self._reach :]
        item, frame = later.strides[1], later.strides[0]
        view = np.lib.stride_tricks.as_strided(
            later, shape=(self.channels, x.shape[0] // PEAK_SUBROW - head, width),
            strides=(item, PEAK_SUBROW * frame, frame), writeable=False)
        return first, view

    def _oversampled_peak(self, inputs: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> float:
        """Largest |interpolated value| of every channel over the given rows."""
        first, view = inputs
        head = first.shape[1]
        per_row = PEAK_ROW // PEAK_SUBROW
        subrows = (rows[:, None] * per_row + np.arange(per_row)).reshape(-1)
        picked = view.transpose(1, 0, 2)[subrows[subrows >= head] - head].reshape(-1, view.shape[2])  # a gather
        if (subrows < head).any():
            picked = np.concatenate([first.reshape(-1, view.shape[2]), picked])
        out = np.empty((picked.shape[0], self._toeplitz.shape[1]), dtype=np.float32)
        for start in range(0, picked.shape[0], MATMUL_ROWS):
            np.matmul(picked[start : start + MATMUL_ROWS], self._toeplitz, out=out[start : start + MATMUL_ROWS])
        return float(max(out.max(), -out.min()))

    def _flush_pending(self) -> None:
        """The last frames (less than a row): plain oversampling, they are few."""
        tail, self._pending = self._pending, np.zeros((0, self.channels), dtype=np.float32)
        if not tail.shape[0]:
            return
        self._sample_peak = max(self._sample_peak, float(np.abs(tail).max()))
        if self._phases:
            full = np.concatenate([self._history, tail])
            for phase in self._phases:
                for channel in range(self.channels):
                    out = np.convolve(full[:, channel], phase, mode="valid")
                    self._true_peak = max(self._true_peak, float(np.abs(out).max()))
            self._history = full[-self._reach :]

    def result(self) -> Loudness:
        """The programme so far."""
        self._flush_pending()
        energies = np.concatenate(self._energies, axis=1) if self._energies else np.zeros((self._weights.size, 0))
        per_100ms = self._weights @ energies / self._hop  # weighted mean square of each 100 ms
        sample_peak = self._sample_peak if self._frames else None
        true_peak = max(self._true_peak, sample_peak) if sample_peak is not None else None
        blocks = _sliding_mean(per_100ms, 4)
        return Loudness(
            integrated_lufs=_gated(blocks, RELATIVE_GATE_LU),
            range_lu=_loudness_range(_sliding_mean(per_100ms, 30)),
            true_peak=true_peak, sample_peak=sample_peak,
            histogram=BlockHistogram.of_powers(blocks), seconds=self._frames / self.sample_rate,
        )


def _sliding_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Means of every `width` consecutive values (blocks made of 100 ms steps)."""
    if values.size < width:
        return np.zeros(0)
    csum = np.concatenate([[0.0], np.cumsum(values)])
    return (csum[width:] - csum[:-width]) / width


def _gated(powers: np.ndarray, relative_gate_lu: float) -> float | None:
    above = powers[powers > _power(ABSOLUTE_GATE_LUFS)]
    if above.size == 0:
        return None
    kept = above[above >= above.mean() * 10 ** (relative_gate_lu / 10)]
    return round(_lufs(float(kept.mean())), 2)


def _loudness_range(short_term: np.ndarray) -> float | None:
    """EBU Tech 3342: short-term blocks above -70 LUFS and above their power mean -20 LU; P95 - P10 of their
    loudness (nearest rank, as libebur128)."""
    above = short_term[short_term > _power(ABSOLUTE_GATE_LUFS)]
    if above.size == 0:
        return None
    kept = np.sort(above[above >= above.mean() * 10 ** (RANGE_RELATIVE_GATE_LU / 10)])
    low, high = kept[int((kept.size - 1) * 0.10 + 0.5)], kept[int((kept.size - 1) * 0.95 + 0.5)]
    return round(_lufs(float(high)) - _lufs(float(low)), 2)


def measure_loudness(samples: np.ndarray, sample_rate: int, layout: Sequence[str] | None = None) -> Loudness:
    """Loudness of one whole programme held in memory (frames x channels, or mono)."""
    samples = np.asarray(samples, dtype=np.float32)
    meter = LoudnessMeter(sample_rate, 1 if samples.ndim == 1 else samples.shape[1], layout)
    meter.add(samples)
    return meter.result()
